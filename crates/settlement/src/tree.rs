//! Merkle trees in OpenZeppelin's "standard" layout, so that `@openzeppelin/merkle-tree` and
//! OpenZeppelin's `MerkleProof` verify our roots and proofs unchanged.
//!
//! - A leaf is `keccak256(keccak256(abi.encode(values…)))`: the double hash keeps a 64-byte leaf
//!   from ever being mistaken for an inner node.
//! - Leaf hashes are sorted ascending and laid out in an array of `2n − 1` nodes, sorted leaf `k` at
//!   index `2n − 2 − k`; node `i` has children `2i + 1` and `2i + 2`, and the root is node 0.
//! - A parent is `keccak256(min(a, b) ‖ max(a, b))`, so a proof is just the siblings on the path
//!   and verification needs no left/right flags.

use std::cmp::Ordering;

use tiny_keccak::{Hasher, Keccak};
use tributary_core::EvmAddress;

pub type Hash = [u8; 32];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("a Merkle tree needs at least one leaf")]
    Empty,
    #[error("two leaves have the same hash {}", crate::hex32(.0))]
    DuplicateLeaf(Hash),
}

pub fn keccak256(bytes: &[u8]) -> Hash {
    let mut hasher = Keccak::v256();
    hasher.update(bytes);
    let mut out = [0u8; 32];
    hasher.finalize(&mut out);
    out
}

/// The parent of two nodes: the smaller hash first.
pub fn hash_pair(a: &Hash, b: &Hash) -> Hash {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    let mut hasher = Keccak::v256();
    hasher.update(low);
    hasher.update(high);
    let mut out = [0u8; 32];
    hasher.finalize(&mut out);
    out
}

/// The standard leaf of ABI-encoded words: `keccak256(keccak256(words))`.
fn standard_leaf(words: &[[u8; 32]]) -> Hash {
    let mut hasher = Keccak::v256();
    for word in words {
        hasher.update(word);
    }
    let mut inner = [0u8; 32];
    hasher.finalize(&mut inner);
    keccak256(&inner)
}

/// `abi.encode(uint256)` of an unsigned integer.
pub fn uint256_word(value: u128) -> [u8; 32] {
    let mut word = [0u8; 32];
    word[16..].copy_from_slice(&value.to_be_bytes());
    word
}

/// `abi.encode(address)`.
pub fn address_word(address: &EvmAddress) -> [u8; 32] {
    let mut word = [0u8; 32];
    word[12..].copy_from_slice(&address.0);
    word
}

/// The leaf of a payout: leaf encoding `["address", "uint256"]`.
pub fn payout_leaf(address: &EvmAddress, cumulative_amount: u128) -> Hash {
    standard_leaf(&[address_word(address), uint256_word(cumulative_amount)])
}

/// The leaf of a receipt in its epoch's receipts tree: leaf encoding `["uint256", "bytes32"]`
/// (receipt id, receipt hash).
pub fn receipt_leaf(receipt: u64, receipt_hash: &Hash) -> Hash {
    standard_leaf(&[uint256_word(receipt.into()), *receipt_hash])
}

/// Folds a proof from a leaf up to the root it implies.
pub fn process_proof(leaf: &Hash, proof: &[Hash]) -> Hash {
    proof.iter().fold(*leaf, |node, sibling| hash_pair(&node, sibling))
}

pub fn verify(root: &Hash, leaf: &Hash, proof: &[Hash]) -> bool {
    process_proof(leaf, proof) == *root
}

/// A complete binary tree over sorted leaf hashes, in the standard array layout.
#[derive(Clone, Debug)]
pub struct StandardTree {
    nodes: Vec<Hash>,
}

/// Below this many nodes a level is hashed on one thread; above it, on every core.
const PARALLEL_LEVEL_MIN: usize = 1 << 14;

impl StandardTree {
    /// Builds the tree over `leaves` (leaf hashes, in any order).
    pub fn new(mut leaves: Vec<Hash>) -> Result<StandardTree, TreeError> {
        if leaves.is_empty() {
            return Err(TreeError::Empty);
        }
        leaves.sort_unstable();
        if let Some(pair) = leaves.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(TreeError::DuplicateLeaf(pair[0]));
        }
        let n = leaves.len();
        let mut nodes = vec![[0u8; 32]; 2 * n - 1];
        // Sorted leaf k sits at 2n − 2 − k: the leaves fill the tail of the array in descending order.
        for (slot, leaf) in nodes[n - 1..].iter_mut().zip(leaves.iter().rev()) {
            *slot = *leaf;
        }
        drop(leaves);
        // Inner nodes are 0..n−1. Node i at depth d = ⌊log2(i + 1)⌋ depends only on nodes deeper
        // than d, so each depth is hashed as one level, deepest first, split across threads.
        let inner = n - 1;
        let mut depth = usize::BITS - inner.leading_zeros();
        while depth > 0 {
            depth -= 1;
            let start = (1usize << depth) - 1;
            let end = ((1usize << (depth + 1)) - 1).min(inner);
            if start >= end {
                continue;
            }
            let (head, tail) = nodes.split_at_mut(end);
            let level = &mut head[start..];
            // Children of node i are 2i + 1 and 2i + 2, all at indices ≥ end.
            let children = &tail[..];
            let child = |index: usize| &children[index - end];
            let hash_range = |level: &mut [Hash], first: usize| {
                for (offset, slot) in level.iter_mut().enumerate() {
                    let i = first + offset;
                    *slot = hash_pair(child(2 * i + 1), child(2 * i + 2));
                }
            };
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            if level.len() < PARALLEL_LEVEL_MIN || threads == 1 {
                hash_range(level, start);
            } else {
                let chunk = level.len().div_ceil(threads);
                std::thread::scope(|scope| {
                    for (index, part) in level.chunks_mut(chunk).enumerate() {
                        let hash_range = &hash_range;
                        scope.spawn(move || hash_range(part, start + index * chunk));
                    }
                });
            }
        }
        Ok(StandardTree { nodes })
    }

    pub fn root(&self) -> Hash {
        self.nodes[0]
    }

    pub fn leaf_count(&self) -> usize {
        self.nodes.len().div_ceil(2)
    }

    /// Every node, root first: the `tree` field of a `standard-v1` dump.
    pub fn nodes(&self) -> &[Hash] {
        &self.nodes
    }

    /// Where a leaf hash sits in the array, if it is in the tree.
    pub fn tree_index(&self, leaf: &Hash) -> Option<usize> {
        let first_leaf = self.nodes.len() / 2;
        // The leaves are stored in descending order.
        self.nodes[first_leaf..]
            .binary_search_by(|probe| match probe.cmp(leaf) {
                Ordering::Less => Ordering::Greater,
                Ordering::Greater => Ordering::Less,
                Ordering::Equal => Ordering::Equal,
            })
            .ok()
            .map(|offset| first_leaf + offset)
    }

    /// The siblings on the path from node `tree_index` (a leaf) to the root.
    pub fn proof(&self, mut tree_index: usize) -> Vec<Hash> {
        assert!(tree_index < self.nodes.len(), "tree index {tree_index} is out of range");
        let mut proof = Vec::new();
        while tree_index > 0 {
            let sibling = if tree_index % 2 == 1 { tree_index + 1 } else { tree_index - 1 };
            proof.push(self.nodes[sibling]);
            tree_index = (tree_index - 1) / 2;
        }
        proof
    }
}

/// One epoch's payouts: every payout address with its cumulative amount, and the tree over them.
#[derive(Clone, Debug)]
pub struct PayoutTree {
    /// Sorted by address; addresses are unique.
    values: Vec<(EvmAddress, u128)>,
    tree: StandardTree,
}

/// What a payee needs to claim: the leaf's values, the proof and the root it proves against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub address: EvmAddress,
    pub cumulative_amount: u128,
    pub proof: Vec<Hash>,
    pub root: Hash,
}

impl PayoutTree {
    /// Builds the tree of `values` (any order; one entry per address).
    pub fn new(mut values: Vec<(EvmAddress, u128)>) -> Result<PayoutTree, TreeError> {
        values.sort_unstable_by_key(|(address, _)| *address);
        let mut leaves = vec![[0u8; 32]; values.len()];
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if values.len() < PARALLEL_LEVEL_MIN || threads == 1 {
            for (leaf, (address, amount)) in leaves.iter_mut().zip(&values) {
                *leaf = payout_leaf(address, *amount);
            }
        } else {
            let chunk = values.len().div_ceil(threads);
            std::thread::scope(|scope| {
                for (part, values) in leaves.chunks_mut(chunk).zip(values.chunks(chunk)) {
                    scope.spawn(move || {
                        for (leaf, (address, amount)) in part.iter_mut().zip(values) {
                            *leaf = payout_leaf(address, *amount);
                        }
                    });
                }
            });
        }
        let tree = StandardTree::new(leaves)?;
        Ok(PayoutTree { values, tree })
    }

    pub fn root(&self) -> Hash {
        self.tree.root()
    }

    pub fn values(&self) -> &[(EvmAddress, u128)] {
        &self.values
    }

    /// The values, sorted by address, without the tree.
    pub fn into_values(self) -> Vec<(EvmAddress, u128)> {
        self.values
    }

    pub fn claim(&self, address: &EvmAddress) -> Option<Claim> {
        let position = self.values.binary_search_by(|(a, _)| a.0.cmp(&address.0)).ok()?;
        let amount = self.values[position].1;
        let index = self.tree.tree_index(&payout_leaf(address, amount)).expect("every value has its leaf");
        Some(Claim {
            address: *address,
            cumulative_amount: amount,
            proof: self.tree.proof(index),
            root: self.root(),
        })
    }

    /// The tree in OpenZeppelin's `standard-v1` dump format, loadable with
    /// `StandardMerkleTree.load`.
    pub fn dump(&self) -> serde_json::Value {
        let values: Vec<serde_json::Value> = self
            .values
            .iter()
            .map(|(address, amount)| {
                let index =
                    self.tree.tree_index(&payout_leaf(address, *amount)).expect("every value has its leaf");
                serde_json::json!({ "value": [address.to_string(), amount.to_string()], "treeIndex": index })
            })
            .collect();
        serde_json::json!({
            "format": "standard-v1",
            "leafEncoding": ["address", "uint256"],
            "tree": self.tree.nodes().iter().map(crate::hex32).collect::<Vec<_>>(),
            "values": values,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn address(text: &str) -> EvmAddress {
        text.parse().expect("a valid address")
    }

    #[test]
    fn known_vector_from_the_design() {
        let tree = PayoutTree::new(vec![
            (address("0x1111111111111111111111111111111111111111"), 5_000_000_000_000_000_000),
            (address("0x2222222222222222222222222222222222222222"), 2_500_000_000_000_000_000),
            (address("0x70997970C51812dc3A010C7d01b50e0d17dc79C8"), 42),
        ])
        .expect("three leaves");
        assert_eq!(
            crate::hex32(&tree.root()),
            "0x6a6ae7c251e3a925f68d2129d38ca330926fa0f42f4b47f93bbdf1a1824d5464"
        );
        for (payee, amount) in tree.values() {
            let claim = tree.claim(payee).expect("a payee of the tree");
            assert_eq!(claim.cumulative_amount, *amount);
            assert!(verify(&claim.root, &payout_leaf(payee, *amount), &claim.proof));
            assert!(!verify(&claim.root, &payout_leaf(payee, amount + 1), &claim.proof));
        }
        assert!(tree.claim(&address("0x3333333333333333333333333333333333333333")).is_none());
    }

    #[test]
    fn one_leaf_is_its_own_root_and_empty_is_refused() {
        let payee = address("0x1111111111111111111111111111111111111111");
        let tree = PayoutTree::new(vec![(payee, 7)]).expect("one leaf");
        assert_eq!(tree.root(), payout_leaf(&payee, 7));
        assert!(tree.claim(&payee).expect("its payee").proof.is_empty());
        assert_eq!(PayoutTree::new(Vec::new()).err(), Some(TreeError::Empty));
        assert!(matches!(PayoutTree::new(vec![(payee, 7), (payee, 7)]), Err(TreeError::DuplicateLeaf(_))));
    }

    /// The same tree built the plain way: a node at a time, from the last inner node down.
    fn reference_root(mut leaves: Vec<Hash>) -> Hash {
        leaves.sort_unstable();
        let n = leaves.len();
        let mut nodes = vec![[0u8; 32]; 2 * n - 1];
        for (k, leaf) in leaves.iter().enumerate() {
            nodes[2 * n - 2 - k] = *leaf;
        }
        for i in (0..n - 1).rev() {
            nodes[i] = hash_pair(&nodes[2 * i + 1], &nodes[2 * i + 2]);
        }
        nodes[0]
    }

    #[test]
    fn levels_hashed_in_parallel_match_the_plain_build() {
        for n in [PARALLEL_LEVEL_MIN * 2 + 3, 100_001] {
            let leaves: Vec<Hash> = (0..n as u64).map(|i| keccak256(&i.to_le_bytes())).collect();
            let tree = StandardTree::new(leaves.clone()).expect("leaves");
            assert_eq!(tree.root(), reference_root(leaves.clone()), "{n} leaves");
            for leaf in leaves.iter().step_by(997) {
                let index = tree.tree_index(leaf).expect("a leaf of the tree");
                assert!(verify(&tree.root(), leaf, &tree.proof(index)));
            }
        }
    }

    proptest! {
        #[test]
        fn every_payee_proves_and_nothing_else_does(
            amounts in proptest::collection::btree_map(any::<[u8; 20]>(), any::<u128>(), 1..70),
            tamper in any::<u8>(),
        ) {
            let values: Vec<(EvmAddress, u128)> =
                amounts.into_iter().map(|(bytes, amount)| (EvmAddress(bytes), amount)).collect();
            let tree = PayoutTree::new(values.clone()).expect("distinct addresses");
            prop_assert_eq!(
                tree.root(),
                reference_root(values.iter().map(|(a, m)| payout_leaf(a, *m)).collect())
            );
            for (payee, amount) in &values {
                let claim = tree.claim(payee).expect("a payee");
                prop_assert!(verify(&tree.root(), &payout_leaf(payee, *amount), &claim.proof));
                prop_assert!(!verify(&tree.root(), &payout_leaf(payee, amount.wrapping_add(1)), &claim.proof));
                if let Some(first) = claim.proof.first() {
                    let mut bent = claim.proof.clone();
                    bent[0][usize::from(tamper) % 32] ^= 1;
                    prop_assert_ne!(bent[0], *first);
                    prop_assert!(!verify(&tree.root(), &payout_leaf(payee, *amount), &bent));
                }
            }
        }
    }
}
