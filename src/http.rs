//! Shared HTTP plumbing of the core, whatever feature uses it: the answer every handler returns
//! ([`Answer`], and [`Handled`] with its log line and alerts), Okta's error body for refusals
//! ([`plain_error`], [`unauthorized`]), why a request body could not be read ([`BodyError`]), and
//! URL encoding.

use serde::{Deserialize, Serialize};

/// An HTTP answer: status and JSON body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// What the shell does with one handled request or cron tick: answer it, log `log` (one JSON
/// line) and every alert (at error level).
#[derive(Debug)]
pub struct Handled {
    pub answer: Answer,
    pub log: Option<String>,
    /// Lines operators must see.
    pub alerts: Vec<String>,
}

impl Handled {
    /// An answer with nothing to log.
    pub fn plain(answer: Answer) -> Self {
        Handled { answer, log: None, alerts: vec![] }
    }
}

/// Why a request body could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Longer than the handler's bound (413).
    TooLarge,
    /// The stream broke.
    Unreadable,
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

/// Okta's error shape (`{"error": {"errorSummary", "errorCauses": [{…}]}}`), which every refusal
/// of this Worker uses: one cause with a machine-readable `reason`.
pub fn error_body(
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

/// A shared-secret check failed (401) or could not be made (503): the event hook and the admin
/// endpoints.
pub fn unauthorized(status: u16, detail: &str, reason: &str, header: &str) -> Answer {
    let summary = if status == 401 { "Unauthorized" } else { "Authentication unavailable" };
    Answer { status, body: error_body(summary, detail, reason, "header", header, "authentication") }
}

/// Any other refusal (400, 404, 405, 413, 500, 503, …) with a plain JSON error.
pub fn plain_error(status: u16, summary: &str, reason: &str) -> Answer {
    Answer { status, body: error_body(summary, summary, reason, "url", "", "request") }
}

/// JSON of a structure that has only strings, numbers and such (serialising cannot fail).
pub fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("string-only structures always serialise")
}

/// Percent-encodes `s` for a URL query or a form body: every byte but RFC 3986's unreserved
/// characters (`A-Z a-z 0-9 - . _ ~`). `space_plus` writes a space as `+` (form encoding);
/// otherwise as `%20` (what SigV4's canonical query expects).
pub fn percent_encode(s: &str, space_plus: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            b' ' if space_plus => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 15)] as char);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_have_okta_error_shape() {
        let v: serde_json::Value = serde_json::from_str(&plain_error(404, "Not found", "NOT_FOUND").body).unwrap();
        assert_eq!(v["error"]["errorSummary"], "Not found");
        assert_eq!(v["error"]["errorCauses"][0]["reason"], "NOT_FOUND");
        let a = unauthorized(401, "The secret was not accepted", "INVALID_SECRET", "x-okta-hook-secret");
        let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!((a.status, &v["error"]["errorSummary"]), (401, &"Unauthorized".into()));
        assert_eq!(v["error"]["errorCauses"][0]["location"], "x-okta-hook-secret");
    }

    #[test]
    fn encodes_all_but_unreserved() {
        assert_eq!(percent_encode("a b+c/=~", true), "a+b%2Bc%2F%3D~");
        assert_eq!(percent_encode("a b+c/=~", false), "a%20b%2Bc%2F%3D~");
        assert_eq!(percent_encode("é", false), "%C3%A9");
    }
}
