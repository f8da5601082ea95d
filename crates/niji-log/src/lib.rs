//! Niji's transparency log: an append-only, tamper-evident record of every access and
//! decision (次世代医療基盤法: logs protected against tampering and deletion).
//!
//! - [`merkle`]: the RFC 6962 Merkle tree, inclusion and consistency proofs.
//! - [`head`]: Ed25519-signed tree heads in RFC 6962's `TreeHeadSignature` layout.
//! - [`TransparencyLog`]: crash-safe storage with group commit.
//!
//! Invariants: an entry is acknowledged only after it is on disk (`fdatasync`); a process
//! killed during appends loses no acknowledged entry and never leaves a log that fails to
//! open (a torn tail past the last acknowledged entry is cut off on open); entries are
//! opaque bytes to this crate. This crate depends on nothing but hashing and signing: it
//! knows no JSON, SQL or HTTP.

pub mod head;
pub mod merkle;
mod storage;

pub use head::SignedTreeHead;
pub use merkle::{leaf_hash, verify_consistency, verify_inclusion, Hash, ProofError, Tree};
pub use storage::{verify, InclusionProof, LogError, LogReader, Problem, TransparencyLog, VerifyReport};
