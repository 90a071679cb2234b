//! The RS256 signature check, behind a trait. The Worker uses WebCrypto (`crypto.subtle`,
//! native code in workerd: faster than RSA compiled to wasm, and no RSA code in the bundle);
//! native builds and tests use jwt-compact's pure-Rust RSA. Both receive the same inputs: a key
//! from the JWKS and the token's signing input and signature bytes.
#![allow(async_fn_in_trait)]

/// An RSA public key as the JWKS publishes it (big-endian bytes, already base64url-decoded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsaJwk {
    pub kid: String,
    /// Base64url modulus and exponent, as published (WebCrypto imports these directly).
    pub n_b64: String,
    pub e_b64: String,
    pub n: Vec<u8>,
    pub e: Vec<u8>,
}

pub trait Rs256 {
    /// An imported key, ready for repeated checks.
    type Key: Clone + 'static;
    async fn import(&self, jwk: &RsaJwk) -> Result<Self::Key, String>;
    async fn verify(&self, key: &Self::Key, signing_input: &[u8], signature: &[u8]) -> bool;
}

#[cfg(any(not(target_arch = "wasm32"), feature = "pure-rust-rsa"))]
pub use pure::PureRust;

#[cfg(any(not(target_arch = "wasm32"), feature = "pure-rust-rsa"))]
mod pure {
    use std::borrow::Cow;
    use std::rc::Rc;

    use jwt_compact::alg::{Rsa, RsaPublicKey, RsaSignature};
    use jwt_compact::jwk::JsonWebKey;
    use jwt_compact::{Algorithm, AlgorithmSignature};

    use super::{Rs256, RsaJwk};

    /// jwt-compact's RSA (RustCrypto `rsa`), PKCS#1 v1.5 with SHA-256.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct PureRust;

    impl Rs256 for PureRust {
        type Key = Rc<RsaPublicKey>;

        async fn import(&self, jwk: &RsaJwk) -> Result<Self::Key, String> {
            let jwk = JsonWebKey::Rsa {
                modulus: Cow::Borrowed(&jwk.n),
                public_exponent: Cow::Borrowed(&jwk.e),
                private_parts: None,
            };
            RsaPublicKey::try_from(&jwk).map(Rc::new).map_err(|e| e.to_string())
        }

        async fn verify(&self, key: &Self::Key, signing_input: &[u8], signature: &[u8]) -> bool {
            match RsaSignature::try_from_slice(signature) {
                Ok(sig) => Rsa::rs256().verify_signature(&sig, key, signing_input),
                Err(_) => false,
            }
        }
    }
}
