//! The contribution pipeline's rules, free of IO: limits and normalisation (`text`), MinHash
//! signatures and the LSH index that finds near duplicates (`minhash`), quality heuristics
//! (`quality`), containment over copied spans (`containment`), and the validators' rules —
//! stake-weighted tallies, slashing and the validators' share of fees (`votes`).
//!
//! The order of the stages, each recorded on the contribution (`Findings`):
//! 1. limits (UTF-8 is guaranteed by the type; size in bytes and words, per datanet),
//! 2. normalisation (NFC, whitespace runs folded to one space) and the BLAKE3 content hash of the
//!    normalised text: an equal hash in the same datanet → rejected, `duplicate`,
//! 3. near duplicate: MinHash of case-folded word 5-gram shingles, LSH banding, estimated Jaccard at
//!    or above the datanet's threshold against an earlier contribution → rejected, `near_duplicate`,
//! 4. containment: mostly long spans copied from other contributors' accepted text → rejected,
//!    `copied`,
//! 5. quality (repetition, symbols) → flagged,
//! 6. the datanet's policy: auto → accepted, review → pending.

pub mod containment;
pub mod minhash;
pub mod quality;
pub mod text;
pub mod votes;

pub use minhash::{LshIndex, Signature, signature};
pub use text::{LimitViolation, check_limits, content_hash, normalize};
