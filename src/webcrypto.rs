//! RS256 through WebCrypto (`crypto.subtle`): native code in workerd, measured faster than
//! RSA compiled to wasm, and it keeps RSA out of the bundle. Public keys are imported once per
//! JWKS fetch and kept as `CryptoKey`s; the Okta service app's private key (JWK or PKCS#8) once
//! per isolate, non-extractable.

use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{CryptoKey, SubtleCrypto};

use crate::auth::rs256::{Rs256, RsaJwk};
use crate::okta::assertion::{ClientKey, KeyMaterial, RsaSigner};

#[derive(Clone, Copy)]
pub struct WebCrypto;

fn crypto() -> Result<web_sys::Crypto, String> {
    let crypto = Reflect::get(&js_sys::global(), &"crypto".into()).map_err(|_| "no crypto global".to_string())?;
    Ok(crypto.unchecked_into::<web_sys::Crypto>())
}

fn subtle() -> Result<SubtleCrypto, String> {
    Ok(crypto()?.subtle())
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

impl RsaSigner for WebCrypto {
    type PrivateKey = CryptoKey;

    async fn import_private(&self, key: &ClientKey) -> Result<CryptoKey, String> {
        let usages = Array::of1(&"sign".into());
        let subtle = subtle()?;
        let promise = match &key.material {
            KeyMaterial::Jwk(members) => {
                let jwk = Object::new();
                for (k, v) in members {
                    let v = v.as_str().ok_or("jwk member")?;
                    Reflect::set(&jwk, &k.as_str().into(), &v.into()).map_err(|_| "jwk")?;
                }
                Reflect::set(&jwk, &"alg".into(), &"RS256".into()).map_err(|_| "jwk")?;
                subtle.import_key_with_object("jwk", &jwk, &algorithm()?, false, &usages)
            }
            KeyMaterial::Pkcs8(der) => {
                let data: Object = Uint8Array::from(der.as_slice()).into();
                subtle.import_key_with_object("pkcs8", &data, &algorithm()?, false, &usages)
            }
        }
        .map_err(|_| "importKey refused the private key".to_string())?;
        let key =
            JsFuture::from(promise).await.map_err(|_| "importKey failed (not an RSA private key?)".to_string())?;
        Ok(key.unchecked_into())
    }

    async fn sign(&self, key: &CryptoKey, input: &[u8]) -> Result<Vec<u8>, String> {
        let data: Object = Uint8Array::from(input).into();
        let promise = subtle()?
            .sign_with_object_and_buffer_source(&algorithm()?, key, &data)
            .map_err(|_| "sign refused".to_string())?;
        let sig = JsFuture::from(promise).await.map_err(|_| "sign failed".to_string())?;
        Ok(Uint8Array::new(&sig).to_vec())
    }

    fn unique_id(&self) -> String {
        crypto().map(|c| c.random_uuid()).unwrap_or_else(|_| format!("jti-{}", js_sys::Math::random()))
    }
}
