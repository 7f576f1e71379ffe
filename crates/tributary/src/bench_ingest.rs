//! `tributary bench ingest`: contributions through the whole pipeline (HTTP, limits, normalisation,
//! hashing, MinHash, containment over the suffix-array index, quality, the writer's duplicate
//! checks and the durable commit) into a datanet that already holds `--existing` contributions;
//! and the near-duplicate lookup's latency over the same number of signatures, next to a
//! brute-force Jaccard scan of every signature (the baseline).

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};
use tributary_validation::minhash::{LshIndex, signature};

use crate::bench_index::{Corpus, percentile};
use crate::client::{Client, field};

#[derive(Args, Debug, Clone)]
pub struct IngestBenchArgs {
    /// Contributions already in the datanet before the timed run.
    #[arg(long, default_value_t = 100_000)]
    existing: usize,
    /// Words per existing contribution.
    #[arg(long, default_value_t = 100)]
    existing_words: usize,
    /// Contributions ingested in each timed run.
    #[arg(long, default_value_t = 6_000)]
    new: usize,
    /// Words per new contribution.
    #[arg(long, default_value_t = 1_000)]
    new_words: usize,
    /// Contributions per batch request in the timed run.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Concurrent clients in the timed run.
    #[arg(long, default_value_t = 2)]
    clients: usize,
    /// Near-duplicate lookups timed (half near-copies of existing texts, half new texts).
    #[arg(long, default_value_t = 2_000)]
    lookups: usize,
}

/// A near-copy: one word in a hundred swapped with its neighbour.
fn near_copy(text: &str, seed: usize) -> String {
    let mut words: Vec<&str> = text.split(' ').collect();
    let mut at = seed % 7;
    while at + 1 < words.len() {
        words.swap(at, at + 1);
        at += 100;
    }
    words.join(" ")
}

pub async fn ingest(args: IngestBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.batch >= 1 && args.batch <= tributary_server::limits::BATCH_ITEMS_MAX,
        "--batch is 1 to 1000"
    );
    let dir = tempfile::tempdir()?;
    let node = crate::node::LocalNode::start(dir.path()).await?;
    let operator = node.operator();
    let corpus = Arc::new(Corpus::new(50_000));

    let contributor = operator.post("/v1/accounts", json!({"name": "contributor"})).await?;
    let contributor = operator.with_key(&field(&contributor, "api_key")?);
    let datanet =
        field(&contributor.post("/v1/datanets", json!({"name": "bench", "license": "CC0"})).await?, "id")?;

    // The existing corpus, through the same pipeline, 1000 to a request.
    eprintln!("contributing {} existing documents of {} words...", args.existing, args.existing_words);
    let started = Instant::now();
    let mut existing_bytes = 0usize;
    let mut accepted_existing = 0usize;
    for start in (0..args.existing).step_by(1000) {
        let batch: Vec<Value> = (start..(start + 1000).min(args.existing))
            .map(|i| {
                let text = corpus.document_of(i, args.existing_words);
                existing_bytes += text.len();
                json!({"title": "old", "text": text})
            })
            .collect();
        let result = contributor
            .post(&format!("/v1/datanets/{datanet}/contributions/batch"), Value::Array(batch))
            .await?;
        accepted_existing += accepted(&result);
    }
    let preload_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "existing: {accepted_existing} accepted, {:.1} MB in {preload_seconds:.1} s; indexing...",
        existing_bytes as f64 / 1e6
    );
    let started = Instant::now();
    operator.post(&format!("/v1/datanets/{datanet}/index"), json!({})).await?;
    eprintln!("indexed in {:.1} s", started.elapsed().as_secs_f64());

    // The timed runs: new documents (distinct from everything) in batches from concurrent clients;
    // first with the default rules, then with containment switched off (no sentence is long
    // enough to search), to show what the suffix-array stage costs.
    let offset = args.existing + 1_000_000;
    let first = timed_run(&corpus, &contributor, &datanet, &args, offset).await?;
    let unsearched = json!({"containment_span_words": 1_000_000});
    owner_put(&contributor, &datanet, unsearched).await?;
    let second = timed_run(&corpus, &contributor, &datanet, &args, offset + args.new).await?;

    // Lookup latency over as many signatures as there are existing contributions.
    eprintln!("building an LSH index of {} signatures for the lookup timing...", args.existing);
    let mut index = LshIndex::new();
    for i in 0..args.existing {
        index.insert(i as u64 + 1, &signature(&corpus.document_of(i, args.existing_words)));
    }
    let queries: Vec<(bool, String)> = (0..args.lookups)
        .map(|q| {
            if q % 2 == 0 {
                (true, near_copy(&corpus.document_of((q * 7919) % args.existing, args.existing_words), q))
            } else {
                (false, corpus.document_of(offset + 2 * args.new + q, args.existing_words))
            }
        })
        .collect();
    let signatures: Vec<_> = queries.iter().map(|(_, text)| signature(text)).collect();
    let threshold = tributary_core::rules::DatanetRules::default().near_duplicate_bps;
    let mut lsh_times = Vec::with_capacity(signatures.len());
    let mut found = 0;
    for ((is_copy, _), query) in queries.iter().zip(&signatures) {
        let started = Instant::now();
        let hit = index.best_match(query, threshold);
        lsh_times.push(started.elapsed());
        found += usize::from(hit.is_some() == *is_copy);
    }
    let brute_queries = signatures.len().min(200);
    let mut brute_times = Vec::with_capacity(brute_queries);
    for query in &signatures[..brute_queries] {
        let started = Instant::now();
        std::hint::black_box(index.best_match_brute_force(query, threshold));
        brute_times.push(started.elapsed());
    }
    let signature_started = Instant::now();
    let mut signed_bytes = 0usize;
    for i in 0..200 {
        let text = corpus.document_of(offset + i, args.new_words);
        signed_bytes += text.len();
        std::hint::black_box(tributary_ledger::store::Screening::measure(&text));
    }
    let measure_mb_s = signed_bytes as f64 / 1e6 / signature_started.elapsed().as_secs_f64();
    lsh_times.sort_unstable();
    brute_times.sort_unstable();
    let mean =
        |times: &[Duration]| times.iter().map(Duration::as_secs_f64).sum::<f64>() / times.len().max(1) as f64;

    println!(
        "\n| pipeline | existing contributions | new contributions | batch × clients | MB/s | contributions/s | accepted |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (label, run, existing) in [
        ("whole pipeline (default rules)", &first, accepted_existing),
        ("without containment (no sentence searched)", &second, accepted_existing + first.accepted),
    ] {
        println!(
            "| {label} | {existing} | {} ({} words, {:.1} MB) | {} × {} | {:.1} | {:.0} | {} of {} |",
            args.new,
            args.new_words,
            run.bytes as f64 / 1e6,
            args.batch,
            args.clients,
            run.bytes as f64 / 1e6 / run.seconds,
            args.new as f64 / run.seconds,
            run.accepted,
            args.new
        );
    }
    println!(
        "\npreload (same pipeline, growing corpus, batches of 1000): {:.1} MB/s, {:.0} contributions/s",
        existing_bytes as f64 / 1e6 / preload_seconds,
        args.existing as f64 / preload_seconds
    );
    println!(
        "screening alone (normalise, hash, shingles, MinHash, quality), one core: {measure_mb_s:.1} MB/s"
    );
    println!("\n| near-duplicate lookup over {} signatures | p50 | p99 | mean | correct |", index.len());
    println!("| --- | ---: | ---: | ---: | ---: |");
    println!(
        "| MinHash LSH (32 bands × 4 rows) | {:.3} ms | {:.3} ms | {:.3} ms | {found} of {} |",
        percentile(&lsh_times, 0.50),
        percentile(&lsh_times, 0.99),
        mean(&lsh_times) * 1000.0,
        lsh_times.len()
    );
    println!(
        "| baseline: brute-force scan of every signature ({brute_queries} queries) | {:.3} ms | {:.3} ms | {:.3} ms | |",
        percentile(&brute_times, 0.50),
        percentile(&brute_times, 0.99),
        mean(&brute_times) * 1000.0
    );
    println!(
        "\nLSH is {:.0}× faster than the brute-force scan (mean latency).",
        mean(&brute_times) / mean(&lsh_times)
    );
    node.stop().await?;
    Ok(())
}

struct Run {
    bytes: usize,
    seconds: f64,
    accepted: usize,
}

async fn owner_put(owner: &Client, datanet: &str, rules: Value) -> anyhow::Result<()> {
    owner.put(&format!("/v1/datanets/{datanet}/rules"), rules).await?;
    Ok(())
}

async fn timed_run(
    corpus: &Arc<Corpus>,
    contributor: &Client,
    datanet: &str,
    args: &IngestBenchArgs,
    offset: usize,
) -> anyhow::Result<Run> {
    let batches: Vec<Vec<Value>> = (0..args.new)
        .collect::<Vec<_>>()
        .chunks(args.batch)
        .map(|chunk| {
            chunk
                .iter()
                .map(|&i| json!({"title": "new", "text": corpus.document_of(offset + i, args.new_words)}))
                .collect()
        })
        .collect();
    let bytes: usize = batches.iter().flatten().map(|item| item["text"].as_str().map_or(0, str::len)).sum();
    let queue = Arc::new(std::sync::Mutex::new(batches));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let queue = Arc::clone(&queue);
        let client = contributor.clone();
        let path = format!("/v1/datanets/{datanet}/contributions/batch");
        tasks.push(tokio::spawn(async move {
            let mut accepted_new = 0usize;
            loop {
                let next = queue.lock().expect("queue lock").pop();
                let Some(batch) = next else { return Ok::<usize, anyhow::Error>(accepted_new) };
                accepted_new += accepted(&client.post(&path, Value::Array(batch)).await?);
            }
        }));
    }
    let mut accepted_new = 0;
    for task in tasks {
        accepted_new += task.await??;
    }
    Ok(Run { bytes, seconds: started.elapsed().as_secs_f64(), accepted: accepted_new })
}

fn accepted(result: &Value) -> usize {
    result["results"].as_array().map_or(0, |items| items.iter().filter(|r| r["status"] == "accepted").count())
}
