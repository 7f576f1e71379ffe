//! `tributary bench cluster`: the PostgreSQL backend with one and two nodes, next to the embedded
//! store, in one run.
//!
//! 1. Batched transfers per second through the store (batches of 1000 and 8190 one-unit transfers
//!    between 10^4 accounts): embedded; one node on PostgreSQL; two nodes on one PostgreSQL
//!    database, each sending half from its own thread. The baseline is PostgreSQL alone doing what
//!    a set-based SQL ledger does per batch of 1000: one transaction that updates the balances of
//!    the batch's accounts in id order (with a no-overdraft check) and inserts its transfers, one
//!    `unnest` statement each.
//! 2. Paid requests per second over HTTP on the built-in ∞-gram model (closed loop): one embedded
//!    node; one node on PostgreSQL; two nodes on one database with the clients split between them.
//!
//! Every PostgreSQL run gets a fresh database (`tributary_bench_…`, dropped afterwards) and ends
//! by checking that debits equal credits on every node and in the database's own mirror.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};
use tributary_ledger::store::ReceiptSigner;
use tributary_ledger::{SqliteStore, Store, SystemClock};

use crate::bench::{create_funded_accounts, transfer_batches};
use crate::bench_inference::{closed_loop, setup};
use crate::config::StoreLocation;
use crate::node::{LocalNode, NODE_KEY_FILE, OPERATOR_KEY_FILE};

#[derive(Args, Debug, Clone)]
pub struct ClusterBenchArgs {
    /// PostgreSQL server to create the benchmark's databases on (a URL without a database name).
    #[arg(long, env = "TRIBUTARY_BENCH_POSTGRES", default_value = "postgresql://postgres@127.0.0.1:5432")]
    postgres: String,
    /// Transfers per store run.
    #[arg(long, default_value_t = 400_000)]
    transfers: u64,
    /// Accounts transfers move between.
    #[arg(long, default_value_t = 10_000)]
    accounts: u64,
    /// Concurrent HTTP clients for the paid-request runs.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds of each paid-request run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Words of generated text in the model's datanet.
    #[arg(long, default_value_t = 1_000_000)]
    tokens: u64,
    /// Completion length of the paid requests, in tokens.
    #[arg(long, default_value_t = 16)]
    max_tokens: u32,
    /// Skip the paid-request runs.
    #[arg(long)]
    no_http: bool,
}

/// Runs blocking PostgreSQL client work on a thread of its own (the synchronous client drives its
/// own runtime, which must not run on the async one's threads).
fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    std::thread::spawn(work).join().map_err(|_| anyhow::anyhow!("PostgreSQL helper thread panicked"))?
}

/// A database for one run, dropped with it.
struct BenchDatabase {
    server: String,
    name: String,
}

impl BenchDatabase {
    fn create(server: &str, label: &str) -> anyhow::Result<BenchDatabase> {
        let name = format!("tributary_bench_{label}_{}", std::process::id());
        let (admin, create) = (format!("{server}/postgres"), name.clone());
        off_runtime(move || {
            let mut client = postgres::Client::connect(&admin, postgres::NoTls)
                .with_context(|| format!("connecting to {admin}"))?;
            client.batch_execute(&format!("DROP DATABASE IF EXISTS {create} WITH (FORCE)"))?;
            client.batch_execute(&format!("CREATE DATABASE {create}"))?;
            Ok(())
        })?;
        Ok(BenchDatabase { server: server.to_owned(), name })
    }

    fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    /// Checks the database's mirror of the ledger: debits equal credits.
    fn check_balanced(&self) -> anyhow::Result<()> {
        let url = self.url();
        off_runtime(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
            let balanced: bool = client
                .query_one(
                    "SELECT COALESCE(sum(debits_posted) = sum(credits_posted) \
                     AND sum(debits_pending) = sum(credits_pending), true) FROM account_balances",
                    &[],
                )?
                .get(0);
            anyhow::ensure!(balanced, "the PostgreSQL mirror of the ledger does not balance");
            Ok(())
        })
    }
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        let (admin, name) = (format!("{}/postgres", self.server), self.name.clone());
        let _ = off_runtime(move || {
            let mut client = postgres::Client::connect(&admin, postgres::NoTls)?;
            client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
            Ok(())
        });
    }
}

/// The baseline: batches of set-based SQL on PostgreSQL alone, no node involved.
fn plain_postgres(url: String, accounts: u64, batch: usize, count: u64) -> anyhow::Result<f64> {
    off_runtime(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
        client.batch_execute(
            "CREATE TABLE plain_accounts (id bigint PRIMARY KEY, balance numeric(39,0) NOT NULL CHECK (balance >= 0));
             CREATE TABLE plain_transfers (id bigint PRIMARY KEY, debit bigint NOT NULL, credit bigint NOT NULL,
                 amount numeric(39,0) NOT NULL);",
        )?;
        client.execute(
            "INSERT INTO plain_accounts SELECT id, 1000000000000 FROM generate_series(0, $1::int8 - 1) AS id",
            &[&(accounts as i64)],
        )?;
        let update = client.prepare(
            "UPDATE plain_accounts SET balance = balance + d.delta::numeric \
             FROM unnest($1::int8[], $2::text[]) AS d(id, delta) WHERE plain_accounts.id = d.id",
        )?;
        let insert = client.prepare(
            "INSERT INTO plain_transfers SELECT id, debit, credit, 1 \
             FROM unnest($1::int8[], $2::int8[], $3::int8[]) AS t(id, debit, credit)",
        )?;
        let mut pairs = crate::bench::Pairs(0x9e37_79b9_7f4a_7c15);
        let (mut done, mut next_id) = (0u64, 0i64);
        let started = std::time::Instant::now();
        while done < count {
            let size = (count - done).min(batch as u64);
            let (mut ids, mut debits, mut credits) = (Vec::new(), Vec::new(), Vec::new());
            let mut deltas = std::collections::BTreeMap::<i64, i64>::new();
            for _ in 0..size {
                let (debit, credit) = pairs.next(accounts);
                next_id += 1;
                ids.push(next_id);
                debits.push(debit as i64);
                credits.push(credit as i64);
                *deltas.entry(debit as i64).or_default() -= 1;
                *deltas.entry(credit as i64).or_default() += 1;
            }
            // Rows are locked in id order (BTreeMap), the order that keeps concurrent batches from
            // deadlocking.
            let accounts_changed: Vec<i64> = deltas.keys().copied().collect();
            let amounts: Vec<String> = deltas.values().map(ToString::to_string).collect();
            let mut tx = client.transaction()?;
            tx.execute(&update, &[&accounts_changed, &amounts])?;
            tx.execute(&insert, &[&ids, &debits, &credits])?;
            tx.commit()?;
            done += size;
        }
        Ok(count as f64 / started.elapsed().as_secs_f64())
    })
}

pub async fn cluster(args: ClusterBenchArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("temporary directory")?;
    let baseline = {
        let database = BenchDatabase::create(&args.postgres, "plain")?;
        plain_postgres(database.url(), args.accounts, 1000, args.transfers.min(200_000))?
    };
    let mut rows: Vec<(String, f64)> = Vec::new();
    for batch in [1000usize, 8190] {
        let (count, accounts) = (args.transfers, args.accounts);
        let path = dir.path().join(format!("embedded-{batch}.db"));
        let embedded = tokio::task::spawn_blocking(move || -> anyhow::Result<f64> {
            let store = SqliteStore::open(&path, Arc::new(SystemClock))?;
            let ids = create_funded_accounts(&store, accounts)?;
            transfer_batches(&[&store], &ids, batch, count, &format!("embedded, batch {batch}"))
        })
        .await??;
        rows.push((format!("embedded store, batch {batch}"), embedded));
        for nodes in [1usize, 2] {
            let database = BenchDatabase::create(&args.postgres, &format!("t{batch}_{nodes}"))?;
            let (url, replicas) = (database.url(), dir.path().join(format!("replicas-{batch}-{nodes}")));
            let rate = tokio::task::spawn_blocking(move || -> anyhow::Result<f64> {
                std::fs::create_dir_all(&replicas)?;
                let key: Arc<dyn ReceiptSigner> = Arc::new(
                    tributary_server::signing::NodeKey::load_or_create(&replicas.join(NODE_KEY_FILE))?,
                );
                let open = |name: &str| {
                    SqliteStore::open_postgres(
                        &url,
                        &replicas.join(name),
                        name,
                        Arc::new(SystemClock),
                        key.clone(),
                    )
                };
                let first = open("a")?;
                let ids = create_funded_accounts(&first, accounts)?;
                let second = if nodes == 2 { Some(open("b")?) } else { None };
                let stores: Vec<&SqliteStore> = std::iter::once(&first).chain(second.as_ref()).collect();
                let label = format!("PostgreSQL, {nodes} node(s), batch {batch}");
                let rate = transfer_batches(&stores, &ids, batch, count, &label)?;
                let runtime = tokio::runtime::Handle::current();
                let mut summaries = Vec::new();
                for store in &stores {
                    runtime.block_on(store.sync())?;
                    summaries.push(runtime.block_on(store.ledger_summary())?);
                }
                anyhow::ensure!(
                    summaries.iter().all(|s| s.totals.debits_posted == s.totals.credits_posted),
                    "a node's ledger does not balance"
                );
                anyhow::ensure!(summaries.windows(2).all(|w| w[0] == w[1]), "the nodes disagree");
                Ok(rate)
            })
            .await??;
            database.check_balanced()?;
            rows.push((
                format!("PostgreSQL, {nodes} node{}, batch {batch}", if nodes == 2 { "s" } else { "" }),
                rate,
            ));
        }
    }
    println!("\n| store | transfers/s | vs set-based SQL baseline | vs embedded, same batch |");
    println!("| --- | ---: | ---: | ---: |");
    println!("| baseline: PostgreSQL alone, set-based SQL, batch 1000 | {baseline:.0} | 1.00x | |");
    for chunk in rows.chunks(3) {
        let embedded = chunk[0].1;
        for (name, rate) in chunk {
            println!("| {name} | {rate:.0} | {:.2}x | {:.2}x |", rate / baseline, rate / embedded);
        }
    }
    if args.no_http {
        return Ok(());
    }

    let mut paid: Vec<(String, f64, f64, f64)> = Vec::new();
    for (label, nodes) in
        [("embedded, 1 node", 0usize), ("PostgreSQL, 1 node", 1), ("PostgreSQL, 2 nodes", 2)]
    {
        let database = if nodes > 0 {
            Some(BenchDatabase::create(&args.postgres, &format!("http{nodes}"))?)
        } else {
            None
        };
        let store = match &database {
            Some(database) => StoreLocation::Postgres(database.url()),
            None => StoreLocation::Embedded,
        };
        let run_dir = dir.path().join(format!("http-{nodes}"));
        let first = LocalNode::start_on(&run_dir.join("a"), &store, None).await?;
        let operator = first.operator();
        let prepared = setup(&operator, args.tokens, args.clients).await?;
        let mut running = vec![first];
        if nodes == 2 {
            running
                .push(join(&run_dir.join("a"), &run_dir.join("b"), &store, &running[0].operator_key).await?);
            let second = running[1].operator();
            second.post(&format!("/v1/datanets/{}/index", prepared.datanet), json!({})).await?;
        }
        let urls: Vec<String> = running.iter().map(|n| format!("{}/v1/chat/completions", n.base)).collect();
        let bodies: Vec<Value> = (0..256)
            .map(|i| {
                let prompt = prepared.corpus.document(i).split(' ').take(12).collect::<Vec<_>>().join(" ");
                json!({"model": prepared.model, "messages": [{"role": "user", "content": prompt}],
                       "max_tokens": args.max_tokens, "seed": i})
            })
            .collect();
        let http = reqwest::Client::builder().pool_max_idle_per_host(args.clients * 2).build()?;
        let run =
            closed_loop(&http, &urls, &prepared.keys, &bodies, Duration::from_secs(args.seconds)).await?;
        for node in &running {
            let ledger = node.operator().get("/v1/ledger").await?;
            anyhow::ensure!(ledger["balanced"] == json!(true), "{label}: a node's ledger does not balance");
        }
        if let Some(database) = &database {
            database.check_balanced()?;
        }
        paid.push((
            label.to_owned(),
            run.requests as f64 / run.elapsed_s,
            crate::bench_index::percentile(&run.latencies, 0.5),
            crate::bench_index::percentile(&run.latencies, 0.99),
        ));
        for node in running {
            node.stop().await?;
        }
    }
    println!(
        "\n| nodes | paid requests/s ({} clients, max_tokens {}) | vs embedded | latency p50 / p99 |",
        args.clients, args.max_tokens
    );
    println!("| --- | ---: | ---: | ---: |");
    let embedded = paid[0].1;
    for (label, rate, p50, p99) in &paid {
        println!("| {label} | {rate:.0} | {:.2}x | {p50:.2} / {p99:.2} ms |", rate / embedded);
    }
    Ok(())
}

/// Starts a second node on the first one's database, with its receipt key and operator key.
async fn join(
    first: &Path,
    data: &Path,
    store: &StoreLocation,
    operator_key: &str,
) -> anyhow::Result<LocalNode> {
    std::fs::create_dir_all(data)?;
    for file in [NODE_KEY_FILE, OPERATOR_KEY_FILE] {
        std::fs::copy(first.join(file), data.join(file)).with_context(|| format!("copying {file}"))?;
    }
    LocalNode::start_on(data, store, Some(operator_key.to_owned())).await
}
