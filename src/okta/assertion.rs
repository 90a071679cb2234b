//! The `private_key_jwt` client assertion (RFC 7523) that Okta's token endpoint requires of
//! service apps: a short-lived RS256 JWT with `iss` = `sub` = the client id and `aud` = the token
//! URL, signed with the app's private key.
//!
//! The key arrives as a Worker secret, either as the JWK Okta's admin console generates (JSON with
//! `d`, `p`, `q`, …) or as a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`). Signing goes through
//! [`RsaSigner`]: WebCrypto in the Worker (`crate::webcrypto`), jwt-compact's pure-Rust RSA in
//! native builds. Neither the key nor an assertion is ever logged: `ClientKey`'s `Debug` redacts.
#![allow(async_fn_in_trait)]

use std::fmt;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Map, Value};

/// How long an assertion is valid. Okta accepts at most one hour; a minute is plenty for one
/// token request.
pub const ASSERTION_LIFETIME_S: u64 = 60;
/// Longest key text accepted (a 4096-bit JWK is about 3.3 KB).
pub const MAX_KEY_CHARS: usize = 16 * 1024;

/// The private key material, as configured.
#[derive(Clone, PartialEq, Eq)]
pub enum KeyMaterial {
    /// An RSA private JWK (the JSON text, with every CRT member WebCrypto needs).
    Jwk(Map<String, Value>),
    /// DER of a PKCS#8 `PrivateKeyInfo`.
    Pkcs8(Vec<u8>),
}

/// The service app's signing key and its `kid` (Okta matches it against the app's public keys).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientKey {
    pub kid: Option<String>,
    pub material: KeyMaterial,
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.material {
            KeyMaterial::Jwk(_) => "jwk",
            KeyMaterial::Pkcs8(_) => "pkcs8",
        };
        write!(f, "ClientKey {{ kid: {:?}, material: {kind} <redacted> }}", self.kid)
    }
}

const JWK_MEMBERS: [&str; 8] = ["n", "e", "d", "p", "q", "dp", "dq", "qi"];

impl ClientKey {
    /// Parses a JWK (JSON) or a PKCS#8 PEM. `kid` overrides the JWK's own `kid`. Literal `\n`
    /// sequences (a PEM pasted into a one-line secret) are accepted as line breaks.
    pub fn parse(raw: &str, kid: Option<String>) -> Result<ClientKey, String> {
        let raw = raw.trim();
        if raw.len() > MAX_KEY_CHARS {
            return Err(format!("longer than {MAX_KEY_CHARS} characters"));
        }
        if raw.starts_with('{') {
            let jwk: Map<String, Value> =
                serde_json::from_str(raw).map_err(|_| "not a JSON object (JWK)".to_string())?;
            if jwk.get("kty").and_then(Value::as_str) != Some("RSA") {
                return Err("the JWK is not an RSA key (kty must be RSA)".into());
            }
            for m in JWK_MEMBERS {
                let ok = jwk
                    .get(m)
                    .and_then(Value::as_str)
                    .is_some_and(|v| !v.is_empty() && URL_SAFE_NO_PAD.decode(v).is_ok());
                if !ok {
                    return Err(format!(
                        "the JWK lacks a base64url `{m}`: a private RSA JWK with all CRT members is needed"
                    ));
                }
            }
            let kid = kid.or_else(|| jwk.get("kid").and_then(Value::as_str).map(String::from));
            let material = KeyMaterial::Jwk(
                JWK_MEMBERS.iter().chain(&["kty"]).map(|m| (m.to_string(), jwk[*m].clone())).collect(),
            );
            return Ok(ClientKey { kid, material });
        }
        let pem = raw.replace("\\n", "\n");
        if pem.contains("BEGIN RSA PRIVATE KEY") {
            return Err("a PKCS#1 PEM; convert it with `openssl pkcs8 -topk8 -nocrypt` or use the JWK".into());
        }
        let body = pem
            .trim()
            .strip_prefix("-----BEGIN PRIVATE KEY-----")
            .and_then(|s| s.trim_end().strip_suffix("-----END PRIVATE KEY-----"))
            .ok_or_else(|| "neither a JWK nor a PKCS#8 PEM (-----BEGIN PRIVATE KEY-----)".to_string())?;
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der = STANDARD.decode(b64).map_err(|_| "the PEM body is not base64".to_string())?;
        if der.first() != Some(&0x30) {
            return Err("the PEM body is not a DER sequence".into());
        }
        Ok(ClientKey { kid, material: KeyMaterial::Pkcs8(der) })
    }
}

/// RS256 signing with a private key.
pub trait RsaSigner {
    /// An imported key, kept for the isolate's lifetime.
    type PrivateKey: Clone + 'static;
    async fn import_private(&self, key: &ClientKey) -> Result<Self::PrivateKey, String>;
    async fn sign(&self, key: &Self::PrivateKey, input: &[u8]) -> Result<Vec<u8>, String>;
    /// A fresh random identifier (the assertion's `jti`: Okta refuses a reused one).
    fn unique_id(&self) -> String;
}

/// `base64url(header).base64url(claims)` of an assertion issued at `now_s`.
pub fn signing_input(client_id: &str, token_url: &str, kid: Option<&str>, now_s: u64, jti: &str) -> String {
    let mut header = json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = kid.into();
    }
    let claims = json!({
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "iat": now_s,
        "exp": now_s + ASSERTION_LIFETIME_S,
        "jti": jti,
    });
    format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()))
}

/// Signs an assertion for `client_id` at `now_s`.
pub async fn assertion<S: RsaSigner>(
    signer: &S,
    key: &S::PrivateKey,
    kid: Option<&str>,
    client_id: &str,
    token_url: &str,
    now_s: u64,
) -> Result<String, String> {
    let input = signing_input(client_id, token_url, kid, now_s, &signer.unique_id());
    let signature = signer.sign(key, input.as_bytes()).await?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

#[cfg(any(not(target_arch = "wasm32"), feature = "pure-rust-rsa"))]
pub use pure::PureRustSigner;

#[cfg(any(not(target_arch = "wasm32"), feature = "pure-rust-rsa"))]
mod pure {
    use std::rc::Rc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use jwt_compact::alg::{Rsa, RsaPrivateKey};
    use jwt_compact::jwk::JsonWebKey;
    use jwt_compact::{Algorithm, AlgorithmSignature};

    use super::{ClientKey, KeyMaterial, RsaSigner};

    /// jwt-compact's RSA (RustCrypto `rsa`); JWK keys only.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct PureRustSigner;

    static COUNTER: AtomicU64 = AtomicU64::new(0);

    impl RsaSigner for PureRustSigner {
        type PrivateKey = Rc<RsaPrivateKey>;

        async fn import_private(&self, key: &ClientKey) -> Result<Self::PrivateKey, String> {
            let KeyMaterial::Jwk(map) = &key.material else {
                return Err("PKCS#8 keys are imported by WebCrypto only".into());
            };
            let jwk: JsonWebKey<'_> =
                serde_json::from_value(serde_json::Value::Object(map.clone())).map_err(|e| e.to_string())?;
            RsaPrivateKey::try_from(&jwk).map(Rc::new).map_err(|e| e.to_string())
        }

        async fn sign(&self, key: &Self::PrivateKey, input: &[u8]) -> Result<Vec<u8>, String> {
            Ok(Rsa::rs256().sign(key, input).as_bytes().to_vec())
        }

        fn unique_id(&self) -> String {
            format!("jti-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, issuer};
    use jwt_compact::alg::{Rsa, RsaPublicKey};
    use jwt_compact::jwk::JsonWebKey;
    use jwt_compact::{AlgorithmExt, UntrustedToken};

    fn jwk_text() -> String {
        issuer::key_json("a").to_string()
    }

    #[test]
    fn parses_a_private_jwk_and_keeps_only_key_members() {
        let k = ClientKey::parse(&jwk_text(), None).unwrap();
        assert_eq!(k.kid.as_deref(), issuer::key_json("a")["kid"].as_str());
        let KeyMaterial::Jwk(m) = &k.material else { panic!() };
        assert_eq!(m.len(), 9);
        assert!(!format!("{k:?}").contains(m["d"].as_str().unwrap()), "Debug must redact");
        assert_eq!(ClientKey::parse(&jwk_text(), Some("mine".into())).unwrap().kid.as_deref(), Some("mine"));
    }

    #[test]
    fn refuses_public_or_foreign_keys() {
        let public = issuer::public_jwk("a").to_string();
        assert!(ClientKey::parse(&public, None).unwrap_err().contains("`d`"));
        assert!(ClientKey::parse(r#"{"kty":"EC","crv":"P-256"}"#, None).unwrap_err().contains("RSA"));
        assert!(ClientKey::parse("{not json", None).is_err());
        assert!(ClientKey::parse("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----", None)
            .unwrap_err()
            .contains("PKCS#1"));
        assert!(ClientKey::parse("hello", None).is_err());
        assert!(ClientKey::parse(&"x".repeat(MAX_KEY_CHARS + 1), None).is_err());
    }

    #[test]
    fn parses_pkcs8_pem_with_literal_newlines() {
        let pem = "-----BEGIN PRIVATE KEY-----\\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8w\\n-----END PRIVATE KEY-----\\n";
        let k = ClientKey::parse(pem, Some("k1".into())).unwrap();
        let KeyMaterial::Pkcs8(der) = k.material else { panic!() };
        assert_eq!(der[0], 0x30);
        assert!(ClientKey::parse("-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----", None).is_err());
    }

    #[test]
    fn assertion_verifies_with_jwt_compact_and_carries_the_claims_okta_checks() {
        let key = ClientKey::parse(&jwk_text(), None).unwrap();
        let signer = PureRustSigner;
        let imported = block_on(signer.import_private(&key)).unwrap();
        let url = "https://example.okta.com/oauth2/v1/token";
        let t = block_on(assertion(&signer, &imported, key.kid.as_deref(), "0oaSERVICE", url, 1_700_000_000)).unwrap();
        let public: JsonWebKey<'_> = serde_json::from_value(issuer::public_jwk("a")).unwrap();
        let public = RsaPublicKey::try_from(&public).unwrap();
        let untrusted = UntrustedToken::new(&t).unwrap();
        assert_eq!(untrusted.algorithm(), "RS256");
        assert_eq!(untrusted.header().key_id.as_deref(), key.kid.as_deref());
        let token = Rsa::rs256().validator::<Value>(&public).validate(&untrusted).unwrap();
        let c = &token.claims().custom;
        assert_eq!(c["iss"], "0oaSERVICE");
        assert_eq!(c["sub"], "0oaSERVICE");
        assert_eq!(c["aud"], url);
        let exp = token.claims().expiration.unwrap().timestamp() as u64;
        let iat = token.claims().issued_at.unwrap().timestamp() as u64;
        assert_eq!((iat, exp), (1_700_000_000, 1_700_000_000 + ASSERTION_LIFETIME_S));
        let t2 = block_on(assertion(&signer, &imported, None, "0oaSERVICE", url, 1_700_000_000)).unwrap();
        let c2 = Rsa::rs256().validator::<Value>(&public).validate(&UntrustedToken::new(&t2).unwrap()).unwrap();
        assert_ne!(c2.claims().custom["jti"], c["jti"], "every assertion has a fresh jti");
        assert_eq!(UntrustedToken::new(&t2).unwrap().header().key_id, None);
    }
}
