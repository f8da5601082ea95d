//! The secret-handling primitives behind accounts: argon2id password hashes, sealed TOTP
//! seeds (XChaCha20-Poly1305, bound to the account name), random tokens and their hashes.

use crate::AccountError;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A valid argon2id hash of a random password, checked against when the account does not
/// exist so that a failed login takes the same time either way.
pub(crate) const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$T3ZVw9kA3J3V9nE0J3m8L3xK5m9v0rj2g1x9n8Q5b2U";

/// Hashes a password with argon2id (RFC 9106 parameters as the crate defaults them).
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| AccountError::Internal(e.to_string()))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

pub(crate) struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl Sealer {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        Self { cipher: XChaCha20Poly1305::new(key.into()) }
    }

    /// nonce (24 bytes) ‖ ciphertext with tag; `context` is authenticated, not stored.
    pub(crate) fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut out = nonce.to_vec();
        out.extend(self.cipher.encrypt(&nonce, Payload { msg: plaintext, aad: context }).expect("encryption of a short secret cannot fail"));
        out
    }

    pub(crate) fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, ()> {
        if sealed.len() < 24 {
            return Err(());
        }
        let (nonce, ct) = sealed.split_at(24);
        self.cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: context }).map_err(|_| ())
    }
}

pub(crate) fn new_totp_secret() -> Vec<u8> {
    let mut s = vec![0u8; 20];
    OsRng.fill_bytes(&mut s);
    s
}

pub(crate) fn totp(secret: &[u8], account: &str, issuer: &str) -> Result<totp_rs::TOTP, AccountError> {
    totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, secret.to_vec(), Some(issuer.to_string()), account.to_string())
        .map_err(|e| AccountError::Internal(format!("TOTP setup: {e:?}")))
}

/// 32 random bytes, URL-safe base64.
pub(crate) fn random_token() -> String {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

pub(crate) fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_irreversibly_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(!h.contains("correct"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterx", &h));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn sealed_secrets_open_only_with_key_and_context() {
        let s = Sealer::new(&[9u8; 32]);
        let sealed = s.seal(b"seed", b"alice");
        assert_eq!(s.open(&sealed, b"alice").unwrap(), b"seed");
        assert!(s.open(&sealed, b"bob").is_err());
        assert!(Sealer::new(&[8u8; 32]).open(&sealed, b"alice").is_err());
        assert!(!sealed.windows(4).any(|w| w == b"seed"));
    }
}
