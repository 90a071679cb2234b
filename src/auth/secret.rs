//! Header-secret authentication: the configured header must carry exactly the configured
//! secret. Compared as SHA-256 digests in constant time, so neither content nor length leaks
//! through timing.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AuthError;

pub fn check(presented: Option<&str>, secret: &str) -> Result<(), AuthError> {
    let presented = presented.ok_or(AuthError::MissingCredentials)?;
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(secret.as_bytes());
    if bool::from(a.ct_eq(&b)) {
        Ok(())
    } else {
        Err(AuthError::InvalidSecret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_exact_secret_only() {
        assert_eq!(check(Some("s3cret-value-1234"), "s3cret-value-1234"), Ok(()));
        assert_eq!(check(Some("s3cret-value-123"), "s3cret-value-1234"), Err(AuthError::InvalidSecret));
        assert_eq!(check(Some("S3cret-value-1234"), "s3cret-value-1234"), Err(AuthError::InvalidSecret));
        assert_eq!(check(Some(""), "s3cret-value-1234"), Err(AuthError::InvalidSecret));
        assert_eq!(check(None, "s3cret-value-1234"), Err(AuthError::MissingCredentials));
    }
}
