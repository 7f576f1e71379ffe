//! Two real `tributary serve` processes on one PostgreSQL database, under bounded concurrent load
//! at both: transfers with idempotency keys (retried on the other node), paid inferences, racing
//! overdrafts and epoch closes, and a SIGKILL and restart of one node in the middle. Then: no
//! overdraft, no request applied twice, every acknowledged operation present on both nodes,
//! debits equal credits (checked by the nodes and in SQL), one receipt chain both nodes serve
//! alike, and the same index version on both.
//!
//! `CLUSTER_SEED=<seed>` replays the same choices.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Node, PgDatabase, Rng, account, deposit};
use serde_json::{Value, json};

const PSALMS: [&str; 3] = [
    "The LORD is my shepherd; I shall not want. He maketh me to lie down in green pastures: he leadeth me beside the still waters.",
    "The LORD is my light and my salvation; whom shall I fear? the LORD is the strength of my life; of whom shall I be afraid?",
    "I will lift up mine eyes unto the hills, from whence cometh my help. My help cometh from the LORD, which made heaven and earth.",
];
const INITIAL: u128 = 1_000_000_000;
const ACCOUNTS: usize = 4;
const WRITERS: usize = 4;
const OPS_PER_WRITER: usize = 150;

fn units(value: &Value) -> u128 {
    value.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not an amount: {value}"))
}

#[derive(Clone, Debug)]
enum Kind {
    Transfer { from: usize, to: usize, amount: u128 },
    Inference,
}

#[derive(Clone, Debug)]
struct Op {
    key: String,
    kind: Kind,
    /// Which node it was sent to first.
    node: usize,
    /// The transfer or receipt id, once acknowledged.
    acknowledged: Option<String>,
}

/// The cluster as the load sees it: each node's base URL, or `None` while it is down.
struct Cluster {
    bases: Mutex<[Option<String>; 2]>,
    http: reqwest::Client,
    ids: Vec<String>,
    keys: Vec<String>,
    payer_key: String,
}

impl Cluster {
    fn base(&self, node: usize) -> Option<String> {
        self.bases.lock().expect("bases")[node].clone()
    }

    /// Sends an operation; `None` when no answer arrived (the node is down or died meanwhile).
    async fn send(&self, node: usize, op: &Op) -> Option<(u16, Value)> {
        let base = self.base(node)?;
        let request = match op.kind {
            Kind::Transfer { from, to, amount } => self
                .http
                .post(format!("{base}/v1/transfers"))
                .bearer_auth(&self.keys[from])
                .header("idempotency-key", &op.key)
                .json(&json!({"to": self.ids[to], "amount": amount.to_string()})),
            Kind::Inference => {
                self.http.post(format!("{base}/v1/chat/completions")).bearer_auth(&self.payer_key).json(
                    &json!({"model": "shepherd", "messages": [{"role": "user", "content": "The LORD is my"}],
                              "max_tokens": 6, "seed": 3}),
                )
            }
        };
        let response = request.timeout(Duration::from_secs(30)).send().await.ok()?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.ok()?;
        Some((status, body))
    }
}

async fn get(node: &Node, path: &str) -> Value {
    let (status, body) = node.call("GET", path, Some(&node.operator_key), None).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// The last log batch a node applied, from its metrics.
async fn applied(node: &Node) -> u64 {
    let text = node.http.get(node.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    text.lines()
        .find_map(|line| line.strip_prefix("tributary_log_applied_batch "))
        .and_then(|value| value.parse().ok())
        .expect("a node on PostgreSQL reports the log batch it applied")
}

/// Waits until both nodes have applied the same, settled, log position.
async fn converge(a: &Node, b: &Node) {
    let started = Instant::now();
    loop {
        let (x, y) = (applied(a).await, applied(b).await);
        if x == y {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if applied(a).await == x && applied(b).await == x {
                return;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(30), "nodes did not converge: {x} vs {y}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until a datanet's index on `node` holds `count` contributions; returns its version.
async fn indexed(node: &Node, datanet: &str, count: u64) -> String {
    let started = Instant::now();
    loop {
        let view = get(node, &format!("/v1/datanets/{datanet}")).await;
        if view["contributions_indexed"] == count && view["contributions_pending"] == 0 {
            return view["index_version"].as_str().expect("version").to_owned();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "index never reached {count}: {view}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn start_second(dir: &std::path::Path, first: &Node, store: &[&str]) -> Node {
    // Nodes on one database sign receipts with one key, and the operator's key works on both.
    std::fs::create_dir_all(dir).expect("data dir");
    for file in ["node.key", "operator.key"] {
        std::fs::copy(first.data.join(file), dir.join(file)).expect("copy key");
    }
    Node::start(dir, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_database_keep_the_money_exact_through_races_and_a_kill() {
    let seed: u64 = std::env::var("CLUSTER_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1
    });
    println!("cluster test seed {seed}; replay with CLUSTER_SEED={seed}");
    let mut rng = Rng(seed);
    let database = PgDatabase::create("cluster");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ["--store", database.url.as_str()];
    let a = Node::start(&dir.path().join("a"), &store);
    let mut b = start_second(&dir.path().join("b"), &a, &store);

    // A node with another receipt key is refused: its signatures would not match the chain.
    let stranger = dir.path().join("stranger");
    std::fs::create_dir_all(&stranger).expect("dir");
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["serve", "--listen", "127.0.0.1:0", "--store", &database.url, "--data"])
        .arg(&stranger)
        .output()
        .expect("runs");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("receipt key"), "{refused:?}");

    // Set-up through A, used through B: the registry is shared.
    let mut ids = Vec::new();
    let mut keys = Vec::new();
    for n in 0..ACCOUNTS {
        let (id, key) = account(&a, &format!("acct {n}")).await;
        deposit(&b, &id, &INITIAL.to_string()).await;
        ids.push(id);
        keys.push(key);
    }
    let (_alice, alice_key) = account(&a, "alice").await;
    let (_bob, bob_key) = account(&b, "bob").await;
    let (payer, payer_key) = account(&a, "payer").await;
    deposit(&a, &payer, &INITIAL.to_string()).await;
    let (_, created) = b
        .call(
            "POST",
            "/v1/datanets",
            Some(&alice_key),
            Some(json!({"name": "psalms", "license": "public-domain"})),
        )
        .await;
    let datanet = created["id"].as_str().expect("datanet id").to_owned();
    let items: Vec<Value> =
        PSALMS.iter().enumerate().map(|(i, t)| json!({"title": format!("{i}"), "text": t})).collect();
    let (status, _) = a
        .call(
            "POST",
            &format!("/v1/datanets/{datanet}/contributions/batch"),
            Some(&alice_key),
            Some(json!(items)),
        )
        .await;
    assert_eq!(status, 201);
    let (status, model) = b
        .call(
            "POST",
            "/v1/models",
            Some(&bob_key),
            Some(json!({"name": "shepherd", "datanets": [datanet], "backend": {"kind": "infinigram"},
                "price": {"input_per_1k": "1000", "output_per_1k": "2000", "request": "5"},
                "split": {"owner_bps": 5000, "data_bps": 3500, "validators_bps": 1000, "protocol_bps": 500}})),
        )
        .await;
    assert_eq!(status, 201, "{model}");
    converge(&a, &b).await;
    let version = indexed(&a, &datanet, 3).await;
    assert_eq!(indexed(&b, &datanet, 3).await, version, "both nodes index the datanet alike");

    // Racing overdrafts: two nodes, one balance, two debits that cannot both fit.
    for round in 0..8 {
        let (poor, poor_key) = account(&a, &format!("poor {round}")).await;
        deposit(&a, &poor, "1000").await;
        converge(&a, &b).await;
        let spend = |node: &Node| {
            let request = node
                .http
                .post(node.url("/v1/transfers"))
                .bearer_auth(&poor_key)
                .json(&json!({"to": ids[0], "amount": "600"}));
            async move { request.send().await.expect("answer").status().as_u16() }
        };
        let (x, y) = tokio::join!(spend(&a), spend(&b));
        let mut statuses = [x, y];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 402], "round {round}: exactly one debit fits");
        assert_eq!(common::balance(&b, &poor).await, ("400".to_owned(), "0".to_owned()));
    }
    let overdraft_credits: u128 = 8 * 600;

    // Load at both nodes, with B killed and restarted in the middle.
    let cluster = Arc::new(Cluster {
        bases: Mutex::new([Some(a.base.clone()), Some(b.base.clone())]),
        http: reqwest::Client::new(),
        ids: ids.clone(),
        keys: keys.clone(),
        payer_key: payer_key.clone(),
    });
    let ops: Arc<Mutex<Vec<Op>>> = Arc::new(Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let mut plan = Vec::new();
        for n in 0..OPS_PER_WRITER {
            let roll = rng.next();
            let kind = if roll.is_multiple_of(6) {
                Kind::Inference
            } else {
                let from = (roll >> 8) as usize % ACCOUNTS;
                let to = (from + 1 + (roll >> 16) as usize % (ACCOUNTS - 1)) % ACCOUNTS;
                Kind::Transfer { from, to, amount: 1 + u128::from((roll >> 24) % 1000) }
            };
            plan.push(Op {
                key: format!("w{writer}-{n}"),
                kind,
                node: (roll >> 40) as usize % 2,
                acknowledged: None,
            });
        }
        let retry_roll = rng.next();
        let (cluster, ops) = (cluster.clone(), ops.clone());
        writers.push(tokio::spawn(async move {
            let mut retry = Rng(retry_roll | 1);
            for op in plan {
                let index = {
                    let mut ops = ops.lock().expect("ops");
                    ops.push(op.clone());
                    ops.len() - 1
                };
                let Some((status, body)) = cluster.send(op.node, &op).await else { continue };
                assert_eq!(status, if matches!(op.kind, Kind::Inference) { 200 } else { 201 }, "{body}");
                let id = match op.kind {
                    Kind::Transfer { .. } => body["id"].as_str(),
                    Kind::Inference => body["tributary"]["receipt_id"].as_str(),
                }
                .expect("an id")
                .to_owned();
                ops.lock().expect("ops")[index].acknowledged = Some(id.clone());
                // A client retrying through the load balancer lands on the other node.
                if matches!(op.kind, Kind::Transfer { .. })
                    && retry.next().is_multiple_of(4)
                    && let Some((status, again)) = cluster.send(1 - op.node, &op).await
                {
                    assert_eq!(status, 201, "{again}");
                    assert_eq!(
                        again["id"].as_str(),
                        Some(id.as_str()),
                        "a retried key returns the first transfer"
                    );
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300 + rng.next() % 700)).await;
    cluster.bases.lock().expect("bases")[1] = None;
    let b_dir = b.data.clone();
    b.kill();
    tokio::time::sleep(Duration::from_millis(200)).await;
    b = Node::start(&b_dir, &store);
    cluster.bases.lock().expect("bases")[1] = Some(b.base.clone());
    // Epoch closes racing on both nodes: two distinct epochs, never one closed twice.
    let close = |node: &Node| {
        let request = node.http.post(node.url("/v1/epochs")).bearer_auth(&node.operator_key);
        async move {
            let response = request.send().await.expect("answer");
            assert_eq!(response.status().as_u16(), 201);
            response.json::<Value>().await.expect("json")["epoch"].as_u64().expect("epoch number")
        }
    };
    let (x, y) = tokio::join!(close(&a), close(&b));
    let mut epochs = [x, y];
    epochs.sort_unstable();
    assert_eq!(epochs, [1, 2]);
    for writer in writers {
        writer.await.expect("writer");
    }

    // Operations sent to B while it died got no answer: retried with their keys they apply once.
    let snapshot: Vec<Op> = ops.lock().expect("ops").clone();
    let mut unanswered_inferences = 0;
    for (index, op) in snapshot.iter().enumerate().filter(|(_, op)| op.acknowledged.is_none()) {
        if matches!(op.kind, Kind::Inference) {
            // A paid inference has no idempotency key; it may or may not have been charged.
            unanswered_inferences += 1;
            continue;
        }
        let (status, body) = cluster.send(index % 2, op).await.expect("both nodes are up");
        assert_eq!(status, 201, "{body}");
        ops.lock().expect("ops")[index].acknowledged = Some(body["id"].as_str().expect("id").to_owned());
    }
    let all: Vec<Op> = ops.lock().expect("ops").clone();
    assert!(all.len() == WRITERS * OPS_PER_WRITER);
    converge(&a, &b).await;

    // Every transfer once, on both nodes; balances exactly what the operations imply.
    let mut expected = [INITIAL as i128; ACCOUNTS];
    expected[0] += overdraft_credits as i128;
    for op in &all {
        if let Kind::Transfer { from, to, amount } = op.kind {
            let id = op.acknowledged.as_deref().expect("every transfer is acknowledged by now");
            for node in [&a, &b] {
                let transfer = get(node, &format!("/v1/transfers/{id}")).await;
                assert_eq!(units(&transfer["amount"]), amount, "seed {seed}");
            }
            expected[from] -= amount as i128;
            expected[to] += amount as i128;
        }
    }
    for (n, id) in ids.iter().enumerate() {
        for node in [&a, &b] {
            assert_eq!(
                common::balance(node, id).await,
                (expected[n].to_string(), "0".to_owned()),
                "seed {seed}: account {id} on {}",
                node.base
            );
        }
    }

    // One receipt chain, served alike by both nodes; the payer paid exactly its receipts' fees.
    let mut previous = "0".repeat(64);
    let mut fees = 0u128;
    let mut receipts = 0;
    for number in 1.. {
        let path = format!("/v1/receipts/rcpt_{number}");
        let (status, receipt) = a.call("GET", &path, Some(&a.operator_key), None).await;
        if status == 404 {
            break;
        }
        let same = get(&b, &path).await;
        assert_eq!(receipt, same, "both nodes serve receipt {number} identically");
        assert_eq!(receipt["prev_hash"], previous.as_str(), "receipt {number} chains to the one before");
        previous = receipt["hash"].as_str().expect("hash").to_owned();
        fees += units(&receipt["fee"]);
        receipts += 1;
    }
    let acknowledged_inferences =
        all.iter().filter(|op| matches!(op.kind, Kind::Inference)).count() - unanswered_inferences;
    assert!(
        receipts >= acknowledged_inferences && receipts <= acknowledged_inferences + unanswered_inferences
    );
    for op in all.iter().filter(|op| matches!(op.kind, Kind::Inference)) {
        if let Some(id) = &op.acknowledged {
            get(&a, &format!("/v1/receipts/{id}")).await;
        }
    }
    // An inference cut off by the kill may have left its hold; it is released when it times out.
    let (available, held) = common::balance(&b, &payer).await;
    let (available, held): (u128, u128) = (available.parse().expect("amount"), held.parse().expect("amount"));
    assert_eq!(available + held, INITIAL - fees, "seed {seed}");
    assert!(held == 0 || unanswered_inferences > 0, "seed {seed}: {held} held");

    // The books balance on each node, identically, and in SQL with no node involved.
    let ledger_a = get(&a, "/v1/ledger").await;
    assert_eq!(ledger_a["balanced"], true);
    assert_eq!(get(&b, "/v1/ledger").await, ledger_a);
    assert_eq!(
        database.query(
            "SELECT sum(debits_posted) = sum(credits_posted) AND sum(debits_pending) = sum(credits_pending) \
             FROM account_balances"
        ),
        "t"
    );
    assert_eq!(
        database.query(
            // Account 1 is the external account: the one whose debits may exceed its credits.
            "SELECT count(*) FROM account_balances WHERE id <> 1 \
             AND credits_posted < debits_posted + debits_pending"
        ),
        "0",
        "no account is overdrawn"
    );
    assert_eq!(database.query("SELECT count(*) FROM transfers"), ledger_a["transfers"].to_string());
    // The offline index tools refuse a node on PostgreSQL rather than open its replica beside it.
    let offline = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["index", "status", "--data"])
        .arg(&a.data)
        .output()
        .expect("runs");
    assert!(!offline.status.success());
    assert!(String::from_utf8_lossy(&offline.stderr).contains("node on PostgreSQL"), "{offline:?}");
    let epochs_a = get(&a, "/v1/epochs").await;
    assert_eq!(get(&b, "/v1/epochs").await, epochs_a);

    // A third node seeded from A's replica while A runs serves the same books at once.
    let c_dir = dir.path().join("c");
    let (code, _, stderr) = a.cli(
        None,
        &[
            "replica",
            "seed",
            "--from",
            a.data.to_str().expect("utf-8"),
            "--into",
            c_dir.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    std::fs::copy(a.data.join("operator.key"), c_dir.join("operator.key")).expect("operator key");
    let c = Node::start(&c_dir, &store);
    assert_eq!(get(&c, "/v1/ledger").await, ledger_a);
    assert_eq!(get(&c, "/v1/epochs").await, epochs_a);

    // A contribution through B reaches both indexes, which agree again.
    let (status, _) = b
        .call(
            "POST",
            &format!("/v1/datanets/{datanet}/contributions"),
            Some(&alice_key),
            Some(json!({"title": "121:2", "text": "My help cometh from the LORD, which made heaven and earth, and he will not suffer thy foot to be moved."})),
        )
        .await;
    assert!(status == 201 || status == 202, "{status}");
    converge(&a, &b).await;
    let accepted =
        get(&a, &format!("/v1/datanets/{datanet}")).await["contributions"].as_u64().expect("count");
    let version = indexed(&a, &datanet, accepted).await;
    assert_eq!(indexed(&b, &datanet, accepted).await, version, "seed {seed}");
}

/// Nodes of a new deployment usually start at once: on an empty database exactly one of them makes
/// the operator, the others start all the same, and the one operator key works on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_started_together_on_an_empty_database_make_one_operator() {
    let database = PgDatabase::create("together");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ["--store", database.url.as_str()];
    let dirs: Vec<std::path::PathBuf> = (0..3).map(|n| dir.path().join(format!("node{n}"))).collect();
    for data in &dirs {
        std::fs::create_dir_all(data).expect("data dir");
        // The receipt key every node of the deployment is given.
        std::fs::write(data.join("node.key"), "11".repeat(32)).expect("node key");
    }
    let nodes: Vec<Node> = std::thread::scope(|scope| {
        let starting: Vec<_> =
            dirs.iter().map(|data| scope.spawn(|| Node::start_sharing(data, &store))).collect();
        starting.into_iter().map(|node| node.join().expect("a node starts")).collect()
    });
    let keys: Vec<&str> =
        nodes.iter().map(|node| node.operator_key.as_str()).filter(|key| !key.is_empty()).collect();
    assert_eq!(keys.len(), 1, "exactly one node made the operator and wrote its key");
    for node in &nodes {
        let (status, ledger) = node.call("GET", "/v1/ledger", Some(keys[0]), None).await;
        assert_eq!(status, 200, "{ledger}");
        assert_eq!(ledger["balanced"], true);
        // The four internal accounts and one operator (the losers' attempts are in the log, refused).
        assert_eq!(ledger["accounts"], 5, "{ledger}");
    }
}
