//! `tributary bench ledger`: durable transfers per second.
//!
//! Four measurements in one run, on fresh databases in a temporary directory:
//! 1. the baseline: a plain SQLite loop, one transaction (two balance updates and an insert) per
//!    transfer, with the same WAL + `synchronous=FULL` settings;
//! 2. the embedded store at batch sizes 1, 100 and 8190 (one commit per batch);
//! 3. the HTTP API: concurrent clients each sending `POST /v1/transfers`, every one acknowledged
//!    only after its group commit is durable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tributary_core::registry::AccountKind;
use tributary_core::{AccountId, Amount};
use tributary_ledger::store::{Command, Outcome, Request};
use tributary_ledger::{SqliteStore, SystemClock};

use crate::client::field;

#[derive(Args, Debug, Clone)]
pub struct LedgerBenchArgs {
    /// Transfers for the batch-8190 run (the other runs scale down from it).
    #[arg(long, default_value_t = 1_000_000)]
    transfers: u64,
    /// Accounts transfers move between.
    #[arg(long, default_value_t = 10_000)]
    accounts: u64,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 64)]
    http_clients: usize,
    /// Seconds of HTTP load.
    #[arg(long, default_value_t = 10)]
    http_seconds: u64,
    /// Skip the HTTP measurement.
    #[arg(long)]
    no_http: bool,
}

/// A deterministic pseudo-random account pair stream (xorshift), so runs are comparable.
pub(crate) struct Pairs(pub(crate) u64);

impl Pairs {
    pub(crate) fn next(&mut self, accounts: u64) -> (u64, u64) {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let debit = self.0 % accounts;
        let credit = (debit + 1 + (self.0 >> 32) % (accounts - 1)) % accounts;
        (debit, credit)
    }
}

fn progress(total: u64, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{msg:>22} [{bar:30}] {pos}/{len} {per_sec}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_owned());
    bar
}

pub async fn ledger(args: LedgerBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.accounts >= 2, "--accounts must be at least 2");
    let dir = tempfile::tempdir().context("temporary directory")?;
    let mut rows: Vec<(String, u64, f64)> = Vec::new();

    let baseline_count = (args.transfers / 200).clamp(1_000, 5_000);
    let path = dir.path().join("baseline.db");
    let accounts = args.accounts;
    let rate =
        tokio::task::spawn_blocking(move || plain_sqlite_loop(&path, accounts, baseline_count)).await??;
    rows.push(("plain SQLite, 1 transfer per transaction (baseline)".into(), baseline_count, rate));
    let baseline = rate;

    for (batch, count) in
        [(1usize, baseline_count), (100, (args.transfers / 5).max(10_000)), (8190, args.transfers)]
    {
        let path = dir.path().join(format!("store-{batch}.db"));
        let accounts = args.accounts;
        let rate =
            tokio::task::spawn_blocking(move || store_batches(&path, accounts, batch, count)).await??;
        rows.push((format!("tributary store, batch {batch}"), count, rate));
    }

    if !args.no_http {
        let (count, rate, p50, p99) = http(&args, dir.path()).await?;
        rows.push((
            format!(
                "HTTP POST /v1/transfers, {} clients (p50 {p50:.2} ms, p99 {p99:.2} ms)",
                args.http_clients
            ),
            count,
            rate,
        ));
    }

    println!("\n| workload | transfers | transfers/s | vs baseline |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, count, rate) in &rows {
        println!("| {name} | {count} | {rate:.0} | {:.1}x |", rate / baseline);
    }
    Ok(())
}

/// The baseline: what a straightforward program does, one durable transaction per transfer.
fn plain_sqlite_loop(path: &std::path::Path, accounts: u64, count: u64) -> anyhow::Result<f64> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance TEXT NOT NULL);
         CREATE TABLE transfers (id INTEGER PRIMARY KEY, debit INTEGER, credit INTEGER, amount TEXT);",
    )?;
    {
        let tx = conn.transaction()?;
        for id in 0..accounts {
            tx.execute("INSERT INTO accounts VALUES (?1, '1000000000000')", [id as i64])?;
        }
        tx.commit()?;
    }
    let bar = progress(count, "plain SQLite loop");
    let mut pairs = Pairs(0x9e37_79b9_7f4a_7c15);
    let started = Instant::now();
    for _ in 0..count {
        let (debit, credit) = pairs.next(accounts);
        let tx = conn.transaction()?;
        let balance: String =
            tx.query_row("SELECT balance FROM accounts WHERE id = ?1", [debit as i64], |r| r.get(0))?;
        let balance: u128 = balance.parse()?;
        anyhow::ensure!(balance >= 1, "funded accounts");
        tx.execute(
            "UPDATE accounts SET balance = ?2 WHERE id = ?1",
            rusqlite::params![debit as i64, (balance - 1).to_string()],
        )?;
        let credit_balance: String =
            tx.query_row("SELECT balance FROM accounts WHERE id = ?1", [credit as i64], |r| r.get(0))?;
        let credit_balance: u128 = credit_balance.parse()?;
        tx.execute(
            "UPDATE accounts SET balance = ?2 WHERE id = ?1",
            rusqlite::params![credit as i64, (credit_balance + 1).to_string()],
        )?;
        tx.execute(
            "INSERT INTO transfers (debit, credit, amount) VALUES (?1, ?2, '1')",
            [debit as i64, credit as i64],
        )?;
        tx.commit()?;
        bar.inc(1);
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    Ok(rate)
}

fn store_batches(path: &std::path::Path, accounts: u64, batch: usize, count: u64) -> anyhow::Result<f64> {
    let store = SqliteStore::open(path, Arc::new(SystemClock))?;
    let ids = create_funded_accounts(&store, accounts)?;
    transfer_batches(&[&store], &ids, batch, count, &format!("store, batch {batch}"))
}

/// Sends `count` one-unit transfers between `ids` in batches of `batch`, split evenly over
/// `stores` (one thread each, as separate nodes would), and returns transfers per second.
pub(crate) fn transfer_batches(
    stores: &[&SqliteStore],
    ids: &[AccountId],
    batch: usize,
    count: u64,
    label: &str,
) -> anyhow::Result<f64> {
    let bar = progress(count, label);
    let accounts = ids.len() as u64;
    let share = count / stores.len() as u64;
    let started = Instant::now();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let workers: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(n, store)| {
                let bar = bar.clone();
                scope.spawn(move || -> anyhow::Result<()> {
                    let mut pairs = Pairs(0x9e37_79b9_7f4a_7c15 ^ (n as u64 + 1) << 32);
                    let mut done = 0u64;
                    while done < share {
                        let size = (share - done).min(batch as u64);
                        let requests: Vec<Request> = (0..size)
                            .map(|_| {
                                let (debit, credit) = pairs.next(accounts);
                                Command::Transfer {
                                    from: ids[debit as usize],
                                    to: ids[credit as usize],
                                    amount: Amount(1),
                                }
                                .into()
                            })
                            .collect();
                        let results = store.execute_batch_blocking(requests)?;
                        anyhow::ensure!(
                            results.iter().all(Result::is_ok),
                            "every benchmark transfer succeeds"
                        );
                        done += size;
                        bar.inc(size);
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker.join().map_err(|_| anyhow::anyhow!("a benchmark thread panicked"))??;
        }
        Ok(())
    })?;
    let rate = (share * stores.len() as u64) as f64 / started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    Ok(rate)
}

pub(crate) fn create_funded_accounts(store: &SqliteStore, accounts: u64) -> anyhow::Result<Vec<AccountId>> {
    let mut ids = Vec::with_capacity(accounts as usize);
    let creates: Vec<Request> = (0..accounts)
        .map(|n| {
            Command::CreateAccount {
                kind: AccountKind::User,
                name: format!("bench {n}"),
                payout_address: None,
                api_key_hash: *blake3::hash(format!("bench-key-{n}").as_bytes()).as_bytes(),
            }
            .into()
        })
        .collect();
    for chunk in creates.chunks(8190) {
        for result in store.execute_batch_blocking(chunk.to_vec())? {
            match result? {
                Outcome::AccountCreated(id) => ids.push(id),
                other => anyhow::bail!("unexpected outcome {other:?}"),
            }
        }
    }
    let deposits: Vec<Request> = ids
        .iter()
        .map(|&account| Command::Deposit { account, amount: Amount(1_000_000_000_000) }.into())
        .collect();
    for chunk in deposits.chunks(8190) {
        for result in store.execute_batch_blocking(chunk.to_vec())? {
            result?;
        }
    }
    Ok(ids)
}

/// Runs a node in this process and loads it over loopback HTTP; returns (count, rate, p50 ms, p99 ms).
async fn http(args: &LedgerBenchArgs, dir: &std::path::Path) -> anyhow::Result<(u64, f64, f64, f64)> {
    let node = crate::node::LocalNode::start(&dir.join("http-node")).await?;
    let base = node.base.clone();
    let operator = node.operator();
    let mut clients = Vec::new();
    for n in 0..args.http_clients {
        let created = operator.post("/v1/accounts", json!({"name": format!("http bench {n}")})).await?;
        let id = field(&created, "id")?;
        operator.post("/v1/deposits", json!({"account": id, "amount": "1000000000000"})).await?;
        clients.push((id, field(&created, "api_key")?));
    }
    let http = reqwest::Client::builder().pool_max_idle_per_host(args.http_clients).build()?;
    let deadline = Instant::now() + Duration::from_secs(args.http_seconds);
    let bar = progress(args.http_seconds, "HTTP load (seconds)");
    let ticker = {
        let bar = bar.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                bar.inc(1);
            }
        })
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..clients.len() {
        let key = clients[n].1.clone();
        let to = clients[(n + 1) % clients.len()].0.clone();
        let http = http.clone();
        let url = format!("{base}/v1/transfers");
        tasks.push(tokio::spawn(async move {
            let body = serde_json::to_vec(&json!({"to": to, "amount": "1"})).expect("json");
            let mut latencies_us = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let response = http
                    .post(&url)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await?;
                anyhow::ensure!(response.status().as_u16() == 201, "transfer failed: {}", response.status());
                let _ = response.bytes().await?;
                latencies_us.push(sent.elapsed().as_micros() as u64);
            }
            Ok::<_, anyhow::Error>(latencies_us)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    ticker.abort();
    bar.finish_and_clear();
    node.stop().await?;
    latencies.sort_unstable();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    Ok((latencies.len() as u64, latencies.len() as f64 / elapsed, percentile(0.5), percentile(0.99)))
}
