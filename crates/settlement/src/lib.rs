//! Settlement: cumulative earnings become an OpenZeppelin-standard Merkle tree each epoch; its root
//! goes on chain once, and every payee claims with a proof whenever they like.

#[cfg(feature = "chain")]
pub mod chain;
pub mod tree;

pub use tree::{Claim, Hash, PayoutTree, StandardTree, TreeError};

/// `0x`-prefixed lowercase hex of a 32-byte hash.
pub fn hex32(hash: &Hash) -> String {
    format!("0x{}", hex::encode(hash))
}

/// Parses `0x` followed by 64 hex digits.
pub fn parse_hex32(text: &str) -> Option<Hash> {
    let digits = text.strip_prefix("0x")?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(digits, &mut out).ok()?;
    Some(out)
}
