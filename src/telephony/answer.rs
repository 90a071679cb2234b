//! What the hook answers, in Okta's exact shapes: the `com.okta.telephony.action` command on
//! success, the `error` object (with HTTP 200) when delivery failed, and JSON errors for refused
//! requests (400/401/413/…). Only user-safe sentences go in `errorSummary`: end users see it.

use serde::{Deserialize, Serialize};

pub const COMMAND_TYPE: &str = "com.okta.telephony.action";
pub const PROVIDER: &str = "AWS End User Messaging";

/// An HTTP answer: status and JSON body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

#[derive(Serialize)]
struct Commands<'a> {
    commands: [Command<'a>; 1],
}

#[derive(Serialize)]
struct Command<'a> {
    #[serde(rename = "type")]
    type_: &'static str,
    value: [Action<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Action<'a> {
    status: &'static str,
    provider: &'static str,
    transaction_id: &'a str,
    transaction_metadata: &'a str,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorObj<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorObj<'a> {
    error_summary: &'a str,
    error_causes: [Cause<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Cause<'a> {
    error_summary: &'a str,
    reason: &'a str,
    location_type: &'static str,
    location: &'a str,
    domain: &'static str,
}

/// Delivery accepted by AWS: `SUCCESSFUL`, the `MessageId` as `transactionId`.
pub fn successful(transaction_id: &str, metadata: &str) -> Answer {
    let body = Commands {
        commands: [Command {
            type_: COMMAND_TYPE,
            value: [Action {
                status: "SUCCESSFUL",
                provider: PROVIDER,
                transaction_id,
                transaction_metadata: metadata,
            }],
        }],
    };
    Answer { status: 200, body: to_json(&body) }
}

/// Delivery failed: HTTP 200 with Okta's `error` object. `summary` is shown to the end user.
pub fn delivery_failed(summary: &str, reason: &str) -> Answer {
    Answer {
        status: 200,
        body: error_json(summary, summary, reason, "body", "data.messageProfile", "end-user-messaging"),
    }
}

/// A refused request (400, 413, …): the same `error` shape, naming the field at fault.
pub fn bad_request(status: u16, detail: &str, reason: &str, location: &str) -> Answer {
    Answer { status, body: error_json("Invalid telephony hook request", detail, reason, "body", location, "request") }
}

/// Authentication failed (401) or could not be checked (503).
pub fn unauthorized(status: u16, detail: &str, reason: &str, header: &str) -> Answer {
    let summary = if status == 401 { "Unauthorized" } else { "Authentication unavailable" };
    Answer { status, body: error_json(summary, detail, reason, "header", header, "authentication") }
}

/// Any other refusal (404, 405, 415, 500) with a plain JSON error.
pub fn plain_error(status: u16, summary: &str, reason: &str) -> Answer {
    Answer { status, body: error_json(summary, summary, reason, "url", "", "request") }
}

fn error_json(
    summary: &str,
    detail: &str,
    reason: &str,
    location_type: &'static str,
    location: &str,
    domain: &'static str,
) -> String {
    to_json(&ErrorBody {
        error: ErrorObj {
            error_summary: summary,
            error_causes: [Cause { error_summary: detail, reason, location_type, location, domain }],
        },
    })
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("string-only structures always serialise")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn success_has_okta_exact_shape() {
        let a = successful("mid-1", "{\"channel\":\"sms\"}");
        let v: Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(
            v,
            json!({"commands":[{"type":"com.okta.telephony.action","value":[{"status":"SUCCESSFUL",
                "provider":"AWS End User Messaging","transactionId":"mid-1","transactionMetadata":"{\"channel\":\"sms\"}"}]}]})
        );
        assert_eq!(a.status, 200);
    }

    #[test]
    fn delivery_failure_is_http_200_with_error_object() {
        let a = delivery_failed("We can't send codes to this country.", "COUNTRY_BLOCKED");
        assert_eq!(a.status, 200);
        let v: Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(v["error"]["errorSummary"], "We can't send codes to this country.");
        assert_eq!(v["error"]["errorCauses"][0]["reason"], "COUNTRY_BLOCKED");
        assert_eq!(v["error"]["errorCauses"][0]["locationType"], "body");
        assert!(v.get("commands").is_none());
    }
}
