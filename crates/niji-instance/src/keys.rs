//! The master key and the data keys it wraps.
//!
//! - The **master key** (32 bytes, hex) comes from the environment variable `NIJI_MASTER_KEY`
//!   or, when that is unset, from `keys/master.key` in the instance folder. In production keep
//!   it off the instance's disk (environment, a secrets manager, a separate mount): then a
//!   stolen copy of the instance folder holds only wrapped keys.
//! - **Data keys** (32 random bytes each, one per dataset version and purpose) are stored in the
//!   metadata store wrapped by the master key with XChaCha20-Poly1305; the key's id is bound as
//!   associated data, so a wrapped key cannot be swapped for another's. Each row names the
//!   fingerprint of the master key that wrapped it, so a wrong master key is reported as such.
//! - **Rotation** re-wraps every data key under a new master key in one transaction; the data
//!   keys themselves (and so everything encrypted with them) stay as they are.
//!
//! Invariants: no key is written anywhere in the clear except `keys/master.key` when the
//! operator chose the file; `Debug` never prints key bytes.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;
use std::fmt;
use std::path::Path;

/// Environment variable holding the master key (64 hex characters).
pub const MASTER_KEY_ENV: &str = "NIJI_MASTER_KEY";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no master key: set {MASTER_KEY_ENV} or create {0}")]
    NoMasterKey(String),
    #[error("the master key in {source_name} is not 64 hex characters")]
    BadMasterKey { source_name: String },
    #[error("data key {id} was wrapped by master key {wrapped_by}, but the master key given is {given}")]
    WrongMasterKey { id: String, wrapped_by: String, given: String },
    #[error("data key {0} does not unwrap: the stored bytes were changed or belong to another key")]
    Tampered(String),
}

/// Where the master key came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MasterKeySource {
    Environment,
    File,
}

/// The instance's master key.
#[derive(Clone)]
pub struct MasterKey {
    bytes: [u8; 32],
    pub source: MasterKeySource,
}

/// A data key, unwrapped.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey(pub [u8; 32]);

impl MasterKey {
    /// A fresh random master key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Self { bytes, source: MasterKeySource::File }
    }

    /// From 64 hex characters.
    pub fn from_hex(text: &str, source: MasterKeySource) -> Option<Self> {
        let bytes: [u8; 32] = hex::decode(text.trim()).ok()?.try_into().ok()?;
        Some(Self { bytes, source })
    }

    /// `NIJI_MASTER_KEY` if set, else the file.
    pub fn load(file: &Path) -> Result<Self, KeyError> {
        if let Ok(text) = std::env::var(MASTER_KEY_ENV) {
            return Self::from_hex(&text, MasterKeySource::Environment).ok_or(KeyError::BadMasterKey { source_name: MASTER_KEY_ENV.into() });
        }
        let text = std::fs::read_to_string(file).map_err(|_| KeyError::NoMasterKey(file.display().to_string()))?;
        Self::from_hex(&text, MasterKeySource::File).ok_or_else(|| KeyError::BadMasterKey { source_name: file.display().to_string() })
    }

    /// The same key, recorded as coming from `source`.
    pub fn with_source(self, source: MasterKeySource) -> Self {
        Self { source, ..self }
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.bytes)
    }

    /// A short public name of this key: HMAC-SHA256(key, "niji/master-key-fingerprint"),
    /// first 8 bytes in hex. Reveals nothing about the key.
    pub fn fingerprint(&self) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.bytes).expect("HMAC takes any key length");
        mac.update(b"niji/master-key-fingerprint");
        hex::encode(&mac.finalize().into_bytes()[..8])
    }

    /// nonce (24 bytes) ‖ ciphertext ‖ tag, with the key id as associated data.
    pub fn wrap(&self, id: &str, key: &DataKey) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new((&self.bytes).into());
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut out = nonce.to_vec();
        out.extend(cipher.encrypt(&nonce, Payload { msg: &key.0, aad: aad(id).as_bytes() }).expect("wrapping 32 bytes cannot fail"));
        out
    }

    pub fn unwrap(&self, id: &str, wrapped: &[u8]) -> Result<DataKey, KeyError> {
        if wrapped.len() != 24 + 32 + 16 {
            return Err(KeyError::Tampered(id.into()));
        }
        let cipher = XChaCha20Poly1305::new((&self.bytes).into());
        let (nonce, ct) = wrapped.split_at(24);
        let plain =
            cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: aad(id).as_bytes() }).map_err(|_| KeyError::Tampered(id.into()))?;
        Ok(DataKey(plain.try_into().map_err(|_| KeyError::Tampered(id.into()))?))
    }
}

impl DataKey {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }
}

fn aad(id: &str) -> String {
    format!("niji/data-key/v1/{id}")
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({}, {:?})", self.fingerprint(), self.source)
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_keys_open_only_under_their_master_key_and_id() {
        let master = MasterKey::generate();
        let other = MasterKey::generate();
        let key = DataKey::generate();
        let wrapped = master.wrap("dataset:ehr/v1", &key);
        assert_eq!(master.unwrap("dataset:ehr/v1", &wrapped).unwrap(), key);
        assert!(matches!(master.unwrap("dataset:claims/v1", &wrapped), Err(KeyError::Tampered(_))));
        assert!(matches!(other.unwrap("dataset:ehr/v1", &wrapped), Err(KeyError::Tampered(_))));
        let mut flipped = wrapped.clone();
        flipped[30] ^= 1;
        assert!(matches!(master.unwrap("dataset:ehr/v1", &flipped), Err(KeyError::Tampered(_))));
        assert!(!wrapped.windows(32).any(|w| w == key.0), "key bytes in the clear");
        assert_ne!(master.fingerprint(), other.fingerprint());
        assert!(!format!("{master:?} {key:?}").contains(&master.to_hex()[..16]));
    }

    #[test]
    fn master_keys_parse_only_as_64_hex_characters() {
        let k = MasterKey::generate();
        assert_eq!(MasterKey::from_hex(&format!(" {}\n", k.to_hex()), MasterKeySource::File).unwrap().fingerprint(), k.fingerprint());
        for bad in ["", "abc", &k.to_hex()[..62], &format!("{}zz", &k.to_hex()[..62])] {
            assert!(MasterKey::from_hex(bad, MasterKeySource::File).is_none(), "{bad:?}");
        }
    }
}
