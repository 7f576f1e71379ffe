//! The rule on small corpora: spliced passages are credited to their sources, common phrases and
//! novel text earn nothing, shares sum to one, and the result is deterministic.

use std::sync::Arc;

use tributary_attribution::{SpanRule, attribute};
use tributary_index::segment::build_segments;
use tributary_index::{DocumentInput, IndexView, Segment};

fn view(dir: &std::path::Path, docs: &[(u64, u64, &str)]) -> IndexView {
    let inputs: Vec<DocumentInput<'_>> = docs
        .iter()
        .map(|&(contribution, contributor, text)| DocumentInput { contribution, contributor, text })
        .collect();
    let paths = build_segments(dir, &inputs, &|_| {}).expect("build");
    IndexView::with_datanets(paths.iter().map(|p| (7, Arc::new(Segment::open(p).expect("open")))).collect())
}

const PSALM_23: &str = "The LORD is my shepherd; I shall not want. He maketh me to lie down in green pastures: \
he leadeth me beside the still waters. He restoreth my soul: he leadeth me in the paths of righteousness for his name's sake.";
const PSALM_1: &str = "Blessed is the man that walketh not in the counsel of the ungodly, nor standeth in the way of sinners, \
nor sitteth in the seat of the scornful. But his delight is in the law of the LORD; and in his law doth he meditate day and night.";
const GENESIS_1: &str = "In the beginning God created the heaven and the earth. And the earth was without form, and void; \
and darkness was upon the face of the deep. And the Spirit of God moved upon the face of the waters.";

#[test]
fn spliced_passages_are_credited_to_their_sources() {
    let dir = tempfile::tempdir().expect("tempdir");
    let view = view(dir.path(), &[(1, 10, PSALM_23), (2, 11, PSALM_1), (3, 12, GENESIS_1)]);
    let rule = SpanRule { min_words: 5, min_surprisal_bits: 10.0, max_occurrences: 4 };
    let answer = "Our reporter notes that he leadeth me beside the still waters, then adds a remark. \
                  Critics wrote that his delight is in the law of the LORD all along.";
    let result = attribute(&view, answer, &rule);
    let ids: Vec<u64> = result.contributions.iter().map(|c| c.contribution).collect();
    assert_eq!(ids.len(), 2, "{result:#?}");
    assert!(ids.contains(&1) && ids.contains(&2));
    let total: f64 = result.contributions.iter().map(|c| c.share).sum();
    assert!((total - 1.0).abs() < 1e-12);
    for span in &result.spans {
        assert_eq!(&answer[span.start..span.end], span.text);
    }
    assert!(result.spans.iter().any(|s| s.text == "he leadeth me beside the still waters"));
    assert!(result.contributions.iter().all(|c| c.datanet == 7));
    assert_eq!(result.contributions.iter().find(|c| c.contribution == 2).map(|c| c.contributor), Some(11));
    // Deterministic: the same text and index give the same result, bit for bit.
    assert_eq!(attribute(&view, answer, &rule), result);
}

#[test]
fn novel_text_and_common_phrases_earn_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let view = view(dir.path(), &[(1, 10, PSALM_23), (2, 11, PSALM_1), (3, 12, GENESIS_1)]);
    let rule = SpanRule::default();
    for text in [
        "",
        "   ",
        "Stocks rose sharply on Tuesday after the central bank held rates.",
        "the face of the",
        "\u{0}\u{1}\u{fffd}",
    ] {
        let result = attribute(&view, text, &rule);
        assert!(result.contributions.is_empty() && result.spans.is_empty(), "{text:?}: {result:?}");
    }
}

#[test]
fn a_span_in_two_contributions_is_shared() {
    let dir = tempfile::tempdir().expect("tempdir");
    let quote = "I will lift up mine eyes unto the hills, from whence cometh my help.";
    let view = view(
        dir.path(),
        &[(1, 10, quote), (2, 11, &format!("{quote} Another line here.")), (3, 12, PSALM_1)],
    );
    let result =
        attribute(&view, quote, &SpanRule { min_words: 5, min_surprisal_bits: 5.0, max_occurrences: 4 });
    let shares: Vec<(u64, f64)> = result.contributions.iter().map(|c| (c.contribution, c.share)).collect();
    assert_eq!(shares.len(), 2);
    assert!((shares[0].1 - 0.5).abs() < 1e-12 && (shares[1].1 - 0.5).abs() < 1e-12, "{shares:?}");
    assert_eq!(shares[0].0, 1, "ties are ordered by id");
}
