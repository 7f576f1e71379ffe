//! `tributary index build|status|verify` on a node's data directory, and `tributary attribute`
//! against a running node.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use tributary_index::store as segment_store;
use tributary_ledger::store::Store;
use tributary_ledger::{SqliteStore, SystemClock};
use tributary_server::indexing::{all_accepted_contributions, datanet_dir, lock_index};

use crate::client::Client;
use crate::node::{DATABASE_FILE, INDEX_DIR, REPLICA_DIR};

fn open_store(data: &Path) -> anyhow::Result<SqliteStore> {
    let database = data.join(DATABASE_FILE);
    anyhow::ensure!(
        database.exists() || !data.join(REPLICA_DIR).exists(),
        "{} belongs to a node on PostgreSQL; such a node keeps its index itself (its replica is not \
         for other processes): use `POST /v1/datanets/{{id}}/index` and `GET /v1/datanets/{{id}}` on the node",
        data.display()
    );
    anyhow::ensure!(database.exists(), "{} has no Tributary database", data.display());
    Ok(SqliteStore::open(&database, Arc::new(SystemClock))?)
}

/// Rebuilds every datanet's index from its accepted contributions (the node must be stopped).
pub async fn build(data: &Path) -> anyhow::Result<()> {
    let root = data.join(INDEX_DIR);
    let _lock = lock_index(&root).context("locking the index")?;
    let store = open_store(data)?;
    let datanets = store.datanets().await?;
    println!(
        "{:<8} {:>13} {:>12} {:>9} {:>12}  version",
        "datanet", "contributions", "tokens", "segments", "bytes"
    );
    for datanet in datanets {
        let contributions = all_accepted_contributions(&store, datanet.id).await?;
        let total_bytes: u64 = contributions.iter().map(|c| c.text.len() as u64).sum();
        let bar = ProgressBar::new(total_bytes);
        if let Ok(style) =
            ProgressStyle::with_template("{msg:>8} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(datanet.id.to_string());
        let dir = datanet_dir(&root, datanet.id);
        segment_store::clear(&dir)?;
        let progress = bar.clone();
        let (segments, dir) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            // The node's own layout, so that it reuses every segment instead of rebuilding.
            let segments = tributary_server::indexing::build_in_layout(
                &dir,
                &contributions,
                tributary_server::indexing::LAYOUT_BLOCK_CONTRIBUTIONS,
                &|bytes| progress.inc(bytes),
            )?;
            Ok((segments, dir))
        })
        .await??;
        bar.finish_and_clear();
        let set = segment_store::load(&dir)?;
        let tokens: usize = segments.iter().map(|s| s.token_count()).sum();
        let bytes: usize = segments.iter().map(|s| s.file_bytes()).sum();
        println!(
            "{:<8} {:>13} {:>12} {:>9} {:>12}  {}",
            datanet.id.to_string(),
            set.contributions,
            tokens,
            segments.len(),
            bytes,
            set.version()
        );
    }
    store.shutdown().await;
    Ok(())
}

/// Prints each datanet's index state.
pub async fn status(data: &Path) -> anyhow::Result<()> {
    let root = data.join(INDEX_DIR);
    let store = open_store(data)?;
    println!(
        "{:<8} {:>8} {:>8} {:>9} {:>12} {:>12}  version",
        "datanet", "indexed", "pending", "segments", "tokens", "bytes"
    );
    for datanet in store.datanets().await? {
        let set = segment_store::load(&datanet_dir(&root, datanet.id))
            .with_context(|| format!("reading the index of {}", datanet.id))?;
        let pending = store.count_accepted_after(datanet.id, set.indexed_through).await?;
        let tokens: usize = set.segments.iter().map(|s| s.token_count()).sum();
        let bytes: usize = set.segments.iter().map(|s| s.file_bytes()).sum();
        println!(
            "{:<8} {:>8} {:>8} {:>9} {:>12} {:>12}  {}",
            datanet.id.to_string(),
            set.contributions,
            pending,
            set.segments.len(),
            tokens,
            bytes,
            set.version()
        );
    }
    store.shutdown().await;
    Ok(())
}

/// Checks every byte of every segment; fails if any is corrupt.
pub async fn verify(data: &Path) -> anyhow::Result<()> {
    let root = data.join(INDEX_DIR);
    let store = open_store(data)?;
    let mut failures = 0;
    for datanet in store.datanets().await? {
        let dir = datanet_dir(&root, datanet.id);
        let outcome = tokio::task::spawn_blocking(move || -> Result<usize, tributary_index::IndexError> {
            let set = segment_store::load(&dir)?;
            for segment in &set.segments {
                segment.verify()?;
            }
            Ok(set.segments.len())
        })
        .await?;
        match outcome {
            Ok(segments) => println!("{}: {segments} segments ok", datanet.id),
            Err(error) => {
                failures += 1;
                println!(
                    "{}: CORRUPT: {error} (the node rebuilds it from the contributions at start)",
                    datanet.id
                );
            }
        }
    }
    store.shutdown().await;
    anyhow::ensure!(failures == 0, "{failures} datanet index(es) corrupt");
    Ok(())
}

/// Attributes a file (or standard input) over datanets or a model, through a running node.
pub async fn attribute(
    client: &Client,
    datanets: &[String],
    model: Option<&str>,
    file: &str,
    as_json: bool,
) -> anyhow::Result<()> {
    let text = if file == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading standard input")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?
    };
    let body = match model {
        Some(model) => json!({"model": model, "text": text}),
        None => json!({"datanets": datanets, "text": text}),
    };
    let result = client.post("/v1/attribution", body).await?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(());
    }
    println!("index version {}", result["index_version"].as_str().unwrap_or("?"));
    let spans = result["spans"].as_array().cloned().unwrap_or_default();
    println!("\n{} span(s)", spans.len());
    for span in &spans {
        let sources: Vec<&str> =
            span["contributions"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        println!(
            "  {:>6}..{:<6} {:>5.1} bits  {:?}  <- {}",
            span["start"],
            span["end"],
            span["surprisal_bits"].as_f64().unwrap_or(0.0),
            span["text"].as_str().unwrap_or(""),
            sources.join(", ")
        );
    }
    let shares = result["contributions"].as_array().cloned().unwrap_or_default();
    println!("\n{:<12} {:<10} {:<8} {:>8}", "contribution", "contributor", "datanet", "share");
    for share in &shares {
        println!(
            "{:<12} {:<10} {:<8} {:>7.2}%",
            share["id"].as_str().unwrap_or("?"),
            share["contributor"].as_str().unwrap_or("?"),
            share["datanet"].as_str().unwrap_or("?"),
            share["share"].as_f64().unwrap_or(0.0) * 100.0
        );
    }
    if shares.is_empty() {
        println!("(nothing attributable)");
    }
    Ok(())
}
