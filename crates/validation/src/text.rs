//! Limits and normalisation. The normal form is what is hashed: Unicode NFC, and every run of
//! whitespace folded to one space with none at the ends, so that trivially different encodings
//! and layouts of one text hash alike. Case is kept (changing case changes meaning sometimes);
//! case variants are caught by the near-duplicate stage, whose shingles are case-folded.

use tributary_core::rules::DatanetRules;
use unicode_normalization::UnicodeNormalization;

/// A limit a text breaks; the message names the datanet setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitViolation {
    #[error("text has {bytes} bytes after normalisation; this datanet's min_bytes is {min_bytes}")]
    TooShort { bytes: usize, min_bytes: u32 },
    #[error("text has {bytes} bytes; this datanet's max_bytes is {max_bytes}")]
    TooLong { bytes: usize, max_bytes: u32 },
    #[error("text has {words} words; this datanet's min_words is {min_words}")]
    TooFewWords { words: usize, min_words: u32 },
}

/// The normal form of a text (see the module documentation).
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    // ASCII text is already in NFC; skipping the normaliser saves most of the cost.
    let mut push = |c: char| {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
        } else {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(c);
        }
    };
    if text.is_ascii() {
        text.chars().for_each(&mut push);
    } else {
        text.nfc().for_each(&mut push);
    }
    out
}

/// BLAKE3 of the normal form: the exact-duplicate key.
pub fn content_hash(normalized: &str) -> [u8; 32] {
    *blake3::hash(normalized.as_bytes()).as_bytes()
}

/// Words as the pipeline counts them: maximal runs of alphanumeric characters.
pub fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty())
}

/// Checks the datanet's size limits: the raw text's bytes against `max_bytes`, the normal form's
/// bytes and words against `min_bytes` and `min_words`.
pub fn check_limits(
    text_bytes: usize,
    normalized_bytes: usize,
    words: usize,
    rules: &DatanetRules,
) -> Result<(), LimitViolation> {
    if text_bytes > rules.max_bytes as usize {
        return Err(LimitViolation::TooLong { bytes: text_bytes, max_bytes: rules.max_bytes });
    }
    if normalized_bytes < rules.min_bytes as usize {
        return Err(LimitViolation::TooShort { bytes: normalized_bytes, min_bytes: rules.min_bytes });
    }
    if words < rules.min_words as usize {
        return Err(LimitViolation::TooFewWords { words, min_words: rules.min_words });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        assert_eq!(normalize(input), expected, "{input:?}");
    }

    #[test]
    fn normal_form_folds_whitespace_and_composes() {
        check("a  b\n\n c\t", "a b c");
        check("  lead and trail  ", "lead and trail");
        check("", "");
        check(" \n ", "");
        // e + combining acute → é (NFC), and a no-break space is whitespace.
        check("caf\u{0065}\u{0301}\u{00a0}au lait", "caf\u{00e9} au lait");
        assert_eq!(content_hash(&normalize("a b")), content_hash(&normalize(" a\n\tb ")));
        assert_ne!(content_hash(&normalize("a b")), content_hash(&normalize("A b")));
    }

    #[test]
    fn limits_name_the_setting() {
        let rules = DatanetRules { min_bytes: 5, max_bytes: 20, min_words: 3, ..DatanetRules::default() };
        let limit = |text: &str| {
            let normalized = normalize(text);
            check_limits(text.len(), normalized.len(), words(&normalized).count(), &rules)
        };
        assert_eq!(limit("one two three"), Ok(()));
        assert_eq!(limit("  a  "), Err(LimitViolation::TooShort { bytes: 1, min_bytes: 5 }));
        assert_eq!(limit("one, two"), Err(LimitViolation::TooFewWords { words: 2, min_words: 3 }));
        assert_eq!(limit(&"x ".repeat(11)), Err(LimitViolation::TooLong { bytes: 22, max_bytes: 20 }));
        assert!(limit("one").expect_err("too short").to_string().contains("min_bytes"));
    }
}
