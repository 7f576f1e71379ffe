//! Detection quality of the duplicate stages (exact hash of the normal form, then MinHash LSH at
//! the default threshold) on a labelled set built from real text: King James Bible chapters and
//! the Lee news corpus. Originals are registered; queries are perturbed copies of originals
//! (labelled duplicate) and held-out documents (labelled distinct). Asserts F1 ≥ 0.95 and prints
//! precision, recall and F1. Also the flood: 1,000 near-copies of registered documents, of which at
//! most a few may get through.
//!
//! Perturbations (each copy gets one kind, the kinds in turn):
//! - word swaps: about 1 in 100 words of the document swapped with its neighbour,
//! - case and whitespace: random words upper- or title-cased, spaces doubled, lines broken,
//! - boilerplate: a 17-word notice inserted at the start, the end or between paragraphs,
//! - reordered paragraphs: the paragraphs (groups of 4 verses or 2 sentences) shuffled,
//! - combined: word swaps, then case and whitespace changes.
//!
//! Run `scripts/fetch-test-data.sh` first (the test command does).

use std::collections::HashMap;
use std::path::PathBuf;

use tributary_core::rules::DatanetRules;
use tributary_validation::minhash::{LshIndex, signature};
use tributary_validation::{content_hash, normalize};

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

/// Documents as lists of paragraphs: KJV chapters (4 verses a paragraph) and Lee articles (2
/// sentences a paragraph), each at least 120 words long.
fn documents() -> Vec<Vec<String>> {
    let mut chapters: Vec<Vec<String>> = Vec::new();
    let mut current: Option<(String, u64)> = None;
    for line in read("kjv.jsonl").lines() {
        let verse: serde_json::Value = serde_json::from_str(line).expect("kjv line");
        let key = (verse["book"].as_str().expect("book").to_owned(), verse["chapter"].as_u64().expect("ch"));
        if current.as_ref() != Some(&key) {
            current = Some(key);
            chapters.push(Vec::new());
        }
        chapters.last_mut().expect("a chapter").push(verse["text"].as_str().expect("text").to_owned());
    }
    let mut documents: Vec<Vec<String>> =
        chapters.into_iter().map(|verses| verses.chunks(4).map(|c| c.join(" ")).collect()).collect();
    for article in read("lee_background.cor").lines() {
        let sentences: Vec<&str> = article.split_inclusive(". ").collect();
        documents.push(sentences.chunks(2).map(|c| c.concat().trim().to_owned()).collect());
    }
    documents
        .retain(|paragraphs| paragraphs.iter().map(|p| p.split_whitespace().count()).sum::<usize>() >= 120);
    documents
}

const BOILERPLATE: &str = "This document is shared for educational purposes only; all rights remain with \
                           the original authors.";

/// Swaps about one word in a hundred with its neighbour, over the whole document.
fn swap_words(paragraphs: &[String], rng: &mut Rng) -> String {
    let mut words: Vec<Vec<&str>> = paragraphs.iter().map(|p| p.split(' ').collect()).collect();
    let total: usize = words.iter().map(Vec::len).sum();
    for _ in 0..(total / 100).max(1) {
        let paragraph = &mut words[rng.below(paragraphs.len())];
        if paragraph.len() > 1 {
            let at = rng.below(paragraph.len() - 1);
            paragraph.swap(at, at + 1);
        }
    }
    words.iter().map(|p| p.join(" ")).collect::<Vec<_>>().join("\n\n")
}

fn case_and_whitespace(text: &str, rng: &mut Rng) -> String {
    let mut out = String::new();
    for word in text.split(' ') {
        let word = match rng.below(6) {
            0 => word.to_uppercase(),
            1 => word.to_lowercase(),
            _ => word.to_owned(),
        };
        out.push_str(&word);
        out.push_str(match rng.below(8) {
            0 => "  ",
            1 => "\n",
            2 => " \t",
            _ => " ",
        });
    }
    out
}

fn perturb(paragraphs: &[String], kind: usize, rng: &mut Rng) -> String {
    let mut paragraphs = paragraphs.to_vec();
    match kind {
        0 => swap_words(&paragraphs, rng),
        1 => case_and_whitespace(&paragraphs.join("\n\n"), rng),
        2 => {
            let at = rng.below(paragraphs.len() + 1);
            paragraphs.insert(at, BOILERPLATE.to_owned());
            paragraphs.join("\n\n")
        }
        3 => {
            for i in (1..paragraphs.len()).rev() {
                paragraphs.swap(i, rng.below(i + 1));
            }
            paragraphs.join("\n\n")
        }
        _ => case_and_whitespace(&swap_words(&paragraphs, rng), rng),
    }
}

/// The duplicate stages as the store runs them: exact hash first, then the LSH lookup.
struct Registry {
    hashes: HashMap<[u8; 32], u64>,
    lsh: LshIndex,
    threshold_bps: u32,
}

impl Registry {
    fn new() -> Registry {
        Registry {
            hashes: HashMap::new(),
            lsh: LshIndex::new(),
            threshold_bps: DatanetRules::default().near_duplicate_bps,
        }
    }

    fn register(&mut self, id: u64, text: &str) {
        self.hashes.insert(content_hash(&normalize(text)), id);
        self.lsh.insert(id, &signature(text));
    }

    /// The earlier contribution a text duplicates, if any.
    fn duplicate_of(&self, text: &str) -> Option<u64> {
        if let Some(&id) = self.hashes.get(&content_hash(&normalize(text))) {
            return Some(id);
        }
        self.lsh.best_match(&signature(text), self.threshold_bps).map(|m| m.id)
    }
}

#[test]
fn near_duplicate_detection_f1_on_real_text() {
    let documents = documents();
    let mut rng = Rng(0x5eed_0ff1);
    // Every third document is an original; the others are held out as distinct queries.
    let mut registry = Registry::new();
    let mut originals = Vec::new();
    let mut held_out = Vec::new();
    for (index, paragraphs) in documents.iter().enumerate() {
        if index % 3 == 0 {
            let id = originals.len() as u64 + 1;
            registry.register(id, &paragraphs.join("\n\n"));
            originals.push((id, paragraphs));
        } else {
            held_out.push(paragraphs);
        }
    }
    let (mut true_positive, mut false_negative, mut false_positive, mut true_negative) = (0, 0, 0, 0);
    let mut missed_by_kind = [0usize; 5];
    for query in 0..1_500 {
        let (id, paragraphs) = &originals[rng.below(originals.len())];
        let kind = query % 5;
        let copy = perturb(paragraphs, kind, &mut rng);
        match registry.duplicate_of(&copy) {
            Some(found) if found == *id => true_positive += 1,
            Some(_) => {
                false_positive += 1;
                false_negative += 1;
            }
            None => {
                false_negative += 1;
                missed_by_kind[kind] += 1;
            }
        }
    }
    for paragraphs in held_out.iter().take(1_500) {
        match registry.duplicate_of(&paragraphs.join("\n\n")) {
            Some(_) => false_positive += 1,
            None => true_negative += 1,
        }
    }
    let precision = f64::from(true_positive) / f64::from(true_positive + false_positive);
    let recall = f64::from(true_positive) / f64::from(true_positive + false_negative);
    let f1 = 2.0 * precision * recall / (precision + recall);
    let negative_precision = f64::from(true_negative) / f64::from(true_negative + false_negative);
    let negative_recall = f64::from(true_negative) / f64::from(true_negative + false_positive);
    let negative_f1 = 2.0 * negative_precision * negative_recall / (negative_precision + negative_recall);
    println!(
        "near-duplicate detection over {} originals: duplicates tp {true_positive} fn {false_negative} fp \
         {false_positive}, distinct tn {true_negative}; precision {precision:.4} recall {recall:.4} F1 {f1:.4}; \
         macro-F1 {:.4}; missed by perturbation (swaps, case/space, boilerplate, reorder, combined) {missed_by_kind:?}",
        originals.len(),
        (f1 + negative_f1) / 2.0
    );
    assert!(f1 >= 0.95, "F1 {f1:.4} below 0.95");
}

#[test]
fn a_flood_of_near_copies_mostly_fails() {
    let documents = documents();
    let mut rng = Rng(0xf100d);
    let mut registry = Registry::new();
    let originals: Vec<&Vec<String>> = documents.iter().step_by(7).take(100).collect();
    for (index, paragraphs) in originals.iter().enumerate() {
        registry.register(index as u64 + 1, &paragraphs.join("\n\n"));
    }
    let mut accepted = 0;
    for copy in 0..1_000 {
        let paragraphs = originals[rng.below(originals.len())];
        let text = perturb(paragraphs, copy % 5, &mut rng);
        if registry.duplicate_of(&text).is_none() {
            accepted += 1;
            // An accepted copy is registered too, as the store would.
            registry.register(10_000 + copy as u64, &text);
        }
    }
    println!("flood: {accepted} of 1000 near-copies accepted");
    assert!(accepted <= 5, "{accepted} near-copies accepted");
}
