//! `tributary bench inference`: paid requests per second end to end on the built-in ∞-gram model,
//! and the gateway's own overhead (auth, hold, split, durable settlement and receipt: the node's
//! time minus the model's, from the `Server-Timing` header) at a fixed request rate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};

use crate::bench_index::{Corpus, percentile};
use crate::client::field;

#[derive(Args, Debug, Clone)]
pub struct InferenceBenchArgs {
    /// Words of generated text contributed to the model's datanet.
    #[arg(long, default_value_t = 10_000_000)]
    tokens: u64,
    /// Completion length, in tokens.
    #[arg(long, default_value_t = 64)]
    max_tokens: u32,
    /// Concurrent clients for the throughput run.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Seconds of the throughput run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Requests per second of the fixed-rate overhead run.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
}

fn gateway_ms(timing: &str) -> Option<f64> {
    timing.split(',').find_map(|part| part.trim().strip_prefix("gateway;dur=")?.parse().ok())
}

pub async fn inference(args: InferenceBenchArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = crate::node::LocalNode::start(dir.path()).await?;
    let base = node.base.clone();
    let operator = node.operator();

    let Setup { datanet, owner, model, keys, corpus } = setup(&operator, args.tokens, args.clients).await?;
    // A near-zero-time upstream for the gateway comparison: answers every chat request at once with
    // the same short text (the node still holds, attributes, splits, settles and signs).
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let upstream_address = upstream.local_addr()?;
    let trivial = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(|| async {
            axum::Json(json!({"object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "the upstream answers at once"}, "finish_reason": "stop"}]}))
        }),
    );
    let upstream_server = tokio::spawn(async move { axum::serve(upstream, trivial).await });
    let fast_model = field(
        &owner
            .post(
                "/v1/models",
                json!({"name": "fast-upstream", "datanets": [datanet],
                       "backend": {"kind": "openai", "base_url": format!("http://{upstream_address}/v1"), "model": "trivial"},
                       "price": {"input_per_1k": "1000", "output_per_1k": "2000", "request": "1"},
                       "split": {"owner_bps": 5000, "data_bps": 3500, "validators_bps": 1000, "protocol_bps": 500}}),
            )
            .await?,
        "id",
    )?;
    let prompts: Arc<Vec<String>> = Arc::new(
        (0..256).map(|i| corpus.document(i).split(' ').take(12).collect::<Vec<_>>().join(" ")).collect(),
    );
    println!(
        "\n| model | paid requests/s (closed loop, {} clients) | completion tokens/s | latency p50 / p99 | gateway overhead p50 / p99 at {} requests/s offered |",
        args.clients, args.rate
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (label, model) in
        [("infinigram, max_tokens 64", &model), ("openai upstream answering at once", &fast_model)]
    {
        let run = measure(&args, &base, &keys, &prompts, model).await?;
        println!(
            "| {label} | {:.0} | {:.0} | {:.2} / {:.2} ms | {:.3} / {:.3} ms ({:.0}/s achieved) |",
            run.requests_per_second,
            run.tokens_per_second,
            run.latency_p50_ms,
            run.latency_p99_ms,
            run.overhead_p50_ms,
            run.overhead_p99_ms,
            run.achieved_rate
        );
    }
    let ledger = operator.get("/v1/ledger").await?;
    anyhow::ensure!(ledger["balanced"] == json!(true), "the ledger does not balance after the runs");
    anyhow::ensure!(ledger["holds_pending"] == json!(0), "holds left behind");
    println!(
        "\nafter the runs: ledger balanced, no hold pending, {} transfers; index of {} words",
        ledger["transfers"], args.tokens
    );
    upstream_server.abort();
    node.stop().await?;
    Ok(())
}

/// What a paid-inference benchmark runs on: a datanet of generated text, its owner, an ∞-gram model
/// over it, and funded callers' keys.
pub struct Setup {
    pub datanet: String,
    pub owner: crate::client::Client,
    pub model: String,
    pub keys: Vec<String>,
    pub corpus: Corpus,
}

/// Makes a [`Setup`] through the operator's client: `tokens` words of text, `clients` callers.
pub async fn setup(operator: &crate::client::Client, tokens: u64, clients: usize) -> anyhow::Result<Setup> {
    // A contributor, a datanet of generated text, a model, and funded callers.
    let contributor = operator.post("/v1/accounts", json!({"name": "contributor"})).await?;
    let contributor = operator.with_key(&field(&contributor, "api_key")?);
    let datanet =
        field(&contributor.post("/v1/datanets", json!({"name": "bench", "license": "CC0"})).await?, "id")?;
    let corpus = Corpus::new(50_000);
    let documents = tokens.div_ceil(1000) as usize;
    eprintln!("contributing {documents} documents ({} words)...", tokens);
    for start in (0..documents).step_by(500) {
        let batch: Vec<Value> = (start..(start + 500).min(documents))
            .map(|i| json!({"title": format!("doc {i}"), "text": corpus.document(i)}))
            .collect();
        contributor.post(&format!("/v1/datanets/{datanet}/contributions/batch"), Value::Array(batch)).await?;
    }
    let started = Instant::now();
    operator.post(&format!("/v1/datanets/{datanet}/index"), json!({})).await?;
    eprintln!("indexed in {:.1} s", started.elapsed().as_secs_f64());
    let owner = operator.post("/v1/accounts", json!({"name": "owner"})).await?;
    let owner = operator.with_key(&field(&owner, "api_key")?);
    let model = field(
        &owner
            .post(
                "/v1/models",
                json!({"name": "bench", "datanets": [datanet], "backend": {"kind": "infinigram"},
                       "price": {"input_per_1k": "1000", "output_per_1k": "2000", "request": "1"},
                       "split": {"owner_bps": 5000, "data_bps": 3500, "validators_bps": 1000, "protocol_bps": 500}}),
            )
            .await?,
        "id",
    )?;
    let mut keys = Vec::new();
    for n in 0..clients {
        let caller = operator.post("/v1/accounts", json!({"name": format!("caller {n}")})).await?;
        operator
            .post("/v1/deposits", json!({"account": field(&caller, "id")?, "amount": "100000000000"}))
            .await?;
        keys.push(field(&caller, "api_key")?);
    }
    Ok(Setup { datanet, owner, model, keys, corpus })
}

/// What a closed-loop run measured.
pub struct ClosedLoop {
    pub requests: u64,
    pub tokens: u64,
    pub elapsed_s: f64,
    /// Sorted.
    pub latencies: Vec<Duration>,
}

/// Paid chat requests in a closed loop for `duration`: one client per key, each sending as fast as
/// its answers come back, client `n` to `urls[n % urls.len()]`, cycling through `bodies`.
pub async fn closed_loop(
    http: &reqwest::Client,
    urls: &[String],
    keys: &[String],
    bodies: &[Value],
    duration: Duration,
) -> anyhow::Result<ClosedLoop> {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let bodies = Arc::new(bodies.to_vec());
    let mut tasks = Vec::new();
    for (n, key) in keys.iter().enumerate() {
        let (http, url, key, bodies) =
            (http.clone(), urls[n % urls.len()].clone(), key.clone(), Arc::clone(&bodies));
        tasks.push(tokio::spawn(async move {
            let (mut done, mut tokens, mut latencies) = (0u64, 0u64, Vec::new());
            let mut i = n * 7;
            while Instant::now() < deadline {
                let sent = Instant::now();
                let response =
                    http.post(&url).bearer_auth(&key).json(&bodies[i % bodies.len()]).send().await?;
                anyhow::ensure!(response.status().is_success(), "paid request failed: {}", response.status());
                let answer: Value = response.json().await?;
                tokens += answer["usage"]["completion_tokens"].as_u64().unwrap_or(0);
                latencies.push(sent.elapsed());
                done += 1;
                i += 1;
            }
            Ok::<_, anyhow::Error>((done, tokens, latencies))
        }));
    }
    let mut run = ClosedLoop { requests: 0, tokens: 0, elapsed_s: 0.0, latencies: Vec::new() };
    for task in tasks {
        let (done, tokens, latencies) = task.await??;
        run.requests += done;
        run.tokens += tokens;
        run.latencies.extend(latencies);
    }
    run.elapsed_s = started.elapsed().as_secs_f64();
    run.latencies.sort_unstable();
    Ok(run)
}

struct Run {
    requests_per_second: f64,
    tokens_per_second: f64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    overhead_p50_ms: f64,
    overhead_p99_ms: f64,
    achieved_rate: f64,
}

async fn measure(
    args: &InferenceBenchArgs,
    base: &str,
    keys: &[String],
    prompts: &Arc<Vec<String>>,
    model: &str,
) -> anyhow::Result<Run> {
    let http = reqwest::Client::builder().pool_max_idle_per_host(args.clients * 2).build()?;
    let url = format!("{base}/v1/chat/completions");
    let request = |prompt: &str, seed: u64| json!({"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": args.max_tokens, "seed": seed});

    // 1. Throughput: closed loop, every client sending as fast as its answers come back.
    let bodies: Vec<Value> = (0..prompts.len()).map(|i| request(&prompts[i], i as u64)).collect();
    let throughput =
        closed_loop(&http, std::slice::from_ref(&url), keys, &bodies, Duration::from_secs(args.seconds))
            .await?;
    let (done, tokens, elapsed, latencies) =
        (throughput.requests, throughput.tokens, throughput.elapsed_s, throughput.latencies);

    // 2. Gateway overhead at a fixed rate (open loop: requests leave on schedule).
    let total = args.rate * 5;
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut inflight = Vec::with_capacity(total as usize);
    for i in 0..total {
        ticker.tick().await;
        let (http, url, key) = (http.clone(), url.clone(), keys[i as usize % keys.len()].clone());
        let body = request(&prompts[i as usize % prompts.len()], i);
        inflight.push(tokio::spawn(async move {
            let response = http.post(&url).bearer_auth(&key).json(&body).send().await?;
            anyhow::ensure!(response.status().is_success(), "paid request failed: {}", response.status());
            let timing =
                response.headers().get("server-timing").and_then(|v| v.to_str().ok()).and_then(gateway_ms);
            let _ = response.bytes().await?;
            Ok::<_, anyhow::Error>(timing)
        }));
    }
    let mut overheads = Vec::new();
    for task in inflight {
        if let Some(ms) = task.await?? {
            overheads.push(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    let achieved = total as f64 / started.elapsed().as_secs_f64();
    overheads.sort_unstable();

    Ok(Run {
        requests_per_second: done as f64 / elapsed,
        tokens_per_second: tokens as f64 / elapsed,
        latency_p50_ms: percentile(&latencies, 0.5),
        latency_p99_ms: percentile(&latencies, 0.99),
        overhead_p50_ms: percentile(&overheads, 0.5),
        overhead_p99_ms: percentile(&overheads, 0.99),
        achieved_rate: achieved,
    })
}
