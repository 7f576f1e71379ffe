//! A Bloom filter over a segment's word n-grams, for the containment check: before searching the
//! suffix array for long copied runs, a text's n-grams are tested here, and only where
//! `L - NGRAM_WORDS + 1` consecutive n-grams may all occur can a run of `L` words exist. A Bloom
//! filter has no false negatives, so this never hides a copied run; it only spares the searches
//! (and the vocabulary lookups) for text that is not copied.
//!
//! An n-gram is [`NGRAM_WORDS`] consecutive word tokens of one sentence (no separator inside). Its
//! hash combines the words' hashes ([`word_hash`] of the token text), so a query needs no
//! vocabulary lookup. Filters take [`FILTER_BITS_PER_NGRAM`] bits per token (1.25 bytes), with
//! [`FILTER_PROBES`] probe bits inside one 64-bit block (one memory read per test): about 2% false
//! positives.

/// Words in a filtered n-gram.
pub const NGRAM_WORDS: usize = 6;
/// Filter bits per token of the segment.
pub const FILTER_BITS_PER_NGRAM: usize = 10;
/// Bits set and tested per n-gram.
pub const FILTER_PROBES: u64 = 4;

const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The hash of a word's token text (FNV-1a, then mixed).
pub fn word_hash(token_text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in token_text.as_bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    mix(hash)
}

/// The hash of an n-gram from its words' hashes (`words.len() == NGRAM_WORDS`).
pub fn ngram_hash(words: &[u64]) -> u64 {
    words.iter().fold(0x6e67_7261_6d73_u64, |acc, &w| mix(acc.rotate_left(29) ^ w))
}

/// The filter of one segment.
#[derive(Clone, Debug)]
pub struct NgramFilter {
    bits: Vec<u64>,
}

impl NgramFilter {
    /// Builds the filter from a token stream, given each token's word hash (`None` for the
    /// separators, which no n-gram crosses).
    pub fn build(tokens: impl Iterator<Item = Option<u64>>, token_count: usize) -> NgramFilter {
        let words = (token_count * FILTER_BITS_PER_NGRAM).div_ceil(64).max(1);
        let mut filter = NgramFilter { bits: vec![0; words] };
        let mut window: std::collections::VecDeque<u64> =
            std::collections::VecDeque::with_capacity(NGRAM_WORDS);
        let mut buffer = [0u64; NGRAM_WORDS];
        for token in tokens {
            match token {
                None => window.clear(),
                Some(hash) => {
                    if window.len() == NGRAM_WORDS {
                        window.pop_front();
                    }
                    window.push_back(hash);
                    if window.len() == NGRAM_WORDS {
                        for (slot, &w) in buffer.iter_mut().zip(window.iter()) {
                            *slot = w;
                        }
                        filter.insert(ngram_hash(&buffer));
                    }
                }
            }
        }
        filter
    }

    /// The 64-bit block of an n-gram and its probe bits inside it: one memory read per test
    /// (a blocked Bloom filter).
    fn block_and_mask(&self, hash: u64) -> (usize, u64) {
        let block = (hash % self.bits.len() as u64) as usize;
        let spread = mix(hash);
        let mask = (0..FILTER_PROBES).fold(0u64, |mask, i| mask | 1 << ((spread >> (i * 6)) & 63));
        (block, mask)
    }

    fn insert(&mut self, hash: u64) {
        let (block, mask) = self.block_and_mask(hash);
        self.bits[block] |= mask;
    }

    /// False only if the n-gram certainly does not occur.
    pub fn may_contain(&self, hash: u64) -> bool {
        let (block, mask) = self.block_and_mask(hash);
        self.bits[block] & mask == mask
    }

    /// Memory held, in bytes.
    pub fn bytes(&self) -> usize {
        self.bits.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let words: Vec<u64> = (0..10_000u64).map(|i| word_hash(&format!("w{i}"))).collect();
        // Two "sentences", separated: n-grams never cross the separator.
        let stream = words[..5_000]
            .iter()
            .map(|&w| Some(w))
            .chain([None])
            .chain(words[5_000..].iter().map(|&w| Some(w)));
        let filter = NgramFilter::build(stream, 10_001);
        for start in (0..5_000 - NGRAM_WORDS).chain(5_000..10_000 - NGRAM_WORDS) {
            assert!(filter.may_contain(ngram_hash(&words[start..start + NGRAM_WORDS])), "{start}");
        }
        let reversed: Vec<u64> = words.iter().rev().copied().collect();
        let false_positives =
            (0..9_000).filter(|&s| filter.may_contain(ngram_hash(&reversed[s..s + NGRAM_WORDS]))).count();
        assert!(false_positives < 300, "{false_positives} of 9000");
    }
}
