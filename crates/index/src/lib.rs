//! The corpus index: a tokenizer ([`tokenize`]), immutable suffix-array segments over contributed
//! text ([`segment`]), queries over a set of segments ([`view`]), and the on-disk set of segments of
//! one datanet with its manifest ([`store`]). No money, no HTTP.

pub mod fuzzing;
pub mod ngrams;
pub mod segment;
pub mod store;
pub mod tokenize;
pub mod view;

pub use segment::{DocumentInput, Segment};
pub use view::{IndexView, Occurrence, SpanMatch};

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("a segment holds at most {max} tokens, got {0}", max = segment::SEGMENT_TOKENS_MAX)]
    TooLarge(usize),
    #[error("building the suffix array failed: {0}")]
    Build(String),
}

impl IndexError {
    pub fn io(path: &Path, source: std::io::Error) -> IndexError {
        IndexError::Io { path: path.to_owned(), source }
    }
}

/// The version of an index state: a content hash over its segments' ids, in order.
pub fn version_of<'a>(segment_ids: impl IntoIterator<Item = &'a [u8; 32]>) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"tributary-index-version-1");
    for id in segment_ids {
        hasher.update(id);
    }
    hasher.finalize().to_hex().to_string()
}
