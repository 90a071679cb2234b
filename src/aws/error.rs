//! AWS error responses (awsJson1_0 and restJson1) and how to retry them.
//!
//! The code comes from the `X-Amzn-ErrorType` header, else the body's `__type`, `code` or
//! `Code`, with a trailing `:<url>` and a leading `<namespace>#` removed (the rules of the Smithy
//! protocols and of smithy-rs `sanitize_error_code`). Parsing never fails: a body that is empty,
//! HTML, huge or not UTF-8 yields the code `Http{status}`.
//!
//! What ends up in an [`AwsError`] is bounded and sanitised: codes, reasons and request ids must
//! look like identifiers, otherwise they are dropped; the message is cut to a few hundred
//! characters. `Display` leaves the message out, because AWS messages can echo request values
//! (phone numbers).

use std::fmt;

use serde_json::{Map, Value};

use crate::edge::HttpResponse;
use crate::retry::{Kind, Verdict};

/// Larger bodies are not parsed; AWS error documents are a few hundred bytes.
const MAX_BODY_PARSED: usize = 64 * 1024;
/// Longest code, reason or request id kept.
const MAX_TOKEN_LEN: usize = 128;
/// Longest message kept, in characters.
const MAX_MESSAGE_CHARS: usize = 512;

/// The code of an [`AwsError`] made for a 2xx answer that is not the operation's documented
/// output (not JSON, wrong shapes, ids that are not plain identifiers, too large). Every AWS
/// client module uses it, so callers test one constant.
pub const MALFORMED_RESPONSE: &str = "MalformedResponse";

/// A failed AWS call, as far as the response tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsError {
    /// The HTTP status.
    pub status: u16,
    /// The error code without namespace or URL, e.g. `ValidationException`; `Http{status}` when
    /// the response names none.
    pub code: String,
    /// The human-readable message. May echo request values: log with care. When a
    /// `ValidationException` lists `Fields`, their names are appended as ` [fields: A, B]`.
    pub message: Option<String>,
    /// The machine-readable `Reason` that EUM puts on `ValidationException`,
    /// `ConflictException`, `ServiceQuotaExceededException` and `AccessDeniedException`.
    pub reason: Option<String>,
    /// `x-amzn-RequestId`, or the body's `RequestId`: quote it to AWS support.
    pub request_id: Option<String>,
}

/// Codes the AWS SDKs treat as throttling. `LimitExceededException` is deliberately absent: the
/// SDKs retry it, but for EUM (and Connect user quotas) it means a quota that retrying will not
/// lift, so here it is [`Verdict::NoRetry`].
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "Throttling",
];

const TRANSIENT_CODES: &[&str] = &[
    "InternalServerException",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeoutException",
];

const TRANSIENT_STATUSES: &[u16] = &[500, 502, 503, 504];

impl AwsError {
    /// Whether and how to retry ([`crate::retry`]). Throttling codes win over the status (a
    /// `SlowDown` on a 503 is throttling). A bare 429 whose body names no code (`Http429`, e.g.
    /// from a proxy) counts as throttling too. Neither EUM send is idempotent (no client token),
    /// so even a retryable error may mean a message delivered twice when the first attempt was in
    /// fact accepted: the sender decides whether to risk it.
    pub fn verdict(&self) -> Verdict {
        let code = self.code.as_str();
        if THROTTLING_CODES.contains(&code) || (self.status == 429 && code == "Http429") {
            Verdict::Retry(Kind::Throttled)
        } else if TRANSIENT_CODES.contains(&code) || TRANSIENT_STATUSES.contains(&self.status) {
            Verdict::Retry(Kind::Transient)
        } else {
            Verdict::NoRetry
        }
    }

    /// The code a response without a usable error code gets: `Http{status}`.
    pub fn fallback_code(status: u16) -> String {
        format!("Http{status}")
    }
}

impl fmt::Display for AwsError {
    /// `ConflictException (HTTP 400, reason DESTINATION_PHONE_NUMBER_OPTED_OUT)`. The message is
    /// left out on purpose; see the module documentation.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (HTTP {}", self.code, self.status)?;
        if let Some(reason) = &self.reason {
            write!(f, ", reason {reason}")?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for AwsError {}

/// Reads an error response. Meant for non-2xx responses, but works on any.
pub fn parse_error(resp: &HttpResponse) -> AwsError {
    let body = parse_body(&resp.body);
    let body = body.as_ref();
    let field = |names: &[&str]| -> Option<&str> {
        let map = body?;
        names.iter().find_map(|name| map.get(*name).and_then(Value::as_str))
    };

    let code = resp
        .header("x-amzn-errortype")
        .and_then(sanitize_code)
        .or_else(|| field(&["__type"]).and_then(sanitize_code))
        .or_else(|| field(&["code", "Code"]).and_then(sanitize_code))
        .unwrap_or_else(|| AwsError::fallback_code(resp.status));

    let mut message = field(&["message", "Message"]).map(truncate_message);
    if let Some(names) = body.and_then(field_names) {
        let mut text = message.unwrap_or_default();
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&format!("[fields: {}]", names.join(", ")));
        message = Some(text);
    }

    AwsError {
        status: resp.status,
        code,
        message,
        reason: field(&["Reason", "reason"]).and_then(token),
        request_id: resp
            .header("x-amzn-requestid")
            .and_then(token)
            .or_else(|| field(&["RequestId", "requestId"]).and_then(token)),
    }
}

/// The body as a JSON object, if it is one of reasonable size.
fn parse_body(body: &[u8]) -> Option<Map<String, Value>> {
    if body.is_empty() || body.len() > MAX_BODY_PARSED {
        return None;
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// `Fields[].Name` of a `ValidationException`, sanitised; `None` when there are none.
fn field_names(body: &Map<String, Value>) -> Option<Vec<&str>> {
    let names: Vec<&str> = body
        .get("Fields")
        .or_else(|| body.get("fields"))?
        .as_array()?
        .iter()
        .filter_map(|f| f.get("Name").or_else(|| f.get("name"))?.as_str())
        .filter(|n| is_token(n))
        .take(8)
        .collect();
    (!names.is_empty()).then_some(names)
}

/// `aws.protocols#Foo:http://internal.amazon.com/...` → `Foo`; `None` if nothing usable is left.
fn sanitize_code(raw: &str) -> Option<String> {
    let before_colon = raw.split(':').next().unwrap_or(raw);
    let after_hash = before_colon.rsplit('#').next().unwrap_or(before_colon);
    token(after_hash.trim())
}

/// Keeps identifier-like values only (letters, digits, `_`, `-`, `.`), at most
/// [`MAX_TOKEN_LEN`] bytes, so nothing odd reaches logs or `Display`.
fn token(value: &str) -> Option<String> {
    is_token(value).then(|| value.to_owned())
}

fn is_token(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_TOKEN_LEN
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn truncate_message(message: &str) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
        HttpResponse {
            status,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: body.to_vec(),
        }
    }

    fn err(status: u16, code: &str) -> AwsError {
        AwsError { status, code: code.to_owned(), message: None, reason: None, request_id: None }
    }

    #[test]
    fn code_comes_from_the_error_type_header_first() {
        let e = parse_error(&resp(
            400,
            &[
                (
                    "X-Amzn-ErrorType",
                    "ThrottlingException:http://internal.amazon.com/coral/com.amazon.coral.availability/",
                ),
                ("x-amzn-RequestId", "11111111-2222-3333-4444-555555555555"),
            ],
            br#"{"__type":"com.amazonaws.smsvoice#ValidationException","message":"Rate exceeded"}"#,
        ));
        assert_eq!(e.code, "ThrottlingException");
        assert_eq!(e.message.as_deref(), Some("Rate exceeded"));
        assert_eq!(e.request_id.as_deref(), Some("11111111-2222-3333-4444-555555555555"));
    }

    #[test]
    fn body_type_loses_its_namespace() {
        let e = parse_error(&resp(
            400,
            &[],
            br#"{"__type":"com.amazonaws.pinpointsmsvoicev2#ConflictException","Message":"opted out","Reason":"DESTINATION_PHONE_NUMBER_OPTED_OUT","ResourceType":"opted-out-number","ResourceId":"+12065550100"}"#,
        ));
        assert_eq!(e.code, "ConflictException");
        assert_eq!(e.message.as_deref(), Some("opted out"));
        assert_eq!(e.reason.as_deref(), Some("DESTINATION_PHONE_NUMBER_OPTED_OUT"));
        assert_eq!(e.request_id, None);
    }

    #[test]
    fn body_type_loses_a_url_suffix_and_namespace_together() {
        let e = parse_error(&resp(
            400,
            &[],
            br#"{"__type":"aws.protocols#ValidationException:http://internal.amazon.com/coral/com.amazon.coral.validate/"}"#,
        ));
        assert_eq!(e.code, "ValidationException");
        assert_eq!(e.message, None);
    }

    #[test]
    fn code_and_capital_code_are_fallbacks_for_rest_json() {
        let e = parse_error(&resp(404, &[], br#"{"code":"ResourceNotFoundException","message":"nope"}"#));
        assert_eq!(e.code, "ResourceNotFoundException");
        let e = parse_error(&resp(409, &[], br#"{"Code":"DuplicateResourceException"}"#));
        assert_eq!(e.code, "DuplicateResourceException");
    }

    #[test]
    fn lowercase_message_wins_over_capital_message() {
        let e = parse_error(&resp(400, &[], br#"{"__type":"X","Message":"capital","message":"lower"}"#));
        assert_eq!(e.message.as_deref(), Some("lower"));
        let e = parse_error(&resp(400, &[], br#"{"__type":"X","Message":"capital"}"#));
        assert_eq!(e.message.as_deref(), Some("capital"));
    }

    #[test]
    fn reason_and_body_request_id_are_read() {
        let e = parse_error(&resp(
            402,
            &[],
            br#"{"__type":"ServiceQuotaExceededException","Message":"m","Reason":"MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT","RequestId":"req-1"}"#,
        ));
        assert_eq!(e.reason.as_deref(), Some("MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT"));
        assert_eq!(e.request_id.as_deref(), Some("req-1"));
    }

    #[test]
    fn validation_fields_are_appended_to_the_message() {
        let e = parse_error(&resp(
            400,
            &[],
            br#"{"__type":"ValidationException","Message":"Validation Error Occurred","Reason":"INVALID_PARAMETER","Fields":[{"Name":"destinationPhoneNumber","Message":"bad"},{"Name":"bad name!","Message":"x"}]}"#,
        ));
        assert_eq!(e.message.as_deref(), Some("Validation Error Occurred [fields: destinationPhoneNumber]"));
        let e = parse_error(&resp(
            400,
            &[],
            br#"{"__type":"ValidationException","Fields":[{"Name":"MessageBody","Message":"x"}]}"#,
        ));
        assert_eq!(e.message.as_deref(), Some("[fields: MessageBody]"));
    }

    #[test]
    fn html_on_503_falls_back_to_the_status() {
        let e =
            parse_error(&resp(503, &[("content-type", "text/html")], b"<html><body>Service Unavailable</body></html>"));
        assert_eq!(e, err(503, "Http503"));
        assert_eq!(e.verdict(), Verdict::Retry(Kind::Transient));
    }

    #[test]
    fn empty_body_falls_back_to_the_status() {
        assert_eq!(parse_error(&resp(400, &[], b"")), err(400, "Http400"));
    }

    #[test]
    fn non_utf8_body_falls_back_to_the_status() {
        assert_eq!(parse_error(&resp(500, &[], &[0xff, 0xfe, b'{', 0x80, b'}'])), err(500, "Http500"));
    }

    #[test]
    fn huge_bodies_are_not_parsed() {
        let mut body = br#"{"__type":"ThrottlingException","message":""#.to_vec();
        body.extend(std::iter::repeat_n(b'a', MAX_BODY_PARSED));
        body.extend(br#""}"#);
        assert_eq!(parse_error(&resp(400, &[], &body)), err(400, "Http400"));
    }

    #[test]
    fn deeply_nested_json_does_not_overflow_the_stack() {
        let body = "[".repeat(60_000);
        assert_eq!(parse_error(&resp(400, &[], body.as_bytes())), err(400, "Http400"));
    }

    #[test]
    fn non_object_and_wrongly_typed_bodies_are_ignored() {
        assert_eq!(parse_error(&resp(400, &[], b"[1,2]")).code, "Http400");
        assert_eq!(parse_error(&resp(400, &[], b"\"ThrottlingException\"")).code, "Http400");
        let e = parse_error(&resp(400, &[], br#"{"__type":42,"message":{"a":1},"Reason":["X"]}"#));
        assert_eq!(e, err(400, "Http400"));
    }

    #[test]
    fn odd_codes_reasons_and_ids_are_dropped() {
        let e = parse_error(&resp(
            400,
            &[("x-amzn-errortype", ""), ("x-amzn-requestid", "id with spaces")],
            br#"{"__type":"Evil\nCode","code":"ValidationException","Reason":"<script>"}"#,
        ));
        assert_eq!(e.code, "ValidationException");
        assert_eq!(e.reason, None);
        assert_eq!(e.request_id, None);
        let long = "A".repeat(MAX_TOKEN_LEN + 1);
        let e = parse_error(&resp(400, &[("x-amzn-errortype", &long)], b""));
        assert_eq!(e.code, "Http400");
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let body = format!(r#"{{"__type":"X","message":"{}"}}"#, "é".repeat(MAX_MESSAGE_CHARS + 10));
        let e = parse_error(&resp(400, &[], body.as_bytes()));
        let message = e.message.expect("message");
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(message.ends_with('…'));
    }

    #[test]
    fn display_shows_code_status_and_reason_but_not_the_message() {
        let e = AwsError {
            status: 400,
            code: "ConflictException".into(),
            message: Some("+12065550100 opted out".into()),
            reason: Some("DESTINATION_PHONE_NUMBER_OPTED_OUT".into()),
            request_id: Some("r".into()),
        };
        assert_eq!(e.to_string(), "ConflictException (HTTP 400, reason DESTINATION_PHONE_NUMBER_OPTED_OUT)");
        assert_eq!(err(503, "Http503").to_string(), "Http503 (HTTP 503)");
    }

    #[test]
    fn verdict_table() {
        const THROTTLED: Verdict = Verdict::Retry(Kind::Throttled);
        const TRANSIENT: Verdict = Verdict::Retry(Kind::Transient);
        const FINAL: Verdict = Verdict::NoRetry;
        let table: &[(u16, &str, Verdict)] = &[
            (400, "ThrottlingException", THROTTLED),
            (400, "TooManyRequestsException", THROTTLED),
            (400, "ProvisionedThroughputExceededException", THROTTLED),
            (400, "RequestLimitExceeded", THROTTLED),
            (400, "RequestThrottled", THROTTLED),
            (400, "RequestThrottledException", THROTTLED),
            (503, "SlowDown", THROTTLED),
            (400, "Throttling", THROTTLED),
            (429, "Http429", THROTTLED),
            (429, "LimitExceededException", FINAL),
            (400, "LimitExceededException", FINAL),
            (500, "InternalServerException", TRANSIENT),
            (500, "InternalServerError", TRANSIENT),
            (500, "InternalFailure", TRANSIENT),
            (503, "ServiceUnavailable", TRANSIENT),
            (408, "RequestTimeout", TRANSIENT),
            (400, "RequestTimeoutException", TRANSIENT),
            (500, "Http500", TRANSIENT),
            (502, "Http502", TRANSIENT),
            (503, "Http503", TRANSIENT),
            (504, "Http504", TRANSIENT),
            (501, "Http501", FINAL),
            (400, "ValidationException", FINAL),
            (400, "ConflictException", FINAL),
            (402, "ServiceQuotaExceededException", FINAL),
            (403, "AccessDeniedException", FINAL),
            (404, "ResourceNotFoundException", FINAL),
            (400, "Http400", FINAL),
            (403, "UnrecognizedClientException", FINAL),
        ];
        for (status, code, class) in table {
            assert_eq!(err(*status, code).verdict(), *class, "{status} {code}");
        }
    }
}
