//! The one structured log line per telephony request. It holds only what on-call needs and
//! nothing secret: the phone number masked (`+34******678`), never the OTP, `msgTemplate`, a
//! token or a secret — the type has no field that could carry them.

use serde::Serialize;

use super::request::OtpRequest;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogLine {
    pub msg: &'static str,
    #[serde(skip)]
    pub started_ms: u64,
    pub status: u16,
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub okta_request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_type: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unknown_request_type: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_locale: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub preview: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replay: bool,
    /// What the exactly-once claim found (`claimed`, `replayed`, `in_flight`, `unknown`, `unavailable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger_ms: Option<u64>,
    /// The toll-fraud guard's refusal reason, when it refused (or would have, in monitor mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard: Option<&'static str>,
    /// What it refused on: `range`, `country`, `number`, `prefix`, `user`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard_key: Option<&'static str>,
    /// `monitor` when the request was sent despite the guard's decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard_mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub attempts: u32,
    /// AWS error code and reason (never AWS's free-text message, which can echo input).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub latency_ms: u64,
}

impl LogLine {
    pub fn new(started_ms: u64) -> Self {
        LogLine {
            msg: "telephony",
            started_ms,
            status: 0,
            outcome: String::new(),
            event_id: None,
            okta_request_id: None,
            request_type: None,
            unknown_request_type: false,
            channel: None,
            country: None,
            phone: None,
            locale: None,
            template_locale: None,
            preview: false,
            replay: false,
            ledger: None,
            ledger_ms: None,
            guard: None,
            guard_key: None,
            guard_mode: None,
            message_id: None,
            attempts: 0,
            detail: None,
            latency_ms: 0,
        }
    }

    pub fn describe(&mut self, req: &OtpRequest) {
        self.event_id = Some(req.event_id.clone());
        self.okta_request_id = req.okta_request_id.clone();
        self.request_type = Some(req.request_type.clone());
        self.unknown_request_type = !req.known_request_type();
        self.channel = Some(req.channel.as_str());
        self.country = req.phone.country();
        self.phone = Some(req.phone.masked());
        self.locale = req
            .raw_locale
            .as_ref()
            .map(|l| l.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect());
        self.preview = req.preview;
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
