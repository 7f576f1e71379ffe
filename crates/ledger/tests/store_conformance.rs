//! Storage tests written against the `Store` trait only, run unchanged against every backend: the
//! embedded SQLite store and PostgreSQL (see `support`). Each case gets a fresh store.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tributary_core::money::{Price, SplitPolicy};
use tributary_core::registry::{AccountKind, Backend, ModelSpec};
use tributary_core::{AccountId, Amount, DatanetId, TransferId};
use tributary_ledger::state::{LedgerError, TransferKind};
use tributary_ledger::store::{IdempotencyKey, NewContribution};
#[macro_use]
mod support;

use support::Harness;
use tributary_ledger::{Clock, Command, Outcome, Request, SqliteStore, Store, StoreError};

/// A clock the test moves by hand.
#[derive(Default)]
struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

async fn user(store: &dyn Store, name: &str) -> AccountId {
    let key_hash = *blake3::hash(name.as_bytes()).as_bytes();
    match store
        .execute(
            Command::CreateAccount {
                kind: AccountKind::User,
                name: name.into(),
                payout_address: None,
                api_key_hash: key_hash,
            }
            .into(),
        )
        .await
    {
        Ok(Outcome::AccountCreated(id)) => id,
        other => panic!("account creation failed: {other:?}"),
    }
}

async fn balance(store: &dyn Store, id: AccountId) -> (u128, u128) {
    let account = store.account(id).await.expect("read").expect("exists");
    (account.balance.0, account.held.0)
}

fn keyed(command: Command, scope: AccountId, key: &str, body: &str) -> Request {
    Request {
        command,
        idempotency: Some(IdempotencyKey {
            scope,
            key: key.into(),
            request_hash: *blake3::hash(body.as_bytes()).as_bytes(),
        }),
    }
}

async fn deposits_transfers_and_holds_move_money_exactly(backend: Harness) {
    let clock = Arc::new(ManualClock(AtomicU64::new(1_000)));
    let store = backend.open(clock.clone());
    let (alice, bob) = (user(&store, "alice").await, user(&store, "bob").await);

    store.execute(Command::Deposit { account: alice, amount: Amount(1_000) }.into()).await.expect("deposit");
    store
        .execute(Command::Transfer { from: alice, to: bob, amount: Amount(300) }.into())
        .await
        .expect("transfer");
    assert_eq!(balance(&store, alice).await, (700, 0));
    assert_eq!(balance(&store, bob).await, (300, 0));

    let overdraft =
        store.execute(Command::Transfer { from: bob, to: alice, amount: Amount(301) }.into()).await;
    assert!(
        matches!(overdraft, Err(StoreError::Ledger(LedgerError::InsufficientFunds { .. }))),
        "{overdraft:?}"
    );
    assert_eq!(balance(&store, bob).await, (300, 0), "a failed transfer changes nothing");

    let Outcome::Transfer(hold) = store
        .execute(Command::Hold { from: alice, to: bob, amount: Amount(500), timeout_ms: 10_000 }.into())
        .await
        .expect("hold")
    else {
        panic!("hold is a transfer")
    };
    assert_eq!(hold.kind, TransferKind::Pending);
    assert_eq!(balance(&store, alice).await, (200, 500));
    let spend_held =
        store.execute(Command::Transfer { from: alice, to: bob, amount: Amount(201) }.into()).await;
    assert!(spend_held.is_err(), "held money cannot be spent twice");

    // Bob cannot post Alice's hold to pay himself; he can only void it.
    let stolen = store.execute(Command::PostHold { caller: bob, hold: hold.id, amount: None }.into()).await;
    assert!(matches!(stolen, Err(StoreError::Forbidden(_))), "{stolen:?}");
    let stranger = user(&store, "mallory").await;
    let voided = store.execute(Command::VoidHold { caller: stranger, hold: hold.id }.into()).await;
    assert!(matches!(voided, Err(StoreError::Forbidden(_))), "{voided:?}");

    store
        .execute(Command::PostHold { caller: alice, hold: hold.id, amount: Some(Amount(120)) }.into())
        .await
        .expect("post");
    assert_eq!(balance(&store, alice).await, (580, 0), "the unposted part is released");
    assert_eq!(balance(&store, bob).await, (420, 0));
    let twice = store.execute(Command::PostHold { caller: alice, hold: hold.id, amount: None }.into()).await;
    assert_eq!(twice, Err(StoreError::Ledger(LedgerError::HoldNotPending(hold.id))));

    let summary = store.ledger_summary().await.expect("summary");
    assert_eq!(summary.totals.debits_posted, summary.totals.credits_posted);
    assert_eq!(summary.totals.debits_posted, tributary_ledger::state::Sum256::from_u128(1_000 + 300 + 120));
    assert_eq!(summary.holds_pending, 0);
}

async fn holds_expire_by_timeout(backend: Harness) {
    let clock = Arc::new(ManualClock(AtomicU64::new(1_000)));
    let store = backend.open(clock.clone());
    let (alice, bob) = (user(&store, "alice").await, user(&store, "bob").await);
    store.execute(Command::Deposit { account: alice, amount: Amount(100) }.into()).await.expect("deposit");
    let Ok(Outcome::Transfer(hold)) = store
        .execute(Command::Hold { from: alice, to: bob, amount: Amount(60), timeout_ms: 500 }.into())
        .await
    else {
        panic!("hold placed")
    };
    assert_eq!(balance(&store, alice).await, (40, 60));
    clock.0.store(1_600, Ordering::SeqCst);
    // The writer expires due holds within its polling interval.
    for _ in 0..100 {
        if balance(&store, alice).await == (100, 0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(balance(&store, alice).await, (100, 0));
    let late = store.execute(Command::PostHold { caller: alice, hold: hold.id, amount: None }.into()).await;
    assert_eq!(late, Err(StoreError::Ledger(LedgerError::HoldNotPending(hold.id))));
}

async fn idempotency_keys_apply_once_and_reject_reuse(backend: Harness) {
    let store = backend.open(Arc::new(ManualClock(AtomicU64::new(1))));
    let (alice, bob) = (user(&store, "alice").await, user(&store, "bob").await);
    store.execute(Command::Deposit { account: alice, amount: Amount(100) }.into()).await.expect("deposit");
    let pay = || keyed(Command::Transfer { from: alice, to: bob, amount: Amount(10) }, alice, "k1", "pay 10");
    let first = store.execute(pay()).await.expect("first");
    // Retried in separate batches and within one batch: one effect, the same answer.
    let second = store.execute(pay()).await.expect("retry");
    let batch = store.execute_batch(vec![pay(), pay()]).await.expect("batch");
    assert_eq!(first, second);
    assert!(batch.iter().all(|r| r.as_ref() == Ok(&first)));
    assert_eq!(balance(&store, bob).await, (10, 0));
    let reused = store
        .execute(keyed(Command::Transfer { from: alice, to: bob, amount: Amount(20) }, alice, "k1", "pay 20"))
        .await;
    assert_eq!(reused, Err(StoreError::IdempotencyConflict("k1".into())));
    // Keys are scoped per account: Bob's "k1" is a different key.
    store
        .execute(keyed(Command::Transfer { from: bob, to: alice, amount: Amount(1) }, bob, "k1", "pay 1"))
        .await
        .expect("bob's own key");
    // A failed request stores nothing, so the same key can be retried once it would succeed.
    let broke = store
        .execute(keyed(Command::Transfer { from: bob, to: alice, amount: Amount(50) }, bob, "k2", "b"))
        .await;
    assert!(broke.is_err());
    store.execute(Command::Deposit { account: bob, amount: Amount(100) }.into()).await.expect("deposit");
    store
        .execute(keyed(Command::Transfer { from: bob, to: alice, amount: Amount(50) }, bob, "k2", "b"))
        .await
        .expect("retry after funding");
    assert_eq!(balance(&store, bob).await, (10 - 1 + 100 - 50, 0));
}

async fn one_bad_request_never_sinks_its_batch(backend: Harness) {
    let store = backend.open(Arc::new(ManualClock(AtomicU64::new(1))));
    let (alice, bob) = (user(&store, "alice").await, user(&store, "bob").await);
    let results = store
        .execute_batch(vec![
            Command::Deposit { account: alice, amount: Amount(10) }.into(),
            Command::Transfer { from: alice, to: bob, amount: Amount(11) }.into(),
            Command::Transfer { from: alice, to: AccountId(999), amount: Amount(1) }.into(),
            Command::Transfer { from: alice, to: alice, amount: Amount(1) }.into(),
            Command::Transfer { from: alice, to: bob, amount: Amount(0) }.into(),
            Command::Transfer { from: alice, to: store.system_accounts().external, amount: Amount(1) }.into(),
            Command::Transfer { from: alice, to: bob, amount: Amount(4) }.into(),
        ])
        .await
        .expect("batch applied");
    let ok: Vec<bool> = results.iter().map(Result::is_ok).collect();
    assert_eq!(ok, [true, false, false, false, false, false, true]);
    assert_eq!(balance(&store, alice).await, (6, 0));
    assert_eq!(balance(&store, bob).await, (4, 0));
}

async fn registry_records_datanets_contributions_and_models(backend: Harness) {
    let store = backend.open(Arc::new(ManualClock(AtomicU64::new(7))));
    let alice = user(&store, "alice").await;
    let Ok(Outcome::DatanetCreated(datanet)) = store
        .execute(
            Command::CreateDatanet {
                owner: alice,
                name: "psalms".into(),
                description: "d".into(),
                license: "CC0".into(),
                rules: Default::default(),
            }
            .into(),
        )
        .await
    else {
        panic!("datanet")
    };
    let text = "The LORD is my shepherd; I shall not want.";
    let Ok(Outcome::ContributionAdded { id, .. }) = store
        .execute(
            Command::AddContribution {
                datanet,
                contributor: alice,
                contribution: NewContribution { title: "23".into(), text: text.into(), source: None },
                screening: None,
            }
            .into(),
        )
        .await
    else {
        panic!("contribution")
    };
    let stored = store.contribution(id).await.expect("read").expect("exists");
    assert_eq!(stored.text, text);
    assert_eq!(stored.content_hash, *blake3::hash(text.as_bytes()).as_bytes());
    assert_eq!(store.datanet(datanet).await.expect("read").expect("exists").contributions, 1);
    let missing = store
        .execute(
            Command::AddContribution {
                datanet: DatanetId(99),
                contributor: alice,
                contribution: NewContribution { title: "x".into(), text: "x".into(), source: None },
                screening: None,
            }
            .into(),
        )
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound { what: "datanet", .. })));
    let spec = ModelSpec {
        name: "shepherd".into(),
        datanets: vec![datanet],
        backend: Backend::Infinigram,
        price: Price { input_per_1k: Amount(1), output_per_1k: Amount(2), request: Amount(3) },
        split: SplitPolicy { owner_bps: 4000, data_bps: 4000, validators_bps: 1000, protocol_bps: 1000 },
    };
    let Ok(Outcome::ModelCreated(model)) =
        store.execute(Command::CreateModel { owner: alice, spec: spec.clone() }.into()).await
    else {
        panic!("model")
    };
    assert_eq!(store.model(model).await.expect("read").expect("exists").spec, spec);
    let bad_split = ModelSpec { split: SplitPolicy { protocol_bps: 999, ..spec.split }, ..spec };
    assert!(matches!(
        store.execute(Command::CreateModel { owner: alice, spec: bad_split }.into()).await,
        Err(StoreError::Invalid(_))
    ));
}

async fn acknowledged_writes_survive_reopen_and_tampering_is_detected(backend: Harness) {
    let clock = Arc::new(ManualClock(AtomicU64::new(1)));
    let (alice, bob, hold_id);
    {
        let store = backend.open(clock.clone());
        alice = user(&store, "alice").await;
        bob = user(&store, "bob").await;
        store
            .execute(Command::Deposit { account: alice, amount: Amount(u128::MAX / 2) }.into())
            .await
            .expect("deposit");
        let Ok(Outcome::Transfer(hold)) = store
            .execute(Command::Hold { from: alice, to: bob, amount: Amount(5), timeout_ms: 60_000 }.into())
            .await
        else {
            panic!("hold")
        };
        hold_id = hold.id;
        store.shutdown().await;
    }
    {
        let store = backend.open(clock.clone());
        assert_eq!(balance(&store, alice).await, (u128::MAX / 2 - 5, 5));
        assert_eq!(store.transfer(hold_id).await.expect("read").map(|t| t.kind), Some(TransferKind::Pending));
        assert_eq!(store.transfer(TransferId(hold_id.0 + 1)).await.expect("read"), None);
        store
            .execute(Command::PostHold { caller: alice, hold: hold_id, amount: None }.into())
            .await
            .expect("post after reopen");
        store.shutdown().await;
    }
    // Someone edits a balance behind the node's back: opening must refuse, not serve wrong money.
    let conn = rusqlite::Connection::open(backend.local_file()).expect("open raw");
    conn.execute("UPDATE accounts SET credits_posted = '999' WHERE id = ?1", [bob.0 as i64]).expect("tamper");
    drop(conn);
    let reopened = backend.try_open(clock, None);
    let error = reopened.expect_err("tampered ledger is refused");
    assert!(error.to_string().contains("disagrees with its history"), "{error}");
}

async fn account_history_is_complete_newest_first_across_indexed_and_fresh_transfers(backend: Harness) {
    let clock = Arc::new(ManualClock(AtomicU64::new(1)));
    let store = backend.open(clock.clone());
    let accounts = [user(&store, "a").await, user(&store, "b").await, user(&store, "c").await];
    for &account in &accounts {
        store.execute(Command::Deposit { account, amount: Amount(1_000_000) }.into()).await.expect("deposit");
    }
    let mut expected: Vec<Vec<TransferId>> = vec![Vec::new(); 3];
    let mut pay = |results: Vec<Result<Outcome, StoreError>>, pairs: &[(usize, usize)]| {
        for (result, &(from, to)) in results.into_iter().zip(pairs) {
            let Ok(Outcome::Transfer(transfer)) = result else { panic!("transfer failed: {result:?}") };
            expected[from].push(transfer.id);
            expected[to].push(transfer.id);
        }
    };
    let pairs: Vec<(usize, usize)> = (0..300).map(|n| (n % 3, (n + 1 + n / 3 % 2) % 3)).collect();
    let requests = |pairs: &[(usize, usize)]| -> Vec<Request> {
        pairs
            .iter()
            .map(|&(from, to)| {
                Command::Transfer { from: accounts[from], to: accounts[to], amount: Amount(1) }.into()
            })
            .collect()
    };
    pay(store.execute_batch(requests(&pairs)).await.expect("batch"), &pairs);
    // The writer indexes history once it has been idle for a moment.
    let raw = rusqlite::Connection::open(backend.local_file()).expect("raw");
    let watermark = || -> i64 {
        raw.query_row("SELECT indexed_through FROM history_watermark", [], |r| r.get(0)).expect("watermark")
    };
    let started = std::time::Instant::now();
    while watermark() < 303 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the idle writer never indexed history"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    drop(raw);
    let fresh: Vec<(usize, usize)> = (0..40).map(|n| (2 - n % 3, (3 - n % 3) % 3)).collect();
    pay(store.execute_batch(requests(&fresh)).await.expect("batch"), &fresh);

    let check = |store: SqliteStore, expected: Vec<Vec<TransferId>>| async move {
        for (n, &account) in accounts.iter().enumerate() {
            let mut newest_first = expected[n].clone();
            newest_first.reverse();
            for limit in [1u32, 7, 40, 150, 1000] {
                let got: Vec<TransferId> = store
                    .account_transfers(account, limit)
                    .await
                    .expect("history")
                    .iter()
                    .map(|t| t.id)
                    .collect();
                // The deposit is the account's first transfer, so it comes last.
                let mut want = newest_first.clone();
                want.truncate(limit as usize);
                assert_eq!(got[..want.len().min(got.len())], want[..], "account {account} limit {limit}");
                assert_eq!(got.len(), (newest_first.len() + 1).min(limit as usize));
            }
        }
        store
    };
    let store = check(store, expected.clone()).await;
    store.shutdown().await;
    drop(store);
    check(backend.open(clock), expected).await;
}

/// A crash leaves account rows as of the last balance snapshot and transfers after it. The next
/// snapshot must rewrite those accounts too, not only the ones touched since the restart, or it
/// moves the watermark past changes their rows do not hold and the next start refuses the ledger.
async fn a_restart_after_a_crash_keeps_the_balance_snapshot_whole(backend: Harness) {
    let clock = Arc::new(ManualClock(AtomicU64::new(1)));
    let (alice, bob, carol, dave);
    {
        let store = backend.open(clock.clone());
        alice = user(&store, "alice").await;
        bob = user(&store, "bob").await;
        carol = user(&store, "carol").await;
        dave = user(&store, "dave").await;
        for account in [alice, carol] {
            store.execute(Command::Deposit { account, amount: Amount(100) }.into()).await.expect("deposit");
        }
        store.shutdown().await;
    }
    let raw = rusqlite::Connection::open(backend.local_file()).expect("raw");
    let snapshot: Vec<(i64, rusqlite::types::Value, rusqlite::types::Value)> = raw
        .prepare("SELECT id, debits_posted, credits_posted FROM accounts")
        .expect("prepare")
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let watermark: i64 =
        raw.query_row("SELECT snapshot_through FROM balance_watermark", [], |row| row.get(0)).expect("mark");
    drop(raw);
    {
        let store = backend.open(clock.clone());
        store
            .execute(Command::Transfer { from: alice, to: bob, amount: Amount(30) }.into())
            .await
            .expect("transfer");
        store.shutdown().await;
    }
    // What a SIGKILL before the next snapshot leaves: the rows and the watermark of the last one.
    let raw = rusqlite::Connection::open(backend.local_file()).expect("raw");
    for (id, debits, credits) in &snapshot {
        raw.execute(
            "UPDATE accounts SET debits_posted = ?2, credits_posted = ?3 WHERE id = ?1",
            rusqlite::params![id, debits, credits],
        )
        .expect("restore row");
    }
    raw.execute("UPDATE balance_watermark SET snapshot_through = ?1", [watermark]).expect("restore mark");
    drop(raw);
    for round in 0..2 {
        let store = backend.open(clock.clone());
        assert_eq!(balance(&store, alice).await, (70, 0), "round {round}");
        assert_eq!(balance(&store, bob).await, (30, 0), "round {round}");
        store
            .execute(Command::Transfer { from: carol, to: dave, amount: Amount(1) }.into())
            .await
            .expect("transfer");
        assert!(store.ledger_summary().await.is_ok(), "round {round}");
        store.shutdown().await;
    }
}

/// A root published once stays recorded: a later failure to publish the same epoch (another node,
/// or a retry racing a slow success, that the contract refuses) does not erase the transaction.
async fn a_recorded_publication_is_never_undone_by_a_later_failure(backend: Harness) {
    let store = backend.open(Arc::new(ManualClock(AtomicU64::new(1))));
    let Ok(Outcome::AccountCreated(operator)) = store
        .execute(
            Command::CreateAccount {
                kind: AccountKind::Operator,
                name: "operator".into(),
                payout_address: None,
                api_key_hash: [9; 32],
            }
            .into(),
        )
        .await
    else {
        panic!("operator")
    };
    let Ok(Outcome::EpochClosed(epoch)) =
        store.execute(Command::CloseEpoch { caller: operator }.into()).await
    else {
        panic!("epoch closes")
    };
    let record = |tx_hash: Option<&str>, error: Option<&str>| Command::RecordEpochPublication {
        epoch: epoch.epoch,
        tx_hash: tx_hash.map(str::to_owned),
        error: error.map(str::to_owned),
    };
    let read = || async { store.epoch(epoch.epoch).await.expect("read").expect("epoch") };
    store.execute(record(None, Some("rpc unreachable")).into()).await.expect("failure recorded");
    assert_eq!(read().await.publish_error.as_deref(), Some("rpc unreachable"));
    store.execute(record(Some("0xabc"), None).into()).await.expect("success recorded");
    store.execute(record(None, Some("epoch already published")).into()).await.expect("late failure");
    let published = read().await;
    assert_eq!(published.tx_hash.as_deref(), Some("0xabc"));
    assert_eq!(published.publish_error, None);
}

on_both_backends!(
    deposits_transfers_and_holds_move_money_exactly,
    holds_expire_by_timeout,
    idempotency_keys_apply_once_and_reject_reuse,
    one_bad_request_never_sinks_its_batch,
    registry_records_datanets_contributions_and_models,
    acknowledged_writes_survive_reopen_and_tampering_is_detected,
    account_history_is_complete_newest_first_across_indexed_and_fresh_transfers,
    a_restart_after_a_crash_keeps_the_balance_snapshot_whole,
    a_recorded_publication_is_never_undone_by_a_later_failure,
);
