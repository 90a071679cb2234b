//! Authenticating Okta's calls to the telephony hook: OAuth 2.0 access tokens (RS256, keys from
//! the issuer's JWKS) or a static header secret. Runs before anything in the body is read.
//!
//! - `auth::jwt`: parsing and checking an access token, and the cache of verified tokens;
//! - `auth::jwks`: the issuer's signing keys, cached per `Cache-Control`, refetched once per
//!   cooldown on an unknown `kid`;
//! - `auth::rs256`: the RSA signature check behind a trait (WebCrypto in the Worker, pure Rust
//!   natively);
//! - `auth::secret`: the constant-time header-secret check.
//!
//! Invariant: no token, secret or key material is ever put into an error or a log line.

pub mod jwks;
pub mod jwt;
pub mod rs256;
pub mod secret;

use std::fmt;

/// Why a caller was refused. `reason()` is the stable code sent back and logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    MissingCredentials,
    MalformedCredentials,
    InvalidSecret,
    TokenTooLarge,
    MalformedToken(&'static str),
    AlgorithmNotAllowed,
    MissingKeyId,
    UnknownKeyId,
    /// The issuer's keys could not be fetched and none are cached.
    KeysUnavailable(String),
    InvalidSignature,
    Expired,
    NotYetValid,
    IssuedInFuture,
    WrongIssuer,
    WrongAudience,
    ClientNotAllowed,
    MissingScope,
}

impl AuthError {
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::MissingCredentials => "MISSING_CREDENTIALS",
            AuthError::MalformedCredentials => "MALFORMED_CREDENTIALS",
            AuthError::InvalidSecret => "INVALID_CREDENTIALS",
            AuthError::TokenTooLarge => "TOKEN_TOO_LARGE",
            AuthError::MalformedToken(_) => "MALFORMED_TOKEN",
            AuthError::AlgorithmNotAllowed => "ALGORITHM_NOT_ALLOWED",
            AuthError::MissingKeyId => "MISSING_KEY_ID",
            AuthError::UnknownKeyId => "UNKNOWN_KEY_ID",
            AuthError::KeysUnavailable(_) => "KEYS_UNAVAILABLE",
            AuthError::InvalidSignature => "INVALID_SIGNATURE",
            AuthError::Expired => "TOKEN_EXPIRED",
            AuthError::NotYetValid => "TOKEN_NOT_YET_VALID",
            AuthError::IssuedInFuture => "TOKEN_ISSUED_IN_FUTURE",
            AuthError::WrongIssuer => "INVALID_ISSUER",
            AuthError::WrongAudience => "INVALID_AUDIENCE",
            AuthError::ClientNotAllowed => "CLIENT_NOT_ALLOWED",
            AuthError::MissingScope => "INSUFFICIENT_SCOPE",
        }
    }

    /// 503 when we could not check (keys unavailable), 401 when the caller failed the check.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::KeysUnavailable(_) => 503,
            _ => 401,
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            AuthError::MissingCredentials => "no credentials in the request",
            AuthError::MalformedCredentials => "the Authorization header is not `Bearer <token>`",
            AuthError::InvalidSecret => "the hook secret does not match",
            AuthError::TokenTooLarge => "the access token is too large",
            AuthError::MalformedToken(why) => return write!(f, "the access token is malformed: {why}"),
            AuthError::AlgorithmNotAllowed => "the token's algorithm is not the configured RS256",
            AuthError::MissingKeyId => "the token has no key id (kid)",
            AuthError::UnknownKeyId => "the token's key id is not among the issuer's keys",
            AuthError::KeysUnavailable(why) => return write!(f, "the issuer's keys are unavailable: {why}"),
            AuthError::InvalidSignature => "the token's signature does not verify",
            AuthError::Expired => "the token has expired",
            AuthError::NotYetValid => "the token is not valid yet (nbf)",
            AuthError::IssuedInFuture => "the token was issued in the future (iat)",
            AuthError::WrongIssuer => "the token's issuer is not the configured one",
            AuthError::WrongAudience => "the token's audience is not the configured one",
            AuthError::ClientNotAllowed => "the token's client (cid) is not allowed",
            AuthError::MissingScope => "the token lacks the required scope",
        };
        f.write_str(s)
    }
}

impl std::error::Error for AuthError {}

#[cfg(test)]
mod tests;
