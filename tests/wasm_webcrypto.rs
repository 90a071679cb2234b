//! What only runs in wasm: RS256 through WebCrypto, checked against the same tokens and keys the
//! native pure-Rust path verifies. Run: `cargo test --target wasm32-unknown-unknown --no-default-features`.
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
