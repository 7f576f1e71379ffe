//! Entry points for the fuzz targets in `fuzz/` (and for the property test that runs them on
//! random input in the ordinary test suite): outside input must never panic or read out of bounds.

use std::io::Write;

use crate::segment::Segment;
use crate::tokenize::{WORD_BYTES_MAX, tokenize};
use crate::view::IndexView;

/// Any bytes as a segment file: opening either fails cleanly or gives a segment whose queries
/// (and verification) complete without panicking.
pub fn segment_file(bytes: &[u8]) {
    let Ok(mut file) = tempfile_in_memory() else { return };
    if file.1.write_all(bytes).is_err() || file.1.flush().is_err() {
        return;
    }
    if let Ok(segment) = Segment::open(&file.0) {
        let _ = segment.verify();
        let view = IndexView::new(vec![std::sync::Arc::new(segment)]);
        let words = ["the", "lord", "a", "b"];
        let _ = view.maximal_spans(&words);
        let _ = view.count_and_occurrences(&words[..2], 16);
        let _ = view.next_words(&words[..1], 16);
        let _ = view.unigram("the");
    }
    let _ = std::fs::remove_file(&file.0);
}

/// Any bytes as text: tokenization keeps its promises.
pub fn tokenizer(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let tokenized = tokenize(&text);
    let mut previous_end = 0;
    for word in tokenized.words() {
        assert!(word.start >= previous_end && word.start < word.end && word.end <= text.len());
        assert!(text.is_char_boundary(word.start) && text.is_char_boundary(word.end));
        assert!(!word.text.is_empty() && word.text.len() <= WORD_BYTES_MAX * 4);
        previous_end = word.end;
    }
    assert_eq!(tokenize(&text), tokenized, "tokenization is deterministic");
}

fn tempfile_in_memory() -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "tributary-fuzz-{}-{}.seg",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let file = std::fs::File::create(&path)?;
    Ok((path, file))
}
