//! Quality heuristics: cheap signals of junk that a person should look at before it earns.
//! - repetition: the share of a text's word 5-gram shingles that repeat an earlier shingle of the
//!   same text (`1 - distinct / all`); copy-pasted lines and keyword stuffing score high.
//! - symbols: the share of non-whitespace characters that are neither letters nor digits; markup
//!   dumps, base64 and line noise score high.

use tributary_core::rules::DatanetRules;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Quality {
    pub repetition_bps: u32,
    pub symbol_bps: u32,
}

/// Measures a text, given its shingle hashes (`minhash::shingle_hashes`).
pub fn measure(text: &str, shingles: &[u64]) -> Quality {
    let repetition_bps = if shingles.len() < 2 {
        0
    } else {
        let mut distinct = shingles.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        ((shingles.len() - distinct.len()) as u64 * 10_000 / shingles.len() as u64) as u32
    };
    let (mut symbols, mut visible) = (0u64, 0u64);
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        visible += 1;
        symbols += u64::from(!c.is_alphanumeric());
    }
    let symbol_bps = (symbols * 10_000).checked_div(visible).unwrap_or(0) as u32;
    Quality { repetition_bps, symbol_bps }
}

/// The reasons a text is flagged under a datanet's rules (empty when it is fine).
pub fn flags(quality: Quality, rules: &DatanetRules) -> Vec<String> {
    let mut flags = Vec::new();
    if quality.repetition_bps >= rules.repetition_max_bps {
        flags.push(format!(
            "repetition {:.2} ≥ {:.2}",
            f64::from(quality.repetition_bps) / 1e4,
            f64::from(rules.repetition_max_bps) / 1e4
        ));
    }
    if quality.symbol_bps >= rules.symbol_max_bps {
        flags.push(format!(
            "symbols {:.2} ≥ {:.2}",
            f64::from(quality.symbol_bps) / 1e4,
            f64::from(rules.symbol_max_bps) / 1e4
        ));
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::minhash::shingle_hashes;

    fn check(text: &str, repetition_bps: u32, symbol_bps: u32) {
        assert_eq!(measure(text, &shingle_hashes(text)), Quality { repetition_bps, symbol_bps }, "{text:?}");
    }

    #[test]
    fn measures() {
        check("one two three four five six", 0, 0);
        // 12 words repeating a 3-word cycle: 8 shingles, 3 distinct.
        check("buy now cheap buy now cheap buy now cheap buy now cheap", 6_250, 0);
        // 8 symbols among 10 visible characters; one word, so no repetition.
        check("{}<>[]!! ab", 0, 8_000);
        let rules = DatanetRules::default();
        assert!(flags(Quality { repetition_bps: 0, symbol_bps: 0 }, &rules).is_empty());
        assert_eq!(flags(Quality { repetition_bps: 6_250, symbol_bps: 8_000 }, &rules).len(), 2);
    }
}
