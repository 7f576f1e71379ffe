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
    let mut buffer = String::new();
    normalize_into(word, &mut buffer);
    buffer
}

/// What [`for_each_word`] reports, in text order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// A word: its normalized text (valid until the next call) and its byte range in the original.
    Word { text: &'a str, start: usize, end: usize },
    /// A sentence ends here (may repeat; empty sentences mean nothing).
    SentenceEnd,
}

/// Tokenizes `text` without allocating per word: normalized words are written into `buffer` and
/// handed to `visit` one at a time. [`tokenize`] and the index builder both use this, so the index
/// and queries always agree.
pub fn for_each_word(text: &str, buffer: &mut String, visit: &mut dyn FnMut(Piece<'_>)) {
    let bytes = text.as_bytes();
    let char_at = |position: usize| -> Option<char> {
        match bytes.get(position) {
            None => None,
            Some(&byte) if byte < 0x80 => Some(char::from(byte)),
            Some(_) => text[position..].chars().next(),
        }
    };
    let mut position = 0;
    while let Some(c) = char_at(position) {
        let width = c.len_utf8();
        if c.is_alphanumeric() {
            let start = position;
            let mut end = position + width;
            loop {
                match char_at(end) {
                    Some(next) if next.is_alphanumeric() => end += next.len_utf8(),
                    Some(joiner) if is_joiner(joiner) => {
                        let after = end + joiner.len_utf8();
                        match char_at(after) {
                            Some(next) if next.is_alphanumeric() => end = after + next.len_utf8(),
                            _ => break,
                        }
                    }
                    _ => break,
                }
            }
            emit_word(text, start, end, buffer, visit);
            position = end;
            continue;
        }
        if matches!(c, '.' | '!' | '?') && char_at(position + width).is_none_or(char::is_whitespace) {
            visit(Piece::SentenceEnd);
        } else if c == '\n' {
            // A blank line (only whitespace between two newlines) ends a sentence too.
            let mut look = position + 1;
            while let Some(next) = char_at(look) {
                if next == '\n' {
                    visit(Piece::SentenceEnd);
                    break;
                }
                if !next.is_whitespace() {
                    break;
                }
                look += next.len_utf8();
            }
        }
        position += width;
    }
}

fn normalize_into(word: &str, buffer: &mut String) {
    buffer.clear();
    if word.is_ascii() {
        buffer.extend(word.bytes().map(|b| char::from(b.to_ascii_lowercase())));
    } else {
        buffer.extend(word.nfkc().flat_map(char::to_lowercase).map(|c| if c == '’' { '\'' } else { c }));
    }
}

fn emit_word(text: &str, start: usize, end: usize, buffer: &mut String, visit: &mut dyn FnMut(Piece<'_>)) {
    normalize_into(&text[start..end], buffer);
    if buffer.len() <= WORD_BYTES_MAX {
        visit(Piece::Word { text: buffer, start, end });
        return;
    }
    // Cut an overlong run into pieces on character boundaries of the original text.
    let mut piece_start = start;
    let mut piece_bytes = 0;
    for (offset, c) in text[start..end].char_indices() {
        if piece_bytes + c.len_utf8() > WORD_BYTES_MAX / 2 && piece_bytes > 0 {
            let piece_end = start + offset;
            normalize_into(&text[piece_start..piece_end], buffer);
            visit(Piece::Word { text: buffer, start: piece_start, end: piece_end });
            piece_start = piece_end;
            piece_bytes = 0;
        }
        piece_bytes += c.len_utf8();
    }
    normalize_into(&text[piece_start..end], buffer);
    visit(Piece::Word { text: buffer, start: piece_start, end });
}

pub fn tokenize(text: &str) -> Tokenized {
    let mut sentences = Vec::new();
    let mut current: Vec<Word> = Vec::new();
    let mut buffer = String::new();
    for_each_word(text, &mut buffer, &mut |piece| match piece {
        Piece::Word { text, start, end } => current.push(Word { text: text.to_owned(), start, end }),
        Piece::SentenceEnd => {
            if !current.is_empty() {
                sentences.push(std::mem::take(&mut current));
            }
        }
    });
    if !current.is_empty() {
        sentences.push(current);
    }
    Tokenized { sentences }
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
