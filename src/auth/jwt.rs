//! Okta access tokens: parsing (jwt-compact), the RS256 signature (through [`Rs256`]), and
//! the claims Okta's own verifiers check — `iss` exact, `aud`, `cid` allow-list, `scp`,
//! `exp`/`nbf`/`iat` with bounded leeway.
//!
//! The algorithm comes from configuration (RS256), never from the token: `alg` is compared,
//! not obeyed. Header fields that point at keys (`jku`, `x5u`, `jwk`, `x5c`) are ignored; a
//! `crit` header is refused. Tokens are bounded in size before any decoding.
//!
//! Okta reuses one access token for many hook calls, so verified tokens are cached (keyed by a
//! SHA-256 digest of the token, never the token) until they expire: a warm request does no RSA.

use std::cell::RefCell;
use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use jwt_compact::{Claims, TimeOptions, UntrustedToken};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::jwks::JwksCache;
use super::rs256::Rs256;
use super::AuthError;
use crate::edge::{Clock, Http};
use crate::telephony::config::OAuthConfig;

/// Larger tokens are refused before decoding. Okta access tokens are ~1 KB.
pub const MAX_TOKEN_BYTES: usize = 8192;
const PINNED_ALG: &str = "RS256";
const TOKEN_CACHE_MAX: usize = 256;

/// What a verified token tells us about the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub client_id: String,
    /// Expiry, seconds since the epoch.
    pub exp_s: i64,
    /// Whether this came from the verified-token cache.
    pub cached: bool,
}

/// Verified tokens of this isolate, by digest.
#[derive(Default)]
pub struct TokenCache {
    entries: RefCell<HashMap<[u8; 32], (String, i64)>>,
}

impl TokenCache {
    fn get(&self, digest: &[u8; 32], now_s: i64, leeway_s: i64) -> Option<Verified> {
        let entries = self.entries.borrow();
        let (cid, exp) = entries.get(digest)?;
        (now_s <= exp + leeway_s).then(|| Verified { client_id: cid.clone(), exp_s: *exp, cached: true })
    }

    fn put(&self, digest: [u8; 32], v: &Verified, now_s: i64) {
        let mut entries = self.entries.borrow_mut();
        if entries.len() >= TOKEN_CACHE_MAX {
            entries.retain(|_, (_, exp)| *exp > now_s);
            if entries.len() >= TOKEN_CACHE_MAX {
                entries.clear();
            }
        }
        entries.insert(digest, (v.client_id.clone(), v.exp_s));
    }

    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Header fields we look at beyond `alg` and `kid`.
#[derive(Clone, Debug, Deserialize)]
struct ExtraHeader {
    crit: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct OktaClaims {
    iss: Option<String>,
    aud: Option<OneOrMany>,
    cid: Option<String>,
    scp: Option<OneOrMany>,
}

/// `Authorization: Bearer <token>` → `<token>`.
pub fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
    let h = header.ok_or(AuthError::MissingCredentials)?.trim();
    let (scheme, token) = h.split_once(' ').ok_or(AuthError::MalformedCredentials)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::MalformedCredentials);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::MalformedCredentials);
    }
    Ok(token)
}

/// Everything needed to check a token, borrowed from the isolate and the request.
pub struct Verifier<'a, H, V: Rs256, C> {
    pub config: &'a OAuthConfig,
    pub jwks: &'a JwksCache<V::Key>,
    pub tokens: &'a TokenCache,
    pub http: &'a H,
    pub rs256: &'a V,
    pub clock: &'a C,
}

impl<H, V, C> Verifier<'_, H, V, C>
where
    H: Http,
    V: Rs256,
    C: Clock,
{
    pub async fn verify(&self, token: &str, now_ms: u64, jwks_timeout_ms: u64) -> Result<Verified, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TokenTooLarge);
        }
        let now_s = (now_ms / 1000) as i64;
        let leeway_s = self.config.leeway_s as i64;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(v) = self.tokens.get(&digest, now_s, leeway_s) {
            return Ok(v);
        }

        if token.bytes().filter(|b| *b == b'.').count() != 2 {
            return Err(AuthError::MalformedToken("not three dot-separated parts"));
        }
        let untrusted: UntrustedToken<'_, ExtraHeader> =
            UntrustedToken::try_from(token).map_err(|_| AuthError::MalformedToken("bad base64url or JSON header"))?;
        if untrusted.algorithm() != PINNED_ALG {
            return Err(AuthError::AlgorithmNotAllowed);
        }
        if untrusted.header().other_fields.crit.is_some() {
            return Err(AuthError::MalformedToken("critical header extensions are not supported"));
        }
        if untrusted.signature_bytes().is_empty() {
            return Err(AuthError::MalformedToken("empty signature"));
        }
        let kid = untrusted.header().key_id.as_deref().filter(|k| !k.is_empty()).ok_or(AuthError::MissingKeyId)?;

        let key = self.jwks.key(kid, jwks_timeout_ms, self.http, self.rs256, self.clock).await?;
        let signing_input = token.rsplit_once('.').map(|(head, _)| head).unwrap_or_default();
        if !self.rs256.verify(&key, signing_input.as_bytes(), untrusted.signature_bytes()).await {
            return Err(AuthError::InvalidSignature);
        }

        let claims: Claims<OktaClaims> = untrusted
            .deserialize_claims_unchecked()
            .map_err(|_| AuthError::MalformedToken("claims are not valid JSON"))?;
        let verified = check_claims(&claims, self.config, now_ms)?;
        self.tokens.put(digest, &verified, now_s);
        Ok(verified)
    }
}

fn check_claims(claims: &Claims<OktaClaims>, cfg: &OAuthConfig, now_ms: u64) -> Result<Verified, AuthError> {
    let now: DateTime<Utc> = DateTime::from_timestamp_millis(now_ms as i64).unwrap_or_default();
    let leeway = Duration::seconds(cfg.leeway_s as i64);
    let opts = TimeOptions::new(leeway, move || now);
    // An access token without `exp` never expires: refuse it.
    let exp = claims.expiration.ok_or(AuthError::Expired)?;
    claims.validate_expiration(&opts).map_err(|_| AuthError::Expired)?;
    // jwt-compact treats a missing `nbf` as an error; Okta access tokens have none.
    if claims.not_before.is_some() {
        claims.validate_maturity(&opts).map_err(|_| AuthError::NotYetValid)?;
    }
    if claims.issued_at.is_some_and(|iat| iat > now + leeway) {
        return Err(AuthError::IssuedInFuture);
    }
    let c = &claims.custom;
    if c.iss.as_deref() != Some(cfg.issuer.as_str()) {
        return Err(AuthError::WrongIssuer);
    }
    let aud_ok = match &c.aud {
        Some(OneOrMany::One(a)) => *a == cfg.audience,
        Some(OneOrMany::Many(list)) => list.contains(&cfg.audience),
        None => false,
    };
    if !aud_ok {
        return Err(AuthError::WrongAudience);
    }
    let cid = c
        .cid
        .as_deref()
        .filter(|cid| cfg.allowed_client_ids.iter().any(|a| a == cid))
        .ok_or(AuthError::ClientNotAllowed)?;
    let scope_ok = match &c.scp {
        Some(OneOrMany::One(s)) => s.split_whitespace().any(|s| s == cfg.required_scope),
        Some(OneOrMany::Many(list)) => list.contains(&cfg.required_scope),
        None => false,
    };
    if !scope_ok {
        return Err(AuthError::MissingScope);
    }
    Ok(Verified { client_id: cid.to_string(), exp_s: exp.timestamp(), cached: false })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_required() {
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Ok("abc"));
        assert_eq!(bearer(Some("Basic abc")), Err(AuthError::MalformedCredentials));
        assert_eq!(bearer(Some("Bearer")), Err(AuthError::MalformedCredentials));
        assert_eq!(bearer(Some("Bearer  ")), Err(AuthError::MalformedCredentials));
        assert_eq!(bearer(None), Err(AuthError::MissingCredentials));
    }
}
