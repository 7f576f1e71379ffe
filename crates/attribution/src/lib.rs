//! Span attribution: given a text (a model's answer) and an index view over the datanets it may
//! draw on, find which contributions the text came from and how much of the credit each earns.
//!
//! The rule, exactly (also in ARCHITECTURE.md):
//! 1. Tokenize the text (see `tributary_index::tokenize`) and take it one sentence at a time.
//! 2. In each sentence find the maximal spans: for each word, the longest run of words starting
//!    there that occurs verbatim in the corpus; keep it unless an earlier span already reaches as
//!    far. Spans therefore start and end on whole words and never cross a sentence end.
//! 3. Weigh every word by its unigram surprisal in the corpus, `-log2(count / total)` bits (a word
//!    the corpus has never seen cannot be inside a span). A span's weight is the sum over its words,
//!    as OLMoTrace ranks spans by their unigram probability.
//! 4. Keep a span only if it has at least `min_words` words, at least `min_surprisal_bits` of
//!    weight, and occurs at most `max_occurrences` times: short, predictable or ubiquitous phrases
//!    ("and it came to pass") say nothing about where a text came from, and earn nothing.
//! 5. Each word of the text covered by kept spans gives its surprisal, split equally among the kept
//!    spans that cover it; each span splits what it receives equally among the distinct
//!    contributions that contain it.
//! 6. Shares are those credits divided by their sum, so they sum to 1; with no kept span the list
//!    is empty. Contributions are listed by decreasing share, then by id.
//!
//! Everything is computed in a fixed order from the text and the index alone, so the same text and
//! index version always give the same result, and an auditor can re-run it.

pub mod infinigram;
pub mod retrieval;

use std::collections::BTreeMap;

use tributary_index::tokenize::tokenize;
use tributary_index::view::OCCURRENCES_LISTED_MAX;
use tributary_index::{IndexView, Occurrence};

/// The parameters of the rule above.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpanRule {
    pub min_words: usize,
    pub min_surprisal_bits: f64,
    pub max_occurrences: u64,
}

impl Default for SpanRule {
    /// Spans of six or more words carrying at least 20 bits, occurring at most 32 times; checked by
    /// the provenance test (King James Bible chapters spliced into news text, docs/BENCHMARKS.md).
    fn default() -> Self {
        SpanRule { min_words: 6, min_surprisal_bits: 20.0, max_occurrences: 32 }
    }
}

/// Longest text attributed, in bytes.
pub const TEXT_BYTES_MAX: usize = 256 * 1024;

/// A kept span of the text.
#[derive(Clone, Debug, PartialEq)]
pub struct AttributedSpan {
    /// Byte offsets into the text.
    pub start: usize,
    pub end: usize,
    pub text: String,
    pub words: usize,
    pub occurrences: u64,
    pub surprisal_bits: f64,
    /// Distinct contributions containing the span, by id.
    pub contributions: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ContributionShare {
    pub contribution: u64,
    pub contributor: u64,
    pub datanet: u64,
    pub share: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Attribution {
    pub index_version: String,
    pub spans: Vec<AttributedSpan>,
    pub contributions: Vec<ContributionShare>,
}

/// Attributes `text` over `view` by `rule` (see the crate documentation).
pub fn attribute(view: &IndexView, text: &str, rule: &SpanRule) -> Attribution {
    let total = view.word_tokens().max(1) as f64;
    let mut spans = Vec::new();
    // Credit per contribution, keyed for a deterministic order.
    let mut credit: BTreeMap<(u64, u64, u64), f64> = BTreeMap::new();
    let tokenized = tokenize(text);
    for sentence in &tokenized.sentences {
        let words: Vec<&str> = sentence.iter().map(|w| w.text.as_str()).collect();
        let surprisal: Vec<f64> = words
            .iter()
            .map(|w| {
                let count = view.unigram(w);
                if count == 0 { 0.0 } else { -(count as f64 / total).log2() }
            })
            .collect();
        let mut kept: Vec<(usize, usize, Vec<Occurrence>)> = Vec::new();
        for span in view.maximal_spans(&words) {
            let bits: f64 = surprisal[span.start..span.start + span.len].iter().sum();
            if span.len < rule.min_words || bits < rule.min_surprisal_bits {
                continue;
            }
            let listed =
                usize::try_from(rule.max_occurrences).unwrap_or(usize::MAX).min(OCCURRENCES_LISTED_MAX);
            let (count, mut occurrences) =
                view.count_and_occurrences(&words[span.start..span.start + span.len], listed);
            if count > rule.max_occurrences {
                continue;
            }
            occurrences.dedup_by_key(|o| o.contribution);
            let first = &sentence[span.start];
            let last = &sentence[span.start + span.len - 1];
            spans.push(AttributedSpan {
                start: first.start,
                end: last.end,
                text: text[first.start..last.end].to_owned(),
                words: span.len,
                occurrences: count,
                surprisal_bits: bits,
                contributions: occurrences.iter().map(|o| o.contribution).collect(),
            });
            kept.push((span.start, span.len, occurrences));
        }
        for (position, &bits) in surprisal.iter().enumerate() {
            let covering: Vec<&(usize, usize, Vec<Occurrence>)> =
                kept.iter().filter(|(start, len, _)| (*start..start + len).contains(&position)).collect();
            if covering.is_empty() {
                continue;
            }
            let per_span = bits / covering.len() as f64;
            for (_, _, occurrences) in covering {
                let per_contribution = per_span / occurrences.len().max(1) as f64;
                for occurrence in occurrences {
                    *credit
                        .entry((occurrence.contribution, occurrence.contributor, occurrence.datanet))
                        .or_default() += per_contribution;
                }
            }
        }
    }
    let sum: f64 = credit.values().sum();
    let mut contributions: Vec<ContributionShare> = if sum > 0.0 {
        credit
            .into_iter()
            .map(|((contribution, contributor, datanet), c)| ContributionShare {
                contribution,
                contributor,
                datanet,
                share: c / sum,
            })
            .collect()
    } else {
        Vec::new()
    };
    contributions.sort_by(|a, b| b.share.total_cmp(&a.share).then(a.contribution.cmp(&b.contribution)));
    Attribution { index_version: view.version(), spans, contributions }
}
