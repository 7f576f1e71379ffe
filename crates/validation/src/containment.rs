//! Containment: how much of a text is long spans copied from other contributors' accepted text.
//! The spans come from the suffix-array index (the server asks it); this module only decides.
//! A span counts when it is at least the datanet's `containment_span_words` long and occurs in a
//! contribution of someone else; the covered share is the union of such spans over the text's words.

/// A run of the text's words found verbatim in other contributors' contributions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopiedSpan {
    /// Word offset in the text.
    pub start: usize,
    pub words: usize,
    /// Contributions (of other contributors) containing the span.
    pub sources: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Containment {
    /// Share of the text's words covered by counted spans, in basis points.
    pub contained_bps: u32,
    /// Source contributions by words they cover, most first (ties to the lower id), at most
    /// [`SOURCES_LISTED_MAX`].
    pub sources: Vec<u64>,
}

/// Most sources named on a contribution.
pub const SOURCES_LISTED_MAX: usize = 10;

pub fn measure(total_words: usize, spans: &[CopiedSpan], span_words_min: usize) -> Containment {
    let mut covered = vec![false; total_words];
    let mut by_source: std::collections::BTreeMap<u64, usize> = Default::default();
    for span in spans.iter().filter(|s| s.words >= span_words_min && !s.sources.is_empty()) {
        let end = (span.start + span.words).min(total_words);
        for flag in covered.iter_mut().take(end).skip(span.start) {
            *flag = true;
        }
        for &source in &span.sources {
            *by_source.entry(source).or_default() += span.words;
        }
    }
    let covered_words = covered.iter().filter(|&&c| c).count();
    let contained_bps =
        if total_words == 0 { 0 } else { (covered_words as u64 * 10_000 / total_words as u64) as u32 };
    let mut sources: Vec<(u64, usize)> = by_source.into_iter().collect();
    sources.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Containment {
        contained_bps,
        sources: sources.into_iter().take(SOURCES_LISTED_MAX).map(|(id, _)| id).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: usize, words: usize, sources: &[u64]) -> CopiedSpan {
        CopiedSpan { start, words, sources: sources.to_vec() }
    }

    #[test]
    fn union_of_long_spans_from_others() {
        let spans = [span(0, 30, &[4]), span(20, 30, &[9, 4]), span(60, 5, &[2]), span(70, 20, &[])];
        let found = measure(100, &spans, 12);
        // Words 0..50 covered; the 5-word span is too short and the last has no other source.
        assert_eq!(found, Containment { contained_bps: 5_000, sources: vec![4, 9] });
        assert_eq!(measure(0, &[], 12), Containment { contained_bps: 0, sources: vec![] });
    }
}
