//! Signed tree heads. The signed message is RFC 6962 §3.5's `TreeHeadSignature` (version
//! v1 = 0, signature type tree_hash = 1, timestamp in milliseconds, tree size, root hash),
//! signed with Ed25519, so that anyone holding the public key can check a head with a few
//! lines of independent code.

use crate::merkle::Hash;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

/// A tree head signed by the log's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTreeHead {
    pub tree_size: u64,
    /// Milliseconds since the Unix epoch, UTC.
    pub timestamp_ms: u64,
    pub root_hash: Hash,
    pub signature: [u8; 64],
}

/// Size of a head as stored in the heads file.
pub(crate) const ENCODED_LEN: usize = 8 + 8 + 32 + 64;

impl SignedTreeHead {
    pub fn sign(key: &SigningKey, tree_size: u64, timestamp_ms: u64, root_hash: Hash) -> Self {
        let signature = key.sign(&signed_message(tree_size, timestamp_ms, &root_hash)).to_bytes();
        Self { tree_size, timestamp_ms, root_hash, signature }
    }

    pub fn verify(&self, key: &VerifyingKey) -> bool {
        let msg = signed_message(self.tree_size, self.timestamp_ms, &self.root_hash);
        key.verify(&msg, &Signature::from_bytes(&self.signature)).is_ok()
    }

    /// The exact bytes that were signed.
    pub fn signed_message(&self) -> Vec<u8> {
        signed_message(self.tree_size, self.timestamp_ms, &self.root_hash).to_vec()
    }

    pub(crate) fn encode(&self) -> [u8; ENCODED_LEN] {
        let mut b = [0u8; ENCODED_LEN];
        b[..8].copy_from_slice(&self.tree_size.to_le_bytes());
        b[8..16].copy_from_slice(&self.timestamp_ms.to_le_bytes());
        b[16..48].copy_from_slice(&self.root_hash);
        b[48..].copy_from_slice(&self.signature);
        b
    }

    pub(crate) fn decode(b: &[u8; ENCODED_LEN]) -> Self {
        Self {
            tree_size: u64::from_le_bytes(b[..8].try_into().unwrap()),
            timestamp_ms: u64::from_le_bytes(b[8..16].try_into().unwrap()),
            root_hash: b[16..48].try_into().unwrap(),
            signature: b[48..].try_into().unwrap(),
        }
    }
}

/// RFC 6962 `TreeHeadSignature`: version(1) ‖ signature_type(1) ‖ timestamp(8) ‖ tree_size(8) ‖ root(32), big-endian.
fn signed_message(tree_size: u64, timestamp_ms: u64, root: &Hash) -> [u8; 50] {
    let mut m = [0u8; 50];
    m[0] = 0; // v1
    m[1] = 1; // tree_hash
    m[2..10].copy_from_slice(&timestamp_ms.to_be_bytes());
    m[10..18].copy_from_slice(&tree_size.to_be_bytes());
    m[18..].copy_from_slice(root);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_verifies_only_unchanged_and_under_its_key() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let other = SigningKey::from_bytes(&[8u8; 32]);
        let head = SignedTreeHead::sign(&key, 5, 1_700_000_000_000, [3u8; 32]);
        assert!(head.verify(&key.verifying_key()));
        assert!(!head.verify(&other.verifying_key()));
        let mut changed = head.clone();
        changed.tree_size = 6;
        assert!(!changed.verify(&key.verifying_key()));
        assert_eq!(SignedTreeHead::decode(&head.encode()), head);
        assert_eq!(head.signed_message().len(), 50);
    }
}
