//! Kill the real node with SIGKILL in the middle of a stream of deposits and transfers, restart it,
//! and check that every acknowledged operation is there, that retrying the unacknowledged ones with
//! their idempotency keys applies each exactly once, and that the books balance. Many cycles.
//!
//! The seed is printed; `CRASH_SEED=<seed>` replays the same timing choices and amounts, and
//! `CRASH_CYCLES=<n>` changes the number of cycles.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Node, Rng, account, balance};
use serde_json::{Value, json};

#[derive(Clone, Debug)]
enum Kind {
    Deposit { account: usize },
    Transfer { from: usize, to: usize },
}

#[derive(Clone, Debug)]
struct Op {
    key: String,
    kind: Kind,
    amount: u64,
    /// The transfer id once the node acknowledged the operation.
    acknowledged: Option<String>,
    /// Read back after a restart that followed its acknowledgement.
    verified: bool,
}

struct Accounts {
    ids: Vec<String>,
    keys: Vec<String>,
}

/// Sends one operation; `None` means the answer never arrived (the node died).
async fn send(
    node_base: &str,
    http: &reqwest::Client,
    operator_key: &str,
    accounts: &Accounts,
    op: &Op,
) -> Option<Value> {
    let (path, key, body) = match op.kind {
        Kind::Deposit { account } => (
            "/v1/deposits",
            operator_key,
            json!({"account": accounts.ids[account], "amount": op.amount.to_string()}),
        ),
        Kind::Transfer { from, to } => (
            "/v1/transfers",
            accounts.keys[from].as_str(),
            json!({"to": accounts.ids[to], "amount": op.amount.to_string()}),
        ),
    };
    let response = http
        .post(format!("{node_base}{path}"))
        .bearer_auth(key)
        .header("idempotency-key", &op.key)
        .json(&body)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.ok()?;
    assert_eq!(status, 201, "every operation in this test is valid: {body}");
    Some(body)
}

fn expected_balances(ops: &[Op], accounts: usize, initial: u64) -> Vec<i128> {
    let mut balances = vec![i128::from(initial); accounts];
    for op in ops {
        match op.kind {
            Kind::Deposit { account } => balances[account] += i128::from(op.amount),
            Kind::Transfer { from, to } => {
                balances[from] -= i128::from(op.amount);
                balances[to] += i128::from(op.amount);
            }
        }
    }
    balances
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_operations_survive_sigkill() {
    let seed: u64 = std::env::var("CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1
    });
    let cycles: usize = std::env::var("CRASH_CYCLES").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    println!("crash test seed {seed} ({cycles} cycles); replay with CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    const INITIAL: u64 = 1_000_000_000_000;
    const ACCOUNTS: usize = 4;
    const WRITERS: usize = 6;

    let accounts = {
        let node = Node::start(dir.path(), &[]);
        let mut ids = Vec::new();
        let mut keys = Vec::new();
        for n in 0..ACCOUNTS {
            let (id, key) = account(&node, &format!("acct {n}")).await;
            common::deposit(&node, &id, &INITIAL.to_string()).await;
            ids.push(id);
            keys.push(key);
        }
        node.kill();
        Arc::new(Accounts { ids, keys })
    };
    let ops: Arc<Mutex<Vec<Op>>> = Arc::new(Mutex::new(Vec::new()));
    let mut next_key = 0u64;
    let mut total_acknowledged_before_kill = 0usize;

    for cycle in 0..=cycles {
        let node = Node::start(dir.path(), &[]);
        let http = reqwest::Client::new();

        // 1. Every operation acknowledged before the crash is present, exactly as acknowledged.
        //    (Older ones were read back after earlier crashes; the balance check covers them all.)
        let snapshot: Vec<Op> = ops.lock().expect("ops").clone();
        for op in snapshot.iter().filter(|op| op.acknowledged.is_some() && !op.verified) {
            let id = op.acknowledged.as_deref().expect("acknowledged");
            let (status, transfer) =
                node.call("GET", &format!("/v1/transfers/{id}"), Some(&node.operator_key), None).await;
            assert_eq!(
                status, 200,
                "cycle {cycle}: acknowledged {op:?} is missing after restart (seed {seed})"
            );
            assert_eq!(transfer["amount"], op.amount.to_string(), "seed {seed}");
        }
        // 2. Retrying the unacknowledged ones with their keys settles each exactly once.
        for (index, op) in snapshot.iter().enumerate() {
            if op.acknowledged.is_none() {
                let body =
                    send(&node.base, &http, &node.operator_key, &accounts, op).await.expect("the node is up");
                ops.lock().expect("ops")[index].acknowledged =
                    Some(body["id"].as_str().expect("id").to_owned());
            }
        }
        for (op, before) in ops.lock().expect("ops").iter_mut().zip(&snapshot) {
            op.verified = before.acknowledged.is_some();
        }
        // 3. Balances are exactly what the operations imply, and the ledger balances.
        let all: Vec<Op> = ops.lock().expect("ops").clone();
        let expected = expected_balances(&all, ACCOUNTS, INITIAL);
        for (n, id) in accounts.ids.iter().enumerate() {
            let (available, held) = balance(&node, id).await;
            assert_eq!(held, "0");
            assert_eq!(
                available,
                expected[n].to_string(),
                "cycle {cycle}: {id} after {} operations (seed {seed})",
                all.len()
            );
        }
        let (status, ledger) = node.call("GET", "/v1/ledger", Some(&node.operator_key), None).await;
        assert_eq!(status, 200);
        assert_eq!(ledger["balanced"], json!(true), "seed {seed}: {ledger}");
        if cycle == cycles {
            break;
        }

        // 4. Load from several writers, then SIGKILL at a random moment.
        let mut writers = Vec::new();
        for writer in 0..WRITERS {
            let mut plan = Vec::new();
            for _ in 0..2_000 {
                let roll = rng.next();
                let kind = if roll.is_multiple_of(5) {
                    Kind::Deposit { account: (roll >> 8) as usize % ACCOUNTS }
                } else {
                    let from = (roll >> 8) as usize % ACCOUNTS;
                    Kind::Transfer {
                        from,
                        to: (from + 1 + (roll >> 16) as usize % (ACCOUNTS - 1)) % ACCOUNTS,
                    }
                };
                next_key += 1;
                plan.push(Op {
                    key: format!("op-{next_key}"),
                    kind,
                    amount: 1 + (roll >> 24) % 1000,
                    acknowledged: None,
                    verified: false,
                });
            }
            let (ops, accounts, base, operator_key, http) =
                (ops.clone(), accounts.clone(), node.base.clone(), node.operator_key.clone(), http.clone());
            writers.push(tokio::spawn(async move {
                let _ = writer;
                for op in plan {
                    // Recorded before sending: an operation may take effect without its answer arriving.
                    let index = {
                        let mut ops = ops.lock().expect("ops");
                        ops.push(op.clone());
                        ops.len() - 1
                    };
                    match send(&base, &http, &operator_key, &accounts, &op).await {
                        Some(body) => {
                            ops.lock().expect("ops")[index].acknowledged =
                                Some(body["id"].as_str().expect("id").to_owned());
                        }
                        None => return,
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(50 + rng.next() % 350)).await;
        let acknowledged_now = ops.lock().expect("ops").iter().filter(|op| op.acknowledged.is_some()).count();
        total_acknowledged_before_kill += acknowledged_now;
        node.kill();
        for writer in writers {
            writer.await.expect("writer task");
        }
    }
    let all = ops.lock().expect("ops");
    println!("{} operations over {cycles} crashes, all accounted for", all.len());
    assert!(total_acknowledged_before_kill > cycles, "the load actually ran before the kills");
}
