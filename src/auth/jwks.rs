//! The issuer's signing keys (JWKS), cached in the isolate.
//!
//! - Fetched only from the configured URL; `jku`/`x5u`/`jwk` token headers are never followed.
//! - Kept for the response's `Cache-Control: max-age`, clamped to 5 min – 24 h (1 h if absent).
//! - An unknown `kid` triggers one refetch, then not another until the cooldown has passed
//!   (a negative cache): a flood of made-up `kid`s costs Okta one request per cooldown.
//! - No request ever awaits I/O that another request started (workerd forbids it, and a cancelled
//!   request would leave the others hanging): while one request of the isolate is fetching,
//!   others that need keys poll the cache on their own timers for a bounded time, then fetch
//!   themselves. Freshness is all timestamps.
//! - When a refresh fails, the keys already held stay in use, but only for `max_stale` past their
//!   lifetime: a key revoked while the JWKS is unreachable is not trusted indefinitely.
//! - Only `kty: RSA` keys with `use` absent or `sig`, `alg` absent or `RS256`, and a modulus of
//!   2048 to 8192 bits are kept.

use std::cell::RefCell;
use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

use super::rs256::{Rs256, RsaJwk};
use super::AuthError;
use crate::edge::{Clock, Http, HttpRequest};
use crate::inflight::InFlight;

pub const MIN_TTL_S: u64 = 300;
pub const MAX_TTL_S: u64 = 86_400;
pub const DEFAULT_TTL_S: u64 = 3_600;
const MAX_BODY: usize = 64 * 1024;
const MAX_KEYS: usize = 20;
/// After a failed fetch, the next may start this soon (not a whole cooldown later).
const RETRY_AFTER_FAILURE_MS: u64 = 5_000;

struct State<K> {
    keys: HashMap<String, K>,
    fresh_until_ms: u64,
    /// No refetch for an unknown `kid` before this time (the cooldown: a negative cache).
    next_unknown_kid_fetch_ms: u64,
    /// No fetch at all before this time (a short pause after a failed fetch).
    next_any_fetch_ms: u64,
    fetches: u64,
}

/// The isolate's copy of one issuer's keys.
pub struct JwksCache<K> {
    url: String,
    cooldown_ms: u64,
    max_stale_ms: u64,
    state: RefCell<State<K>>,
    /// A fetch some request of this isolate has under way.
    fetching: InFlight,
}

impl<K: Clone> JwksCache<K> {
    pub fn new(url: impl Into<String>, cooldown_s: u64, max_stale_s: u64) -> Self {
        JwksCache {
            url: url.into(),
            cooldown_ms: cooldown_s * 1000,
            max_stale_ms: max_stale_s * 1000,
            state: RefCell::new(State {
                keys: HashMap::new(),
                fresh_until_ms: 0,
                next_unknown_kid_fetch_ms: 0,
                next_any_fetch_ms: 0,
                fetches: 0,
            }),
            fetching: InFlight::default(),
        }
    }

    /// How many times the JWKS was fetched (for logs and tests).
    pub fn fetches(&self) -> u64 {
        self.state.borrow().fetches
    }

    /// The key for `kid`, fetching the JWKS when the cache is stale or the `kid` is unknown and
    /// the cooldown allows it. Waits at most about `timeout_ms`.
    pub async fn key<H, V, C>(&self, kid: &str, timeout_ms: u64, http: &H, rs: &V, clock: &C) -> Result<K, AuthError>
    where
        H: Http,
        V: Rs256<Key = K>,
        C: Clock,
    {
        let give_up_ms = clock.now_ms() + timeout_ms;
        let mut fetch_error = None;
        let mut fetched = false;
        loop {
            let now_ms = clock.now_ms();
            let (known, fresh, may_fetch) = {
                let s = self.state.borrow();
                let stale = s.keys.is_empty() || now_ms >= s.fresh_until_ms;
                // A stale cache is refreshed; a fresh one is refetched for an unknown kid at
                // most once per cooldown.
                let allowed = now_ms >= s.next_any_fetch_ms && (stale || now_ms >= s.next_unknown_kid_fetch_ms);
                (s.keys.get(kid).cloned(), !stale, allowed)
            };
            if let (Some(k), true) = (&known, fresh) {
                return Ok(k.clone());
            }
            if self.fetching.busy(now_ms) && now_ms < give_up_ms {
                // Another request is fetching: look again on our own timer, never await its I/O.
                self.fetching.wait(clock, give_up_ms).await;
                continue;
            }
            if may_fetch && !fetched && now_ms < give_up_ms {
                // At most one fetch of our own per request.
                fetched = true;
                if let Err(e) = self.fetch_now(now_ms, give_up_ms - now_ms, fresh, http, rs).await {
                    fetch_error = Some(e);
                }
                continue;
            }
            break;
        }
        let now_ms = clock.now_ms();
        let s = self.state.borrow();
        let usable = !s.keys.is_empty() && now_ms < s.fresh_until_ms.saturating_add(self.max_stale_ms);
        match s.keys.get(kid) {
            Some(k) if usable => Ok(k.clone()),
            None if usable => Err(AuthError::UnknownKeyId),
            _ => Err(AuthError::KeysUnavailable(fetch_error.unwrap_or_else(|| "no usable keys".into()))),
        }
    }

    /// Fetches the JWKS in this request and stores what it got.
    async fn fetch_now<H: Http, V: Rs256<Key = K>>(
        &self,
        now_ms: u64,
        timeout_ms: u64,
        for_unknown_kid: bool,
        http: &H,
        rs: &V,
    ) -> Result<(), String> {
        {
            let mut s = self.state.borrow_mut();
            if for_unknown_kid {
                s.next_unknown_kid_fetch_ms = now_ms + self.cooldown_ms;
            }
            s.fetches += 1;
        }
        let _working = self.fetching.start(now_ms, timeout_ms);
        let result = fetch(&self.url, timeout_ms, http, rs).await;
        let mut s = self.state.borrow_mut();
        match result {
            Ok((keys, ttl_s)) => {
                s.keys = keys;
                s.fresh_until_ms = now_ms + ttl_s * 1000;
                Ok(())
            }
            Err(e) => {
                s.next_any_fetch_ms = now_ms + RETRY_AFTER_FAILURE_MS;
                Err(e)
            }
        }
    }
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

async fn fetch<H: Http, V: Rs256>(
    url: &str,
    timeout_ms: u64,
    http: &H,
    rs: &V,
) -> Result<(HashMap<String, V::Key>, u64), String> {
    let mut req = HttpRequest::get(url);
    req.headers.push(("accept".into(), "application/json".into()));
    let resp = http.send(req, timeout_ms).await.map_err(|e| e.to_string())?;
    if resp.status != 200 {
        return Err(format!("JWKS answered HTTP {}", resp.status));
    }
    if resp.body.len() > MAX_BODY {
        return Err("JWKS document too large".into());
    }
    let ttl = ttl_from_cache_control(resp.header("cache-control"));
    let jwks: Jwks =
        serde_json::from_slice(&resp.body).map_err(|_| "JWKS is not a {\"keys\": [...]} document".to_string())?;
    let mut keys = HashMap::new();
    for raw in jwks.keys.into_iter().take(MAX_KEYS) {
        let Some(jwk) = usable_rsa_key(raw) else { continue };
        if let Ok(key) = rs.import(&jwk).await {
            keys.insert(jwk.kid, key);
        }
    }
    if keys.is_empty() {
        return Err("JWKS holds no usable RS256 signing key".into());
    }
    Ok((keys, ttl))
}

fn usable_rsa_key(raw: serde_json::Value) -> Option<RsaJwk> {
    let jwk: Jwk = serde_json::from_value(raw).ok()?;
    if jwk.kty != "RSA"
        || jwk.use_.as_deref().is_some_and(|u| u != "sig")
        || jwk.alg.as_deref().is_some_and(|a| a != "RS256")
    {
        return None;
    }
    let kid = jwk.kid.filter(|k| !k.is_empty() && k.len() <= 256)?;
    let (n_b64, e_b64) = (jwk.n?, jwk.e?);
    let n = URL_SAFE_NO_PAD.decode(n_b64.trim_end_matches('=')).ok()?;
    let e = URL_SAFE_NO_PAD.decode(e_b64.trim_end_matches('=')).ok()?;
    let bits = (n.len() - n.iter().take_while(|b| **b == 0).count()) * 8;
    if !(2048..=8192).contains(&bits) || e.is_empty() || e.len() > 8 {
        return None;
    }
    Some(RsaJwk { kid, n_b64, e_b64, n, e })
}

/// `max-age` from a Cache-Control header, clamped to [MIN_TTL_S, MAX_TTL_S].
pub fn ttl_from_cache_control(header: Option<&str>) -> u64 {
    let Some(h) = header else { return DEFAULT_TTL_S };
    let lower = h.to_ascii_lowercase();
    if lower.contains("no-store") || lower.contains("no-cache") {
        return MIN_TTL_S;
    }
    lower
        .split(',')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .filter_map(|v| v.trim_matches('"').parse::<u64>().ok())
        .next()
        .map_or(DEFAULT_TTL_S, |s| s.clamp(MIN_TTL_S, MAX_TTL_S))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_is_clamped() {
        assert_eq!(ttl_from_cache_control(None), DEFAULT_TTL_S);
        assert_eq!(ttl_from_cache_control(Some("max-age=10")), MIN_TTL_S);
        assert_eq!(ttl_from_cache_control(Some("public, max-age=7200, must-revalidate")), 7200);
        assert_eq!(ttl_from_cache_control(Some("max-age=99999999")), MAX_TTL_S);
        assert_eq!(ttl_from_cache_control(Some("no-cache")), MIN_TTL_S);
        assert_eq!(ttl_from_cache_control(Some("max-age=abc")), DEFAULT_TTL_S);
    }

    #[test]
    fn keeps_only_rsa_signing_keys_of_sane_size() {
        let n = URL_SAFE_NO_PAD.encode([0xC5u8; 256]);
        let small = URL_SAFE_NO_PAD.encode([0xC5u8; 128]);
        let key = |extra: serde_json::Value| {
            let mut v = serde_json::json!({"kty":"RSA","kid":"k1","n":n,"e":"AQAB"});
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            v
        };
        assert!(usable_rsa_key(key(serde_json::json!({}))).is_some());
        assert!(usable_rsa_key(key(serde_json::json!({"use":"sig","alg":"RS256"}))).is_some());
        assert!(usable_rsa_key(key(serde_json::json!({"use":"enc"}))).is_none());
        assert!(usable_rsa_key(key(serde_json::json!({"alg":"RS384"}))).is_none());
        assert!(usable_rsa_key(key(serde_json::json!({"kty":"oct","k":"c2VjcmV0"}))).is_none());
        assert!(usable_rsa_key(key(serde_json::json!({"n": small}))).is_none());
        assert!(usable_rsa_key(key(serde_json::json!({"kid": ""}))).is_none());
        assert!(usable_rsa_key(serde_json::json!({"kty":"RSA","n":n,"e":"AQAB"})).is_none());
    }
}
