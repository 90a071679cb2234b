//! What only runs in wasm: RS256 through WebCrypto (verifying hook tokens, signing the Okta service
//! app's client assertions), checked against the same tokens and keys the native pure-Rust path uses. Run: `cargo test --target wasm32-unknown-unknown --no-default-features`.
#![cfg(target_arch = "wasm32")]

use okta_edge_hooks::auth::rs256::{Rs256, RsaJwk};
use okta_edge_hooks::webcrypto::WebCrypto;
use wasm_bindgen_test::wasm_bindgen_test;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

const KEY_A: &str = include_str!("fixtures/keys/rsa-a.json");
const KEY_B: &str = include_str!("fixtures/keys/rsa-b.json");
/// An RS256 token signed with key A (made by tests/fixtures/keys/sign.py).
const TOKEN_A: &str = include_str!("fixtures/keys/token-a.txt");

fn jwk(text: &str) -> RsaJwk {
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    let s = |k: &str| v[k].as_str().unwrap().to_string();
    RsaJwk {
        kid: s("kid"),
        n: URL_SAFE_NO_PAD.decode(s("n")).unwrap(),
        e: URL_SAFE_NO_PAD.decode(s("e")).unwrap(),
        n_b64: s("n"),
        e_b64: s("e"),
    }
}

fn split(token: &str) -> (Vec<u8>, Vec<u8>) {
    let (input, sig) = token.trim().rsplit_once('.').unwrap();
    (input.as_bytes().to_vec(), URL_SAFE_NO_PAD.decode(sig).unwrap())
}

#[wasm_bindgen_test]
async fn webcrypto_verifies_a_good_rs256_signature() {
    let key = WebCrypto.import(&jwk(KEY_A)).await.unwrap();
    let (input, sig) = split(TOKEN_A);
    assert!(WebCrypto.verify(&key, &input, &sig).await);
}

#[wasm_bindgen_test]
async fn webcrypto_rejects_other_key_tampering_and_truncation() {
    let key_b = WebCrypto.import(&jwk(KEY_B)).await.unwrap();
    let (input, sig) = split(TOKEN_A);
    assert!(!WebCrypto.verify(&key_b, &input, &sig).await);
    let key_a = WebCrypto.import(&jwk(KEY_A)).await.unwrap();
    let mut tampered = input.clone();
    tampered[10] ^= 1;
    assert!(!WebCrypto.verify(&key_a, &tampered, &sig).await);
    assert!(!WebCrypto.verify(&key_a, &input, &sig[..200]).await);
    assert!(!WebCrypto.verify(&key_a, &input, &[]).await);
}

/// The same key A as a PKCS#8 PEM (the form Okta's console also offers).
const KEY_A_PEM: &str = include_str!("fixtures/keys/rsa-a.pkcs8.pem");

mod signing {
    use okta_edge_hooks::okta::assertion::{assertion, ClientKey, RsaSigner};

    use super::*;

    #[wasm_bindgen_test]
    async fn private_key_jwt_assertions_signed_by_webcrypto_verify_with_the_public_key() {
        let public = WebCrypto.import(&jwk(KEY_A)).await.unwrap();
        let url = "https://example.okta.com/oauth2/v1/token";
        let mut signatures = Vec::new();
        for raw in [KEY_A, KEY_A_PEM] {
            let key = ClientKey::parse(raw, Some("a".into())).unwrap();
            let private = WebCrypto.import_private(&key).await.unwrap();
            let signed = WebCrypto.sign(&private, b"signing input").await.unwrap();
            assert!(WebCrypto.verify(&public, b"signing input", &signed).await);
            signatures.push(signed);
            let jwt = assertion(&WebCrypto, &private, Some("a"), "0oaSERVICE", url, 1_700_000_000).await.unwrap();
            let (input, sig) = split(&jwt);
            assert!(WebCrypto.verify(&public, &input, &sig).await, "the assertion verifies");
        }
        assert_eq!(
            signatures[0], signatures[1],
            "JWK and PKCS#8 imports are the same key (PKCS#1 v1.5 is deterministic)"
        );
        assert_ne!(WebCrypto.unique_id(), WebCrypto.unique_id());
    }

    #[wasm_bindgen_test]
    async fn a_pkcs8_body_that_is_not_a_key_is_refused_at_import() {
        let garbage = ClientKey::parse("-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----", None).unwrap();
        assert!(WebCrypto.import_private(&garbage).await.is_err());
    }
}
