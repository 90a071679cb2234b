//! The telephony inline hook's request, as Okta documents it, parsed and validated into what the
//! rest of the path needs. Field names keep Okta's spelling (`requestType`, `messageProfile`,
//! `deliveryChannel`) so the code can be held against the reference.
//!
//! Deliberately lenient where Okta varies (channel and locale spellings, phone formats, unknown
//! `requestType`s, extra fields) and strict where a wrong value would send a wrong message.

use std::fmt;

use serde::Deserialize;

use crate::locale::Locale;
use crate::phone::E164;
use crate::template::Channel;

pub const EVENT_TYPE: &str = "com.okta.telephony.provider";
pub const MAX_BODY_BYTES: usize = 64 * 1024;
pub const REQUEST_TYPES: [&str; 4] = [
    "com.okta.user.telephony.pre-enrollment",
    "com.okta.user.telephony.mfa-verification",
    "com.okta.user.telephony.account-unlock",
    "com.okta.user.telephony.password-reset",
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    event_id: String,
    event_type: String,
    request_type: Option<String>,
    data: WireData,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireData {
    context: Option<WireContext>,
    user_profile: Option<WireUser>,
    message_profile: WireMessage,
}

#[derive(Deserialize)]
struct WireContext {
    request: Option<WireRequest>,
}

#[derive(Deserialize)]
struct WireRequest {
    id: Option<String>,
    url: Option<WireUrl>,
}

#[derive(Deserialize)]
struct WireUrl {
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireUser {
    user_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMessage {
    msg_template: Option<String>,
    phone_number: String,
    otp_expires: Option<String>,
    delivery_channel: String,
    otp_code: String,
    locale: Option<String>,
}

/// A validated OTP delivery request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtpRequest {
    pub event_id: String,
    pub request_type: String,
    /// Okta's id for the end user's request (`data.context.request.id`), for correlating logs.
    pub okta_request_id: Option<String>,
    pub user_id: Option<String>,
    pub phone: E164,
    pub channel: Channel,
    pub otp_code: String,
    /// `None` when absent or unparseable: the default locale applies.
    pub locale: Option<Locale>,
    pub raw_locale: Option<String>,
    /// Milliseconds since the epoch; `None` if absent or unparseable.
    pub otp_expires_ms: Option<u64>,
    /// Okta's rendered SMS (contains the code). Never logged, never sent (caller-supplied text).
    pub msg_template: Option<String>,
    /// An admin-console Preview (`…/generatePreview`).
    pub preview: bool,
}

impl OtpRequest {
    pub fn known_request_type(&self) -> bool {
        REQUEST_TYPES.contains(&self.request_type.as_str())
    }
}

/// Why a request is refused with HTTP 400 (or 413). `location` is the JSON path at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRequest {
    /// 400, or 413 for a body too large.
    pub status: u16,
    pub reason: &'static str,
    pub location: &'static str,
    pub detail: String,
}

impl fmt::Display for BadRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}: {}", self.reason, self.location, self.detail)
    }
}

fn bad(reason: &'static str, location: &'static str, detail: impl Into<String>) -> BadRequest {
    BadRequest { status: 400, reason, location, detail: detail.into() }
}

impl BadRequest {
    /// A body past [`MAX_BODY_BYTES`] (413).
    pub fn too_large() -> BadRequest {
        BadRequest { status: 413, ..bad("BODY_TOO_LARGE", "body", format!("the body exceeds {MAX_BODY_BYTES} bytes")) }
    }

    /// A body that could not be read (400).
    pub fn unreadable() -> BadRequest {
        bad("MALFORMED_REQUEST", "body", "the body could not be read")
    }
}

/// `SMS` → text; `voice call`, `voice`, `call` → voice; case and surrounding space ignored.
pub fn parse_channel(raw: &str) -> Option<Channel> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "sms" => Some(Channel::Sms),
        "voice call" | "voice" | "call" | "voice_call" | "voicecall" => Some(Channel::Voice),
        _ => None,
    }
}

pub fn parse(body: &[u8]) -> Result<OtpRequest, BadRequest> {
    if body.len() > MAX_BODY_BYTES {
        return Err(BadRequest::too_large());
    }
    let wire: Wire = serde_json::from_slice(body).map_err(|e| {
        let detail = if e.is_data() {
            // serde's own message can quote a value (an OTP, a number): give the position only.
            format!("a required field is missing or has the wrong type (line {}, column {})", e.line(), e.column())
        } else {
            "the body is not valid JSON".to_string()
        };
        bad("MALFORMED_REQUEST", "body", detail)
    })?;
    if wire.event_type != EVENT_TYPE {
        return Err(bad("UNSUPPORTED_EVENT_TYPE", "eventType", format!("expected {EVENT_TYPE}")));
    }
    let event_id = wire.event_id.trim().to_string();
    if event_id.is_empty() || event_id.len() > 128 || !event_id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("INVALID_EVENT_ID", "eventId", "must be 1 to 128 visible ASCII characters"));
    }
    let m = wire.data.message_profile;
    let otp_code = m.otp_code.trim().to_string();
    if !(4..=10).contains(&otp_code.len()) || !otp_code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("INVALID_OTP", "data.messageProfile.otpCode", "must be 4 to 10 digits"));
    }
    let phone = E164::parse(&m.phone_number)
        .map_err(|e| bad("INVALID_PHONE_NUMBER", "data.messageProfile.phoneNumber", e.to_string()))?;
    let channel = parse_channel(&m.delivery_channel).ok_or_else(|| {
        bad("UNSUPPORTED_DELIVERY_CHANNEL", "data.messageProfile.deliveryChannel", "must be SMS or a voice call")
    })?;
    let raw_locale = m.locale.filter(|l| !l.trim().is_empty() && l.len() <= 35);
    let locale = raw_locale.as_deref().and_then(Locale::parse);
    let otp_expires_ms = m
        .otp_expires
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t.trim()).ok())
        .and_then(|t| u64::try_from(t.timestamp_millis()).ok());
    let request = wire.data.context.and_then(|c| c.request);
    let url = request.as_ref().and_then(|r| r.url.as_ref()).and_then(|u| u.value.as_deref()).unwrap_or("");
    let preview = url.trim_end_matches('/').ends_with("/generatePreview");
    let okta_request_id =
        request.and_then(|r| r.id).filter(|id| id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()));
    let user_id = wire.data.user_profile.and_then(|u| u.user_id).filter(|id| id.len() <= 64);
    let request_type = wire.request_type.unwrap_or_default().chars().take(128).collect();
    Ok(OtpRequest {
        event_id,
        request_type,
        okta_request_id,
        user_id,
        phone,
        channel,
        otp_code,
        locale,
        raw_locale,
        otp_expires_ms,
        msg_template: m.msg_template.filter(|t| !t.trim().is_empty()),
        preview,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREVIEW: &str = include_str!("../../tests/fixtures/okta/telephony-sms-preview.json");
    const VOICE: &str = include_str!("../../tests/fixtures/okta/telephony-voice-mfa.json");
    const RESET: &str = include_str!("../../tests/fixtures/okta/telephony-sms-password-reset.json");

    fn with(fixture: &str, f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut v: serde_json::Value = serde_json::from_str(fixture).unwrap();
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn parses_okta_preview_sample() {
        let r = parse(PREVIEW.as_bytes()).unwrap();
        assert!(r.preview);
        assert_eq!(r.phone.as_str(), "+9876543210");
        assert_eq!(r.channel, Channel::Sms);
        assert_eq!(r.locale.as_ref().unwrap().to_string(), "en-US");
        assert_eq!(r.otp_code, "11111");
        assert_eq!(r.otp_expires_ms, Some(1_643_406_514_321));
        assert!(r.known_request_type());
    }

    #[test]
    fn parses_voice_and_reset_fixtures() {
        let v = parse(VOICE.as_bytes()).unwrap();
        assert_eq!((v.channel, v.preview, v.locale.unwrap().to_string()), (Channel::Voice, false, "es".into()));
        let r = parse(RESET.as_bytes()).unwrap();
        assert_eq!(r.okta_request_id.as_deref(), Some("reqM4nB6vC8xZ0aS2dF4gH6j"));
    }

    #[test]
    fn channel_spellings() {
        for s in ["SMS", "sms", " Sms "] {
            assert_eq!(parse_channel(s), Some(Channel::Sms));
        }
        for s in ["voice call", "Voice", "VOICE", "CALL", "Voice Call"] {
            assert_eq!(parse_channel(s), Some(Channel::Voice), "{s}");
        }
        for s in ["", "email", "fax", "push"] {
            assert_eq!(parse_channel(s), None);
        }
    }

    #[test]
    fn rejects_bad_fields_with_their_location() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"{".to_vec(), "MALFORMED_REQUEST"),
            (b"[]".to_vec(), "MALFORMED_REQUEST"),
            (with(RESET, |v| v["eventType"] = "com.okta.event_hook".into()), "UNSUPPORTED_EVENT_TYPE"),
            (with(RESET, |v| v["data"]["messageProfile"]["otpCode"] = "12a456".into()), "INVALID_OTP"),
            (with(RESET, |v| v["data"]["messageProfile"]["otpCode"] = "123".into()), "INVALID_OTP"),
            (with(RESET, |v| v["data"]["messageProfile"]["otpCode"] = 123456.into()), "MALFORMED_REQUEST"),
            (with(RESET, |v| v["data"]["messageProfile"]["phoneNumber"] = "call me".into()), "INVALID_PHONE_NUMBER"),
            (
                with(RESET, |v| v["data"]["messageProfile"]["deliveryChannel"] = "email".into()),
                "UNSUPPORTED_DELIVERY_CHANNEL",
            ),
            (
                with(RESET, |v| v["data"]["messageProfile"].as_object_mut().unwrap().retain(|k, _| k != "phoneNumber")),
                "MALFORMED_REQUEST",
            ),
            (with(RESET, |v| v["eventId"] = "".into()), "INVALID_EVENT_ID"),
            (vec![b' '; MAX_BODY_BYTES + 1], "BODY_TOO_LARGE"),
        ];
        for (body, reason) in cases {
            assert_eq!(parse(&body).unwrap_err().reason, reason);
        }
    }

    #[test]
    fn errors_never_echo_values() {
        let body = with(RESET, |v| v["data"]["messageProfile"]["otpCode"] = serde_json::json!({"x": "905127"}));
        let e = parse(&body).unwrap_err();
        assert!(!e.to_string().contains("905127"), "{e}");
    }

    #[test]
    fn unknown_request_type_is_accepted() {
        let r = parse(&with(RESET, |v| v["requestType"] = "com.okta.user.telephony.something-new".into())).unwrap();
        assert!(!r.known_request_type());
    }

    #[test]
    fn odd_locale_falls_back_to_none() {
        let r = parse(&with(RESET, |v| v["data"]["messageProfile"]["locale"] = "klingon!".into())).unwrap();
        assert_eq!(r.locale, None);
    }
}
