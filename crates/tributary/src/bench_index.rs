//! `tributary bench index`: build throughput, size and attribution latency of the corpus index on a
//! generated corpus.
//!
//! The corpus: documents of 1,000 words in sentences of 8 to 30 words, each word drawn from a
//! Zipf(1) distribution over a synthetic vocabulary (deterministic, so runs are comparable). The
//! answers: 512 words each, alternating passages copied from random documents (20 to 80 words) with
//! runs of words drawn uniformly from the vocabulary (novel text that still shares words, and the
//! odd short phrase, with the corpus).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tributary_attribution::{SpanRule, attribute};
use tributary_index::IndexView;
use tributary_index::segment::{Segment, build_segments_streaming, suffix_array};

#[derive(Args, Debug, Clone)]
pub struct IndexBenchArgs {
    /// Words in the generated corpus.
    #[arg(long, default_value_t = 100_000_000)]
    tokens: u64,
    /// Distinct words in the generated vocabulary (at most 65,534 so it fits one segment).
    #[arg(long, default_value_t = 50_000)]
    vocabulary: usize,
    /// Answers to attribute for the latency figures.
    #[arg(long, default_value_t = 2_000)]
    answers: usize,
    /// Where to write the index (a temporary directory by default).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn vocabulary(size: usize, rng: &mut Rng) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut words = Vec::with_capacity(size);
    while words.len() < size {
        let len = 2 + rng.below(10) as usize;
        let word: String = (0..len).map(|_| (b'a' + rng.below(26) as u8) as char).collect();
        if seen.insert(word.clone()) {
            words.push(word);
        }
    }
    words
}

/// Samples ranks from Zipf(1) by inverting the cumulative distribution.
struct Zipf(Vec<f64>);

impl Zipf {
    fn new(n: usize) -> Zipf {
        let mut cumulative = Vec::with_capacity(n);
        let mut total = 0.0;
        for rank in 1..=n {
            total += 1.0 / rank as f64;
            cumulative.push(total);
        }
        for value in &mut cumulative {
            *value /= total;
        }
        Zipf(cumulative)
    }
    fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.0.partition_point(|&c| c < u).min(self.0.len() - 1)
    }
}

/// The generated corpus: document `index` is always the same 1,000 words.
pub struct Corpus {
    pub words: Vec<String>,
    zipf: Zipf,
}

impl Corpus {
    pub fn new(vocabulary_size: usize) -> Corpus {
        let mut rng = Rng(0x1d3a_2026_1127_0001);
        let words = vocabulary(vocabulary_size, &mut rng);
        let zipf = Zipf::new(words.len());
        Corpus { words, zipf }
    }

    pub fn document(&self, index: usize) -> String {
        self.document_of(index, 1000)
    }

    /// Document `index` with `words` words (a different seed space from [`Corpus::document`]'s
    /// only in length: the first words are the same).
    pub fn document_of(&self, index: usize, words: usize) -> String {
        let mut rng = Rng((0x9e37_79b9_7f4a_7c15 ^ (index as u64).wrapping_mul(0x2545_f491_4f6c_dd1d)) | 1);
        let mut text = String::with_capacity(words * 7);
        let mut in_sentence = 0;
        let mut sentence_len = 8 + rng.below(23);
        for _ in 0..words {
            if in_sentence > 0 {
                text.push(' ');
            }
            text.push_str(&self.words[self.zipf.sample(&mut rng)]);
            in_sentence += 1;
            if in_sentence == sentence_len {
                text.push_str(". ");
                in_sentence = 0;
                sentence_len = 8 + rng.below(23);
            }
        }
        text
    }
}

pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(index).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Asks the kernel to forget cached file pages; false when not permitted.
fn drop_page_cache() -> bool {
    let _ = std::process::Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "1").is_ok()
}

pub fn index(args: IndexBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.vocabulary <= 65_534 && args.vocabulary >= 100,
        "--vocabulary must be 100 to 65,534"
    );
    let temporary = tempfile::tempdir().context("temporary directory")?;
    let dir = args.dir.clone().unwrap_or_else(|| temporary.path().to_owned());
    let mut rng = Rng(0x1d3a_2026_1127_0001);
    let corpus = Corpus::new(args.vocabulary);
    let words = corpus.words.clone();

    let documents_wanted = args.tokens.div_ceil(1000) as usize;
    // Documents are generated from their index alone, so the corpus never has to be held in
    // memory: the build streams them and the answers regenerate the few they quote.
    let generate = |index: usize| corpus.document(index);
    let raw_bytes = std::cell::Cell::new(0u64);
    let bar = ProgressBar::new(documents_wanted as u64);
    if let Ok(style) = ProgressStyle::with_template("{msg:>20} [{bar:30}] {pos}/{len} documents {per_sec}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message("generate + build");
    let started = Instant::now();
    let paths = build_segments_streaming(
        &dir.join("bench-index"),
        (0..documents_wanted).map(|index| {
            let text = generate(index);
            raw_bytes.set(raw_bytes.get() + text.len() as u64);
            (index as u64 + 1, index as u64 % 97 + 1, text)
        }),
        &|_| bar.inc(1),
    )?;
    let generate_and_build_seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let raw_bytes = raw_bytes.get();
    let megabytes = raw_bytes as f64 / 1e6;
    // Generating the corpus is not the index's work: time it alone and subtract it.
    let started = Instant::now();
    let sample = documents_wanted.min(20_000);
    for index in 0..sample {
        std::hint::black_box(generate(index));
    }
    let generate_seconds = started.elapsed().as_secs_f64() * documents_wanted as f64 / sample as f64;
    let build_seconds = (generate_and_build_seconds - generate_seconds).max(f64::EPSILON);

    let segments: Vec<Arc<Segment>> =
        paths.iter().map(|p| Segment::open(p).map(Arc::new)).collect::<Result<_, _>>()?;
    let tokens: usize = segments.iter().map(|s| s.token_count()).sum();
    let word_tokens: u64 = segments.iter().map(|s| s.word_token_count()).sum();
    let file_bytes: usize = segments.iter().map(|s| s.file_bytes()).sum();

    // libsais alone, on exactly the token arrays the build produced.
    let mut libsais_seconds = 0.0;
    for segment in &segments {
        let array: Vec<u16> = (0..segment.token_count()).map(|p| segment.token(p).unwrap_or(0)).collect();
        let started = Instant::now();
        let suffixes = suffix_array(&array)?;
        libsais_seconds += started.elapsed().as_secs_f64();
        anyhow::ensure!(suffixes.len() == array.len(), "libsais returned a full suffix array");
    }
    drop(segments);

    // Answers: passages of the corpus between runs of novel words.
    let mut answers = Vec::with_capacity(args.answers);
    for _ in 0..args.answers {
        let mut answer: Vec<String> = Vec::with_capacity(512);
        while answer.len() < 512 {
            let document = &generate(rng.below(documents_wanted as u64) as usize);
            let document_words: Vec<&str> = document.split(' ').collect();
            let len = 20 + rng.below(61) as usize;
            let start = rng.below((document_words.len() - len) as u64) as usize;
            answer.extend(document_words[start..start + len].iter().map(|w| (*w).to_owned()));
            let novel = 10 + rng.below(40) as usize;
            answer.extend((0..novel).map(|_| words[rng.below(words.len() as u64) as usize].clone()));
        }
        answer.truncate(512);
        answers.push(answer.join(" "));
    }

    let cold_dropped = drop_page_cache();
    let started = Instant::now();
    let segments: Vec<Arc<Segment>> =
        paths.iter().map(|p| Segment::open(p).map(Arc::new)).collect::<Result<_, _>>()?;
    let view = IndexView::new(segments);
    let open_ms = started.elapsed().as_secs_f64() * 1000.0;
    let rule = SpanRule::default();
    let started = Instant::now();
    let first = attribute(&view, &answers[0], &rule);
    let first_query_ms = started.elapsed().as_secs_f64() * 1000.0;

    // Warm: bring every page of the index into the page cache (as a node that has been serving
    // for a while has), run some queries, then measure.
    for path in &paths {
        use std::io::Read;
        let mut file = std::fs::File::open(path)?;
        let mut chunk = vec![0u8; 8 << 20];
        while file.read(&mut chunk)? > 0 {}
    }
    for answer in answers.iter().take(200) {
        let _ = attribute(&view, answer, &rule);
    }
    let mut latencies = Vec::with_capacity(answers.len());
    let mut attributed = 0usize;
    for answer in &answers {
        let started = Instant::now();
        let result = attribute(&view, answer, &rule);
        latencies.push(started.elapsed());
        attributed += usize::from(!result.contributions.is_empty());
    }
    latencies.sort_unstable();

    println!("\n| measure | value |");
    println!("| --- | ---: |");
    println!(
        "| corpus | {tokens} tokens ({word_tokens} words), {megabytes:.0} MB of text, {documents_wanted} documents |"
    );
    println!("| segments | {} |", paths.len());
    println!(
        "| index build (tokenize + libsais + write; generating the corpus, {generate_seconds:.1} s, not counted) | {build_seconds:.1} s, {:.1} MB/s of text |",
        megabytes / build_seconds
    );
    println!(
        "| libsais16 alone on the same tokens | {libsais_seconds:.1} s, {:.1} MB/s of text ({:.2}x the whole build) |",
        megabytes / libsais_seconds,
        build_seconds / libsais_seconds
    );
    println!("| index size | {file_bytes} bytes, {:.2} bytes/token |", file_bytes as f64 / tokens as f64);
    println!(
        "| open ({}) | {open_ms:.1} ms; first 512-word attribution {first_query_ms:.1} ms ({} spans) |",
        if cold_dropped { "page cache dropped" } else { "page cache NOT dropped: not permitted" },
        first.spans.len()
    );
    println!(
        "| attribution, 512-word answers, warm ({} answers, {attributed} attributed) | p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms |",
        latencies.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0)
    );
    Ok(())
}
