//! MinHash signatures of case-folded word 5-gram shingles, and an LSH index that finds earlier
//! contributions whose estimated Jaccard similarity reaches a threshold.
//!
//! A text's shingles are its overlapping runs of [`SHINGLE_WORDS`] words (lowercased; words are
//! runs of alphanumerics), each hashed to 64 bits; a text with fewer words is one shingle. The
//! signature keeps, for each of [`PERMUTATIONS`] hash functions `h_i(x) = a_i·x + b_i mod 2^64`
//! (odd `a_i`, fixed constants), the top 32 bits of the minimum over the shingles. The fraction of
//! equal positions of two signatures estimates the Jaccard similarity of their shingle sets
//! (standard error ≤ 0.045 at 128 permutations).
//!
//! LSH banding: the signature is cut into [`BANDS`] bands of [`ROWS_PER_BAND`] values; two texts
//! are candidates when any band is equal. The chance that a pair of similarity `s` becomes a
//! candidate is `1 - (1 - s^4)^32`: 0.9999 at s = 0.8, 0.99 at 0.6, 0.87 at 0.5, so thresholds
//! down to about 0.6 keep their recall. Candidates are then checked on the whole signature.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hash functions in a signature.
pub const PERMUTATIONS: usize = 128;
/// LSH bands; `BANDS * ROWS_PER_BAND == PERMUTATIONS`.
pub const BANDS: usize = 32;
pub const ROWS_PER_BAND: usize = 4;
/// Words in a shingle.
pub const SHINGLE_WORDS: usize = 5;
/// Most candidates checked per lookup, so a bucket crowded by a common band (boilerplate shared by
/// thousands of texts) cannot make one lookup cost a scan of the datanet.
pub const CANDIDATES_MAX: usize = 8192;

const _: () = assert!(BANDS * ROWS_PER_BAND == PERMUTATIONS);

/// A MinHash signature.
pub type Signature = [u32; PERMUTATIONS];

/// The multipliers and offsets of the hash functions, from a fixed seed (splitmix64), so every
/// node computes the same signatures.
const COEFFICIENTS: ([u64; PERMUTATIONS], [u64; PERMUTATIONS]) = {
    let mut a = [0u64; PERMUTATIONS];
    let mut b = [0u64; PERMUTATIONS];
    let mut state: u64 = 0x7472_6962_7574_6172; // "tributar"
    let mut i = 0;
    while i < PERMUTATIONS {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        a[i] = splitmix(state) | 1;
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        b[i] = splitmix(state);
        i += 1;
    }
    (a, b)
};

const fn splitmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// 64-bit FNV-1a of a lowercased word, finished with a mix so that similar words spread.
fn word_hash(word: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |byte: u8| {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    };
    if word.is_ascii() {
        word.bytes().for_each(|b| eat(b.to_ascii_lowercase()));
    } else {
        let mut buffer = [0u8; 4];
        for c in word.chars().flat_map(char::to_lowercase) {
            c.encode_utf8(&mut buffer).bytes().for_each(&mut eat);
        }
    }
    splitmix(hash)
}

/// The 64-bit hashes of a text's shingles (see the module documentation).
pub fn shingle_hashes(text: &str) -> Vec<u64> {
    let words: Vec<u64> = crate::text::words(text).map(word_hash).collect();
    if words.is_empty() {
        return Vec::new();
    }
    let width = SHINGLE_WORDS.min(words.len());
    words
        .windows(width)
        .map(|window| window.iter().fold(0u64, |acc, &w| splitmix(acc.rotate_left(23) ^ w)))
        .collect()
}

/// The MinHash signature of a text.
pub fn signature(text: &str) -> Signature {
    signature_of_shingles(&shingle_hashes(text))
}

pub fn signature_of_shingles(shingles: &[u64]) -> Signature {
    let (a, b) = &COEFFICIENTS;
    let mut minimums = [u64::MAX; PERMUTATIONS];
    for &shingle in shingles {
        for ((minimum, &a), &b) in minimums.iter_mut().zip(a).zip(b) {
            *minimum = (*minimum).min(a.wrapping_mul(shingle).wrapping_add(b));
        }
    }
    minimums.map(|m| (m >> 32) as u32)
}

/// Estimated Jaccard similarity of two signatures, in basis points.
pub fn similarity_bps(x: &Signature, y: &Signature) -> u32 {
    let equal = x.iter().zip(y).filter(|(a, b)| a == b).count() as u32;
    equal * 10_000 / PERMUTATIONS as u32
}

/// Signatures as bytes (little-endian), for storage.
pub fn signature_to_bytes(signature: &Signature) -> Vec<u8> {
    signature.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn signature_from_bytes(bytes: &[u8]) -> Option<Signature> {
    if bytes.len() != PERMUTATIONS * 4 {
        return None;
    }
    let mut signature = [0u32; PERMUTATIONS];
    for (value, chunk) in signature.iter_mut().zip(bytes.chunks_exact(4)) {
        *value = u32::from_le_bytes(chunk.try_into().ok()?);
    }
    Some(signature)
}

/// Band keys are already well-mixed 64-bit hashes; hashing them again would only cost time.
#[derive(Default, Clone, Copy)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

const NONE: u32 = u32::MAX;
const REMOVED: u64 = 0;

/// The near-duplicate index of one datanet. Each band of each signature is an entry in a chain per
/// band key (`heads` holds the newest entry of each key, `chain` each entry's predecessor), which
/// costs 4 bytes per entry instead of a vector per bucket.
#[derive(Clone, Default, Debug)]
pub struct LshIndex {
    /// The contribution id in each slot (0 once removed).
    ids: Vec<u64>,
    signatures: Vec<Signature>,
    slot_of: HashMap<u64, u32>,
    heads: HashMap<u64, u32, BuildHasherDefault<KeyHasher>>,
    /// Entry `slot * BANDS + band` → the previous entry with the same key.
    chain: Vec<u32>,
}

/// The best earlier match of a lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NearMatch {
    pub id: u64,
    pub similarity_bps: u32,
}

fn band_key(band: usize, values: &[u32]) -> u64 {
    values.iter().fold(splitmix(band as u64 + 1), |acc, &v| splitmix(acc ^ u64::from(v)))
}

impl LshIndex {
    pub fn new() -> LshIndex {
        LshIndex::default()
    }

    /// Contributions in the index (removed ones excluded).
    pub fn len(&self) -> usize {
        self.slot_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slot_of.is_empty()
    }

    pub fn contains(&self, id: u64) -> bool {
        self.slot_of.contains_key(&id)
    }

    /// Adds a contribution (ids are positive and unique; re-adding an id is ignored).
    pub fn insert(&mut self, id: u64, signature: &Signature) {
        assert_ne!(id, REMOVED, "contribution ids start at 1");
        if self.slot_of.contains_key(&id) {
            return;
        }
        let slot = u32::try_from(self.ids.len()).expect("fewer than 2^32 contributions per datanet");
        self.ids.push(id);
        self.signatures.push(*signature);
        self.slot_of.insert(id, slot);
        for (band, values) in signature.chunks_exact(ROWS_PER_BAND).enumerate() {
            let entry = slot * BANDS as u32 + band as u32;
            let previous = self.heads.insert(band_key(band, values), entry).unwrap_or(NONE);
            self.chain.push(previous);
        }
    }

    /// Removes a contribution, so it no longer blocks later ones.
    pub fn remove(&mut self, id: u64) {
        if let Some(slot) = self.slot_of.remove(&id) {
            self.ids[slot as usize] = REMOVED;
        }
    }

    /// The most similar earlier contribution at or above `threshold_bps` (ties to the lower id).
    pub fn best_match(&self, signature: &Signature, threshold_bps: u32) -> Option<NearMatch> {
        let mut candidates: Vec<u32> = Vec::new();
        'bands: for (band, values) in signature.chunks_exact(ROWS_PER_BAND).enumerate() {
            let mut entry = self.heads.get(&band_key(band, values)).copied().unwrap_or(NONE);
            while entry != NONE {
                if candidates.len() >= CANDIDATES_MAX {
                    break 'bands;
                }
                candidates.push(entry / BANDS as u32);
                entry = self.chain[entry as usize];
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        self.best_of(signature, threshold_bps, candidates.into_iter())
    }

    /// The same answer by comparing with every signature: the baseline and the test oracle.
    pub fn best_match_brute_force(&self, signature: &Signature, threshold_bps: u32) -> Option<NearMatch> {
        self.best_of(signature, threshold_bps, 0..self.ids.len() as u32)
    }

    fn best_of(
        &self,
        signature: &Signature,
        threshold_bps: u32,
        slots: impl Iterator<Item = u32>,
    ) -> Option<NearMatch> {
        let mut best: Option<NearMatch> = None;
        for slot in slots {
            let id = self.ids[slot as usize];
            if id == REMOVED {
                continue;
            }
            let similarity = similarity_bps(signature, &self.signatures[slot as usize]);
            if similarity < threshold_bps {
                continue;
            }
            let better = best.is_none_or(|b| {
                similarity > b.similarity_bps || (similarity == b.similarity_bps && id < b.id)
            });
            if better {
                best = Some(NearMatch { id, similarity_bps: similarity });
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_layout_do_not_change_the_signature() {
        let a = signature("In the beginning God created the heaven and the earth.");
        let b = signature("in  the BEGINNING god created\nthe heaven, and the earth");
        assert_eq!(a, b);
        assert_eq!(similarity_bps(&a, &b), 10_000);
        let c = signature("And the earth was without form, and void; and darkness was upon the deep.");
        assert!(similarity_bps(&a, &c) < 1_000, "{}", similarity_bps(&a, &c));
    }

    #[test]
    fn estimate_is_close_to_the_true_jaccard() {
        // 200 distinct words; the second text replaces the last 40: shingle Jaccard = 156/(196+40).
        let words: Vec<String> = (0..240).map(|i| format!("w{i}")).collect();
        let x = words[..200].join(" ");
        let y = [&words[..160], &words[200..240]].concat().join(" ");
        let exact = 156.0 / 236.0;
        let estimate = f64::from(similarity_bps(&signature(&x), &signature(&y))) / 10_000.0;
        assert!((estimate - exact).abs() < 0.12, "estimate {estimate}, exact {exact}");
    }

    #[test]
    fn signatures_round_trip_as_bytes() {
        let s = signature("a b c d e f g");
        assert_eq!(signature_from_bytes(&signature_to_bytes(&s)), Some(s));
        assert_eq!(signature_from_bytes(&[0; 3]), None);
    }

    #[test]
    fn lsh_finds_the_earliest_best_and_forgets_removed() {
        let base: Vec<String> = (0..100).map(|i| format!("word{i}")).collect();
        let text = base.join(" ");
        let mut index = LshIndex::new();
        index.insert(3, &signature(&text));
        index.insert(5, &signature(&text));
        index.insert(7, &signature("something else entirely, with other words in it"));
        let mut near = base.clone();
        near.swap(10, 11);
        let query = signature(&near.join(" "));
        let found = index.best_match(&query, 8_000).expect("a near duplicate");
        assert_eq!(found.id, 3);
        assert!(found.similarity_bps >= 8_000);
        assert_eq!(index.best_match_brute_force(&query, 8_000), Some(found));
        index.remove(3);
        assert_eq!(index.best_match(&query, 8_000).map(|m| m.id), Some(5));
        assert_eq!(index.len(), 2);
        assert_eq!(index.best_match(&signature("nothing like the others at all here"), 8_000), None);
    }
}
