//! RS256 through WebCrypto (`crypto.subtle`): native code in workerd, measured faster than
//! RSA compiled to wasm, and it keeps RSA out of the bundle. Keys are imported once per JWKS
//! fetch and kept as `CryptoKey`s.

use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{CryptoKey, SubtleCrypto};

use crate::auth::rs256::{Rs256, RsaJwk};

#[derive(Clone, Copy)]
pub struct WebCrypto;

fn subtle() -> Result<SubtleCrypto, String> {
    let crypto = Reflect::get(&js_sys::global(), &"crypto".into()).map_err(|_| "no crypto global".to_string())?;
    Ok(crypto.unchecked_into::<web_sys::Crypto>().subtle())
}

fn algorithm() -> Result<Object, String> {
    let alg = Object::new();
    Reflect::set(&alg, &"name".into(), &"RSASSA-PKCS1-v1_5".into()).map_err(|_| "algorithm")?;
    Reflect::set(&alg, &"hash".into(), &"SHA-256".into()).map_err(|_| "algorithm")?;
    Ok(alg)
}

impl Rs256 for WebCrypto {
    type Key = CryptoKey;

    async fn import(&self, jwk: &RsaJwk) -> Result<CryptoKey, String> {
        let key = Object::new();
        for (k, v) in [("kty", "RSA"), ("n", jwk.n_b64.as_str()), ("e", jwk.e_b64.as_str()), ("alg", "RS256")] {
            Reflect::set(&key, &k.into(), &v.into()).map_err(|_| "jwk")?;
        }
        Reflect::set(&key, &"ext".into(), &JsValue::TRUE).map_err(|_| "jwk")?;
        let usages = Array::of1(&"verify".into());
        let promise = subtle()?
            .import_key_with_object("jwk", &key, &algorithm()?, false, &usages)
            .map_err(|_| "importKey refused the key".to_string())?;
        let key = JsFuture::from(promise).await.map_err(|_| "importKey failed".to_string())?;
        Ok(key.unchecked_into())
    }

    async fn verify(&self, key: &CryptoKey, signing_input: &[u8], signature: &[u8]) -> bool {
        let (Ok(subtle), Ok(alg)) = (subtle(), algorithm()) else { return false };
        let sig = Uint8Array::from(signature);
        let data = Uint8Array::from(signing_input);
        let Ok(promise) = subtle.verify_with_object_and_buffer_source_and_buffer_source(&alg, key, &sig, &data) else {
            return false;
        };
        matches!(JsFuture::from(promise).await, Ok(v) if v.as_bool() == Some(true))
    }
}
