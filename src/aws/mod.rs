//! Calling AWS from the edge: SigV4 signing through the aws-sigv4 crate, awsJson error parsing,
//! and the End User Messaging SMS & Voice v2 operations. Builds request values; never sends
//! them — the caller does, through `edge::Http`. No module but `aws::sign` touches credentials.
//!
//! A call is three steps, all pure:
//!
//! 1. build an unsigned [`HttpRequest`](crate::edge::HttpRequest), e.g. with
//!    [`messaging::send_text_message`];
//! 2. sign it in place with [`sign::sign`], passing the clock reading in milliseconds (never
//!    `SystemTime::now()`, which panics in wasm);
//! 3. send it through `edge::Http` and read the answer, e.g. with [`messaging::parse_message_id`],
//!    which turns any failure into an [`error::AwsError`].

pub mod connect;
pub mod dynamodb;
pub mod error;
pub mod messaging;
pub mod sign;

use std::fmt;

/// Long-lived IAM user keys, or temporary keys with a session token.
///
/// `Debug` redacts the secret and the token and shows only the first four characters of the
/// key id, so a stray `{:?}` cannot leak them into logs.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl Credentials {
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        Self { access_key_id: access_key_id.into(), secret_access_key: secret_access_key.into(), session_token }
    }
}

/// Prints as `<redacted>` without quotes.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key_prefix: String = self.access_key_id.chars().take(4).collect();
        f.debug_struct("Credentials")
            .field("access_key_id", &format!("{key_prefix}…"))
            .field("secret_access_key", &Redacted)
            .field("session_token", &self.session_token.as_ref().map(|_| Redacted))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_only_the_key_id_prefix_and_redacts_secrets() {
        let creds = Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            Some("session-token-value".to_owned()),
        );
        let shown = format!("{creds:?}");
        assert_eq!(
            shown,
            "Credentials { access_key_id: \"AKIA…\", secret_access_key: <redacted>, \
             session_token: Some(<redacted>) }"
        );
        assert!(!shown.contains("IOSFODNN7"));
        assert!(!shown.contains("wJalr"));
        assert!(!shown.contains("session-token-value"));
    }

    #[test]
    fn debug_without_token_shows_none_and_survives_short_key_ids() {
        let creds = Credentials::new("AK", "s", None);
        assert_eq!(
            format!("{creds:?}"),
            "Credentials { access_key_id: \"AK…\", secret_access_key: <redacted>, \
             session_token: None }"
        );
        let multibyte = Credentials::new("ÄÖÜßéè", "s", None);
        assert!(format!("{multibyte:?}").contains("\"ÄÖÜß…\""));
    }
}
