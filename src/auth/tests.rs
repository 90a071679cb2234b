//! The JWT attack suite: one test per way a token can be wrong, each through the full verifier
//! (JWKS fetch, pure-Rust RS256, claims).

use std::rc::Rc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_compact::alg::{Hs256, Hs256Key, Rsa};
use jwt_compact::{AlgorithmExt, Claims, Header};
use serde_json::{json, Value};

use super::jwks::JwksCache;
use super::jwt::{TokenCache, Verifier};
use super::rs256::PureRust;
use super::AuthError;
use crate::testing::issuer::{self, claims, mint, raw, rs256_sign};
use crate::testing::{block_on, FakeClock, ScriptedHttp};

const NOW_MS: u64 = 1_800_000_000_000;
const NOW_S: i64 = 1_800_000_000;

struct Env {
    http: Rc<ScriptedHttp>,
    jwks: JwksCache<<PureRust as super::rs256::Rs256>::Key>,
    tokens: TokenCache,
    served: issuer::Jwks,
    cfg: crate::telephony::config::OAuthConfig,
}

fn env() -> Env {
    let http = Rc::new(ScriptedHttp::default());
    let served = issuer::serve(&http, |_| None);
    Env {
        http,
        jwks: JwksCache::new(issuer::JWKS_URL, 60, 1800),
        tokens: TokenCache::default(),
        served,
        cfg: issuer::oauth_config(),
    }
}

impl Env {
    fn check_at(&self, token: &str, now_ms: u64) -> Result<super::jwt::Verified, AuthError> {
        let clock = FakeClock::at(now_ms);
        let v = Verifier {
            config: &self.cfg,
            jwks: &self.jwks,
            tokens: &self.tokens,
            http: &self.http,
            rs256: &PureRust,
            clock: &clock,
        };
        block_on(v.verify(token, now_ms, 1000))
    }
    fn check(&self, token: &str) -> Result<super::jwt::Verified, AuthError> {
        self.check_at(token, NOW_MS)
    }
    fn fetches(&self) -> u32 {
        *self.served.fetches.borrow()
    }
}

fn with(f: impl FnOnce(&mut Value)) -> Value {
    let mut c = claims(NOW_S);
    f(&mut c);
    c
}

fn header_a(extra: Value) -> Value {
    let mut h = json!({"alg":"RS256","kid":"test-key-a"});
    h.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    h
}

#[test]
fn valid_token_is_accepted_and_cached() {
    let e = env();
    let t = mint("a", &claims(NOW_S));
    let v = e.check(&t).unwrap();
    assert_eq!((v.client_id.as_str(), v.cached), (issuer::CLIENT, false));
    assert!(e.check(&t).unwrap().cached, "second use comes from the verified-token cache");
    assert_eq!(e.fetches(), 1);
}

#[test]
fn audience_and_scope_may_be_arrays_or_strings() {
    let e = env();
    assert!(e.check(&mint("a", &with(|c| c["aud"] = json!(["other", issuer::AUDIENCE])))).is_ok());
    assert!(e.check(&mint("a", &with(|c| c["scp"] = json!("openid okta.telephony.send")))).is_ok());
}

#[test]
fn rejects_expired() {
    let e = env();
    assert_eq!(e.check(&mint("a", &with(|c| c["exp"] = json!(NOW_S - 61)))), Err(AuthError::Expired));
    // Within the 60 s leeway.
    assert!(e.check(&mint("a", &with(|c| c["exp"] = json!(NOW_S - 30)))).is_ok());
    assert_eq!(
        e.check(&mint(
            "a",
            &with(|c| {
                c.as_object_mut().unwrap().remove("exp");
            })
        )),
        Err(AuthError::Expired)
    );
}

#[test]
fn cached_token_still_expires() {
    let e = env();
    let t = mint("a", &with(|c| c["exp"] = json!(NOW_S + 10)));
    assert!(e.check(&t).is_ok());
    assert!(e.check_at(&t, NOW_MS + 60_000).unwrap().cached);
    assert!(e.check_at(&t, NOW_MS + 80_000).is_err());
}

#[test]
fn rejects_nbf_in_the_future() {
    let e = env();
    assert_eq!(e.check(&mint("a", &with(|c| c["nbf"] = json!(NOW_S + 600)))), Err(AuthError::NotYetValid));
    assert!(e.check(&mint("a", &with(|c| c["nbf"] = json!(NOW_S - 5)))).is_ok());
}

#[test]
fn rejects_iat_in_the_future() {
    let e = env();
    assert_eq!(e.check(&mint("a", &with(|c| c["iat"] = json!(NOW_S + 600)))), Err(AuthError::IssuedInFuture));
}

#[test]
fn rejects_wrong_issuer() {
    let e = env();
    assert_eq!(
        e.check(&mint("a", &with(|c| c["iss"] = json!(format!("{}/", issuer::ISSUER))))),
        Err(AuthError::WrongIssuer)
    );
    assert_eq!(
        e.check(&mint("a", &with(|c| c["iss"] = json!("https://example.okta.com")))),
        Err(AuthError::WrongIssuer)
    );
}

#[test]
fn rejects_wrong_audience() {
    let e = env();
    assert_eq!(e.check(&mint("a", &with(|c| c["aud"] = json!("api://default")))), Err(AuthError::WrongAudience));
    assert_eq!(e.check(&mint("a", &with(|c| c["aud"] = json!([])))), Err(AuthError::WrongAudience));
}

#[test]
fn rejects_client_not_allowed() {
    let e = env();
    assert_eq!(e.check(&mint("a", &with(|c| c["cid"] = json!("0oaOTHER")))), Err(AuthError::ClientNotAllowed));
}

#[test]
fn rejects_missing_scope() {
    let e = env();
    assert_eq!(e.check(&mint("a", &with(|c| c["scp"] = json!(["openid"])))), Err(AuthError::MissingScope));
    assert_eq!(e.check(&mint("a", &with(|c| c["scp"] = json!("okta.telephony")))), Err(AuthError::MissingScope));
}

#[test]
fn rejects_alg_none() {
    let e = env();
    let t = raw(&json!({"alg":"none","kid":"test-key-a"}), &claims(NOW_S), |_| vec![]);
    assert_eq!(e.check(&t), Err(AuthError::AlgorithmNotAllowed));
    let t = raw(&json!({"alg":"RS256","kid":"test-key-a"}), &claims(NOW_S), |_| vec![]);
    assert!(matches!(e.check(&t), Err(AuthError::MalformedToken(_))));
}

#[test]
fn rejects_hs256_signed_with_the_public_key() {
    let e = env();
    let public = issuer::public_jwk("a").to_string();
    let key = Hs256Key::new(public.as_bytes());
    let t = Hs256.token(&Header::empty().with_key_id("test-key-a"), &Claims::new(claims(NOW_S)), &key).unwrap();
    assert_eq!(e.check(&t), Err(AuthError::AlgorithmNotAllowed));
    assert_eq!(e.fetches(), 0, "refused before any key lookup");
}

#[test]
fn rejects_rs384_and_ps256_when_rs256_is_pinned() {
    let e = env();
    for alg in [Rsa::rs384(), Rsa::ps256()] {
        assert_eq!(e.check(&issuer::mint_with(alg, "a", &claims(NOW_S))), Err(AuthError::AlgorithmNotAllowed));
    }
}

#[test]
fn rejects_missing_kid() {
    let e = env();
    let t = raw(&json!({"alg":"RS256"}), &claims(NOW_S), rs256_sign("a"));
    assert_eq!(e.check(&t), Err(AuthError::MissingKeyId));
}

#[test]
fn unknown_kid_then_rotated_key_is_accepted_after_one_refetch() {
    let e = env();
    assert!(e.check(&mint("a", &claims(NOW_S))).is_ok());
    assert_eq!(e.fetches(), 1);
    // Key B is not published yet: one refetch, then refused.
    assert_eq!(e.check_at(&mint("b", &claims(NOW_S)), NOW_MS + 61_000), Err(AuthError::UnknownKeyId));
    assert_eq!(e.fetches(), 2);
    // Okta rotates: B is published. After the cooldown one refetch finds it.
    e.served.published.borrow_mut().push("b");
    assert!(e.check_at(&mint("b", &claims(NOW_S)), NOW_MS + 122_000).is_ok());
    assert_eq!(e.fetches(), 3);
}

#[test]
fn key_rotated_right_after_the_first_fetch_is_found() {
    let e = env();
    assert!(e.check(&mint("a", &claims(NOW_S))).is_ok());
    e.served.published.borrow_mut().push("b");
    assert!(e.check_at(&mint("b", &claims(NOW_S)), NOW_MS + 1_000).is_ok());
    assert_eq!(e.fetches(), 2);
}

#[test]
fn flood_of_unknown_kids_costs_one_refetch_per_cooldown() {
    let e = env();
    assert!(e.check(&mint("a", &claims(NOW_S))).is_ok());
    for i in 0..50u64 {
        let t = raw(&json!({"alg":"RS256","kid":format!("made-up-{i}")}), &claims(NOW_S), rs256_sign("a"));
        assert_eq!(e.check_at(&t, NOW_MS + 61_000 + i * 100), Err(AuthError::UnknownKeyId));
    }
    assert_eq!(e.fetches(), 2, "initial fetch plus one refetch for the whole flood");
    let t = raw(&json!({"alg":"RS256","kid":"made-up-late"}), &claims(NOW_S), rs256_sign("a"));
    assert_eq!(e.check_at(&t, NOW_MS + 125_000), Err(AuthError::UnknownKeyId));
    assert_eq!(e.fetches(), 3, "the next cooldown allows one more");
}

#[test]
fn rejects_tampered_claims() {
    let e = env();
    let t = mint("a", &claims(NOW_S));
    let parts: Vec<&str> = t.split('.').collect();
    let forged =
        URL_SAFE_NO_PAD.encode(with(|c| c["cid"] = json!(issuer::CLIENT)).to_string().replace("AT.test", "AT.evil"));
    assert_eq!(e.check(&format!("{}.{}.{}", parts[0], forged, parts[2])), Err(AuthError::InvalidSignature));
}

#[test]
fn rejects_truncated_signature() {
    let e = env();
    let t = mint("a", &claims(NOW_S));
    let (input, sig) = t.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
    bytes.truncate(200);
    assert_eq!(e.check(&format!("{input}.{}", URL_SAFE_NO_PAD.encode(&bytes))), Err(AuthError::InvalidSignature));
    let r = e.check(&t[..t.len() - 7]);
    assert!(matches!(r, Err(AuthError::InvalidSignature) | Err(AuthError::MalformedToken(_))), "{r:?}");
}

#[test]
fn ignores_jku_x5u_and_embedded_jwk() {
    let e = env();
    // Signed with key B (the attacker's), pointing at it three ways, with key A's kid.
    let attacker = issuer::public_jwk("b");
    let h = header_a(json!({"jku":"https://evil.example/keys","x5u":"https://evil.example/cert","jwk":attacker}));
    let t = raw(&h, &claims(NOW_S), rs256_sign("b"));
    assert_eq!(e.check(&t), Err(AuthError::InvalidSignature));
    assert!(
        e.http.requests.borrow().iter().all(|(r, _)| r.url == issuer::JWKS_URL),
        "nothing fetched from the token's URLs"
    );
    // Same, with the attacker's own kid: unknown at the configured JWKS.
    let h = json!({"alg":"RS256","kid":"test-key-b","jku":"https://evil.example/keys","jwk":attacker});
    assert_eq!(e.check_at(&raw(&h, &claims(NOW_S), rs256_sign("b")), NOW_MS + 61_000), Err(AuthError::UnknownKeyId));
}

#[test]
fn rejects_crit_header() {
    let e = env();
    let t = raw(&header_a(json!({"crit":["exp"]})), &claims(NOW_S), rs256_sign("a"));
    assert!(matches!(e.check(&t), Err(AuthError::MalformedToken(_))));
}

#[test]
fn rejects_oversized_token() {
    let e = env();
    let t = mint("a", &with(|c| c["pad"] = json!("x".repeat(20_000))));
    assert_eq!(e.check(&t), Err(AuthError::TokenTooLarge));
    assert_eq!(e.fetches(), 0);
}

#[test]
fn rejects_two_segments_and_extra_segments() {
    let e = env();
    let t = mint("a", &claims(NOW_S));
    let (two, _) = t.rsplit_once('.').unwrap();
    assert!(matches!(e.check(two), Err(AuthError::MalformedToken(_))));
    assert!(matches!(e.check(&format!("{t}.x")), Err(AuthError::MalformedToken(_))));
}

#[test]
fn rejects_bad_base64() {
    let e = env();
    let t = mint("a", &claims(NOW_S));
    let parts: Vec<&str> = t.split('.').collect();
    for bad in [format!("{}!.{}.{}", parts[0], parts[1], parts[2]), format!("{}.{}.{}*", parts[0], parts[1], parts[2])]
    {
        assert!(matches!(e.check(&bad), Err(AuthError::MalformedToken(_)) | Err(AuthError::InvalidSignature)), "{bad}");
    }
    assert!(matches!(e.check("a.b.c"), Err(AuthError::MalformedToken(_))));
}

#[test]
fn jwks_outage_is_reported_not_hidden() {
    let http = Rc::new(ScriptedHttp::default());
    http.answer_with(|_| Ok(crate::testing::json_response(503, "{}")));
    let e = Env {
        http,
        jwks: JwksCache::new(issuer::JWKS_URL, 60, 1800),
        tokens: TokenCache::default(),
        served: issuer::Jwks { published: Default::default(), fetches: Default::default() },
        cfg: issuer::oauth_config(),
    };
    assert!(matches!(e.check(&mint("a", &claims(NOW_S))), Err(AuthError::KeysUnavailable(_))));
    // Retried after a short pause, not on every request.
    let _ = e.check_at(&mint("a", &claims(NOW_S)), NOW_MS + 1_000);
    assert_eq!(e.http.count(), 1);
    let _ = e.check_at(&mint("a", &claims(NOW_S)), NOW_MS + 6_000);
    assert_eq!(e.http.count(), 2);
}

#[test]
fn concurrent_first_requests_share_keys_not_futures() {
    // Two requests of one isolate at a cold start: the second waits on its own timer while the
    // first fetches, then uses the keys the first stored. Nobody awaits the other's fetch.
    let e = env();
    let http = crate::testing::Yielding(e.http.clone());
    let clock = FakeClock::at(NOW_MS);
    let verifier =
        Verifier { config: &e.cfg, jwks: &e.jwks, tokens: &e.tokens, http: &http, rs256: &PureRust, clock: &clock };
    let (t1, t2) = (mint("a", &claims(NOW_S)), mint("a", &with(|c| c["jti"] = json!("AT.other"))));
    let (r1, r2) =
        block_on(futures_util::future::join(verifier.verify(&t1, NOW_MS, 1000), verifier.verify(&t2, NOW_MS, 1000)));
    assert!(r1.is_ok() && r2.is_ok(), "{r1:?} {r2:?}");
    assert_eq!(e.fetches(), 1, "the waiting request found the first request's keys");
}

#[test]
fn a_request_dropped_mid_fetch_does_not_hold_up_the_next() {
    use futures_util::FutureExt;
    let e = env();
    let http = crate::testing::Yielding(e.http.clone());
    let clock = FakeClock::at(NOW_MS);
    let verifier =
        Verifier { config: &e.cfg, jwks: &e.jwks, tokens: &e.tokens, http: &http, rs256: &PureRust, clock: &clock };
    let t = mint("a", &claims(NOW_S));
    // Polled once (the fetch is under way), then cancelled, as workerd does when a client goes away.
    assert!(verifier.verify(&t, NOW_MS, 1000).now_or_never().is_none());
    assert!(block_on(verifier.verify(&t, NOW_MS, 1000)).is_ok());
    assert_eq!(e.jwks.fetches(), 2, "the next request fetched for itself at once");
}

#[test]
fn stale_keys_are_served_only_for_the_capped_time() {
    let e = env();
    assert!(e.check(&mint("a", &claims(NOW_S))).is_ok());
    // The JWKS (max-age 3600) goes down.
    e.http.answer_with(|_| Ok(crate::testing::json_response(503, "{}")));
    let later = |s: u64| NOW_MS + s * 1000;
    let fresh_token = |at_ms: u64| mint("a", &claims((at_ms / 1000) as i64));
    // Past the lifetime, within the 1800 s cap: still verified with the held key.
    assert!(e.check_at(&fresh_token(later(3_700)), later(3_700)).is_ok());
    // Past the cap: refused, as unavailable (503), however valid the token.
    let r = e.check_at(&fresh_token(later(3_600 + 1_801)), later(3_600 + 1_801));
    assert!(matches!(r, Err(AuthError::KeysUnavailable(_))), "{r:?}");
}
