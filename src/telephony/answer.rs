//! What the hook answers, in Okta's exact shapes, and which shape each outcome gets.
//!
//! Okta's telephony hook reference (developer.okta.com/docs/reference/telephony-hook/) says that
//! "returning an error object causes Okta to retry sending the OTP to the Requester using the Okta
//! telephony providers", and that a non-200 answer or a timeout skips the hook the same way. So:
//!
//! | outcome | answer |
//! |---|---|
//! | AWS accepted the message | `SUCCESSFUL`, `transactionId` = `MessageId` |
//! | AWS may have accepted it (timeout, 2xx without `MessageId`, a copy still in flight, a claim never settled) | `PENDING` ("couldn't confirm delivery"): no error object, so no second code from Okta's providers |
//! | a deliberate per-destination refusal (opted out, blocked, invalid, …; the guard's refusals) | `FAILED`: no error object, so Okta's documented fallback does not send it either |
//! | nothing was sent and the fault is ours (AWS down or throttling, spend limit, configuration) | the `error` object: where Okta's own providers still act, they deliver the code |
//!
//! The reason travels in `transactionMetadata` (a JSON string) or in `errorCauses[0].reason`.
//! Refused requests (400/401/413/…) get the `error` shape with a generic text; only user-safe
//! sentences go in `errorSummary`: end users see it.

use serde::Serialize;

pub use crate::http::Answer;
use crate::http::{error_body as error_json, to_json};

pub const COMMAND_TYPE: &str = "com.okta.telephony.action";
pub const PROVIDER: &str = "AWS End User Messaging";

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
    #[serde(skip_serializing_if = "Option::is_none")]
    transaction_id: Option<&'a str>,
    transaction_metadata: &'a str,
}

/// Delivery accepted by AWS: `SUCCESSFUL`, the `MessageId` as `transactionId`.
pub fn successful(transaction_id: &str, metadata: &str) -> Answer {
    command("SUCCESSFUL", Some(transaction_id), metadata)
}

/// The outcome is unknown and AWS may have accepted the message: `PENDING`, never the error
/// object (that would have Okta send a second code). `metadata` carries the reason.
pub fn pending(metadata: &str) -> Answer {
    command("PENDING", None, metadata)
}

/// A deliberate refusal: `FAILED`, so that nobody else is asked to send it.
pub fn failed(metadata: &str) -> Answer {
    command("FAILED", None, metadata)
}

fn command(status: &'static str, transaction_id: Option<&str>, metadata: &str) -> Answer {
    let body = Commands {
        commands: [Command {
            type_: COMMAND_TYPE,
            value: [Action { status, provider: PROVIDER, transaction_id, transaction_metadata: metadata }],
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

/// The telephony hook's authentication failed (401) or could not be checked (503). Generic on
/// purpose: the body never says which check failed (that is in the log line), so it teaches a
/// prober nothing about the token it tried.
pub fn auth_refused(status: u16, missing: bool, header: &str) -> Answer {
    let (summary, detail, reason) = match (status, missing) {
        (401, true) => ("Unauthorized", "No credentials were presented", "MISSING_CREDENTIALS"),
        (401, false) => ("Unauthorized", "The credentials were not accepted", "INVALID_CREDENTIALS"),
        _ => {
            ("Authentication unavailable", "The credentials cannot be checked right now", "AUTHENTICATION_UNAVAILABLE")
        }
    };
    Answer { status, body: error_json(summary, detail, reason, "header", header, "authentication") }
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
    fn pending_and_failed_are_commands_without_a_transaction_id() {
        for (a, status) in
            [(pending(r#"{"reason":"TIMEOUT"}"#), "PENDING"), (failed(r#"{"reason":"OPTED_OUT"}"#), "FAILED")]
        {
            assert_eq!(a.status, 200);
            let v: Value = serde_json::from_str(&a.body).unwrap();
            let action = &v["commands"][0]["value"][0];
            assert_eq!(action["status"], status);
            assert!(action.get("transactionId").is_none());
            assert!(v.get("error").is_none());
            let meta: Value = serde_json::from_str(action["transactionMetadata"].as_str().unwrap()).unwrap();
            assert!(meta["reason"].is_string());
        }
    }

    #[test]
    fn unauthorized_bodies_say_nothing_about_the_failed_check() {
        let v: Value = serde_json::from_str(&auth_refused(401, false, "Authorization").body).unwrap();
        assert_eq!(v["error"]["errorCauses"][0]["reason"], "INVALID_CREDENTIALS");
        let v: Value = serde_json::from_str(&auth_refused(401, true, "Authorization").body).unwrap();
        assert_eq!(v["error"]["errorCauses"][0]["reason"], "MISSING_CREDENTIALS");
        let v: Value = serde_json::from_str(&auth_refused(503, false, "Authorization").body).unwrap();
        assert_eq!(v["error"]["errorCauses"][0]["reason"], "AUTHENTICATION_UNAVAILABLE");
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
