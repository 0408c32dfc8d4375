//! Transparency-log formats over the ledger, written from their public specifications so that
//! other people's verifiers accept what caltrail produces: the RFC 6962 / RFC 9162 Merkle tree
//! (`merkle`), C2SP signed notes with Ed25519 keys (`note`), and checkpoints and offline proofs
//! (`checkpoint`: tlog-checkpoint, tlog-proof, the tlog-witness consistency body). Knows
//! nothing of SQLite or of events: it hashes and checks bytes it is given.

#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod merkle;
pub mod note;

pub use checkpoint::{Checkpoint, ConsistencyBundle, InclusionBundle};
pub use merkle::{Hash, Subtrees};
pub use note::{SignedNote, SigningKey, VerifierKey};
