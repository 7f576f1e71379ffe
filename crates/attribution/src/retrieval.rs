//! Retrieval attribution: BM25 picks the contributions a question is about; the built-in
//! retrieval model answers extractively from the best one, and an upstream model can be given the
//! best passages in its prompt (RAG). Credit combines the retrieval scores with span attribution of
//! the answer (see [`combine`]).

use std::collections::BTreeMap;

use tributary_index::tokenize::tokenize;
use tributary_index::{IndexView, Occurrence};

use crate::{Attribution, ContributionShare};

/// Passages retrieved per question.
pub const PASSAGES: usize = 3;

/// The best contributions for `question`, with their BM25 scores.
pub fn retrieve(view: &IndexView, question: &str, k: usize) -> Vec<(Occurrence, f64)> {
    let words: Vec<String> = tokenize(question).words().map(|w| w.text.clone()).collect();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    view.bm25_top(&refs, k)
}

/// The extractive answer: from `text`, the sentence sharing the most distinct words with the
/// question (the earliest on ties) and the sentences after it, up to `max_words` words, exactly as
/// written in the contribution.
pub fn extract(text: &str, question: &str, max_words: usize) -> String {
    let asked: std::collections::HashSet<String> =
        tokenize(question).words().map(|w| w.text.clone()).collect();
    let sentences = tokenize(text).sentences;
    let Some(best) = sentences
        .iter()
        .enumerate()
        .max_by_key(|(index, sentence)| {
            let shared: std::collections::HashSet<&str> =
                sentence.iter().map(|w| w.text.as_str()).filter(|w| asked.contains(*w)).collect();
            (shared.len(), std::cmp::Reverse(*index))
        })
        .map(|(index, _)| index)
    else {
        return String::new();
    };
    let words: Vec<_> = sentences[best..].iter().flatten().take(max_words.max(1)).collect();
    match (words.first(), words.last()) {
        (Some(first), Some(last)) => text[first.start..last.end].to_owned(),
        _ => String::new(),
    }
}

/// Combines span attribution of an answer with retrieval credit: each contribution's share is half
/// its span share plus half its share of the retrieval scores (all retrieval when no span was
/// kept, all span when nothing was retrieved). Spans are those of the span attribution.
pub fn combine(spans: Attribution, retrieved: &[(Occurrence, f64)]) -> Attribution {
    let total_score: f64 = retrieved.iter().map(|(_, s)| s).sum();
    let span_weight = match (spans.contributions.is_empty(), total_score > 0.0) {
        (true, _) => 0.0,
        (false, false) => 1.0,
        (false, true) => 0.5,
    };
    let mut shares: BTreeMap<(u64, u64, u64), f64> = BTreeMap::new();
    for share in &spans.contributions {
        *shares.entry((share.contribution, share.contributor, share.datanet)).or_default() +=
            span_weight * share.share;
    }
    if total_score > 0.0 {
        for (occurrence, score) in retrieved {
            *shares
                .entry((occurrence.contribution, occurrence.contributor, occurrence.datanet))
                .or_default() += (1.0 - span_weight) * score / total_score;
        }
    }
    let mut contributions: Vec<ContributionShare> = shares
        .into_iter()
        .filter(|(_, share)| *share > 0.0)
        .map(|((contribution, contributor, datanet), share)| ContributionShare {
            contribution,
            contributor,
            datanet,
            share,
        })
        .collect();
    contributions.sort_by(|a, b| b.share.total_cmp(&a.share).then(a.contribution.cmp(&b.contribution)));
    Attribution { index_version: spans.index_version, spans: spans.spans, contributions }
}
