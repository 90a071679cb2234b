//! AWS End User Messaging SMS & Voice v2 (`pinpoint-sms-voice-v2`, API 2022-03-31):
//! `SendTextMessage` and `SendVoiceMessage` over awsJson1_0, and what their errors mean for the
//! person waiting for a code.
//!
//! The builders return unsigned requests; sign them with [`super::sign::sign`] using
//! [`SIGNING_NAME`]. Neither operation takes a client token, so a retry after a timeout may
//! deliver a second message.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use super::error::{parse_error, AwsError, MALFORMED_RESPONSE};
use super::sign::json_request;
use crate::edge::{HttpRequest, HttpResponse};
use crate::retry::{Kind, Verdict};

/// The SigV4 signing name (and endpoint prefix) of the service.
pub const SIGNING_NAME: &str = "sms-voice";
/// The awsJson1_0 `X-Amz-Target` prefix.
pub const TARGET_PREFIX: &str = "PinpointSMSVoiceV2";
/// `MessageType` for one-time passcodes.
pub const MESSAGE_TYPE_TRANSACTIONAL: &str = "TRANSACTIONAL";
/// `MessageBodyTextType` for SSML voice bodies.
pub const BODY_TEXT_TYPE_SSML: &str = "SSML";
/// Shortest `TimeToLive` the API accepts, in seconds.
pub const TTL_MIN_S: u32 = 5;
/// Longest `TimeToLive` the API accepts (72 h, also its default), in seconds.
pub const TTL_MAX_S: u32 = 259_200;

/// `https://sms-voice.{region}.amazonaws.com`, the standard (non-FIPS, IPv4) endpoint.
pub fn default_endpoint(region: &str) -> String {
    format!("https://{SIGNING_NAME}.{region}.amazonaws.com")
}

/// Input of `SendTextMessage`. `None` fields are left out of the JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendTextMessage {
    /// E.164, e.g. `+12065550100`.
    pub destination_phone_number: String,
    /// Phone number, sender id or pool: id or ARN (use the ARN for shared resources).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origination_identity: Option<String>,
    /// At most 1600 characters.
    pub message_body: String,
    /// Always [`MESSAGE_TYPE_TRANSACTIONAL`] for codes.
    pub message_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configuration_set_name: Option<String>,
    /// Highest price per message part in USD, e.g. `"0.05"` (`[0-9]{0,2}\.[0-9]{1,5}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_price: Option<String>,
    /// Seconds; see [`clamp_ttl`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_live: Option<u32>,
    /// At most 5 entries; logged to event destinations, so no secrets (and no code).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protect_configuration_id: Option<String>,
}

impl SendTextMessage {
    /// A transactional SMS with every optional field unset.
    pub fn new(destination_phone_number: impl Into<String>, message_body: impl Into<String>) -> Self {
        Self {
            destination_phone_number: destination_phone_number.into(),
            origination_identity: None,
            message_body: message_body.into(),
            message_type: MESSAGE_TYPE_TRANSACTIONAL,
            configuration_set_name: None,
            max_price: None,
            time_to_live: None,
            context: None,
            protect_configuration_id: None,
        }
    }
}

/// Input of `SendVoiceMessage`. `None` fields are left out of the JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendVoiceMessage {
    /// E.164, e.g. `+12065550100`.
    pub destination_phone_number: String,
    /// Required by the API: a voice-capable phone number or pool (id or ARN); no sender ids.
    pub origination_identity: String,
    /// SSML, at most 6000 characters including tags. XML-escape anything interpolated.
    pub message_body: String,
    /// Always [`BODY_TEXT_TYPE_SSML`].
    pub message_body_text_type: &'static str,
    /// A Polly voice of the model's `VoiceId` enum, e.g. `JOANNA`.
    pub voice_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configuration_set_name: Option<String>,
    /// Highest price per minute in USD, e.g. `"0.10"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_price_per_minute: Option<String>,
    /// Seconds; see [`clamp_ttl`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_live: Option<u32>,
    /// At most 5 entries; logged to event destinations, so no secrets (and no code).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protect_configuration_id: Option<String>,
}

impl SendVoiceMessage {
    /// An SSML voice call with every optional field unset.
    pub fn new(
        destination_phone_number: impl Into<String>,
        origination_identity: impl Into<String>,
        ssml_body: impl Into<String>,
        voice_id: impl Into<String>,
    ) -> Self {
        Self {
            destination_phone_number: destination_phone_number.into(),
            origination_identity: origination_identity.into(),
            message_body: ssml_body.into(),
            message_body_text_type: BODY_TEXT_TYPE_SSML,
            voice_id: voice_id.into(),
            configuration_set_name: None,
            max_price_per_minute: None,
            time_to_live: None,
            context: None,
            protect_configuration_id: None,
        }
    }
}

/// `PinpointSMSVoiceV2.SendTextMessage` to `endpoint` (see [`default_endpoint`]), unsigned.
pub fn send_text_message(endpoint: &str, input: &SendTextMessage) -> HttpRequest {
    json_request(endpoint, &format!("{TARGET_PREFIX}.SendTextMessage"), to_json(input))
}

/// `PinpointSMSVoiceV2.SendVoiceMessage` to `endpoint` (see [`default_endpoint`]), unsigned.
pub fn send_voice_message(endpoint: &str, input: &SendVoiceMessage) -> HttpRequest {
    json_request(endpoint, &format!("{TARGET_PREFIX}.SendVoiceMessage"), to_json(input))
}

/// Serializing these inputs cannot fail (strings, integers and string-keyed maps only). Should
/// it ever, the empty object makes AWS answer `ValidationException` instead of aborting the
/// isolate.
fn to_json(input: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(input).unwrap_or_else(|_| b"{}".to_vec())
}

/// The `MessageId` of a successful send. A 2xx answer without one is an error with code
/// [`MALFORMED_RESPONSE`] (the message may or may not have gone out); any other status goes
/// through [`parse_error`].
pub fn parse_message_id(resp: &HttpResponse) -> Result<String, AwsError> {
    if !(200..300).contains(&resp.status) {
        return Err(parse_error(resp));
    }
    let id = serde_json::from_slice::<Value>(&resp.body)
        .ok()
        .and_then(|body| body.get("MessageId")?.as_str().map(str::to_owned))
        .filter(|id| is_message_id(id));
    id.ok_or_else(|| AwsError {
        status: resp.status,
        code: MALFORMED_RESPONSE.to_owned(),
        message: Some("a 2xx answer without a usable MessageId".to_owned()),
        reason: None,
        request_id: resp.header("x-amzn-requestid").map(str::to_owned),
    })
}

/// Message ids are opaque; accept any non-empty printable ASCII of sane length, since the id is
/// passed on (to Okta as the transaction id) and logged.
fn is_message_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 256 && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Clamps a time-to-live in seconds into the range the API accepts,
/// [`TTL_MIN_S`]`..=`[`TTL_MAX_S`].
pub fn clamp_ttl(seconds: i64) -> u32 {
    // Both bounds fit in u32, so the conversion after clamping cannot fail.
    u32::try_from(seconds.clamp(i64::from(TTL_MIN_S), i64::from(TTL_MAX_S))).unwrap_or(TTL_MAX_S)
}

/// What an EUM error means for the person waiting for a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendFailure {
    /// The number replied STOP (or is on our opt-out list).
    OptedOut,
    /// The destination country (or this number, by override) is blocked by a protect
    /// configuration or by the account.
    CountryBlocked,
    /// The number is malformed or cannot be a destination.
    InvalidNumber,
    /// A monthly spend limit or another account quota is used up. Alert.
    SpendLimitReached,
    /// AWS throttled us, or this number reached its daily call limit.
    Throttled,
    /// The account is in the sandbox and the number is not a verified destination.
    NotVerifiedInSandbox,
    /// This channel (voice, or SMS) is not available for this number or origination identity.
    ChannelUnavailable,
    /// Our setup is wrong: identities, pools, configuration sets, IAM, credentials. Alert.
    ConfigurationError,
    /// AWS disabled or restricted the account. Alert.
    AccountBlocked,
    /// AWS failed (5xx) or answered nonsense.
    ProviderUnavailable,
    /// Anything else, including a destination over our `MaxPrice`.
    Rejected,
}

impl SendFailure {
    /// A stable code for logs, metrics and Okta error details.
    pub fn reason(self) -> &'static str {
        match self {
            SendFailure::OptedOut => "OPTED_OUT",
            SendFailure::CountryBlocked => "COUNTRY_BLOCKED",
            SendFailure::InvalidNumber => "INVALID_PHONE_NUMBER",
            SendFailure::SpendLimitReached => "SPEND_LIMIT_REACHED",
            SendFailure::Throttled => "THROTTLED",
            SendFailure::NotVerifiedInSandbox => "NOT_VERIFIED_IN_SANDBOX",
            SendFailure::ChannelUnavailable => "CHANNEL_UNAVAILABLE",
            SendFailure::ConfigurationError => "CONFIGURATION_ERROR",
            SendFailure::AccountBlocked => "ACCOUNT_BLOCKED",
            SendFailure::ProviderUnavailable => "PROVIDER_UNAVAILABLE",
            SendFailure::Rejected => "REJECTED",
        }
    }

    /// Whether this is a refusal for this destination that no other sender should override:
    /// the person opted out, the number or country is blocked, it cannot receive this channel.
    /// The rest (throttling, outages, quotas, our configuration) are our side's failures.
    pub fn is_destination_refusal(self) -> bool {
        matches!(
            self,
            SendFailure::OptedOut
                | SendFailure::CountryBlocked
                | SendFailure::InvalidNumber
                | SendFailure::NotVerifiedInSandbox
                | SendFailure::ChannelUnavailable
                | SendFailure::Rejected
        )
    }

    /// A short English sentence the end user may see in Okta: never technical, never blaming
    /// the user for our side's problems.
    pub fn user_message(self) -> &'static str {
        match self {
            SendFailure::OptedOut => {
                "This phone number has opted out of messages from us. Reply START to opt back in, \
                 or choose another method."
            }
            SendFailure::CountryBlocked => "We can't send codes to this country.",
            SendFailure::InvalidNumber => "This phone number can't receive codes.",
            SendFailure::SpendLimitReached => {
                "We can't send codes right now. Please try again later or choose another method."
            }
            SendFailure::Throttled | SendFailure::ProviderUnavailable => {
                "We couldn't send your code right now. Please try again later."
            }
            SendFailure::NotVerifiedInSandbox => {
                "This phone number isn't set up to receive codes yet. Please choose another \
                 method or contact your administrator."
            }
            SendFailure::ChannelUnavailable => {
                "We can't send codes this way to this phone number. Please choose another method."
            }
            SendFailure::ConfigurationError => {
                "We couldn't send your code because of a problem on our side. Please choose \
                 another method or contact your administrator."
            }
            SendFailure::AccountBlocked => {
                "We can't send codes right now. Please choose another method or contact your \
                 administrator."
            }
            SendFailure::Rejected => "We couldn't send a code to this phone number. Please choose another method.",
        }
    }
}

impl fmt::Display for SendFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// Generic AWS codes that mean our credentials, signature or request framing are wrong.
const SETUP_CODES: &[&str] = &[
    "AccessDenied",
    "ExpiredToken",
    "ExpiredTokenException",
    "IncompleteSignature",
    "IncompleteSignatureException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "MissingAuthenticationToken",
    "MissingAuthenticationTokenException",
    "SerializationException",
    "SignatureDoesNotMatch",
    "UnknownOperationException",
    "UnrecognizedClientException",
];

/// Maps an EUM send error to what it means for the user.
///
/// Decisions beyond the obvious:
/// - Throttling codes and 5xx/transient errors are decided first, by [`AwsError::verdict`].
/// - `ValidationException` `COUNTRY_CODE_MISMATCH` and `INVALID_IDENTITY_FOR_DESTINATION_COUNTRY`
///   say our origination identity cannot serve the destination's country: fixable by adding an
///   identity, so `ConfigurationError`, not `CountryBlocked`.
/// - `INVALID_PARAMETER`, `FIELD_VALIDATION_FAILED` or no reason at all is `InvalidNumber` only
///   when the error names `destinationPhoneNumber` (in `Fields` or in the message); otherwise, as
///   every other validation reason, `ConfigurationError`.
/// - `PRICE_OVER_THRESHOLD` means the destination costs more than our `MaxPrice`: a policy
///   refusal for this number, not a budget alarm, so `Rejected`.
/// - `ServiceQuotaExceededException` `DAILY_DESTINATION_CALL_LIMIT` is per number and per day,
///   so `Throttled`; every other quota reason is `SpendLimitReached`.
/// - `ConflictException` with a reason not listed here is `Rejected`.
pub fn classify(err: &AwsError) -> SendFailure {
    use SendFailure::*;

    match err.verdict() {
        Verdict::Retry(Kind::Throttled) => return Throttled,
        Verdict::Retry(Kind::Transient) | Verdict::RetryAfter(_) => return ProviderUnavailable,
        Verdict::NoRetry if err.status >= 500 => return ProviderUnavailable,
        Verdict::NoRetry => {}
    }
    let reason = err.reason.as_deref().unwrap_or("");
    match err.code.as_str() {
        "ConflictException" => match reason {
            "DESTINATION_PHONE_NUMBER_OPTED_OUT" => OptedOut,
            "DESTINATION_PHONE_NUMBER_NOT_VERIFIED" => NotVerifiedInSandbox,
            "DESTINATION_COUNTRY_BLOCKED_BY_PROTECT_CONFIGURATION"
            | "DESTINATION_PHONE_NUMBER_BLOCKED_BY_PROTECT_NUMBER_OVERRIDE" => CountryBlocked,
            "NO_ORIGINATION_IDENTITIES_FOUND"
            | "NUMBER_CAPABILITIES_MISMATCH"
            | "MESSAGE_TYPE_MISMATCH"
            | "RESOURCE_NOT_ACTIVE" => ConfigurationError,
            _ => Rejected,
        },
        "ValidationException" => match reason {
            "DESTINATION_COUNTRY_BLOCKED" | "INTERNATIONAL_SENDING_NOT_SUPPORTED" => CountryBlocked,
            "COUNTRY_CODE_MISMATCH" | "INVALID_IDENTITY_FOR_DESTINATION_COUNTRY" => ConfigurationError,
            "VOICE_CAPABILITY_NOT_AVAILABLE" | "CHANNEL_NOT_ENABLED" => ChannelUnavailable,
            "PRICE_OVER_THRESHOLD" => Rejected,
            "" | "INVALID_PARAMETER" | "FIELD_VALIDATION_FAILED" if names_destination(err) => InvalidNumber,
            _ => ConfigurationError,
        },
        "ServiceQuotaExceededException" => match reason {
            "DAILY_DESTINATION_CALL_LIMIT" => Throttled,
            _ => SpendLimitReached,
        },
        "AccessDeniedException" => match reason {
            "ACCOUNT_DISABLED" | "INSUFFICIENT_ACCOUNT_REPUTATION" => AccountBlocked,
            _ => ConfigurationError,
        },
        "ResourceNotFoundException" => ConfigurationError,
        MALFORMED_RESPONSE => ProviderUnavailable,
        code if SETUP_CODES.contains(&code) => ConfigurationError,
        _ => Rejected,
    }
}

/// Whether a validation error is about the destination number. EUM names the field
/// `destinationPhoneNumber` in `Fields` (which [`parse_error`] appends to the message) and the
/// generic validation layer names it in the message.
fn names_destination(err: &AwsError) -> bool {
    err.message.as_deref().is_some_and(|m| m.to_ascii_lowercase().contains("destinationphonenumber"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENDPOINT: &str = "https://sms-voice.us-east-1.amazonaws.com";

    fn body(req: &HttpRequest) -> &str {
        std::str::from_utf8(&req.body).expect("utf-8")
    }

    fn context() -> BTreeMap<String, String> {
        BTreeMap::from([("oktaTransaction".to_owned(), "t-1".to_owned()), ("locale".to_owned(), "en-US".to_owned())])
    }

    fn ok(status: u16, body: &[u8]) -> HttpResponse {
        HttpResponse { status, headers: vec![("x-amzn-RequestId".into(), "req-9".into())], body: body.to_vec() }
    }

    fn aws(status: u16, code: &str, reason: Option<&str>, message: Option<&str>) -> AwsError {
        AwsError {
            status,
            code: code.to_owned(),
            message: message.map(str::to_owned),
            reason: reason.map(str::to_owned),
            request_id: None,
        }
    }

    #[test]
    fn default_endpoint_is_the_regional_sms_voice_host() {
        assert_eq!(default_endpoint("eu-west-1"), "https://sms-voice.eu-west-1.amazonaws.com");
        assert_eq!(SIGNING_NAME, "sms-voice");
    }

    #[test]
    fn minimal_text_message_omits_unset_fields() {
        let req = send_text_message(ENDPOINT, &SendTextMessage::new("+12065550100", "Your code is 123456"));
        assert_eq!(
            body(&req),
            r#"{"DestinationPhoneNumber":"+12065550100","MessageBody":"Your code is 123456","MessageType":"TRANSACTIONAL"}"#
        );
    }

    #[test]
    fn full_text_message_has_pascal_case_fields() {
        let input = SendTextMessage {
            origination_identity: Some("arn:aws:sms-voice:us-east-1:111122223333:pool/pool-abc".into()),
            configuration_set_name: Some("otp".into()),
            max_price: Some("0.05".into()),
            time_to_live: Some(300),
            context: Some(context()),
            protect_configuration_id: Some("protect-abc".into()),
            ..SendTextMessage::new("+447700900123", "Code: 654321")
        };
        let req = send_text_message(ENDPOINT, &input);
        assert_eq!(
            body(&req),
            concat!(
                r#"{"DestinationPhoneNumber":"+447700900123","#,
                r#""OriginationIdentity":"arn:aws:sms-voice:us-east-1:111122223333:pool/pool-abc","#,
                r#""MessageBody":"Code: 654321","MessageType":"TRANSACTIONAL","#,
                r#""ConfigurationSetName":"otp","MaxPrice":"0.05","TimeToLive":300,"#,
                r#""Context":{"locale":"en-US","oktaTransaction":"t-1"},"#,
                r#""ProtectConfigurationId":"protect-abc"}"#
            )
        );
    }

    #[test]
    fn text_message_request_targets_send_text_message() {
        let req = send_text_message(ENDPOINT, &SendTextMessage::new("+12065550100", "x"));
        assert_eq!(req.method, "POST");
        assert_eq!(req.url, "https://sms-voice.us-east-1.amazonaws.com/");
        assert_eq!(
            req.headers,
            [
                ("content-type".to_owned(), "application/x-amz-json-1.0".to_owned()),
                ("x-amz-target".to_owned(), "PinpointSMSVoiceV2.SendTextMessage".to_owned()),
            ]
        );
    }

    #[test]
    fn minimal_voice_message_is_ssml_with_a_voice() {
        let input = SendVoiceMessage::new("+12065550100", "+12065550199", "<speak>1 2 3</speak>", "JOANNA");
        let req = send_voice_message(ENDPOINT, &input);
        assert_eq!(
            body(&req),
            concat!(
                r#"{"DestinationPhoneNumber":"+12065550100","OriginationIdentity":"+12065550199","#,
                r#""MessageBody":"<speak>1 2 3</speak>","MessageBodyTextType":"SSML","VoiceId":"JOANNA"}"#
            )
        );
    }

    #[test]
    fn full_voice_message_has_pascal_case_fields() {
        let input = SendVoiceMessage {
            configuration_set_name: Some("otp".into()),
            max_price_per_minute: Some("0.10".into()),
            time_to_live: Some(120),
            context: Some(context()),
            protect_configuration_id: Some("protect-abc".into()),
            ..SendVoiceMessage::new("+4915112345678", "pool-abc", "<speak>\"é\"</speak>", "VICKI")
        };
        let req = send_voice_message(ENDPOINT, &input);
        assert_eq!(
            body(&req),
            concat!(
                r#"{"DestinationPhoneNumber":"+4915112345678","OriginationIdentity":"pool-abc","#,
                r#""MessageBody":"<speak>\"é\"</speak>","MessageBodyTextType":"SSML","VoiceId":"VICKI","#,
                r#""ConfigurationSetName":"otp","MaxPricePerMinute":"0.10","TimeToLive":120,"#,
                r#""Context":{"locale":"en-US","oktaTransaction":"t-1"},"#,
                r#""ProtectConfigurationId":"protect-abc"}"#
            )
        );
        assert_eq!(req.header("x-amz-target"), Some("PinpointSMSVoiceV2.SendVoiceMessage"));
        assert_eq!(req.header("content-type"), Some("application/x-amz-json-1.0"));
        assert_eq!(req.url, "https://sms-voice.us-east-1.amazonaws.com/");
    }

    #[test]
    fn message_id_is_read_from_a_2xx_answer() {
        assert_eq!(parse_message_id(&ok(200, br#"{"MessageId":"0a1b2c3d-msg"}"#)), Ok("0a1b2c3d-msg".to_owned()));
    }

    #[test]
    fn a_2xx_answer_without_a_message_id_is_malformed() {
        for body in [
            &b""[..],
            b"{}",
            b"<html/>",
            br#"{"MessageId":""}"#,
            br#"{"MessageId":7}"#,
            br#"{"MessageId":"a b"}"#,
            br#"["MessageId"]"#,
        ] {
            let e = parse_message_id(&ok(200, body)).expect_err("malformed");
            assert_eq!(e.code, "MalformedResponse");
            assert_eq!(e.status, 200);
            assert_eq!(e.request_id.as_deref(), Some("req-9"));
            assert_eq!(classify(&e), SendFailure::ProviderUnavailable);
        }
    }

    #[test]
    fn an_error_status_is_parsed_as_an_aws_error() {
        let e = parse_message_id(&ok(
            400,
            br#"{"__type":"ConflictException","Message":"m","Reason":"DESTINATION_PHONE_NUMBER_OPTED_OUT"}"#,
        ))
        .expect_err("error");
        assert_eq!(e.code, "ConflictException");
        assert_eq!(e.reason.as_deref(), Some("DESTINATION_PHONE_NUMBER_OPTED_OUT"));
        assert_eq!(classify(&e), SendFailure::OptedOut);
        let e = parse_message_id(&ok(302, br#"{"MessageId":"m"}"#)).expect_err("redirect");
        assert_eq!(e.code, "Http302");
    }

    #[test]
    fn ttl_is_clamped_to_the_api_range() {
        for (input, expected) in [
            (i64::MIN, 5),
            (-1, 5),
            (0, 5),
            (4, 5),
            (5, 5),
            (300, 300),
            (259_200, 259_200),
            (259_201, 259_200),
            (i64::MAX, 259_200),
        ] {
            assert_eq!(clamp_ttl(input), expected, "{input}");
        }
    }

    #[test]
    fn classify_table() {
        use SendFailure::*;
        let fields_phone = Some("Validation Error Occurred [fields: destinationPhoneNumber]");
        let generic_phone =
            Some("1 validation error detected: Value 'abc' at 'destinationPhoneNumber' failed to satisfy constraint");
        let other_field = Some("Validation Error Occurred [fields: MessageBody]");
        type Case<'a> = (u16, &'a str, Option<&'a str>, Option<&'a str>, SendFailure);
        let table: &[Case] = &[
            (400, "ConflictException", Some("DESTINATION_PHONE_NUMBER_OPTED_OUT"), None, OptedOut),
            (400, "ConflictException", Some("DESTINATION_PHONE_NUMBER_NOT_VERIFIED"), None, NotVerifiedInSandbox),
            (
                400,
                "ConflictException",
                Some("DESTINATION_COUNTRY_BLOCKED_BY_PROTECT_CONFIGURATION"),
                None,
                CountryBlocked,
            ),
            (
                400,
                "ConflictException",
                Some("DESTINATION_PHONE_NUMBER_BLOCKED_BY_PROTECT_NUMBER_OVERRIDE"),
                None,
                CountryBlocked,
            ),
            (400, "ConflictException", Some("NO_ORIGINATION_IDENTITIES_FOUND"), None, ConfigurationError),
            (400, "ConflictException", Some("NUMBER_CAPABILITIES_MISMATCH"), None, ConfigurationError),
            (400, "ConflictException", Some("MESSAGE_TYPE_MISMATCH"), None, ConfigurationError),
            (400, "ConflictException", Some("RESOURCE_NOT_ACTIVE"), None, ConfigurationError),
            (400, "ConflictException", Some("SOMETHING_NEW"), None, Rejected),
            (400, "ConflictException", None, None, Rejected),
            (400, "ValidationException", Some("DESTINATION_COUNTRY_BLOCKED"), None, CountryBlocked),
            (400, "ValidationException", Some("INTERNATIONAL_SENDING_NOT_SUPPORTED"), None, CountryBlocked),
            (400, "ValidationException", Some("COUNTRY_CODE_MISMATCH"), None, ConfigurationError),
            (
                400,
                "ValidationException",
                Some("INVALID_IDENTITY_FOR_DESTINATION_COUNTRY"),
                fields_phone,
                ConfigurationError,
            ),
            (400, "ValidationException", Some("INVALID_PARAMETER"), fields_phone, InvalidNumber),
            (400, "ValidationException", Some("FIELD_VALIDATION_FAILED"), fields_phone, InvalidNumber),
            (400, "ValidationException", None, generic_phone, InvalidNumber),
            (400, "ValidationException", Some("INVALID_PARAMETER"), other_field, ConfigurationError),
            (400, "ValidationException", Some("FIELD_VALIDATION_FAILED"), None, ConfigurationError),
            (400, "ValidationException", None, None, ConfigurationError),
            (400, "ValidationException", Some("VOICE_CAPABILITY_NOT_AVAILABLE"), None, ChannelUnavailable),
            (400, "ValidationException", Some("CHANNEL_NOT_ENABLED"), None, ChannelUnavailable),
            (400, "ValidationException", Some("PRICE_OVER_THRESHOLD"), None, Rejected),
            (400, "ValidationException", Some("MISSING_PARAMETER"), fields_phone, ConfigurationError),
            (400, "ValidationException", Some("SENDER_ID_NOT_REGISTERED"), None, ConfigurationError),
            (400, "ValidationException", Some("MAXIMUM_SIZE_EXCEEDED"), None, ConfigurationError),
            (400, "ValidationException", Some("OTHER"), None, ConfigurationError),
            (
                402,
                "ServiceQuotaExceededException",
                Some("MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT"),
                None,
                SpendLimitReached,
            ),
            (
                402,
                "ServiceQuotaExceededException",
                Some("MONTHLY_SPEND_LIMIT_REACHED_FOR_VOICE"),
                None,
                SpendLimitReached,
            ),
            (402, "ServiceQuotaExceededException", Some("DAILY_DESTINATION_CALL_LIMIT"), None, Throttled),
            (402, "ServiceQuotaExceededException", None, None, SpendLimitReached),
            (400, "ThrottlingException", None, None, Throttled),
            (429, "Http429", None, None, Throttled),
            (403, "AccessDeniedException", Some("ACCOUNT_DISABLED"), None, AccountBlocked),
            (403, "AccessDeniedException", Some("INSUFFICIENT_ACCOUNT_REPUTATION"), None, AccountBlocked),
            (
                403,
                "AccessDeniedException",
                None,
                Some("User: arn:aws:iam::1:user/w is not authorized"),
                ConfigurationError,
            ),
            (403, "UnrecognizedClientException", None, None, ConfigurationError),
            (403, "InvalidSignatureException", None, None, ConfigurationError),
            (404, "ResourceNotFoundException", None, None, ConfigurationError),
            (500, "InternalServerException", None, None, ProviderUnavailable),
            (503, "Http503", None, None, ProviderUnavailable),
            (501, "Http501", None, None, ProviderUnavailable),
            (400, "Http400", None, None, Rejected),
            (418, "TeapotException", None, None, Rejected),
        ];
        for (status, code, reason, message, expected) in table {
            assert_eq!(classify(&aws(*status, code, *reason, *message)), *expected, "{code} {reason:?} {message:?}");
        }
    }

    #[test]
    fn every_failure_has_a_distinct_reason_and_a_plain_user_message() {
        use SendFailure::*;
        let all = [
            OptedOut,
            CountryBlocked,
            InvalidNumber,
            SpendLimitReached,
            Throttled,
            NotVerifiedInSandbox,
            ChannelUnavailable,
            ConfigurationError,
            AccountBlocked,
            ProviderUnavailable,
            Rejected,
        ];
        let expected = [
            "OPTED_OUT",
            "COUNTRY_BLOCKED",
            "INVALID_PHONE_NUMBER",
            "SPEND_LIMIT_REACHED",
            "THROTTLED",
            "NOT_VERIFIED_IN_SANDBOX",
            "CHANNEL_UNAVAILABLE",
            "CONFIGURATION_ERROR",
            "ACCOUNT_BLOCKED",
            "PROVIDER_UNAVAILABLE",
            "REJECTED",
        ];
        let reasons: Vec<&str> = all.iter().map(|f| f.reason()).collect();
        assert_eq!(reasons, expected);
        for failure in all {
            assert_eq!(failure.to_string(), failure.reason());
            let text = failure.user_message();
            assert!(text.ends_with('.') && text.len() < 160, "{text}");
            for jargon in ["AWS", "Exception", "HTTP", "error", "sandbox", "quota", "SMS", "API"] {
                assert!(!text.contains(jargon), "{failure:?}: {text}");
            }
        }
        assert_eq!(CountryBlocked.user_message(), "We can't send codes to this country.");
        assert_eq!(InvalidNumber.user_message(), "This phone number can't receive codes.");
        assert_eq!(
            OptedOut.user_message(),
            "This phone number has opted out of messages from us. Reply START to opt back in, or choose another method."
        );
    }
}
