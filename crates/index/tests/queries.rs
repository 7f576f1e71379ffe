//! Index queries against a naive scan of the same text, for random corpora; splitting the corpus
//! into many segments (as appends and merges do) answers exactly like one segment; corrupted and
//! truncated files are detected.

use std::sync::Arc;

use proptest::prelude::*;
use tributary_index::segment::{build_segments, build_segments_with_limits};
use tributary_index::tokenize::tokenize;
use tributary_index::{DocumentInput, IndexView, Occurrence, Segment};

const WORDS: [&str; 6] = ["alpha", "beta", "gamma", "delta", "omega", "sigma"];

fn document() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::collection::vec(0usize..WORDS.len(), 0..12), 0..4).prop_map(
        |sentences| {
            sentences
                .iter()
                .map(|s| s.iter().map(|&w| WORDS[w]).collect::<Vec<_>>().join(" "))
                .collect::<Vec<_>>()
                .join(". ")
        },
    )
}

/// The naive model: each document as its token list, with `None` marking sentence ends.
fn naive_tokens(text: &str) -> Vec<Option<String>> {
    let mut tokens = Vec::new();
    for sentence in tokenize(text).sentences {
        tokens.extend(sentence.into_iter().map(|w| Some(w.text)));
        tokens.push(None);
    }
    tokens
}

fn naive_occurrences(docs: &[String], pattern: &[&str]) -> Vec<Occurrence> {
    let mut found = Vec::new();
    for (index, doc) in docs.iter().enumerate() {
        let tokens = naive_tokens(doc);
        for start in 0..tokens.len() {
            let matches = pattern.len() <= tokens.len() - start
                && pattern.iter().zip(&tokens[start..]).all(|(p, t)| t.as_deref() == Some(*p));
            if matches && !pattern.is_empty() {
                found.push(Occurrence {
                    datanet: 0,
                    contribution: index as u64 + 1,
                    contributor: 100 + index as u64 % 3,
                    offset: start as u64,
                });
            }
        }
    }
    found.sort_unstable();
    found
}

fn inputs(docs: &[String]) -> Vec<DocumentInput<'_>> {
    docs.iter()
        .enumerate()
        .map(|(i, text)| DocumentInput { contribution: i as u64 + 1, contributor: 100 + i as u64 % 3, text })
        .collect()
}

fn build(dir: &std::path::Path, docs: &[String], vocabulary_max: usize) -> IndexView {
    let paths =
        build_segments_with_limits(dir, &inputs(docs), vocabulary_max, 1 << 30, &|_| {}).expect("build");
    IndexView::new(paths.iter().map(|p| Arc::new(Segment::open(p).expect("open"))).collect())
}

/// One segment per document, as the node builds them when contributions arrive one by one.
fn build_appended(dir: &std::path::Path, docs: &[String]) -> IndexView {
    let mut segments = Vec::new();
    for input in inputs(docs) {
        for path in build_segments(dir, &[input], &|_| {}).expect("build") {
            segments.push(Arc::new(Segment::open(&path).expect("open")));
        }
    }
    IndexView::new(segments)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn queries_match_a_naive_scan(
        docs in proptest::collection::vec(document(), 1..8),
        pattern in proptest::collection::vec(0usize..WORDS.len(), 1..4),
        query in proptest::collection::vec(0usize..WORDS.len(), 0..10),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let one = build(&dir.path().join("one"), &docs, 65_534);
        let many = build_appended(&dir.path().join("many"), &docs);
        let pattern: Vec<&str> = pattern.iter().map(|&w| WORDS[w]).collect();
        let expected = naive_occurrences(&docs, &pattern);
        for view in [&one, &many] {
            prop_assert_eq!(view.count(&pattern), expected.len() as u64);
            prop_assert_eq!(view.occurrences(&pattern, usize::MAX), expected.clone());
            for word in WORDS {
                prop_assert_eq!(view.unigram(word), naive_occurrences(&docs, &[word]).len() as u64);
            }
        }
        // Maximal spans: longest naive match from each start, kept when not inside an earlier span.
        let query: Vec<&str> = query.iter().map(|&w| WORDS[w]).collect();
        let mut covered = 0;
        let mut expected_spans = Vec::new();
        for start in 0..query.len() {
            let len = (1..=query.len() - start).rev().find(|&len| !naive_occurrences(&docs, &query[start..start + len]).is_empty()).unwrap_or(0);
            if len > 0 && start + len > covered {
                covered = start + len;
                expected_spans.push((start, len, naive_occurrences(&docs, &query[start..start + len]).len() as u64));
            }
        }
        for view in [&one, &many] {
            let spans: Vec<(usize, usize, u64)> = view
                .maximal_spans(&query)
                .iter()
                .map(|s| (s.start, s.len, view.count_and_occurrences(&query[s.start..s.start + s.len], 0).0))
                .collect();
            prop_assert_eq!(&spans, &expected_spans);
        }
        // The ∞-gram continuation counts agree between one segment and many.
        let context = &query[..query.len().min(2)];
        prop_assert_eq!(one.next_words(context, usize::MAX), many.next_words(context, usize::MAX));
    }
}

#[test]
fn next_words_follow_the_longest_matching_context() {
    let dir = tempfile::tempdir().expect("tempdir");
    let docs = vec!["the lord is my shepherd".to_owned(), "the lord is good. my cup runneth over".to_owned()];
    let view = build(dir.path(), &docs, 65_534);
    let next = view.next_words(&["praise", "the", "lord", "is"], 100);
    assert_eq!(next.context_len, 3, "\"praise\" never occurs, so the context backs off to three words");
    let words: Vec<(&str, u64)> = next.candidates.iter().map(|(w, c, _)| (w.as_str(), *c)).collect();
    assert_eq!(words, [("good", 1), ("my", 1)]);
    assert_eq!(
        next.candidates[1].2,
        [Occurrence { datanet: 0, contribution: 1, contributor: 100, offset: 3 }]
    );
    // Nothing follows a sentence's last word across its end.
    assert!(
        view.next_words(&["good"], 100).candidates.is_empty()
            || view.next_words(&["good"], 100).context_len == 0
    );
}

#[test]
fn corruption_and_truncation_are_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = "The LORD is my shepherd; I shall not want. He maketh me to lie down in green pastures.";
    let paths =
        build_segments(dir.path(), &[DocumentInput { contribution: 1, contributor: 2, text }], &|_| {})
            .expect("build");
    let path = &paths[0];
    let good = std::fs::read(path).expect("read");
    let segment = Segment::open(path).expect("a fresh segment opens");
    segment.verify().expect("and verifies");
    drop(segment);

    let check = |bytes: &[u8], expect_open_error: bool| {
        std::fs::write(path, bytes).expect("write");
        match Segment::open(path) {
            Err(error) => assert!(expect_open_error, "unexpected open error {error}"),
            Ok(segment) => {
                assert!(!expect_open_error, "corruption went unnoticed at open");
                assert!(segment.verify().is_err(), "verify catches what open does not check");
            }
        }
    };
    check(&good[..good.len() - 3], true);
    check(&good[..100], true);
    check(&[], true);
    let mut flipped = good.clone();
    flipped[20] ^= 1; // token count in the header
    check(&flipped, true);
    let mut flipped = good.clone();
    flipped[520] ^= 1; // the vocabulary
    check(&flipped, true);
    let mut flipped = good.clone();
    let last = flipped.len() - 9; // inside the suffix array
    flipped[last] ^= 0x40;
    check(&flipped, false);
    let mut garbage = good.clone();
    garbage[0] = b'X';
    check(&garbage, true);
}

#[test]
fn a_full_vocabulary_starts_a_new_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let docs = vec!["alpha beta".to_owned(), "gamma delta".to_owned(), "alpha omega".to_owned()];
    let paths = build_segments_with_limits(dir.path(), &inputs(&docs), 3, 1 << 30, &|_| {}).expect("build");
    // The second document would bring a fourth word into the first segment, the third a fifth
    // into the second.
    assert_eq!(paths.len(), 3);
    let view = IndexView::new(paths.iter().map(|p| Arc::new(Segment::open(p).expect("open"))).collect());
    assert_eq!(view.count(&["alpha"]), 2);
    assert_eq!(view.count(&["gamma", "delta"]), 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The fuzz targets' bodies on random input: random bytes, and a real segment with random
    /// bytes overwritten (which reaches far deeper than random bytes do).
    #[test]
    fn fuzz_bodies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8)) {
        tributary_index::fuzzing::tokenizer(&bytes);
        tributary_index::fuzzing::segment_file(&bytes);
        let dir = tempfile::tempdir().expect("tempdir");
        let text = "The LORD is my shepherd; I shall not want. He maketh me to lie down.";
        let paths = build_segments(dir.path(), &[DocumentInput { contribution: 1, contributor: 1, text }], &|_| {}).expect("build");
        let mut segment = std::fs::read(&paths[0]).expect("read");
        for (at, value) in flips {
            let len = segment.len();
            segment[at % len] = value;
        }
        tributary_index::fuzzing::segment_file(&segment);
    }
}
