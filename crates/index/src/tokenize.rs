//! Tokenization: the same text always gives the same tokens, in the index and in queries.
//!
//! Rules (also in ARCHITECTURE.md):
//! - A word is a maximal run of Unicode alphanumeric characters, joined across a single apostrophe
//!   (`'` or `’`) or hyphen that has alphanumerics on both sides ("shepherd's", "well-known").
//! - A word's token text is its NFKC normalization, lowercased (full Unicode lowercase), with `’`
//!   folded to `'`. Its position is the byte range of the original word in the original text, so
//!   spans map back to exact byte offsets.
//! - A sentence ends at `.`, `!` or `?` followed by whitespace or the end of the text, and at a blank
//!   line. Spans never cross a sentence end: the index stores a sentence-end token, and queries are
//!   matched one sentence at a time.
//! - Everything else (punctuation, symbols, whitespace, control characters) separates words and is
//!   otherwise ignored, so punctuation and case differences do not prevent a match.

use unicode_normalization::UnicodeNormalization;

/// Longest word kept, in bytes of token text; longer runs (base64 junk and the like) are cut into
/// pieces of this size so that no token is unbounded.
pub const WORD_BYTES_MAX: usize = 64;

/// One word of a text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    /// Normalized token text.
    pub text: String,
    /// Byte range in the original text.
    pub start: usize,
    pub end: usize,
}

/// A text as sentences of words.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Tokenized {
    pub sentences: Vec<Vec<Word>>,
}

impl Tokenized {
    pub fn words(&self) -> impl Iterator<Item = &Word> {
        self.sentences.iter().flatten()
    }

    pub fn word_count(&self) -> usize {
        self.sentences.iter().map(Vec::len).sum()
    }
}

fn is_joiner(c: char) -> bool {
    matches!(c, '\'' | '’' | '-')
}

/// Normalizes one word: NFKC, lowercase, typographic apostrophe folded.
pub fn normalize_word(word: &str) -> String {
    // NFKC leaves ASCII unchanged, so plain ASCII words (most words) skip it.
    if word.is_ascii() {
        return word.to_ascii_lowercase();
    }
    let normalized: String = word.nfkc().flat_map(char::to_lowercase).collect();
    normalized.replace('’', "'")
}

pub fn tokenize(text: &str) -> Tokenized {
    let mut sentences = Vec::new();
    let mut current: Vec<Word> = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut index = 0;
    let end_sentence = |current: &mut Vec<Word>, sentences: &mut Vec<Vec<Word>>| {
        if !current.is_empty() {
            sentences.push(std::mem::take(current));
        }
    };
    while index < chars.len() {
        let (position, c) = chars[index];
        if c.is_alphanumeric() {
            let start = position;
            let mut next = index + 1;
            loop {
                if next < chars.len() && chars[next].1.is_alphanumeric() {
                    next += 1;
                } else if next + 1 < chars.len()
                    && is_joiner(chars[next].1)
                    && chars[next + 1].1.is_alphanumeric()
                {
                    next += 2;
                } else {
                    break;
                }
            }
            let end = chars.get(next).map_or(text.len(), |&(p, _)| p);
            push_word(&mut current, text, start, end);
            index = next;
            continue;
        }
        let followed_by_space = chars.get(index + 1).is_none_or(|&(_, n)| n.is_whitespace());
        if matches!(c, '.' | '!' | '?') && followed_by_space {
            end_sentence(&mut current, &mut sentences);
        } else if c == '\n' {
            // A blank line (only whitespace between two newlines) ends a sentence too.
            let mut look = index + 1;
            while look < chars.len() && chars[look].1.is_whitespace() && chars[look].1 != '\n' {
                look += 1;
            }
            if look < chars.len() && chars[look].1 == '\n' {
                end_sentence(&mut current, &mut sentences);
            }
        }
        index += 1;
    }
    end_sentence(&mut current, &mut sentences);
    Tokenized { sentences }
}

fn push_word(words: &mut Vec<Word>, text: &str, start: usize, end: usize) {
    let normalized = normalize_word(&text[start..end]);
    if normalized.len() <= WORD_BYTES_MAX {
        words.push(Word { text: normalized, start, end });
        return;
    }
    // Cut an overlong run into pieces on character boundaries of the original text.
    let mut piece_start = start;
    let mut piece_bytes = 0;
    for (offset, c) in text[start..end].char_indices() {
        if piece_bytes + c.len_utf8() > WORD_BYTES_MAX / 2 && piece_bytes > 0 {
            let piece_end = start + offset;
            words.push(Word {
                text: normalize_word(&text[piece_start..piece_end]),
                start: piece_start,
                end: piece_end,
            });
            piece_start = piece_end;
            piece_bytes = 0;
        }
        piece_bytes += c.len_utf8();
    }
    words.push(Word { text: normalize_word(&text[piece_start..end]), start: piece_start, end });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: &[&[&str]]) {
        let tokenized = tokenize(text);
        let got: Vec<Vec<&str>> =
            tokenized.sentences.iter().map(|s| s.iter().map(|w| w.text.as_str()).collect()).collect();
        assert_eq!(got, expected, "{text:?}");
        for word in tokenized.words() {
            assert!(text.is_char_boundary(word.start) && text.is_char_boundary(word.end));
            assert_eq!(normalize_word(&text[word.start..word.end]), word.text.replace('’', "'"));
        }
    }

    #[test]
    fn words_sentences_and_normalization() {
        check(
            "The LORD is my shepherd; I shall not want.",
            &[&["the", "lord", "is", "my", "shepherd", "i", "shall", "not", "want"]],
        );
        check("He said. Then he left!  Why?", &[&["he", "said"], &["then", "he", "left"], &["why"]]);
        check("the shepherd’s well-known rod", &[&["the", "shepherd's", "well-known", "rod"]]);
        check("3.5 per cent, e.g. here", &[&["3", "5", "per", "cent", "e", "g"], &["here"]]);
        check("first para\n\nsecond para", &[&["first", "para"], &["second", "para"]]);
        check("line one\nline two", &[&["line", "one", "line", "two"]]);
        check("ＦＵＬＬ width Ǆ", &[&["full", "width", "dž"]]);
        check("", &[]);
        check(" \u{0}\u{1}--'' ", &[]);
        check("- 'quoted' -dash", &[&["quoted", "dash"]]);
    }

    #[test]
    fn overlong_runs_are_cut() {
        let junk = "x".repeat(200);
        let tokenized = tokenize(&junk);
        assert!(tokenized.words().all(|w| w.text.len() <= WORD_BYTES_MAX));
        assert_eq!(tokenized.words().map(|w| w.end - w.start).sum::<usize>(), 200);
    }
}
