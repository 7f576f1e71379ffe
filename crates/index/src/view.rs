//! Queries over a consistent set of segments (one datanet's, or several datanets' together).
//! Segments have their own vocabularies, so a query is translated into each segment's token ids;
//! a word a segment has never seen cannot match there.

use std::sync::Arc;

use crate::segment::{DOCUMENT_END, DocumentEntry, SENTENCE_END, Segment};

/// Most occurrences listed for one pattern; counting is never capped.
pub const OCCURRENCES_LISTED_MAX: usize = 10_000;

/// A set of segments queried as one corpus.
#[derive(Clone, Debug, Default)]
pub struct IndexView {
    segments: Vec<Arc<Segment>>,
    /// The datanet each segment belongs to (0 when the view was built without datanets).
    datanets: Vec<u64>,
    word_tokens: u64,
}

/// Where a pattern occurs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Occurrence {
    pub datanet: u64,
    pub contribution: u64,
    pub contributor: u64,
    /// Token offset inside the contribution (sentence ends count as tokens).
    pub offset: u64,
}

/// A maximal span of a query: words `start..start + len` occur verbatim in the corpus, and the span
/// cannot be extended on either side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanMatch {
    pub start: usize,
    pub len: usize,
}

/// The ∞-gram's answer for a context: the longest suffix of the context that occurs followed by a
/// word, and the words that follow it with their counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NextWords {
    pub context_len: usize,
    /// (word, count, occurrences) sorted by word; each occurrence is where that continuation is,
    /// sorted. Which occurrences are listed when there are more than the limit depends on the
    /// segment layout; the counts never do.
    pub candidates: Vec<(String, u64, Vec<Occurrence>)>,
}

impl IndexView {
    pub fn new(segments: Vec<Arc<Segment>>) -> IndexView {
        IndexView::with_datanets(segments.into_iter().map(|segment| (0, segment)).collect())
    }

    /// A view over several datanets' segments; occurrences name the datanet they are in.
    pub fn with_datanets(segments: Vec<(u64, Arc<Segment>)>) -> IndexView {
        let word_tokens = segments.iter().map(|(_, s)| s.word_token_count()).sum();
        let (datanets, segments) = segments.into_iter().unzip();
        IndexView { segments, datanets, word_tokens }
    }

    /// The index version of this view: a content hash of its segments, in order.
    pub fn version(&self) -> String {
        let ids: Vec<[u8; 32]> = self.segments.iter().map(|s| s.id()).collect();
        crate::version_of(&ids)
    }

    pub fn segments(&self) -> &[Arc<Segment>] {
        &self.segments
    }

    /// Word tokens in the whole view (separators excluded): the denominator of unigram rarity.
    pub fn word_tokens(&self) -> u64 {
        self.word_tokens
    }

    fn translate(segment: &Segment, words: &[&str]) -> Option<Vec<u16>> {
        words.iter().map(|w| segment.lookup(w)).collect()
    }

    /// How often a word occurs.
    pub fn unigram(&self, word: &str) -> u64 {
        self.segments.iter().filter_map(|s| s.lookup(word).map(|t| s.unigram(t))).sum()
    }

    /// How often a sequence of words occurs.
    pub fn count(&self, words: &[&str]) -> u64 {
        self.count_and_occurrences(words, 0).0
    }

    /// How often a sequence of words occurs, and where (sorted, at most `limit` listed): one
    /// search per segment for both.
    pub fn count_and_occurrences(&self, words: &[&str], limit: usize) -> (u64, Vec<Occurrence>) {
        let mut count = 0;
        let mut found = Vec::new();
        if words.is_empty() {
            return (0, found);
        }
        for (segment, &datanet) in self.segments.iter().zip(&self.datanets) {
            let Some(tokens) = Self::translate(segment, words) else { continue };
            let range = segment.interval(&tokens);
            count += range.len() as u64;
            for rank in range {
                if found.len() >= limit.min(OCCURRENCES_LISTED_MAX) {
                    break;
                }
                if let Some(occurrence) = occurrence_at(segment, datanet, segment.suffix(rank)) {
                    found.push(occurrence);
                }
            }
        }
        found.sort_unstable();
        (count, found)
    }

    /// Where a sequence of words occurs, sorted, at most `limit` of them.
    pub fn occurrences(&self, words: &[&str], limit: usize) -> Vec<Occurrence> {
        self.count_and_occurrences(words, limit).1
    }

    /// For each of `starts` (distinct word offsets in `words`), the length of the longest run of
    /// words from it that occurs anywhere in the view.
    pub fn longest_from(&self, words: &[&str], starts: &[usize]) -> Vec<usize> {
        let queries: Vec<Vec<Option<u16>>> =
            self.segments.iter().map(|s| words.iter().map(|w| s.lookup(w)).collect()).collect();
        self.longest_from_tokens(&queries, starts)
    }

    /// False only if no segment contains the word n-gram with this hash (see `ngrams`).
    pub fn may_contain_ngram(&self, hash: u64) -> bool {
        self.segments.iter().any(|s| s.ngram_filter().may_contain(hash))
    }

    /// Each segment's token ids for `words` (`None` where a segment has never seen the word), in
    /// segment order: look up a text's distinct words once, then translate its sentences.
    pub fn lookup_all(&self, words: &[&str]) -> Vec<Vec<Option<u16>>> {
        self.segments.iter().map(|s| words.iter().map(|w| s.lookup(w)).collect()).collect()
    }

    /// [`IndexView::longest_from`] for a query already translated into each segment's token ids
    /// (`queries[k]` for segment `k`).
    pub fn longest_from_tokens(&self, queries: &[Vec<Option<u16>>], starts: &[usize]) -> Vec<usize> {
        let mut longest = vec![0usize; starts.len()];
        for (segment, query) in self.segments.iter().zip(queries) {
            for (best, found) in longest.iter_mut().zip(segment.longest_matches_at(query, starts)) {
                *best = (*best).max(found);
            }
        }
        longest
    }

    /// The maximal spans of one sentence's words: for each start, the longest run of words from
    /// it that occurs anywhere in the view, kept when it reaches past every earlier span.
    pub fn maximal_spans(&self, words: &[&str]) -> Vec<SpanMatch> {
        let mut longest = vec![0usize; words.len()];
        for segment in &self.segments {
            let query: Vec<Option<u16>> = words.iter().map(|w| segment.lookup(w)).collect();
            for (best, found) in longest.iter_mut().zip(segment.longest_matches(&query)) {
                *best = (*best).max(found);
            }
        }
        let mut spans = Vec::new();
        let mut covered = 0;
        for (start, &len) in longest.iter().enumerate() {
            if len > 0 && start + len > covered {
                covered = start + len;
                spans.push(SpanMatch { start, len });
            }
        }
        spans
    }

    /// The `k` contributions that best match `query` by BM25 (k1 = 1.2, b = 0.75, idf
    /// `ln(1 + (N - df + 0.5) / (df + 0.5))` over the whole view), best first, ties by id.
    pub fn bm25_top(&self, query: &[&str], k: usize) -> Vec<(Occurrence, f64)> {
        let (k1, b) = (1.2, 0.75);
        let documents: usize = self.segments.iter().map(|s| s.documents().len()).sum();
        let total_length: u64 =
            self.segments.iter().map(|s| s.bm25().lengths.iter().map(|&l| u64::from(l)).sum::<u64>()).sum();
        if documents == 0 {
            return Vec::new();
        }
        let average = total_length as f64 / documents as f64;
        let mut terms: Vec<&str> = query.to_vec();
        terms.sort_unstable();
        terms.dedup();
        let df = |term: &str| -> usize {
            self.segments
                .iter()
                .filter_map(|s| s.lookup(term).and_then(|t| s.bm25().postings.get(&t)).map(Vec::len))
                .sum()
        };
        let mut scores: std::collections::HashMap<(usize, u32), f64> = std::collections::HashMap::new();
        for term in terms {
            let frequency = df(term) as f64;
            if frequency == 0.0 {
                continue;
            }
            let idf = (1.0 + (documents as f64 - frequency + 0.5) / (frequency + 0.5)).ln();
            for (index, segment) in self.segments.iter().enumerate() {
                let Some(token) = segment.lookup(term) else { continue };
                let postings = segment.bm25();
                for &(document, tf) in postings.postings.get(&token).into_iter().flatten() {
                    let length = f64::from(postings.lengths[document as usize]);
                    let tf = f64::from(tf);
                    *scores.entry((index, document)).or_default() +=
                        idf * tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * length / average.max(1.0)));
                }
            }
        }
        let mut ranked: Vec<(Occurrence, f64)> = scores
            .into_iter()
            .map(|((index, document), score)| {
                let entry = self.segments[index].documents()[document as usize];
                let occurrence = Occurrence {
                    datanet: self.datanets[index],
                    contribution: entry.contribution,
                    contributor: entry.contributor,
                    offset: 0,
                };
                (occurrence, score)
            })
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.contribution.cmp(&b.0.contribution)));
        ranked.truncate(k);
        ranked
    }

    /// Draws the next word from the ∞-gram distribution at temperature 1 without enumerating it:
    /// a uniformly random occurrence of the longest suffix of `context` that occurs (followed by a
    /// word) is exactly a draw proportional to the continuations' counts, and it names the
    /// occurrence the word came from. `random` supplies uniform 64-bit values. Returns the word,
    /// where it was drawn from, and the context length used.
    pub fn sample_next(
        &self,
        context: &[&str],
        random: &mut dyn FnMut() -> u64,
    ) -> Option<(String, Occurrence, usize)> {
        const DRAWS_PER_LENGTH: usize = 16;
        for context_len in (0..=context.len()).rev() {
            let suffix = &context[context.len() - context_len..];
            let ranges: Vec<(usize, std::ops::Range<usize>)> = self
                .segments
                .iter()
                .enumerate()
                .filter_map(|(index, segment)| {
                    let tokens = Self::translate(segment, suffix)?;
                    let range =
                        if context_len == 0 { 0..segment.token_count() } else { segment.interval(&tokens) };
                    (!range.is_empty()).then_some((index, range))
                })
                .collect();
            let total: usize = ranges.iter().map(|(_, r)| r.len()).sum();
            if total == 0 {
                continue;
            }
            // Occurrences followed by a sentence or document end are redrawn; a context followed
            // only by ends backs off to a shorter one.
            for _ in 0..DRAWS_PER_LENGTH {
                let mut pick = (random() % total as u64) as usize;
                for (index, range) in &ranges {
                    if pick >= range.len() {
                        pick -= range.len();
                        continue;
                    }
                    let segment = &self.segments[*index];
                    let position = segment.suffix(range.start + pick) + context_len;
                    let word = segment.token(position).and_then(|token| segment.word(token));
                    if let (Some(word), Some(occurrence)) =
                        (word, occurrence_at(segment, self.datanets[*index], position))
                    {
                        return Some((word.to_owned(), occurrence, context_len));
                    }
                    break;
                }
            }
        }
        None
    }

    /// The ∞-gram next-word distribution for `context` (the last words of a text): the longest
    /// suffix of the context that occurs followed by a word, every word that follows it with its
    /// exact count, and up to `occurrences_max` occurrences in total (spread evenly over each
    /// word's occurrences) for drawing from.
    ///
    /// Cost: one search per suffix length tried, then one binary search per distinct continuation
    /// (the suffixes following a context are sorted by their next word), never a scan of every
    /// occurrence.
    pub fn next_words(&self, context: &[&str], occurrences_max: usize) -> NextWords {
        for context_len in (0..=context.len()).rev() {
            let suffix = &context[context.len() - context_len..];
            let mut candidates: std::collections::BTreeMap<String, (u64, Vec<Occurrence>)> =
                Default::default();
            let mut ranges: Vec<(usize, usize, std::ops::Range<usize>, String)> = Vec::new();
            for (index, segment) in self.segments.iter().enumerate() {
                let Some(tokens) = Self::translate(segment, suffix) else { continue };
                let range = segment.interval(&tokens);
                let mut start = range.start;
                while start < range.end {
                    let Some(next) = segment.token(segment.suffix(start) + context_len) else {
                        // A suffix ending right here (the very end of the segment) has no next word.
                        start += 1;
                        continue;
                    };
                    let same = segment.narrow(start..range.end, context_len, next);
                    let end = same.end.max(start + 1);
                    if next != DOCUMENT_END
                        && next != SENTENCE_END
                        && let Some(word) = segment.word(next)
                    {
                        candidates.entry(word.to_owned()).or_default().0 += (end - start) as u64;
                        ranges.push((index, context_len, start..end, word.to_owned()));
                    }
                    start = end;
                }
            }
            if candidates.is_empty() {
                continue;
            }
            let total: u64 = candidates.values().map(|(count, _)| count).sum();
            for (index, context_len, range, word) in ranges {
                let segment = &self.segments[index];
                let datanet = self.datanets[index];
                let wanted =
                    (range.len() as u128 * occurrences_max as u128).div_ceil(u128::from(total.max(1)));
                let share = usize::try_from(wanted).unwrap_or(usize::MAX).clamp(1, range.len());
                let stride = range.len() / share;
                let entry = candidates.get_mut(&word).expect("counted above");
                for k in 0..share {
                    let position = segment.suffix(range.start + k * stride.max(1)) + context_len;
                    if let Some(occurrence) = occurrence_at(segment, datanet, position) {
                        entry.1.push(occurrence);
                    }
                }
            }
            for (_, occurrences) in candidates.values_mut() {
                occurrences.sort_unstable();
            }
            return NextWords {
                context_len,
                candidates: candidates
                    .into_iter()
                    .map(|(word, (count, occurrences))| (word, count, occurrences))
                    .collect(),
            };
        }
        NextWords { context_len: 0, candidates: Vec::new() }
    }
}

fn occurrence_at(segment: &Segment, datanet: u64, position: usize) -> Option<Occurrence> {
    let (document, offset): (DocumentEntry, u64) = segment.locate(position)?;
    Some(Occurrence {
        datanet,
        contribution: document.contribution,
        contributor: document.contributor,
        offset,
    })
}
