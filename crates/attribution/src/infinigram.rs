//! The built-in ∞-gram model: each next word is drawn from the words that follow the longest
//! suffix of the context occurring in the corpus, and each drawn word is credited to the
//! contribution of the very occurrence it was drawn from. Attribution is exact, not estimated, and
//! removing a contribution from the index removes it from the model at once.

use std::collections::BTreeMap;

use tributary_index::tokenize::tokenize;
use tributary_index::{IndexView, Occurrence};

use crate::{AttributedSpan, Attribution, ContributionShare};

/// Words of context the model looks back at.
pub const CONTEXT_WORDS_MAX: usize = 32;
/// Occurrences listed per step to draw from.
const OCCURRENCES_PER_STEP_MAX: usize = 4_096;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    pub max_tokens: usize,
    /// 0 picks the most frequent continuation; 1 samples by frequency; higher flattens.
    pub temperature: f64,
    pub seed: u64,
}

/// A generated answer with its exact attribution.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    pub text: String,
    /// Words generated (the completion's token count).
    pub tokens: usize,
    pub attribution: Attribution,
}

struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Generates up to `sampling.max_tokens` words continuing `prompt`. Deterministic for a given
/// prompt, index and sampling.
pub fn generate(view: &IndexView, prompt: &str, sampling: &Sampling) -> Generation {
    let mut context: Vec<String> = tokenize(prompt).words().map(|w| w.text.clone()).collect();
    let mut rng = Rng(sampling.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut text = String::new();
    let mut drawn: Vec<(usize, usize, Occurrence)> = Vec::new();
    // The longest matching context can grow by at most one word per step (the word just drawn),
    // so each step starts its back-off one word above the previous match instead of at the top.
    let mut longest = CONTEXT_WORDS_MAX;
    for _ in 0..sampling.max_tokens {
        let window_len = longest.min(CONTEXT_WORDS_MAX);
        let window = &context[context.len().saturating_sub(window_len)..];
        let words: Vec<&str> = window.iter().map(String::as_str).collect();
        if (sampling.temperature - 1.0).abs() < f64::EPSILON {
            // Temperature 1 is the ∞-gram distribution itself: draw an occurrence directly.
            let mut random = || {
                rng.unit();
                rng.0
            };
            let Some((word, occurrence, matched)) = view.sample_next(&words, &mut random) else { break };
            longest = matched + 1;
            if !text.is_empty() {
                text.push(' ');
            }
            let start = text.len();
            text.push_str(&word);
            drawn.push((start, text.len(), occurrence));
            context.push(word);
            continue;
        }
        let next = view.next_words(&words, OCCURRENCES_PER_STEP_MAX);
        longest = next.context_len + 1;
        // Only continuations with a listed occurrence can be credited, so only those are drawn.
        let candidates: Vec<&(String, u64, Vec<Occurrence>)> =
            next.candidates.iter().filter(|(_, _, occurrences)| !occurrences.is_empty()).collect();
        if candidates.is_empty() {
            break;
        }
        let choice = if sampling.temperature <= 0.0 {
            // Most frequent; ties to the first word in order.
            candidates
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.1.cmp(&b.1.1).then(b.0.cmp(&a.0)))
                .map_or(0, |(i, _)| i)
        } else {
            let weights: Vec<f64> = candidates
                .iter()
                .map(|(_, count, _)| (*count as f64).powf(1.0 / sampling.temperature))
                .collect();
            let total: f64 = weights.iter().sum();
            let mut target = rng.unit() * total;
            let mut choice = candidates.len() - 1;
            for (index, weight) in weights.iter().enumerate() {
                if target < *weight {
                    choice = index;
                    break;
                }
                target -= weight;
            }
            choice
        };
        let (word, _, occurrences) = candidates[choice];
        let occurrence =
            occurrences[((rng.unit() * occurrences.len() as f64) as usize).min(occurrences.len() - 1)];
        if !text.is_empty() {
            text.push(' ');
        }
        let start = text.len();
        text.push_str(word);
        drawn.push((start, text.len(), occurrence));
        context.push(word.clone());
    }
    let tokens = drawn.len();
    Generation { attribution: exact_attribution(view, &text, &drawn), text, tokens }
}

/// Spans are runs of consecutive words drawn from the same contribution; shares are each
/// contribution's fraction of the words.
fn exact_attribution(view: &IndexView, text: &str, drawn: &[(usize, usize, Occurrence)]) -> Attribution {
    let mut spans: Vec<AttributedSpan> = Vec::new();
    let mut words_by_contribution: BTreeMap<(u64, u64, u64), usize> = BTreeMap::new();
    for &(start, end, occurrence) in drawn {
        *words_by_contribution
            .entry((occurrence.contribution, occurrence.contributor, occurrence.datanet))
            .or_default() += 1;
        match spans.last_mut() {
            Some(span) if span.contributions == [occurrence.contribution] => {
                span.end = end;
                span.words += 1;
            }
            _ => spans.push(AttributedSpan {
                start,
                end,
                text: String::new(),
                words: 1,
                occurrences: 1,
                surprisal_bits: 0.0,
                contributions: vec![occurrence.contribution],
            }),
        }
    }
    for span in &mut spans {
        span.text = text[span.start..span.end].to_owned();
    }
    let total = drawn.len().max(1) as f64;
    let mut contributions: Vec<ContributionShare> = words_by_contribution
        .into_iter()
        .map(|((contribution, contributor, datanet), words)| ContributionShare {
            contribution,
            contributor,
            datanet,
            share: words as f64 / total,
        })
        .collect();
    contributions.sort_by(|a, b| b.share.total_cmp(&a.share).then(a.contribution.cmp(&b.contribution)));
    Attribution { index_version: view.version(), spans, contributions }
}
