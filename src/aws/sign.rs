//! SigV4 request signing, delegated to the `aws-sigv4` crate, and the awsJson1_0 request shape.
//!
//! The only module that reads [`Credentials`]. Time comes in as milliseconds since the Unix
//! epoch (`Date.now()` in the Worker): `SystemTime::now()` panics on wasm32-unknown-unknown.
//!
//! The `Host` that is signed is the authority of the request URL, without the port when it is
//! the scheme's default (`https://h:443/` signs `h`; `http://127.0.0.1:8911/` signs
//! `127.0.0.1:8911`). That is exactly the `Host` that `fetch` derives from the same URL, and
//! Workers forbid setting `Host` by hand, so no `host` header is added to the request and a
//! request that already carries one is refused.

use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use super::Credentials;
use crate::edge::HttpRequest;

/// The headers the signer owns. Any stale copies (a request re-signed for a retry) are removed
/// before signing so that they are neither signed nor sent twice.
const SIGNER_HEADERS: [&str; 3] = ["authorization", "x-amz-date", "x-amz-security-token"];

/// 9999-12-31T23:59:59.999Z: the last instant the date formatting of `aws-sigv4` can represent.
const MAX_SIGNABLE_MS: u64 = 253_402_300_799_999;

/// Why a request could not be signed. Never carries secret material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignError {
    /// The URL is not an absolute `http`/`https` URL with a host.
    InvalidUrl(&'static str),
    /// The request carries a `host` header; the signed host must come from the URL (see the
    /// module documentation).
    HostHeaderPresent,
    /// `now_ms` is beyond what a SigV4 date can express (after the year 9999).
    InvalidTime(u64),
    /// A credential field is empty or holds characters a header cannot carry.
    InvalidCredentials(&'static str),
    /// The region or service name is empty or not of the form `[a-z0-9-]+`.
    InvalidScope(&'static str),
    /// `aws-sigv4` refused the request (for example an invalid header name or value).
    Signer(String),
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignError::InvalidUrl(why) => write!(f, "cannot sign: invalid URL ({why})"),
            SignError::HostHeaderPresent => {
                f.write_str("cannot sign: the request sets a host header; the URL decides the host")
            }
            SignError::InvalidTime(ms) => write!(f, "cannot sign: time {ms} ms is out of range"),
            SignError::InvalidCredentials(why) => write!(f, "cannot sign: {why}"),
            SignError::InvalidScope(what) => write!(f, "cannot sign: invalid {what}"),
            SignError::Signer(why) => write!(f, "cannot sign: {why}"),
        }
    }
}

impl std::error::Error for SignError {}

/// Signs `req` in place with SigV4 (`SigningSettings::default()`: headers, no
/// `x-amz-content-sha256`, session token signed).
///
/// Adds `x-amz-date`, `authorization` and, when `creds` has a session token,
/// `x-amz-security-token`, replacing any earlier copies. Every other header already on `req` is
/// signed as is, so add headers before signing, never after.
pub fn sign(
    req: &mut HttpRequest,
    creds: &Credentials,
    region: &str,
    service: &str,
    now_ms: u64,
) -> Result<(), SignError> {
    check_url(&req.url)?;
    if req.header("host").is_some() {
        return Err(SignError::HostHeaderPresent);
    }
    check_scope(region, "region")?;
    check_scope(service, "service name")?;
    check_credentials(creds)?;
    if now_ms > MAX_SIGNABLE_MS {
        return Err(SignError::InvalidTime(now_ms));
    }
    let time = UNIX_EPOCH + Duration::from_millis(now_ms);

    req.headers.retain(|(name, _)| !SIGNER_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h)));

    let identity: Identity = aws_credential_types::Credentials::new(
        creds.access_key_id.as_str(),
        creds.secret_access_key.as_str(),
        creds.session_token.clone(),
        None,
        "okta-edge-hooks",
    )
    .into();
    let params: aws_sigv4::http_request::SigningParams<'_> = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| SignError::Signer(e.to_string()))?
        .into();

    let signable = SignableRequest::new(
        req.method,
        req.url.as_str(),
        req.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(&req.body),
    )
    .map_err(|e| SignError::Signer(describe(&e)))?;
    let (instructions, _signature) =
        aws_sigv4::http_request::sign(signable, &params).map_err(|e| SignError::Signer(describe(&e)))?.into_parts();
    let (headers, _query) = instructions.into_parts();
    for header in headers {
        req.headers.push((header.name().to_owned(), header.value().to_owned()));
    }
    Ok(())
}

/// An awsJson1_0 call: `POST {endpoint}/` with `content-type: application/x-amz-json-1.0` and
/// `x-amz-target: {target}` (e.g. `PinpointSMSVoiceV2.SendTextMessage`). Unsigned.
///
/// `endpoint` is scheme and authority, e.g. `https://sms-voice.us-east-1.amazonaws.com`; a
/// trailing `/` is accepted.
pub fn json_request(endpoint: &str, target: &str, body: Vec<u8>) -> HttpRequest {
    HttpRequest {
        method: "POST",
        url: format!("{}/", endpoint.trim_end_matches('/')),
        headers: vec![
            ("content-type".to_owned(), "application/x-amz-json-1.0".to_owned()),
            ("x-amz-target".to_owned(), target.to_owned()),
        ],
        body,
    }
}

/// The signer's error and its causes, one line. `aws-sigv4` errors name what was malformed,
/// never a value.
fn describe(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `aws-sigv4` panics on a URL without an authority, so check before handing it over.
fn check_url(url: &str) -> Result<(), SignError> {
    let uri: http::Uri = url.parse().map_err(|_| SignError::InvalidUrl("unparsable"))?;
    match uri.scheme_str() {
        Some("https") | Some("http") => {}
        Some(_) => return Err(SignError::InvalidUrl("scheme is not http or https")),
        None => return Err(SignError::InvalidUrl("not absolute")),
    }
    match uri.authority() {
        Some(authority) if !authority.host().is_empty() => {}
        _ => return Err(SignError::InvalidUrl("no host")),
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(SignError::InvalidUrl("user info is not allowed"));
    }
    Ok(())
}

/// The region and the signing name go into the credential scope as they are. Signing names
/// (`connect`, `sms-voice`, `dynamodb`) have a region's shape, so one check serves both.
fn check_scope(value: &str, what: &'static str) -> Result<(), SignError> {
    if crate::settings::is_region_name(value) {
        Ok(())
    } else {
        Err(SignError::InvalidScope(what))
    }
}

fn check_credentials(creds: &Credentials) -> Result<(), SignError> {
    if creds.access_key_id.is_empty() {
        return Err(SignError::InvalidCredentials("empty access key id"));
    }
    if !creds.access_key_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(SignError::InvalidCredentials("access key id is not ASCII letters and digits"));
    }
    if creds.secret_access_key.is_empty() {
        return Err(SignError::InvalidCredentials("empty secret access key"));
    }
    if let Some(token) = &creds.session_token {
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(SignError::InvalidCredentials("session token is empty or not printable ASCII"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Golden vectors come from botocore, an independent SigV4 implementation. Re-run with
    //! `python3 -m venv /tmp/bc && /tmp/bc/bin/pip install -q botocore && /tmp/bc/bin/python x.py`
    //! where `x.py` is:
    //!
    //! ```python
    //! import datetime
    //! import botocore.auth
    //! from botocore.auth import SigV4Auth
    //! from botocore.awsrequest import AWSRequest
    //! from botocore.credentials import Credentials
    //!
    //! NOW = datetime.datetime(2026, 5, 4, 12, 34, 56, tzinfo=datetime.timezone.utc)
    //! botocore.auth.get_current_datetime = lambda *a, **k: NOW
    //! AKID, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    //! TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE/session+token=="
    //! SMS = b'{"DestinationPhoneNumber":"+12065550100","MessageBody":"Your code is 123456","MessageType":"TRANSACTIONAL"}'
    //! SCAN = b'{"TableName":"otp-templates","Limit":25}'
    //! CASES = [
    //!     ("SMS_US_EAST_1", "https://sms-voice.us-east-1.amazonaws.com/", "PinpointSMSVoiceV2.SendTextMessage", SMS, "us-east-1", "sms-voice", None),
    //!     ("SMS_LOCAL_PORT", "http://127.0.0.1:8911/", "PinpointSMSVoiceV2.SendTextMessage", SMS, "us-east-1", "sms-voice", None),
    //!     ("SMS_SESSION_TOKEN", "https://sms-voice.us-east-1.amazonaws.com/", "PinpointSMSVoiceV2.SendTextMessage", SMS, "us-east-1", "sms-voice", TOKEN),
    //!     ("DYNAMODB_SCAN", "https://dynamodb.eu-west-1.amazonaws.com/", "DynamoDB_20120810.Scan", SCAN, "eu-west-1", "dynamodb", None),
    //! ]
    //! for name, url, target, body, region, service, token in CASES:
    //!     req = AWSRequest(method="POST", url=url, data=body,
    //!                      headers={"content-type": "application/x-amz-json-1.0", "x-amz-target": target})
    //!     SigV4Auth(Credentials(AKID, SECRET, token), service, region).add_auth(req)
    //!     print(f'const {name}: &str = "{req.headers["Authorization"]}";')
    //!     print(f'//   x-amz-date: {req.headers["X-Amz-Date"]}')
    //! ```
    use super::*;

    const SMS_US_EAST_1: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260504/us-east-1/sms-voice/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=73e644751e170adef0d5754bb219643f93880cdfeaa332b7ad9f227108634dc6";
    const SMS_LOCAL_PORT: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260504/us-east-1/sms-voice/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=8018f86acdc22a13cd309e975ca96960fbfebad8da2943b938706486de029c42";
    const SMS_SESSION_TOKEN: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260504/us-east-1/sms-voice/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature=b2069e30a1d309922e55912bb58ca6a780c971e525cdb7be4bc17b786594ff2b";
    const DYNAMODB_SCAN: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260504/eu-west-1/dynamodb/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=cb8217cae5c4fdfce02d60687d53d82dcb994d24b9a8ea11a8d9c0e52cb76692";

    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLE/session+token==";
    const SMS_BODY: &[u8] = br#"{"DestinationPhoneNumber":"+12065550100","MessageBody":"Your code is 123456","MessageType":"TRANSACTIONAL"}"#;
    const SCAN_BODY: &[u8] = br#"{"TableName":"otp-templates","Limit":25}"#;
    /// 2026-05-04T12:34:56Z.
    const NOW_MS: u64 = 1_777_898_096_000;

    fn creds(token: Option<&str>) -> Credentials {
        Credentials::new(AKID, SECRET, token.map(str::to_owned))
    }

    fn sms(endpoint: &str) -> HttpRequest {
        json_request(endpoint, "PinpointSMSVoiceV2.SendTextMessage", SMS_BODY.to_vec())
    }

    fn signed(mut req: HttpRequest, creds: &Credentials, region: &str, service: &str) -> HttpRequest {
        sign(&mut req, creds, region, service, NOW_MS).expect("signs");
        req
    }

    #[test]
    fn matches_botocore_for_send_text_message() {
        let req = signed(sms("https://sms-voice.us-east-1.amazonaws.com"), &creds(None), "us-east-1", "sms-voice");
        assert_eq!(req.header("authorization"), Some(SMS_US_EAST_1));
        assert_eq!(req.header("x-amz-date"), Some("20260504T123456Z"));
    }

    #[test]
    fn matches_botocore_with_a_port_in_the_host() {
        let req = signed(sms("http://127.0.0.1:8911"), &creds(None), "us-east-1", "sms-voice");
        assert_eq!(req.header("authorization"), Some(SMS_LOCAL_PORT));
    }

    #[test]
    fn matches_botocore_with_a_session_token() {
        let req =
            signed(sms("https://sms-voice.us-east-1.amazonaws.com/"), &creds(Some(TOKEN)), "us-east-1", "sms-voice");
        assert_eq!(req.header("authorization"), Some(SMS_SESSION_TOKEN));
        assert_eq!(req.header("x-amz-security-token"), Some(TOKEN));
    }

    #[test]
    fn matches_botocore_for_dynamodb_scan() {
        let req =
            json_request("https://dynamodb.eu-west-1.amazonaws.com", "DynamoDB_20120810.Scan", SCAN_BODY.to_vec());
        let req = signed(req, &creds(None), "eu-west-1", "dynamodb");
        assert_eq!(req.header("authorization"), Some(DYNAMODB_SCAN));
    }

    #[test]
    fn milliseconds_are_truncated_to_the_second() {
        let mut req = sms("https://sms-voice.us-east-1.amazonaws.com");
        sign(&mut req, &creds(None), "us-east-1", "sms-voice", NOW_MS + 999).expect("signs");
        assert_eq!(req.header("authorization"), Some(SMS_US_EAST_1));
    }

    #[test]
    fn signing_is_deterministic_for_a_fixed_clock() {
        let a = signed(sms("https://sms-voice.eu-west-1.amazonaws.com"), &creds(None), "eu-west-1", "sms-voice");
        let b = signed(sms("https://sms-voice.eu-west-1.amazonaws.com"), &creds(None), "eu-west-1", "sms-voice");
        assert_eq!(a, b);
        let mut later = sms("https://sms-voice.eu-west-1.amazonaws.com");
        sign(&mut later, &creds(None), "eu-west-1", "sms-voice", NOW_MS + 1_000).expect("signs");
        assert_ne!(a.header("authorization"), later.header("authorization"));
    }

    #[test]
    fn adds_date_and_authorization_and_keeps_the_request_headers() {
        let req = signed(sms("https://sms-voice.us-east-1.amazonaws.com"), &creds(None), "us-east-1", "sms-voice");
        let names: Vec<&str> = req.headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["content-type", "x-amz-target", "x-amz-date", "authorization"]);
        assert_eq!(req.header("x-amz-security-token"), None);
        assert_eq!(req.header("host"), None, "fetch derives Host from the URL");
        assert_eq!(req.body, SMS_BODY);
    }

    #[test]
    fn credential_scope_names_region_and_sms_voice() {
        let req =
            signed(sms("https://sms-voice.ap-southeast-2.amazonaws.com"), &creds(None), "ap-southeast-2", "sms-voice");
        let auth = req.header("authorization").expect("authorization");
        assert!(auth
            .starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260504/ap-southeast-2/sms-voice/aws4_request, "));
    }

    #[test]
    fn security_token_header_only_when_a_token_is_set() {
        let with =
            signed(sms("https://sms-voice.us-east-1.amazonaws.com"), &creds(Some(TOKEN)), "us-east-1", "sms-voice");
        let without = signed(sms("https://sms-voice.us-east-1.amazonaws.com"), &creds(None), "us-east-1", "sms-voice");
        assert_eq!(with.header("x-amz-security-token"), Some(TOKEN));
        assert!(with.header("authorization").expect("auth").contains("x-amz-security-token"));
        assert_eq!(without.header("x-amz-security-token"), None);
        assert!(!without.header("authorization").expect("auth").contains("x-amz-security-token"));
    }

    #[test]
    fn re_signing_replaces_the_previous_signature() {
        let mut req = sms("https://sms-voice.us-east-1.amazonaws.com");
        sign(&mut req, &creds(Some(TOKEN)), "us-east-1", "sms-voice", NOW_MS - 60_000).expect("signs");
        sign(&mut req, &creds(None), "us-east-1", "sms-voice", NOW_MS).expect("signs again");
        assert_eq!(req.header("authorization"), Some(SMS_US_EAST_1));
        assert_eq!(req.header("x-amz-security-token"), None);
        let count = |n: &str| req.headers.iter().filter(|(k, _)| k == n).count();
        assert_eq!((count("authorization"), count("x-amz-date")), (1, 1));
    }

    #[test]
    fn json_request_is_a_post_to_the_root_with_awsjson_headers() {
        for endpoint in ["https://sms-voice.us-east-1.amazonaws.com", "https://sms-voice.us-east-1.amazonaws.com/"] {
            let req = json_request(endpoint, "PinpointSMSVoiceV2.SendVoiceMessage", b"{}".to_vec());
            assert_eq!(req.method, "POST");
            assert_eq!(req.url, "https://sms-voice.us-east-1.amazonaws.com/");
            assert_eq!(
                req.headers,
                [
                    ("content-type".to_owned(), "application/x-amz-json-1.0".to_owned()),
                    ("x-amz-target".to_owned(), "PinpointSMSVoiceV2.SendVoiceMessage".to_owned()),
                ]
            );
            assert_eq!(req.body, b"{}");
        }
    }

    #[test]
    fn refuses_urls_the_signer_would_panic_on() {
        for url in [
            "/relative",
            "",
            "sms-voice.us-east-1.amazonaws.com",
            "ftp://example.com/",
            "https:///",
            "https://user:pw@example.com/",
            "not a url",
        ] {
            let mut req = sms("x");
            req.url = url.to_owned();
            let err = sign(&mut req, &creds(None), "us-east-1", "sms-voice", NOW_MS).expect_err(url);
            assert!(matches!(err, SignError::InvalidUrl(_)), "{url}: {err:?}");
            assert!(req.header("authorization").is_none());
        }
    }

    #[test]
    fn refuses_a_host_header() {
        let mut req = sms("https://sms-voice.us-east-1.amazonaws.com");
        req.headers.push(("Host".to_owned(), "evil.example".to_owned()));
        let err = sign(&mut req, &creds(None), "us-east-1", "sms-voice", NOW_MS).expect_err("host");
        assert_eq!(err, SignError::HostHeaderPresent);
    }

    #[test]
    fn refuses_bad_scope_credentials_and_time_without_leaking_secrets() {
        let url = "https://sms-voice.us-east-1.amazonaws.com";
        let cases: Vec<(Credentials, &str, &str, u64)> = vec![
            (creds(None), "", "sms-voice", NOW_MS),
            (creds(None), "us-east-1\n", "sms-voice", NOW_MS),
            (creds(None), "us-east-1", "SMS voice", NOW_MS),
            (Credentials::new("", SECRET, None), "us-east-1", "sms-voice", NOW_MS),
            (Credentials::new("AKID EXAMPLE", SECRET, None), "us-east-1", "sms-voice", NOW_MS),
            (Credentials::new(AKID, "", None), "us-east-1", "sms-voice", NOW_MS),
            (Credentials::new(AKID, SECRET, Some("bad\ntoken".into())), "us-east-1", "sms-voice", NOW_MS),
            (Credentials::new(AKID, SECRET, Some(String::new())), "us-east-1", "sms-voice", NOW_MS),
            (creds(None), "us-east-1", "sms-voice", u64::MAX),
            (creds(None), "us-east-1", "sms-voice", MAX_SIGNABLE_MS + 1),
        ];
        for (c, region, service, now) in cases {
            let mut req = sms(url);
            let err = sign(&mut req, &c, region, service, now).expect_err("refused");
            let text = err.to_string();
            assert!(!text.contains(SECRET) && !text.contains("bad\ntoken"), "{text}");
            assert!(req.header("authorization").is_none());
        }
    }

    #[test]
    fn the_last_representable_instant_still_signs() {
        let mut req = sms("https://sms-voice.us-east-1.amazonaws.com");
        sign(&mut req, &creds(None), "us-east-1", "sms-voice", MAX_SIGNABLE_MS).expect("signs");
        assert_eq!(req.header("x-amz-date"), Some("99991231T235959Z"));
        let mut epoch = sms("https://sms-voice.us-east-1.amazonaws.com");
        sign(&mut epoch, &creds(None), "us-east-1", "sms-voice", 0).expect("signs");
        assert_eq!(epoch.header("x-amz-date"), Some("19700101T000000Z"));
    }

    #[test]
    fn invalid_header_values_are_an_error_not_a_panic() {
        let mut req = sms("https://sms-voice.us-east-1.amazonaws.com");
        req.headers.push(("x-custom".to_owned(), "line\nbreak".to_owned()));
        let err = sign(&mut req, &creds(None), "us-east-1", "sms-voice", NOW_MS).expect_err("bad header");
        assert!(matches!(err, SignError::Signer(_)), "{err:?}");
        let mut req = sms("https://sms-voice.us-east-1.amazonaws.com");
        req.headers.push(("bad name".to_owned(), "v".to_owned()));
        assert!(sign(&mut req, &creds(None), "us-east-1", "sms-voice", NOW_MS).is_err());
    }
}
