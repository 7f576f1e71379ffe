//! Immutable index segments: the infini-gram layout (a token array and its suffix array) over a set
//! of contributions, in one memory-mapped file.
//!
//! File format, version 1 (little endian):
//!
//! | bytes | content |
//! | --- | --- |
//! | 0..8 | magic `TRBSEG\0\x01` |
//! | 8..12 | format version (1) |
//! | 12..16 | header length (512) |
//! | 16..56 | token count, document count, vocabulary size, word-token count, suffix width in bits (u64 each) |
//! | 56..152 | section table: 6 × (offset u64, length u64) |
//! | 152..344 | BLAKE3 of each section, 6 × 32 bytes |
//! | 344..376 | BLAKE3 of bytes 0..344: the segment's id and content hash |
//!
//! Sections, each 8-byte aligned: vocabulary offsets (u32 × (V + 1)), vocabulary bytes (UTF-8,
//! sorted words), documents (contribution u64, contributor u64, first token u64), unigram counts
//! (u32 × (V + 2)), tokens (u16 × N), suffix array (N entries of ⌈log2 N⌉ bits, packed
//! little-endian, then 8 bytes of slack).
//!
//! Token ids: 0 separates documents, 1 ends a sentence, 2.. are the sorted vocabulary. A segment
//! holds at most [`VOCABULARY_WORDS_MAX`] distinct words, so tokens always fit in 16 bits; with the
//! bit-packed suffix array a segment of N tokens takes 2 + ⌈log2 N⌉/8 bytes per token (5.4 at
//! 10^8 tokens, 5.75 at 10^9). The builder starts a new segment when a document would overflow the
//! vocabulary.
//!
//! Opening a segment checks its length, header, section bounds and the checksums of the small
//! sections; the token and suffix-array sections (nearly all the bytes) are checked by
//! [`Segment::verify`], which the index manager runs in the background after opening, so a large
//! index opens in milliseconds. Queries never index out of bounds even on a corrupted file.

use std::fs::File;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::IndexError;

pub const MAGIC: &[u8; 8] = b"TRBSEG\0\x01";
pub const FORMAT_VERSION: u32 = 1;
pub const HEADER_BYTES: usize = 512;
const SECTIONS: usize = 6;
const TABLE_AT: usize = 56;
const CHECKSUMS_AT: usize = TABLE_AT + SECTIONS * 16;
const HEADER_HASH_AT: usize = CHECKSUMS_AT + SECTIONS * 32;

/// Token id separating documents.
pub const DOCUMENT_END: u16 = 0;
/// Token id ending a sentence.
pub const SENTENCE_END: u16 = 1;
const FIRST_WORD_ID: u32 = 2;
/// Distinct words one segment can hold (token ids 2..=65535).
pub const VOCABULARY_WORDS_MAX: usize = 65_534;
/// Tokens in one segment: the suffix array entries are 32-bit and libsais takes an i32 length.
pub const SEGMENT_TOKENS_MAX: usize = i32::MAX as usize - 1;

const SECTION_VOCAB_OFFSETS: usize = 0;
const SECTION_VOCAB_BYTES: usize = 1;
const SECTION_DOCS: usize = 2;
const SECTION_COUNTS: usize = 3;
const SECTION_TOKENS: usize = 4;
const SECTION_SUFFIXES: usize = 5;

/// One contribution to index.
#[derive(Clone, Copy, Debug)]
pub struct DocumentInput<'a> {
    pub contribution: u64,
    pub contributor: u64,
    pub text: &'a str,
}

/// A segment's inverted index: for each word, the documents containing it with its count, and
/// each document's length in words.
#[derive(Debug, Default)]
pub struct Bm25Postings {
    pub postings: std::collections::HashMap<u16, Vec<(u32, u32)>>,
    pub lengths: Vec<u32>,
}

/// Where a document starts in a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DocumentEntry {
    pub contribution: u64,
    pub contributor: u64,
    pub first_token: u64,
}

/// An open, memory-mapped segment.
pub struct Segment {
    path: PathBuf,
    map: memmap2::Mmap,
    id: [u8; 32],
    token_count: usize,
    word_token_count: u64,
    vocabulary: std::collections::HashMap<String, u16>,
    words: Vec<String>,
    documents: Vec<DocumentEntry>,
    counts: Vec<u32>,
    /// `starts[t]..starts[t + 1]` is the suffix-array range of suffixes starting with token `t`
    /// (the suffix array is sorted by first token, and `counts` says how many each token has):
    /// every search starts there instead of at the whole array.
    starts: Vec<usize>,
    tokens_at: usize,
    /// Bits per suffix-array entry: just enough for the largest position.
    suffix_bits: u32,
    suffixes_at: usize,
    checksums: [[u8; 32]; SECTIONS],
    /// The BM25 inverted index, built from the token array on first use.
    bm25: std::sync::OnceLock<Bm25Postings>,
    /// The word n-gram filter for containment checks, built on first use.
    ngrams: std::sync::OnceLock<crate::ngrams::NgramFilter>,
    sections: [(usize, usize); SECTIONS],
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("path", &self.path)
            .field("tokens", &self.token_count)
            .finish_non_exhaustive()
    }
}

/// Builds one or more segment files in `dir` from `documents`, in order, starting a new segment
/// whenever the vocabulary or token limit would be exceeded. Returns the files written.
pub fn build_segments(
    dir: &Path,
    documents: &[DocumentInput<'_>],
    progress: &dyn Fn(u64),
) -> Result<Vec<PathBuf>, IndexError> {
    build_segments_with_limits(dir, documents, VOCABULARY_WORDS_MAX, SEGMENT_TOKENS_MAX, progress)
}

/// [`build_segments`] over documents produced one at a time (owned `(contribution, contributor,
/// text)`), so a large corpus never has to be in memory as text all at once.
pub fn build_segments_streaming(
    dir: &Path,
    documents: impl Iterator<Item = (u64, u64, String)>,
    progress: &dyn Fn(u64),
) -> Result<Vec<PathBuf>, IndexError> {
    build(dir, documents, VOCABULARY_WORDS_MAX, SEGMENT_TOKENS_MAX, progress)
}

/// [`build_segments`] with explicit limits (tests use small ones to exercise splitting).
pub fn build_segments_with_limits(
    dir: &Path,
    documents: &[DocumentInput<'_>],
    vocabulary_max: usize,
    tokens_max: usize,
    progress: &dyn Fn(u64),
) -> Result<Vec<PathBuf>, IndexError> {
    let borrowed =
        documents.iter().map(|d| (d.contribution, d.contributor, std::borrow::Cow::Borrowed(d.text)));
    build(dir, borrowed, vocabulary_max, tokens_max, progress)
}

fn build<T: AsRef<str>>(
    dir: &Path,
    documents: impl Iterator<Item = (u64, u64, T)>,
    vocabulary_max: usize,
    tokens_max: usize,
    progress: &dyn Fn(u64),
) -> Result<Vec<PathBuf>, IndexError> {
    std::fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, e))?;
    let mut written = Vec::new();
    let mut builder = Builder::default();
    let mut buffer = String::new();
    for (contribution, contributor, text) in documents {
        let document = DocumentInput { contribution, contributor, text: text.as_ref() };
        if !builder.add(&document, vocabulary_max, tokens_max, &mut buffer) {
            // The document does not fit beside the others: close the segment and start the next
            // one with it (alone, it is cut where the segment fills, if it must be).
            written.push(std::mem::take(&mut builder).finish(dir)?);
            let fitted = builder.add(&document, vocabulary_max, tokens_max, &mut buffer);
            debug_assert!(fitted, "a document alone in a segment always fits (it is cut)");
        }
        progress(document.text.len() as u64);
    }
    if !builder.documents.is_empty() {
        written.push(builder.finish(dir)?);
    }
    Ok(written)
}

#[derive(Default)]
struct Builder {
    interned: std::collections::HashMap<String, u32>,
    /// Tokens with provisional word ids (first-seen order); remapped to sorted ids at the end.
    tokens: Vec<u32>,
    documents: Vec<DocumentEntry>,
}

impl Builder {
    /// Adds a document; returns false, changing nothing, if it would overflow the vocabulary or
    /// token limit beside documents already here. A document alone is cut where it fills the
    /// segment instead.
    fn add(
        &mut self,
        document: &DocumentInput<'_>,
        vocabulary_max: usize,
        tokens_max: usize,
        buffer: &mut String,
    ) -> bool {
        let alone = self.documents.is_empty();
        let (tokens_before, words_before) = (self.tokens.len(), self.interned.len());
        self.documents.push(DocumentEntry {
            contribution: document.contribution,
            contributor: document.contributor,
            first_token: tokens_before as u64,
        });
        let mut overflow = false;
        let mut full = false;
        let mut sentence_open = false;
        let (interned, tokens) = (&mut self.interned, &mut self.tokens);
        crate::tokenize::for_each_word(document.text, buffer, &mut |piece| {
            if overflow || full {
                return;
            }
            match piece {
                crate::tokenize::Piece::Word { text, .. } => {
                    // Room for this word, a sentence end and the document end.
                    let id = match interned.get(text) {
                        Some(&id) if tokens.len() + 3 <= tokens_max => Some(id),
                        None if interned.len() < vocabulary_max && tokens.len() + 3 <= tokens_max => {
                            let id = interned.len() as u32;
                            interned.insert(text.to_owned(), id);
                            Some(id)
                        }
                        _ => None,
                    };
                    match id {
                        Some(id) => {
                            tokens.push(id + FIRST_WORD_ID);
                            sentence_open = true;
                        }
                        None if alone => full = true,
                        None => overflow = true,
                    }
                }
                crate::tokenize::Piece::SentenceEnd => {
                    if sentence_open {
                        tokens.push(u32::from(SENTENCE_END));
                        sentence_open = false;
                    }
                }
            }
        });
        if overflow {
            self.tokens.truncate(tokens_before);
            self.interned.retain(|_, id| (*id as usize) < words_before);
            self.documents.pop();
            return false;
        }
        if sentence_open {
            self.tokens.push(u32::from(SENTENCE_END));
        }
        self.tokens.push(u32::from(DOCUMENT_END));
        true
    }

    fn finish(self, dir: &Path) -> Result<PathBuf, IndexError> {
        let mut words: Vec<(&String, u32)> = self.interned.iter().map(|(w, &id)| (w, id)).collect();
        words.sort_unstable();
        let mut remap = vec![0u16; words.len()];
        for (rank, (_, provisional)) in words.iter().enumerate() {
            remap[*provisional as usize] = (rank as u32 + FIRST_WORD_ID) as u16;
        }
        let tokens: Vec<u16> = self
            .tokens
            .iter()
            .map(|&t| if t < FIRST_WORD_ID { t as u16 } else { remap[(t - FIRST_WORD_ID) as usize] })
            .collect();
        let documents = self.documents;
        // The provisional tokens are no longer needed; free them before the suffix array doubles
        // the memory in use.
        drop(self.tokens);
        let mut counts = vec![0u32; words.len() + FIRST_WORD_ID as usize];
        for &token in &tokens {
            counts[token as usize] = counts[token as usize].saturating_add(1);
        }
        let word_token_count = tokens.iter().filter(|&&t| u32::from(t) >= FIRST_WORD_ID).count() as u64;
        let suffixes = suffix_array(&tokens)?;

        let mut vocab_offsets: Vec<u8> = Vec::with_capacity((words.len() + 1) * 4);
        let mut vocab_bytes: Vec<u8> = Vec::new();
        for (word, _) in &words {
            vocab_offsets.extend_from_slice(&(vocab_bytes.len() as u32).to_le_bytes());
            vocab_bytes.extend_from_slice(word.as_bytes());
        }
        vocab_offsets.extend_from_slice(&(vocab_bytes.len() as u32).to_le_bytes());
        let mut docs: Vec<u8> = Vec::with_capacity(documents.len() * 24);
        for d in &documents {
            docs.extend_from_slice(&d.contribution.to_le_bytes());
            docs.extend_from_slice(&d.contributor.to_le_bytes());
            docs.extend_from_slice(&d.first_token.to_le_bytes());
        }
        let counts_bytes: Vec<u8> = counts.iter().flat_map(|c| c.to_le_bytes()).collect();

        // Stream the sections to a temporary file, hashing as we go (the large sections are never
        // copied into byte vectors), then write the header in front and name the file by its id.
        let temporary = dir.join(format!(".building-{}.seg.tmp", std::process::id()));
        let io = |e| IndexError::io(&temporary, e);
        let mut file = std::io::BufWriter::with_capacity(1 << 20, File::create(&temporary).map_err(io)?);
        file.write_all(&[0u8; HEADER_BYTES]).map_err(io)?;
        let mut written = HEADER_BYTES;
        let mut table = [(0usize, 0usize); SECTIONS];
        let mut hashes = [[0u8; 32]; SECTIONS];
        let mut write_section =
            |index: usize, chunks: &mut dyn Iterator<Item = Vec<u8>>| -> Result<(), IndexError> {
                let mut hasher = blake3::Hasher::new();
                let offset = written;
                for chunk in chunks {
                    hasher.update(&chunk);
                    file.write_all(&chunk).map_err(io)?;
                    written += chunk.len();
                }
                table[index] = (offset, written - offset);
                hashes[index] = *hasher.finalize().as_bytes();
                let padding = align8(written) - written;
                file.write_all(&[0u8; 8][..padding]).map_err(io)?;
                written += padding;
                Ok(())
            };
        write_section(SECTION_VOCAB_OFFSETS, &mut std::iter::once(vocab_offsets))?;
        write_section(SECTION_VOCAB_BYTES, &mut std::iter::once(vocab_bytes))?;
        write_section(SECTION_DOCS, &mut std::iter::once(docs))?;
        write_section(SECTION_COUNTS, &mut std::iter::once(counts_bytes))?;
        const CHUNK: usize = 1 << 16;
        write_section(
            SECTION_TOKENS,
            &mut tokens.chunks(CHUNK).map(|c| c.iter().flat_map(|t| t.to_le_bytes()).collect()),
        )?;
        let suffix_bits = suffix_bits_for(tokens.len());
        write_section(SECTION_SUFFIXES, &mut pack_bits(&suffixes, suffix_bits, CHUNK))?;

        let mut header = vec![0u8; HEADER_BYTES];
        header[0..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        header[12..16].copy_from_slice(&(HEADER_BYTES as u32).to_le_bytes());
        header[16..24].copy_from_slice(&(tokens.len() as u64).to_le_bytes());
        header[24..32].copy_from_slice(&(documents.len() as u64).to_le_bytes());
        header[32..40].copy_from_slice(&(words.len() as u64).to_le_bytes());
        header[40..48].copy_from_slice(&word_token_count.to_le_bytes());
        header[48..56].copy_from_slice(&u64::from(suffix_bits).to_le_bytes());
        for index in 0..SECTIONS {
            let at = TABLE_AT + index * 16;
            header[at..at + 8].copy_from_slice(&(table[index].0 as u64).to_le_bytes());
            header[at + 8..at + 16].copy_from_slice(&(table[index].1 as u64).to_le_bytes());
            header[CHECKSUMS_AT + index * 32..CHECKSUMS_AT + (index + 1) * 32]
                .copy_from_slice(&hashes[index]);
        }
        let id = blake3::hash(&header[..HEADER_HASH_AT]);
        header[HEADER_HASH_AT..HEADER_HASH_AT + 32].copy_from_slice(id.as_bytes());
        use std::io::{Seek, SeekFrom};
        let mut file = file.into_inner().map_err(|e| IndexError::io(&temporary, e.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(&header).map_err(io)?;
        drop(file);
        let path = dir.join(format!("{}.seg", id.to_hex()));
        std::fs::rename(&temporary, &path).map_err(|e| IndexError::io(&path, e))?;
        Ok(path)
    }
}

fn align8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// Bits needed for positions `0..token_count` (at least 1).
pub fn suffix_bits_for(token_count: usize) -> u32 {
    (usize::BITS - token_count.saturating_sub(1).leading_zeros()).max(1)
}

/// Bytes of a packed suffix array: the bits rounded up, plus 8 bytes of slack for whole-word reads.
fn packed_bytes(count: usize, bits: u32) -> Option<usize> {
    count.checked_mul(bits as usize)?.div_ceil(8).checked_add(8)
}

/// Packs values of `bits` bits each, little-endian, into chunks of about `chunk` values' bytes,
/// followed by 8 zero bytes.
fn pack_bits<'a>(values: &'a [u32], bits: u32, chunk: usize) -> impl Iterator<Item = Vec<u8>> + 'a {
    let mut buffer: u128 = 0;
    let mut filled: u32 = 0;
    let tail = std::iter::once_with(|| vec![0u8; 8]);
    let mut pending: Vec<u8> = Vec::new();
    let mut chunks = values.chunks(chunk);
    let body = std::iter::from_fn(move || {
        let Some(slice) = chunks.next() else {
            // Flush the last partial bytes.
            if filled > 0 {
                let bytes = filled.div_ceil(8) as usize;
                pending.extend_from_slice(&buffer.to_le_bytes()[..bytes]);
                filled = 0;
                buffer = 0;
            }
            return (!pending.is_empty()).then(|| std::mem::take(&mut pending));
        };
        let mut out = std::mem::take(&mut pending);
        out.reserve(slice.len() * bits as usize / 8 + 8);
        for &value in slice {
            buffer |= u128::from(value) << filled;
            filled += bits;
            while filled >= 8 {
                out.push(buffer as u8);
                buffer >>= 8;
                filled -= 8;
            }
        }
        Some(out)
    });
    body.chain(tail)
}

/// Asks the CPU to start loading the cache line holding `bytes[0]`; a hint only.
#[inline]
#[allow(unsafe_code)]
fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching never faults and has no effect on program state; the pointer is derived
    // from a live slice. SSE is part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(bytes.as_ptr().cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// The suffix array of `tokens`, by libsais.
#[allow(unsafe_code)]
pub fn suffix_array(tokens: &[u16]) -> Result<Vec<u32>, IndexError> {
    if tokens.len() > SEGMENT_TOKENS_MAX {
        return Err(IndexError::TooLarge(tokens.len()));
    }
    let mut suffixes = vec![0i32; tokens.len()];
    if tokens.is_empty() {
        return Ok(Vec::new());
    }
    // SAFETY: `tokens` and `suffixes` are valid for `tokens.len()` elements, which fits in i32
    // (checked above); libsais writes exactly n entries of SA with fs = 0 and no frequency table.
    let status = unsafe {
        libsais_sys::libsais16::libsais16(
            tokens.as_ptr(),
            suffixes.as_mut_ptr(),
            tokens.len() as i32,
            0,
            std::ptr::null_mut(),
        )
    };
    if status != 0 {
        return Err(IndexError::Build(format!("libsais16 returned {status}")));
    }
    Ok(suffixes.into_iter().map(|s| s as u32).collect())
}

impl Segment {
    /// Opens and checks a segment file (see the module documentation for what is checked).
    #[allow(unsafe_code)]
    pub fn open(path: &Path) -> Result<Segment, IndexError> {
        let file = File::open(path).map_err(|e| IndexError::io(path, e))?;
        // SAFETY: segment files are immutable once renamed into place; the node never writes to
        // an existing segment, so the mapping does not change under us.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| IndexError::io(path, e))?;
        let corrupt = |what: &str| IndexError::Corrupt { path: path.to_owned(), reason: what.to_owned() };
        if map.len() < HEADER_BYTES {
            return Err(corrupt("shorter than its header (truncated)"));
        }
        if &map[0..8] != MAGIC {
            return Err(corrupt("not a Tributary index segment (bad magic)"));
        }
        let u32_at = |at: usize| u32::from_le_bytes(map[at..at + 4].try_into().expect("4 bytes"));
        let u64_at = |at: usize| u64::from_le_bytes(map[at..at + 8].try_into().expect("8 bytes"));
        let version = u32_at(8);
        if version != FORMAT_VERSION {
            return Err(corrupt(&format!("format version {version}, this build reads {FORMAT_VERSION}")));
        }
        let id: [u8; 32] = map[HEADER_HASH_AT..HEADER_HASH_AT + 32].try_into().expect("32 bytes");
        if *blake3::hash(&map[..HEADER_HASH_AT]).as_bytes() != id {
            return Err(corrupt("header checksum mismatch"));
        }
        let token_count = u64_at(16) as usize;
        let document_count = u64_at(24) as usize;
        let vocabulary_count = u64_at(32) as usize;
        let word_token_count = u64_at(40);
        let suffix_bits = u64_at(48) as u32;
        if suffix_bits != suffix_bits_for(token_count) {
            return Err(corrupt("suffix width disagrees with the token count"));
        }
        let mut sections = [(0usize, 0usize); SECTIONS];
        let mut checksums = [[0u8; 32]; SECTIONS];
        for index in 0..SECTIONS {
            let offset = u64_at(TABLE_AT + index * 16) as usize;
            let length = u64_at(TABLE_AT + index * 16 + 8) as usize;
            if !offset.is_multiple_of(8) || offset.checked_add(length).is_none_or(|end| end > map.len()) {
                return Err(corrupt("a section lies outside the file (truncated)"));
            }
            sections[index] = (offset, length);
            checksums[index] =
                map[CHECKSUMS_AT + index * 32..CHECKSUMS_AT + (index + 1) * 32].try_into().expect("32");
        }
        // Checked arithmetic: a crafted header must not overflow its way past these checks.
        let lengths = || -> Option<[usize; SECTIONS]> {
            Some([
                vocabulary_count.checked_add(1)?.checked_mul(4)?,
                sections[SECTION_VOCAB_BYTES].1,
                document_count.checked_mul(24)?,
                vocabulary_count.checked_add(FIRST_WORD_ID as usize)?.checked_mul(4)?,
                token_count.checked_mul(2)?,
                packed_bytes(token_count, suffix_bits)?,
            ])
        };
        let expected_lengths = lengths().ok_or_else(|| corrupt("header counts overflow"))?;
        let (last_offset, last_length) = sections[SECTIONS - 1];
        if map.len() != align8(last_offset.saturating_add(last_length)) {
            return Err(corrupt("file length disagrees with the header (truncated or extended)"));
        }
        if sections.iter().zip(expected_lengths).any(|(&(_, length), expected)| length != expected)
            || vocabulary_count > VOCABULARY_WORDS_MAX
        {
            return Err(corrupt("section sizes disagree with the header"));
        }
        for index in [SECTION_VOCAB_OFFSETS, SECTION_VOCAB_BYTES, SECTION_DOCS, SECTION_COUNTS] {
            let (offset, length) = sections[index];
            if *blake3::hash(&map[offset..offset + length]).as_bytes() != checksums[index] {
                return Err(corrupt("checksum mismatch in the vocabulary, documents or counts"));
            }
        }
        let (offsets_at, _) = sections[SECTION_VOCAB_OFFSETS];
        let (bytes_at, bytes_len) = sections[SECTION_VOCAB_BYTES];
        let mut words = Vec::with_capacity(vocabulary_count);
        let mut vocabulary = std::collections::HashMap::with_capacity(vocabulary_count);
        for index in 0..vocabulary_count {
            let start = u32_at(offsets_at + index * 4) as usize;
            let end = u32_at(offsets_at + (index + 1) * 4) as usize;
            let word = (start <= end && end <= bytes_len)
                .then(|| std::str::from_utf8(&map[bytes_at + start..bytes_at + end]).ok())
                .flatten()
                .ok_or_else(|| corrupt("vocabulary entry is not UTF-8 or out of range"))?;
            vocabulary.insert(word.to_owned(), (index as u32 + FIRST_WORD_ID) as u16);
            words.push(word.to_owned());
        }
        let (docs_at, _) = sections[SECTION_DOCS];
        let documents: Vec<DocumentEntry> = (0..document_count)
            .map(|index| {
                let at = docs_at + index * 24;
                DocumentEntry {
                    contribution: u64_at(at),
                    contributor: u64_at(at + 8),
                    first_token: u64_at(at + 16),
                }
            })
            .collect();
        if documents.windows(2).any(|pair| pair[0].first_token > pair[1].first_token) {
            return Err(corrupt("documents out of order"));
        }
        let (counts_at, _) = sections[SECTION_COUNTS];
        let counts: Vec<u32> = (0..vocabulary_count + FIRST_WORD_ID as usize)
            .map(|index| u32_at(counts_at + index * 4))
            .collect();
        let mut starts = Vec::with_capacity(counts.len() + 1);
        let mut total = 0usize;
        for &count in &counts {
            starts.push(total);
            total += count as usize;
        }
        starts.push(total);
        if total != token_count {
            return Err(corrupt("token counts do not add up to the token count"));
        }
        Ok(Segment {
            path: path.to_owned(),
            id,
            token_count,
            word_token_count,
            vocabulary,
            words,
            documents,
            counts,
            starts,
            tokens_at: sections[SECTION_TOKENS].0,
            suffixes_at: sections[SECTION_SUFFIXES].0,
            suffix_bits,
            checksums,
            bm25: std::sync::OnceLock::new(),
            ngrams: std::sync::OnceLock::new(),
            sections,
            map,
        })
    }

    /// The segment's word n-gram filter (see `ngrams`), built on first use (one pass over the tokens).
    pub fn ngram_filter(&self) -> &crate::ngrams::NgramFilter {
        self.ngrams.get_or_init(|| {
            let hashes: Vec<u64> = self.words.iter().map(|w| crate::ngrams::word_hash(w)).collect();
            let tokens = (0..self.token_count).map(|position| {
                let token = u32::from(self.token(position).unwrap_or(DOCUMENT_END));
                token.checked_sub(FIRST_WORD_ID).and_then(|index| hashes.get(index as usize).copied())
            });
            crate::ngrams::NgramFilter::build(tokens, self.token_count)
        })
    }

    /// The segment's inverted index for BM25, built on first use (one pass over the tokens).
    pub fn bm25(&self) -> &Bm25Postings {
        self.bm25.get_or_init(|| {
            let mut postings: std::collections::HashMap<u16, Vec<(u32, u32)>> =
                std::collections::HashMap::new();
            let mut lengths = Vec::with_capacity(self.documents.len());
            for (index, document) in self.documents.iter().enumerate() {
                let end =
                    self.documents.get(index + 1).map_or(self.token_count, |next| next.first_token as usize);
                let mut counts: std::collections::HashMap<u16, u32> = std::collections::HashMap::new();
                let mut length = 0u32;
                for position in document.first_token as usize..end.min(self.token_count) {
                    if let Some(token) = self.token(position)
                        && u32::from(token) >= FIRST_WORD_ID
                    {
                        *counts.entry(token).or_default() += 1;
                        length += 1;
                    }
                }
                for (token, count) in counts {
                    postings.entry(token).or_default().push((index as u32, count));
                }
                lengths.push(length);
            }
            Bm25Postings { postings, lengths }
        })
    }

    /// Checks the checksums of the large sections too: every byte of the file.
    pub fn verify(&self) -> Result<(), IndexError> {
        for index in [SECTION_TOKENS, SECTION_SUFFIXES] {
            let (offset, length) = self.sections[index];
            if *blake3::hash(&self.map[offset..offset + length]).as_bytes() != self.checksums[index] {
                return Err(IndexError::Corrupt {
                    path: self.path.clone(),
                    reason: "checksum mismatch in the tokens or the suffix array".into(),
                });
            }
        }
        Ok(())
    }

    pub fn id(&self) -> [u8; 32] {
        self.id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file_bytes(&self) -> usize {
        self.map.len()
    }

    pub fn token_count(&self) -> usize {
        self.token_count
    }

    pub fn word_token_count(&self) -> u64 {
        self.word_token_count
    }

    pub fn documents(&self) -> &[DocumentEntry] {
        &self.documents
    }

    pub fn lookup(&self, word: &str) -> Option<u16> {
        self.vocabulary.get(word).copied()
    }

    pub fn word(&self, token: u16) -> Option<&str> {
        (u32::from(token) >= FIRST_WORD_ID)
            .then(|| self.words.get((u32::from(token) - FIRST_WORD_ID) as usize))
            .flatten()
            .map(String::as_str)
    }

    /// How often a token occurs in this segment.
    pub fn unigram(&self, token: u16) -> u64 {
        u64::from(self.counts.get(token as usize).copied().unwrap_or(0))
    }

    /// The token at a position, `None` past the end.
    #[inline]
    pub fn token(&self, position: usize) -> Option<u16> {
        if position >= self.token_count {
            return None;
        }
        let at = self.tokens_at + position * 2;
        Some(u16::from_le_bytes([self.map[at], self.map[at + 1]]))
    }

    /// Hints the CPU to fetch the suffix-array entry of `rank` into cache.
    #[inline]
    fn prefetch_suffix(&self, rank: usize) {
        let at = self.suffixes_at + rank * self.suffix_bits as usize / 8;
        prefetch(&self.map[at.min(self.map.len() - 1)..]);
    }

    /// Hints the CPU to fetch the token at `position` into cache.
    #[inline]
    fn prefetch_token(&self, position: usize) {
        if position < self.token_count {
            prefetch(&self.map[self.tokens_at + position * 2..]);
        }
    }

    /// The text position of the `rank`-th smallest suffix.
    #[inline]
    pub fn suffix(&self, rank: usize) -> usize {
        // Entries are packed little-endian at `suffix_bits` each; an entry plus its bit shift
        // (at most 32 + 7 bits) always lies inside one 8-byte read, and the section ends with 8
        // bytes of slack so the read never leaves it.
        let bit = rank * self.suffix_bits as usize;
        let at = self.suffixes_at + bit / 8;
        let word = u64::from_le_bytes(self.map[at..at + 8].try_into().expect("eight bytes"));
        ((word >> (bit % 8)) & ((1u64 << self.suffix_bits) - 1)) as usize
    }

    /// Narrows `range` (suffixes sharing a prefix of length `depth`) to those whose next token is
    /// `token`. Suffixes that end before `depth` sort first and never match.
    pub fn narrow(&self, range: Range<usize>, depth: usize, token: u16) -> Range<usize> {
        // Within `range`, the token at `depth` is non-decreasing (None, for an ended suffix, first).
        let key = |rank: usize| self.token(self.suffix(rank).saturating_add(depth));
        let lower = partition(range.clone(), |rank| key(rank) < Some(token));
        let upper = partition(lower..range.end, |rank| key(rank) <= Some(token));
        lower..upper
    }

    /// Compares the suffix at `position` with `pattern` over the pattern's length: `Equal` when
    /// the suffix starts with the pattern, `Less` when it ends first or sorts before it.
    #[inline]
    fn compare_suffix(&self, position: usize, pattern: &[u16]) -> std::cmp::Ordering {
        for (offset, &expected) in pattern.iter().enumerate() {
            match self.token(position.saturating_add(offset)) {
                None => return std::cmp::Ordering::Less,
                Some(token) if token != expected => return token.cmp(&expected),
                Some(_) => {}
            }
        }
        std::cmp::Ordering::Equal
    }

    /// The suffix-array range of suffixes starting with `pattern` (all suffixes for an empty one):
    /// two binary searches comparing whole prefixes.
    pub fn interval(&self, pattern: &[u16]) -> Range<usize> {
        use std::cmp::Ordering;
        let Some(&first) = pattern.first() else { return 0..self.token_count };
        let bucket = self.first_token_range(first);
        let lower = partition(bucket.clone(), |rank| {
            self.compare_suffix(self.suffix(rank), pattern) == Ordering::Less
        });
        if lower == bucket.end || self.compare_suffix(self.suffix(lower), pattern) != Ordering::Equal {
            return lower..lower;
        }
        let upper = partition(lower..bucket.end, |rank| {
            self.compare_suffix(self.suffix(rank), pattern) != Ordering::Greater
        });
        lower..upper
    }

    /// The suffix-array range of suffixes starting with `token`.
    #[inline]
    pub fn first_token_range(&self, token: u16) -> Range<usize> {
        match (self.starts.get(token as usize), self.starts.get(token as usize + 1)) {
            (Some(&start), Some(&end)) => start..end,
            _ => 0..0,
        }
    }

    /// For every start `i` of `query`, the length of the longest run of words starting at `i` that
    /// occurs in this segment (`None` marks a word the segment has never seen; nothing spans it).
    ///
    /// One lower-bound binary search per start for the rest of the query: the longest prefix of a
    /// pattern that occurs is shared with one of the two suffixes next to the pattern's insertion
    /// point. The searches of all starts advance together, one step each per round, so their
    /// independent memory reads overlap instead of waiting on each other.
    pub fn longest_matches(&self, query: &[Option<u16>]) -> Vec<usize> {
        let starts: Vec<usize> = (0..query.len()).collect();
        self.longest_matches_at(query, &starts)
    }

    /// [`Segment::longest_matches`] for the given starts only (distinct, each below `query.len()`), in the
    /// order given: the containment check probes every few words first and looks closer only
    /// where something matched.
    pub fn longest_matches_at(&self, query: &[Option<u16>], starts: &[usize]) -> Vec<usize> {
        use std::cmp::Ordering;
        let len = query.len();
        let dense: Vec<u16> = query.iter().map(|t| t.unwrap_or(DOCUMENT_END)).collect();
        let mut run_end = vec![len; len];
        for i in (0..len).rev() {
            run_end[i] = if query[i].is_none() {
                i
            } else if i + 1 < len {
                run_end[i + 1]
            } else {
                len
            };
        }
        let mut low = vec![0usize; len];
        let mut high = vec![0usize; len];
        for (i, token) in query.iter().enumerate() {
            if let Some(token) = token {
                let bucket = self.first_token_range(*token);
                (low[i], high[i]) = (bucket.start, bucket.end);
            }
        }
        let mut active: Vec<usize> =
            starts.iter().copied().filter(|&i| i < len && low[i] < high[i]).collect();
        let mut positions = vec![0usize; len];
        while !active.is_empty() {
            // Three passes per round so that the reads of all searches are in flight together:
            // prefetch the suffix-array entries, read them and prefetch the text they point to,
            // then compare.
            for &i in &active {
                self.prefetch_suffix(low[i] + (high[i] - low[i]) / 2);
            }
            for &i in &active {
                let position = self.suffix(low[i] + (high[i] - low[i]) / 2);
                positions[i] = position;
                self.prefetch_token(position);
            }
            active.retain(|&i| {
                let middle = low[i] + (high[i] - low[i]) / 2;
                if self.compare_suffix(positions[i], &dense[i..run_end[i]]) == Ordering::Less {
                    low[i] = middle + 1;
                } else {
                    high[i] = middle;
                }
                low[i] < high[i]
            });
        }
        starts
            .iter()
            .map(|&i| {
                if i >= len || query[i].is_none() {
                    return 0;
                }
                let pattern = &dense[i..run_end[i]];
                let lcp = |rank: usize| {
                    let position = self.suffix(rank);
                    pattern
                        .iter()
                        .enumerate()
                        .take_while(|&(k, &t)| self.token(position.saturating_add(k)) == Some(t))
                        .count()
                };
                // The neighbours inside the first token's bucket (outside it nothing matches at all).
                let bucket = self.first_token_range(dense[i]);
                let after = if low[i] < bucket.end { lcp(low[i]) } else { 0 };
                let before = if low[i] > bucket.start { lcp(low[i] - 1) } else { 0 };
                after.max(before)
            })
            .collect()
    }

    /// The document containing a text position, and the position's word offset inside it.
    pub fn locate(&self, position: usize) -> Option<(DocumentEntry, u64)> {
        let index = self.documents.partition_point(|d| d.first_token as usize <= position).checked_sub(1)?;
        let document = self.documents[index];
        Some((document, position as u64 - document.first_token))
    }
}

/// The first index in `range` where `below` turns false (`below` must be monotone).
fn partition(range: Range<usize>, below: impl Fn(usize) -> bool) -> usize {
    let (mut low, mut high) = (range.start, range.end);
    while low < high {
        let middle = low + (high - low) / 2;
        if below(middle) {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    low
}
