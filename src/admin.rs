//! The admin endpoints' one gate, for every admin route (`/admin/templates/*`, `/admin/guard/*`,
//! `/admin/provisioning/*`): `ADMIN_SECRET` as a setting, `Authorization: Bearer <ADMIN_SECRET>`
//! checked by `auth::secret::check` (SHA-256 digests compared in constant time, so neither content
//! nor length leaks through timing), the refusal answers (401 generic, 503 when the endpoints are
//! off or misconfigured), and the one-run-per-isolate [`Gate`] of the long admin jobs.

use std::cell::Cell;
use std::fmt;

use crate::auth::{jwt, secret, AuthError};
use crate::http::{self, Answer, Handled};
use crate::settings::{bad, getter, ConfigError, Source};

/// `ADMIN_SECRET` is at least this long.
pub const MIN_ADMIN_SECRET_CHARS: usize = 24;

/// What started a long admin job (the template sync, the reconciliation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// A Cron Trigger tick.
    #[default]
    Cron,
    /// An admin endpoint.
    Admin,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Cron => "cron",
            Trigger::Admin => "admin",
        }
    }
}

/// At most one run per isolate at a time.
#[derive(Default)]
pub struct Gate(Cell<bool>);

/// Holds the [`Gate`] until dropped.
pub struct Entered<'a>(&'a Gate);

impl Gate {
    pub fn try_enter(&self) -> Option<Entered<'_>> {
        if self.0.replace(true) {
            None
        } else {
            Some(Entered(self))
        }
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.0 .0.set(false);
    }
}

/// The admin endpoints' bearer token. `Ok(None)` when `ADMIN_SECRET` is unset: the endpoints
/// are off.
pub fn admin_secret(src: &impl Source) -> Result<Option<AdminSecret>, ConfigError> {
    let Some(secret) = getter(src)("ADMIN_SECRET") else { return Ok(None) };
    if secret.chars().count() < MIN_ADMIN_SECRET_CHARS {
        return Err(bad("ADMIN_SECRET", format!("must be at least {MIN_ADMIN_SECRET_CHARS} characters")));
    }
    if secret.len() > 512 || !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("ADMIN_SECRET", "must be printable ASCII without spaces, at most 512 characters"));
    }
    Ok(Some(AdminSecret(secret)))
}

/// The admin secret; `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminSecret(String);

impl AdminSecret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AdminSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminSecret(<redacted>)")
    }
}

/// The answer to an admin request that may not proceed: admin endpoints off or misconfigured,
/// or a wrong or missing `Authorization: Bearer <ADMIN_SECRET>`. `None`: authorized.
pub fn refuse(authorization: Option<&str>, admin: Result<Option<AdminSecret>, ConfigError>) -> Option<Handled> {
    let plain = |answer: Answer| Handled::plain(answer);
    let secret = match admin {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Some(plain(http::plain_error(
                503,
                "The admin endpoints are off (ADMIN_SECRET is not set)",
                "ADMIN_DISABLED",
            )))
        }
        Err(e) => {
            return Some(Handled {
                answer: http::plain_error(503, "The admin endpoints are misconfigured", "ADMIN_MISCONFIGURED"),
                log: None,
                alerts: vec![format!("admin endpoints: {e}")],
            })
        }
    };
    if let Err(e) = authorize(authorization, &secret) {
        let detail = match e {
            AuthError::InvalidSecret => "the admin token does not match",
            AuthError::MissingCredentials => "no Authorization header",
            _ => "the Authorization header is not `Bearer <token>`",
        };
        return Some(plain(http::unauthorized(401, detail, e.reason(), "Authorization")));
    }
    None
}

/// `Bearer <token>` with the token equal to the secret (constant time).
fn authorize(authorization: Option<&str>, secret: &AdminSecret) -> Result<(), AuthError> {
    let token = jwt::bearer(authorization)?;
    secret::check(Some(token), secret.expose())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn admin_secret_must_be_long_and_is_never_printed() {
        let m = |v: &str| settings(&[("ADMIN_SECRET", v)]);
        assert_eq!(admin_secret(&settings(&[])).unwrap(), None);
        assert_eq!(admin_secret(&m("short")).unwrap_err().setting, "ADMIN_SECRET");
        assert_eq!(admin_secret(&m("twenty-four characters with spaces")).unwrap_err().setting, "ADMIN_SECRET");
        let s = admin_secret(&m("an-admin-secret-of-32-characters")).unwrap().unwrap();
        assert_eq!(s.expose(), "an-admin-secret-of-32-characters");
        assert!(!format!("{s:?}").contains("admin-secret"));
    }
}
