//! Many nodes on one PostgreSQL database, each a `SqliteStore` whose local file is a replica of the
//! shared log: racing writes through different nodes must be decided as if by one node (no
//! overdraft, one effect per idempotency key, one epoch close at a time), every node must end in
//! the same state, and PostgreSQL's mirrors must agree with it. Nodes that join late or lose their
//! replica rebuild it from the log; a node with another receipt key, or without a server, is refused.
//!
//! Every check that waits polls with a generous deadline rather than asserting on timing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tributary_core::registry::{Account, AccountKind};
use tributary_core::{AccountId, Amount, EvmAddress, ModelId, TransferId};
use tributary_ledger::state::{Balances, LedgerError, Transfer, TransferKind};
use tributary_ledger::store::{
    EpochRecord, IdempotencyKey, LedgerSummary, NewReceipt, Payment, ReceiptRecord,
};
use tributary_ledger::{Clock, Command, Outcome, Request, SqliteStore, Store, StoreError};

mod support;

use support::{Harness, KeyedSigner, PgDatabase};

/// How long a test waits for something that should happen within milliseconds (an expiry, a
/// replica catching up) before it gives up: generous, so that a slow machine never fails a test.
const CONVERGENCE_DEADLINE: Duration = Duration::from_secs(20);

/// A clock the test moves by hand; each node may have its own.
struct ManualClock(AtomicU64);

impl ManualClock {
    fn at(ms: u64) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicU64::new(ms)))
    }

    fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A small deterministic generator (xorshift64*), so that a failing race replays the same script.
struct Script(u64);

impl Script {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % below
    }
}

async fn create_account(
    store: &dyn Store,
    kind: AccountKind,
    name: &str,
    payout_address: Option<EvmAddress>,
) -> AccountId {
    let command = Command::CreateAccount {
        kind,
        name: name.into(),
        payout_address,
        api_key_hash: *blake3::hash(name.as_bytes()).as_bytes(),
    };
    match store.execute(command.into()).await {
        Ok(Outcome::AccountCreated(id)) => id,
        other => panic!("creating {name} failed: {other:?}"),
    }
}

async fn deposit(store: &dyn Store, account: AccountId, amount: u128) -> Transfer {
    expect_transfer(store.execute(Command::Deposit { account, amount: Amount(amount) }.into()).await)
}

fn expect_transfer(result: Result<Outcome, StoreError>) -> Transfer {
    match result {
        Ok(Outcome::Transfer(transfer)) => transfer,
        other => panic!("expected a transfer, got {other:?}"),
    }
}

async fn hold(store: &dyn Store, from: AccountId, to: AccountId, amount: u128, timeout_ms: u64) -> Transfer {
    let held = expect_transfer(
        store.execute(Command::Hold { from, to, amount: Amount(amount), timeout_ms }.into()).await,
    );
    assert_eq!(held.kind, TransferKind::Pending);
    held
}

/// `(available, held)` as the node reports them.
async fn balance(store: &dyn Store, id: AccountId) -> (u128, u128) {
    let account = store.account(id).await.expect("read").expect("account exists");
    (account.balance.0, account.held.0)
}

fn keyed(command: Command, scope: AccountId, key: &str, request: &str) -> Request {
    Request {
        command,
        idempotency: Some(IdempotencyKey {
            scope,
            key: key.into(),
            request_hash: *blake3::hash(request.as_bytes()).as_bytes(),
        }),
    }
}

/// A paid inference as the server makes one: hold the fee on clearing through `hold_node`, then
/// settle it (split lines and signed receipt) through `settle_node`.
async fn paid_inference(
    hold_node: &dyn Store,
    settle_node: &dyn Store,
    payer: AccountId,
    lines: &[(AccountId, u128)],
    body: String,
) -> ReceiptRecord {
    let fee: u128 = lines.iter().map(|&(_, amount)| amount).sum();
    let clearing = hold_node.system_accounts().clearing;
    let held = hold(hold_node, payer, clearing, fee, 600_000).await;
    let payments = lines
        .iter()
        .map(|&(account, amount)| Payment { account, role: "data".into(), amount: Amount(amount) })
        .collect();
    let receipt = NewReceipt { caller: payer, model: ModelId(1), body };
    match settle_node
        .execute(Command::SettleInference { hold: held.id, fee: Amount(fee), payments, receipt }.into())
        .await
    {
        Ok(Outcome::InferenceSettled(record)) => record,
        other => panic!("settling hold {} failed: {other:?}", held.id),
    }
}

/// Everything a node serves that the tests compare across nodes.
#[derive(Debug, PartialEq)]
struct NodeView {
    summary: LedgerSummary,
    accounts: Vec<Account>,
    transfers: Vec<Transfer>,
    receipts: Vec<ReceiptRecord>,
    epochs: Vec<EpochRecord>,
    log_applied: Option<u64>,
}

/// Reads a node's whole state after waiting for its replica to apply everything in the log.
/// Account and transfer ids are dense from 1, so every one is read by id.
async fn view(store: &SqliteStore) -> NodeView {
    store.sync().await.expect("the replica catches up");
    let summary = store.ledger_summary().await.expect("the audit passes");
    let mut accounts = Vec::new();
    for id in 1..=summary.accounts {
        accounts.push(store.account(AccountId(id)).await.expect("read").expect("account ids are dense"));
    }
    let mut transfers = Vec::new();
    for id in 1..=summary.transfers {
        transfers.push(store.transfer(TransferId(id)).await.expect("read").expect("transfer ids are dense"));
    }
    let mut receipts = Vec::new();
    while let Some(receipt) = store.receipt(receipts.len() as u64 + 1).await.expect("read") {
        receipts.push(receipt);
    }
    let epochs = store.epochs(1_000).await.expect("epochs");
    NodeView { summary, accounts, transfers, receipts, epochs, log_applied: store.stats().log_applied }
}

/// Checks what every node must agree on and returns the (common) view: the same state everywhere,
/// applied through the end of the log, balanced, each account's balance what its transfer history
/// says, a receipt chain that links, and PostgreSQL's mirrors equal to it all.
async fn assert_nodes_agree(database: &PgDatabase, nodes: &[&SqliteStore]) -> NodeView {
    let first = view(nodes[0]).await;
    for (index, node) in nodes.iter().enumerate().skip(1) {
        let other = view(node).await;
        assert_eq!(first, other, "node {index} disagrees with node 0");
    }
    let log_end: u64 = database.query_text("SELECT COALESCE(max(seq), 0)::text FROM log_batches")[0]
        .parse()
        .expect("a number");
    assert_eq!(first.log_applied, Some(log_end), "nodes applied the whole log");
    let totals = first.summary.totals;
    assert_eq!(totals.debits_posted, totals.credits_posted, "debits equal credits");
    assert_eq!(totals.debits_pending, totals.credits_pending, "pending debits equal pending credits");

    // Balances derived from the history alone, independently of the store's own bookkeeping.
    let derived = balances_from_history(&first.transfers);
    for account in &first.accounts {
        let balances = derived.get(&account.id).copied().unwrap_or_default();
        assert_eq!(
            (account.balance.0, account.held.0),
            (balances.available(), balances.debits_pending),
            "{} balance against its history",
            account.id
        );
    }
    let mut previous_hash = [0u8; 32];
    for receipt in &first.receipts {
        assert_eq!(receipt.prev_hash, previous_hash, "receipt {} links to its predecessor", receipt.id);
        previous_hash = receipt.hash;
    }

    // PostgreSQL's mirrors, audited in SQL.
    let sums = database.query_text(
        "SELECT concat_ws(' ', COALESCE(sum(debits_posted), 0), COALESCE(sum(credits_posted), 0), \
         COALESCE(sum(debits_pending), 0), COALESCE(sum(credits_pending), 0)) FROM account_balances",
    );
    assert_eq!(
        sums[0],
        format!(
            "{} {} {} {}",
            totals.debits_posted, totals.credits_posted, totals.debits_pending, totals.credits_pending
        ),
        "the mirror's sums are the ledger's totals"
    );
    let mirrored_accounts: BTreeMap<u64, String> = database
        .query_text(
            "SELECT concat_ws(' ', id, debits_posted, credits_posted, debits_pending, credits_pending) \
             FROM account_balances ORDER BY id",
        )
        .into_iter()
        .map(|row| (row.split(' ').next().expect("id").parse().expect("an id"), row))
        .collect();
    for account in &first.accounts {
        let balances = derived.get(&account.id).copied().unwrap_or_default();
        let expected = format!(
            "{} {} {} {} {}",
            account.id.0,
            balances.debits_posted,
            balances.credits_posted,
            balances.debits_pending,
            balances.credits_pending
        );
        match mirrored_accounts.get(&account.id.0) {
            Some(row) => assert_eq!(row, &expected, "mirrored balances of {}", account.id),
            None => {
                assert_eq!(balances, Balances::default(), "{} moved money but is not mirrored", account.id)
            }
        }
    }
    let known: BTreeSet<u64> = first.accounts.iter().map(|account| account.id.0).collect();
    assert!(mirrored_accounts.keys().all(|id| known.contains(id)), "the mirror has no unknown accounts");
    let mirrored_transfers = database.query_text(
        "SELECT concat_ws(' ', id, kind, debit_account, credit_account, amount, COALESCE(pending_id::text, '-'), \
         COALESCE(expires_at_ms::text, '-'), created_at_ms) FROM transfers ORDER BY id",
    );
    let expected_transfers: Vec<String> = first.transfers.iter().map(mirror_row).collect();
    assert_eq!(mirrored_transfers, expected_transfers, "the transfers mirror is the ledger's history");
    first
}

/// A transfer as the `transfers` mirror holds it (see `assert_nodes_agree`).
fn mirror_row(transfer: &Transfer) -> String {
    let kind = transfer.kind.as_str();
    let optional = |value: Option<u64>| value.map_or("-".to_owned(), |v| v.to_string());
    format!(
        "{} {kind} {} {} {} {} {} {}",
        transfer.id.0,
        transfer.debit.0,
        transfer.credit.0,
        transfer.amount.0,
        optional(transfer.pending_id.map(|id| id.0)),
        optional(transfer.expires_at_ms),
        transfer.created_at_ms
    )
}

/// Every account's four counters, replayed from the transfer history in id order.
fn balances_from_history(transfers: &[Transfer]) -> BTreeMap<AccountId, Balances> {
    let mut balances: BTreeMap<AccountId, Balances> = BTreeMap::new();
    let by_id: BTreeMap<TransferId, &Transfer> = transfers.iter().map(|t| (t.id, t)).collect();
    for transfer in transfers {
        let amount = transfer.amount.0;
        let hold_amount = || {
            let hold = transfer.pending_id.expect("a resolution names its hold");
            by_id.get(&hold).expect("the hold precedes its resolution").amount.0
        };
        let (debit, credit) = (transfer.debit, transfer.credit);
        match transfer.kind {
            TransferKind::Posted => {
                balances.entry(debit).or_default().debits_posted += amount;
                balances.entry(credit).or_default().credits_posted += amount;
            }
            TransferKind::Pending => {
                balances.entry(debit).or_default().debits_pending += amount;
                balances.entry(credit).or_default().credits_pending += amount;
            }
            TransferKind::PostPending => {
                let held = hold_amount();
                let debit = balances.entry(debit).or_default();
                debit.debits_pending -= held;
                debit.debits_posted += amount;
                let credit = balances.entry(credit).or_default();
                credit.credits_pending -= held;
                credit.credits_posted += amount;
            }
            TransferKind::VoidPending | TransferKind::ExpirePending => {
                let held = hold_amount();
                balances.entry(debit).or_default().debits_pending -= held;
                balances.entry(credit).or_default().credits_pending -= held;
            }
        }
    }
    balances
}

/// Waits until `done` holds, failing after [`CONVERGENCE_DEADLINE`] with `what`.
async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < CONVERGENCE_DEADLINE, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One racing client's transfers: `(from, to, amount, result)` by account index.
type Attempts = Vec<(usize, usize, u128, Result<Outcome, StoreError>)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_transfers_through_two_nodes_never_overdraw_and_every_node_agrees() {
    const ACCOUNTS: usize = 3;
    const DEPOSIT_UNITS: u128 = 400;
    const CLIENTS_PER_NODE: u64 = 3;
    const ROUNDS_PER_CLIENT: usize = 30;
    let harness = Harness::postgres();
    let clock = ManualClock::at(1_000);
    let a = Arc::new(harness.open_as("a", clock.clone(), None).expect("node a opens"));
    let b = Arc::new(harness.open_as("b", clock.clone(), None).expect("node b opens"));
    let mut accounts = Vec::new();
    let mut deposits = Vec::new();
    for index in 0..ACCOUNTS {
        let node: &SqliteStore = if index % 2 == 0 { &a } else { &b };
        let account = create_account(node, AccountKind::User, &format!("user{index}"), None).await;
        deposits.push(deposit(node, account, DEPOSIT_UNITS).await);
        accounts.push(account);
    }

    // Clients on both nodes draw from the same three accounts at once, with amounts large enough
    // that many transfers would overdraw. Each round is one request or a batch of up to three.
    let mut clients = Vec::new();
    for (node_index, node) in [Arc::clone(&a), Arc::clone(&b)].into_iter().enumerate() {
        for client in 0..CLIENTS_PER_NODE {
            let (node, accounts) = (Arc::clone(&node), accounts.clone());
            let seed = 0x9e37_79b9_7f4a_7c15 ^ (node_index as u64 * 131 + client + 1);
            clients.push(tokio::spawn(async move {
                let mut script = Script(seed);
                let mut attempts: Attempts = Vec::new();
                for _ in 0..ROUNDS_PER_CLIENT {
                    let mut planned = Vec::new();
                    for _ in 0..=script.next(3) {
                        let from = script.next(ACCOUNTS as u64) as usize;
                        let to = (from + 1 + script.next(ACCOUNTS as u64 - 1) as usize) % ACCOUNTS;
                        let amount = 1 + u128::from(script.next(250));
                        planned.push((from, to, amount));
                    }
                    let requests = planned
                        .iter()
                        .map(|&(from, to, amount)| {
                            Command::Transfer {
                                from: accounts[from],
                                to: accounts[to],
                                amount: Amount(amount),
                            }
                            .into()
                        })
                        .collect();
                    let results = node.execute_batch(requests).await.expect("the batch is applied");
                    assert_eq!(results.len(), planned.len());
                    for ((from, to, amount), result) in planned.into_iter().zip(results) {
                        attempts.push((from, to, amount, result));
                    }
                }
                attempts
            }));
        }
    }
    let mut accepted: BTreeMap<TransferId, (usize, usize, u128, Transfer)> = BTreeMap::new();
    let mut refused = 0;
    for client in clients {
        for (from, to, amount, result) in client.await.expect("client task") {
            match result {
                Ok(Outcome::Transfer(transfer)) => {
                    assert_eq!(
                        (transfer.kind, transfer.debit, transfer.credit, transfer.amount),
                        (TransferKind::Posted, accounts[from], accounts[to], Amount(amount)),
                        "the acknowledged transfer is the one requested"
                    );
                    let previous = accepted.insert(transfer.id, (from, to, amount, transfer));
                    assert!(previous.is_none(), "two acknowledgements share a transfer id");
                }
                Err(StoreError::Ledger(LedgerError::InsufficientFunds { account, .. })) => {
                    assert_eq!(account, accounts[from], "only the debited account can be short");
                    refused += 1;
                }
                other => panic!("a transfer failed for another reason than funds: {other:?}"),
            }
        }
    }
    assert!(!accepted.is_empty() && refused > 0, "the race exercised both outcomes: {refused} refused");

    // Transfer ids follow the log's order, which is the order every node decided in: replaying the
    // acknowledged transfers in that order must never take an account below zero.
    let mut units: Vec<i128> = vec![0; ACCOUNTS];
    for (index, deposited) in deposits.iter().enumerate() {
        assert!(accepted.keys().all(|id| *id > deposited.id), "deposits came first");
        units[index] += DEPOSIT_UNITS as i128;
    }
    for (id, &(from, to, amount, _)) in &accepted {
        units[from] -= amount as i128;
        assert!(units[from] >= 0, "transfer {id} overdrew account {} to {}", accounts[from], units[from]);
        units[to] += amount as i128;
    }
    assert_eq!(units.iter().sum::<i128>(), (ACCOUNTS as u128 * DEPOSIT_UNITS) as i128);

    for node in [&a, &b] {
        node.sync().await.expect("sync");
        for (index, &account) in accounts.iter().enumerate() {
            assert_eq!(balance(&**node, account).await, (units[index] as u128, 0), "{account}");
        }
        for (id, (_, _, _, transfer)) in &accepted {
            assert_eq!(node.transfer(*id).await.expect("read").as_ref(), Some(transfer), "transfer {id}");
        }
    }
    let state = assert_nodes_agree(harness.postgres.as_ref().expect("postgres"), &[&a, &b]).await;
    assert_eq!(state.summary.transfers, (ACCOUNTS + accepted.len()) as u64);
    assert_eq!(state.summary.external_debit_excess, ACCOUNTS as u128 * DEPOSIT_UNITS);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_idempotency_key_sent_to_both_nodes_at_once_has_one_effect_and_one_answer() {
    const SENDERS_PER_NODE: usize = 6;
    let harness = Harness::postgres();
    let clock = ManualClock::at(1_000);
    let a = Arc::new(harness.open_as("a", clock.clone(), None).expect("node a opens"));
    let b = Arc::new(harness.open_as("b", clock.clone(), None).expect("node b opens"));
    let alice = create_account(&*a, AccountKind::User, "alice", None).await;
    let bob = create_account(&*b, AccountKind::User, "bob", None).await;
    deposit(&*a, alice, 100).await;
    let pay =
        move || keyed(Command::Transfer { from: alice, to: bob, amount: Amount(10) }, alice, "k", "pay 10");

    // Every sender retries three times: alone, then twice in one batch.
    let mut senders = Vec::new();
    for node in [Arc::clone(&a), Arc::clone(&b)] {
        for _ in 0..SENDERS_PER_NODE {
            let node = Arc::clone(&node);
            senders.push(tokio::spawn(async move {
                let mut outcomes = vec![node.execute(pay()).await];
                outcomes.extend(node.execute_batch(vec![pay(), pay()]).await.expect("batch applied"));
                outcomes
            }));
        }
    }
    let mut outcomes = Vec::new();
    for sender in senders {
        outcomes.extend(sender.await.expect("sender task"));
    }
    let first = expect_transfer(outcomes[0].clone());
    assert!(
        outcomes.iter().all(|outcome| outcome == &Ok(Outcome::Transfer(first.clone()))),
        "every retry answers with the first outcome: {outcomes:?}"
    );
    for node in [&a, &b] {
        node.sync().await.expect("sync");
        assert_eq!(balance(&**node, alice).await, (90, 0));
        assert_eq!(balance(&**node, bob).await, (10, 0));
        let history = node.account_transfers(alice, 100).await.expect("history");
        assert_eq!(history.len(), 2, "the deposit and one transfer: {history:?}");
    }

    // The key now belongs to "pay 10": a different request under it is refused on either node.
    let pay_more =
        || keyed(Command::Transfer { from: alice, to: bob, amount: Amount(20) }, alice, "k", "pay 20");
    for node in [&b, &a] {
        assert_eq!(node.execute(pay_more()).await, Err(StoreError::IdempotencyConflict("k".into())));
        assert_eq!(node.execute(pay()).await, Ok(Outcome::Transfer(first.clone())));
    }
    let state = assert_nodes_agree(harness.postgres.as_ref().expect("postgres"), &[&a, &b]).await;
    assert_eq!(state.summary.transfers, 2);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_move_between_nodes_and_expire_once_for_all() {
    let harness = Harness::postgres();
    let (clock_a, clock_b) = (ManualClock::at(1_000), ManualClock::at(1_000));
    let a = harness.open_as("a", clock_a.clone(), None).expect("node a opens");
    let b = harness.open_as("b", clock_b.clone(), None).expect("node b opens");
    let alice = create_account(&a, AccountKind::User, "alice", None).await;
    let bob = create_account(&b, AccountKind::User, "bob", None).await;
    deposit(&a, alice, 1_000).await;

    // Placed on a, posted (in part) on b, which has never been asked about it before.
    let posted_hold = hold(&a, alice, bob, 300, 60_000).await;
    let posted = expect_transfer(
        b.execute(
            Command::PostHold { caller: alice, hold: posted_hold.id, amount: Some(Amount(200)) }.into(),
        )
        .await,
    );
    assert_eq!(
        (posted.kind, posted.amount, posted.pending_id),
        (TransferKind::PostPending, Amount(200), Some(posted_hold.id))
    );
    let twice =
        a.execute(Command::PostHold { caller: alice, hold: posted_hold.id, amount: None }.into()).await;
    assert_eq!(twice, Err(StoreError::Ledger(LedgerError::HoldNotPending(posted_hold.id))));

    // Placed on a, voided by the payee on b: a can no longer post it.
    let voided_hold = hold(&a, alice, bob, 100, 60_000).await;
    let voided =
        expect_transfer(b.execute(Command::VoidHold { caller: bob, hold: voided_hold.id }.into()).await);
    assert_eq!(voided.kind, TransferKind::VoidPending);
    let late =
        a.execute(Command::PostHold { caller: alice, hold: voided_hold.id, amount: None }.into()).await;
    assert_eq!(late, Err(StoreError::Ledger(LedgerError::HoldNotPending(voided_hold.id))));
    for node in [&a, &b] {
        node.sync().await.expect("sync");
        assert_eq!(balance(node, alice).await, (800, 0));
        assert_eq!(balance(node, bob).await, (200, 0));
    }

    // Placed on b with a short timeout; both nodes' clocks pass it, and both writers are due to
    // expire it. Exactly one expiry may reach the log.
    let expiring = hold(&b, alice, bob, 70, 500).await;
    assert_eq!(expiring.expires_at_ms, Some(1_500));
    a.sync().await.expect("sync");
    assert_eq!(balance(&a, alice).await, (730, 70));
    clock_a.set(2_000);
    clock_b.set(2_000);
    for node in [&a, &b] {
        eventually("the hold expires on every node", || async {
            node.sync().await.expect("sync");
            balance(node, alice).await == (800, 0)
        })
        .await;
    }
    let mut expiries = Vec::new();
    for node in [&a, &b] {
        let history = node.account_transfers(alice, 100).await.expect("history");
        let found: Vec<Transfer> = history
            .into_iter()
            .filter(|t| t.kind == TransferKind::ExpirePending && t.pending_id == Some(expiring.id))
            .collect();
        assert_eq!(found.len(), 1, "one expiry of hold {}: {found:?}", expiring.id);
        assert_eq!((found[0].amount, found[0].debit, found[0].credit), (Amount(70), alice, bob));
        assert!(found[0].created_at_ms >= 1_500, "expired no earlier than due: {:?}", found[0]);
        expiries.push(found[0].clone());
    }
    assert_eq!(expiries[0], expiries[1], "both nodes show the same expiry");
    for node in [&a, &b] {
        let posted =
            node.execute(Command::PostHold { caller: alice, hold: expiring.id, amount: None }.into()).await;
        assert_eq!(posted, Err(StoreError::Ledger(LedgerError::HoldNotPending(expiring.id))));
    }
    let database = harness.postgres.as_ref().expect("postgres");
    let mirrored = database.query_text(&format!(
        "SELECT count(*)::text FROM transfers WHERE kind = 'expire_pending' AND pending_id = {}",
        expiring.id.0
    ));
    assert_eq!(mirrored, ["1"], "one expiry in the mirror");
    let state = assert_nodes_agree(database, &[&a, &b]).await;
    assert_eq!(state.summary.holds_pending, 0);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_epoch_closes_on_two_nodes_number_epochs_once_and_never_pay_twice() {
    /// A bound on each closing loop, in case earning never ends.
    const CLOSES_PER_NODE_MAX: usize = 200;
    const INFERENCES: usize = 8;
    let harness = Harness::postgres();
    let clock = ManualClock::at(1_000);
    let signer = KeyedSigner::with_key(7);
    let a = Arc::new(harness.open_as("a", clock.clone(), Some(signer.clone())).expect("node a opens"));
    let b = Arc::new(harness.open_as("b", clock.clone(), Some(signer.clone())).expect("node b opens"));
    let operator = create_account(&*a, AccountKind::Operator, "operator", None).await;
    let payer = create_account(&*b, AccountKind::User, "payer", None).await;
    deposit(&*a, payer, 1_000_000).await;
    let address = |index: usize| EvmAddress([index as u8 + 1; 20]);
    let mut payees = Vec::new();
    for index in 0..3 {
        let node: &SqliteStore = if index % 2 == 0 { &a } else { &b };
        payees.push(
            create_account(node, AccountKind::User, &format!("payee{index}"), Some(address(index))).await,
        );
    }
    // No payout address: its earnings are kept owed, never paid.
    let keeper = create_account(&*a, AccountKind::User, "keeper", None).await;

    // Earnings arrive (held on one node, settled on the other) while both nodes close epochs.
    let earning = Arc::new(AtomicBool::new(true));
    let earner = {
        let earning = Arc::clone(&earning);
        let (a, b, payees) = (Arc::clone(&a), Arc::clone(&b), payees.clone());
        tokio::spawn(async move {
            let mut earned: BTreeMap<AccountId, u128> = BTreeMap::new();
            for round in 0..INFERENCES {
                let (hold_node, settle_node) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
                let lines =
                    [(payees[round % 3], 100 + round as u128), (payees[(round + 1) % 3], 10), (keeper, 5)];
                paid_inference(&**hold_node, &**settle_node, payer, &lines, format!("{{\"round\":{round}}}"))
                    .await;
                for (account, amount) in lines {
                    *earned.entry(account).or_default() += amount;
                }
            }
            earning.store(false, Ordering::SeqCst);
            earned
        })
    };
    let mut closers = Vec::new();
    for node in [Arc::clone(&a), Arc::clone(&b)] {
        let earning = Arc::clone(&earning);
        closers.push(tokio::spawn(async move {
            let mut records = Vec::new();
            // Each node closes at least once, and keeps closing while inferences settle.
            loop {
                match node.execute(Command::CloseEpoch { caller: operator }.into()).await {
                    Ok(Outcome::EpochClosed(record)) => records.push(record),
                    other => panic!("close failed: {other:?}"),
                }
                if !earning.load(Ordering::SeqCst) || records.len() >= CLOSES_PER_NODE_MAX {
                    break records;
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        }));
    }
    let earned = earner.await.expect("earner task");
    let mut closed: Vec<EpochRecord> = Vec::new();
    for closer in closers {
        closed.extend(closer.await.expect("closer task"));
    }
    // A last close after all earnings, so that everything owed to an address is paid.
    match b.execute(Command::CloseEpoch { caller: operator }.into()).await {
        Ok(Outcome::EpochClosed(record)) => closed.push(record),
        other => panic!("final close failed: {other:?}"),
    }
    let refused = a.execute(Command::CloseEpoch { caller: payer }.into()).await;
    assert!(matches!(refused, Err(StoreError::Forbidden(_))), "{refused:?}");

    closed.sort_by_key(|record| record.epoch);
    let numbers: Vec<u64> = closed.iter().map(|record| record.epoch).collect();
    let expected: Vec<u64> = (1..=closed.len() as u64).collect();
    assert_eq!(numbers, expected, "distinct, consecutive epoch numbers");
    for pair in closed.windows(2) {
        assert_eq!(pair[1].receipts_first, pair[0].receipts_last + 1, "epochs cover receipts once");
        assert!(pair[1].total >= pair[0].total, "cumulative payouts never fall");
    }
    assert_eq!(closed[0].receipts_first, 1);
    assert_eq!(closed.last().expect("epochs").receipts_last, INFERENCES as u64);

    let state = assert_nodes_agree(harness.postgres.as_ref().expect("postgres"), &[&a, &b]).await;
    let mut newest_first = closed.clone();
    newest_first.reverse();
    assert_eq!(state.epochs, newest_first, "both nodes list the epochs the closes answered with");
    assert_eq!(state.receipts.len(), INFERENCES);

    // Paid exactly what was earned, once: per account, per address and in total.
    let settled_total: u128 = closed.iter().map(|record| record.settled.0).sum();
    let earned_by_addresses: u128 = payees.iter().map(|payee| earned[payee]).sum();
    assert_eq!(settled_total, earned_by_addresses, "every epoch together paid what was earned");
    let last = closed.last().expect("epochs").epoch;
    for node in [&a, &b] {
        let payouts = node.epoch_payouts(last).await.expect("payouts");
        let expected: Vec<(EvmAddress, Amount)> =
            (0..3).map(|index| (address(index), Amount(earned[&payees[index]]))).collect();
        assert_eq!(payouts, expected, "cumulative payouts are the earnings");
        for &payee in &payees {
            let (lines, owed) = node.settlements(payee).await.expect("settlements");
            assert_eq!(
                lines.iter().map(|line| line.amount.0).sum::<u128>(),
                earned[&payee],
                "{payee} paid once"
            );
            assert_eq!(owed, Amount(0));
            assert_eq!(balance(&**node, payee).await, (0, 0), "{payee} was paid everything it earned");
        }
        let (lines, owed) = node.settlements(keeper).await.expect("settlements");
        assert!(lines.is_empty(), "no address, no payout");
        assert_eq!(owed.0, earned[&keeper]);
        assert_eq!(balance(&**node, keeper).await, (earned[&keeper], 0));
    }
    let fees: u128 = earned.values().sum();
    assert_eq!(state.summary.external_debit_excess, 1_000_000 - earned_by_addresses);
    assert_eq!(balance(&*a, payer).await, (1_000_000 - fees, 0));
    a.shutdown().await;
    b.shutdown().await;
}

/// Some of everything, for the tests that rebuild a node: transfers, a posted and a pending hold,
/// paid inferences and an epoch close, spread over both nodes.
async fn busy_history(a: &SqliteStore, b: &SqliteStore) {
    let operator = create_account(a, AccountKind::Operator, "operator", None).await;
    let payer = create_account(b, AccountKind::User, "payer", None).await;
    let payee = create_account(a, AccountKind::User, "payee", Some(EvmAddress([9; 20]))).await;
    let other = create_account(b, AccountKind::User, "other", None).await;
    deposit(a, payer, 10_000).await;
    expect_transfer(
        b.execute(Command::Transfer { from: payer, to: other, amount: Amount(1_234) }.into()).await,
    );
    let posted = hold(b, payer, other, 500, 60_000).await;
    expect_transfer(
        a.execute(Command::PostHold { caller: payer, hold: posted.id, amount: Some(Amount(321)) }.into())
            .await,
    );
    hold(a, other, payer, 77, 600_000).await;
    paid_inference(a, b, payer, &[(payee, 40), (other, 2)], "{\"n\":1}".into()).await;
    paid_inference(b, a, payer, &[(payee, 60)], "{\"n\":2}".into()).await;
    assert!(matches!(
        b.execute(Command::CloseEpoch { caller: operator }.into()).await,
        Ok(Outcome::EpochClosed(_))
    ));
    paid_inference(a, a, payer, &[(other, 3)], "{\"n\":3}".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_late_catches_up_at_open_and_one_with_another_receipt_key_is_refused() {
    let harness = Harness::postgres();
    let database = harness.postgres.as_ref().expect("postgres");
    let clock = ManualClock::at(1_000);
    let signer = KeyedSigner::with_key(7);
    let a = harness.open_as("a", clock.clone(), Some(signer.clone())).expect("node a opens");
    let b = harness.open_as("b", clock.clone(), Some(signer.clone())).expect("node b opens");
    busy_history(&a, &b).await;
    let before = assert_nodes_agree(database, &[&a, &b]).await;
    assert_eq!(before.receipts.len(), 3);
    assert_eq!(before.epochs.len(), 1);
    assert_eq!(before.summary.holds_pending, 1);

    // A fresh replica directory: everything comes from the log, before the open returns.
    let c = harness.open_as("c", clock.clone(), Some(signer.clone())).expect("node c opens");
    assert_eq!(c.stats().log_applied, before.log_applied, "caught up at open, without a sync");
    let late = assert_nodes_agree(database, &[&a, &b, &c]).await;
    assert_eq!(late, before, "the late node serves what the others do, receipt signatures included");

    // Another key would re-sign the chain differently: refused, and nothing changes.
    let refused = harness.open_as("d", clock.clone(), Some(KeyedSigner::with_key(8)));
    let error = refused.expect_err("a node with another receipt key is refused");
    assert!(error.to_string().contains("receipt key"), "{error}");
    // The late node writes like any other, and the others see it.
    let payer = before.accounts.iter().find(|account| account.name == "payer").expect("payer").id;
    let other = before.accounts.iter().find(|account| account.name == "other").expect("other").id;
    expect_transfer(c.execute(Command::Transfer { from: payer, to: other, amount: Amount(1) }.into()).await);
    let after = assert_nodes_agree(database, &[&a, &b, &c]).await;
    assert_eq!(after.summary.transfers, before.summary.transfers + 1);
    for node in [&a, &b, &c] {
        node.shutdown().await;
    }
}

#[tokio::test]
async fn a_node_pointed_at_an_unreachable_server_fails_to_open_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let replicas = dir.path().join("replicas");
    let clock = ManualClock::at(1);
    for url in ["postgresql://postgres@127.0.0.1:1/x", "not a connection string"] {
        let error = SqliteStore::open_postgres(url, &replicas, "a", clock.clone(), KeyedSigner::with_key(7))
            .expect_err("there is no server to open a node on");
        assert!(matches!(error, StoreError::Internal(_)), "{url}: {error:?}");
        assert!(error.to_string().contains("connecting to PostgreSQL"), "{url}: {error}");
    }
    assert!(!replicas.exists(), "a node that cannot reach the log creates no replica");
}

/// What an operator must read to fix a wrong URL: the server's own reason (no such database, a
/// refused connection), not only which kind of error the client library met.
#[tokio::test]
async fn a_node_that_cannot_open_its_database_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let replicas = dir.path().join("replicas");
    let clock = ManualClock::at(1);
    let missing = format!("{}/tributary_no_such_database", support::postgres_server());
    let error = SqliteStore::open_postgres(&missing, &replicas, "a", clock.clone(), KeyedSigner::with_key(7))
        .expect_err("the database does not exist");
    assert!(error.to_string().contains("tributary_no_such_database"), "{error}");
    let error = SqliteStore::open_postgres(
        "postgresql://postgres@127.0.0.1:1/x",
        &replicas,
        "a",
        clock,
        KeyedSigner::with_key(7),
    )
    .expect_err("nothing listens on port 1");
    assert!(error.to_string().to_lowercase().contains("refused"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_replica_is_rebuilt_from_the_log_with_identical_state() {
    let harness = Harness::postgres();
    let database = harness.postgres.as_ref().expect("postgres");
    let clock = ManualClock::at(1_000);
    let signer = KeyedSigner::with_key(7);
    let a = harness.open_as("a", clock.clone(), Some(signer.clone())).expect("node a opens");
    let b = harness.open_as("b", clock.clone(), Some(signer.clone())).expect("node b opens");
    busy_history(&a, &b).await;
    let before = assert_nodes_agree(database, &[&a, &b]).await;
    a.shutdown().await;
    drop(a);

    // While a is down its replica is lost, and b goes on writing.
    let replica_directory = harness.dir.path().join("a");
    assert!(replica_directory.is_dir(), "node a kept its replica in {}", replica_directory.display());
    std::fs::remove_dir_all(&replica_directory).expect("delete the replica");
    let payer = before.accounts.iter().find(|account| account.name == "payer").expect("payer").id;
    let other = before.accounts.iter().find(|account| account.name == "other").expect("other").id;
    expect_transfer(b.execute(Command::Transfer { from: payer, to: other, amount: Amount(5) }.into()).await);
    let b_now = view(&b).await;

    let a = harness.open_as("a", clock.clone(), Some(signer.clone())).expect("node a reopens");
    assert!(replica_directory.is_dir(), "the replica was recreated");
    assert_eq!(a.stats().log_applied, b_now.log_applied, "rebuilt at open, without a sync");
    let rebuilt = assert_nodes_agree(database, &[&a, &b]).await;
    assert_eq!(rebuilt, b_now);
    assert_eq!(rebuilt.transfers[..before.transfers.len()], before.transfers[..], "history is unchanged");
    assert_eq!(rebuilt.receipts, before.receipts, "receipts, signatures included, are unchanged");
    assert_eq!(rebuilt.epochs, before.epochs);

    // The rebuilt node decides against the same state: the pending hold on `other` still binds.
    let (available, held) = balance(&a, other).await;
    assert_eq!(held, 77);
    let overdraw =
        a.execute(Command::Transfer { from: other, to: payer, amount: Amount(available + 1) }.into()).await;
    assert!(
        matches!(overdraw, Err(StoreError::Ledger(LedgerError::InsufficientFunds { .. }))),
        "{overdraw:?}"
    );
    expect_transfer(
        a.execute(Command::Transfer { from: other, to: payer, amount: Amount(available) }.into()).await,
    );
    assert_nodes_agree(database, &[&a, &b]).await;
    a.shutdown().await;
    b.shutdown().await;
}

/// Sends a keyed request until it succeeds (a bounded number of times), as a client would.
async fn until_applied(store: &dyn Store, request: Request) -> Outcome {
    for _ in 0..50 {
        match store.execute(request.clone()).await {
            Ok(outcome) => return outcome,
            Err(error) => {
                assert!(matches!(error, StoreError::Internal(_)), "only the outage may refuse it: {error}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    panic!("the request never succeeded after the database came back")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_ride_out_dropped_connections_and_an_unreachable_database() {
    let harness = Harness::postgres();
    let database = harness.postgres.as_ref().expect("postgres");
    let clock = ManualClock::at(1_000);
    let a = harness.open_as("a", clock.clone(), None).expect("node a opens");
    let b = harness.open_as("b", clock.clone(), None).expect("node b opens");
    let alice = create_account(&a, AccountKind::User, "alice", None).await;
    let bob = create_account(&a, AccountKind::User, "bob", None).await;
    deposit(&a, alice, 1_000).await;
    let terminate = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
        database.name()
    );

    // Every connection of both nodes is cut: the next writes reconnect, each applied once.
    support::admin(&terminate);
    let pay = |n: u128| {
        keyed(
            Command::Transfer { from: alice, to: bob, amount: Amount(n) },
            alice,
            &format!("pay-{n}"),
            &format!("pay {n}"),
        )
    };
    until_applied(&a, pay(1)).await;
    until_applied(&b, pay(2)).await;

    // The database refuses every connection for a while: writes fail with a clear error and change
    // nothing; reads are still served from the replicas.
    support::admin(&format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", database.name()));
    support::admin(&terminate);
    for node in [&a, &b] {
        for _ in 0..3 {
            let refused = node.execute(pay(100)).await;
            assert!(
                matches!(&refused, Err(StoreError::Internal(message)) if message.contains("unreachable")),
                "{refused:?}"
            );
        }
        assert_eq!(balance(node, alice).await, (997, 0), "nothing applied during the outage");
    }
    support::admin(&format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", database.name()));

    // Back: the retried request applies once, through either node, and the nodes agree.
    until_applied(&b, pay(100)).await;
    until_applied(&a, pay(100)).await;
    a.sync().await.expect("sync");
    b.sync().await.expect("sync");
    for node in [&a, &b] {
        assert_eq!(balance(node, alice).await, (897, 0));
        assert_eq!(balance(node, bob).await, (103, 0));
    }
    assert_nodes_agree(database, &[&a, &b]).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_never_replays_batches_another_version_decided() {
    let harness = Harness::postgres();
    let database = harness.postgres.as_ref().expect("postgres");
    let clock = ManualClock::at(1_000);
    let a = harness.open_as("a", clock.clone(), None).expect("node a opens");
    let alice = create_account(&a, AccountKind::User, "alice", None).await;
    deposit(&a, alice, 10).await;
    // As if a node of another version had written the latest batch.
    database.query_text("UPDATE log_batches SET version = '0.0.0-other' WHERE seq = (SELECT max(seq) FROM log_batches) RETURNING ''");
    let refused =
        harness.open_as("b", clock.clone(), None).expect_err("a node that would replay it is refused");
    assert!(refused.to_string().contains("same version"), "{refused}");
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_seeded_from_a_running_nodes_replica_replays_only_the_log_after_it() {
    let harness = Harness::postgres();
    let database = harness.postgres.as_ref().expect("postgres");
    let clock = ManualClock::at(1_000);
    let a = harness.open_as("a", clock.clone(), None).expect("node a opens");
    let alice = create_account(&a, AccountKind::User, "alice", None).await;
    let bob = create_account(&a, AccountKind::User, "bob", None).await;
    deposit(&a, alice, 1_000).await;
    let pay = |n: u128| Command::Transfer { from: alice, to: bob, amount: Amount(n) };
    for n in 1..=20 {
        a.execute(pay(n).into()).await.expect("transfer");
    }
    let (seed, seeded_through) =
        tributary_ledger::seed_replica(&harness.dir.path().join("a"), &harness.dir.path().join("c"))
            .expect("a running node's replica is copied");
    assert!(seed.exists());
    let again = tributary_ledger::seed_replica(&harness.dir.path().join("a"), &harness.dir.path().join("c"));
    assert!(matches!(again, Err(StoreError::Conflict(_))), "an existing replica is never overwritten");
    for n in 21..=30 {
        a.execute(pay(n).into()).await.expect("transfer");
    }
    // Make every batch the snapshot holds unreadable: a node that replayed them would fail.
    database.query_text(&format!(
        "UPDATE log_batches SET body = 'not json' WHERE seq <= {seeded_through} RETURNING ''"
    ));
    let c = harness.open_as("c", clock.clone(), None).expect("the seeded node opens from its snapshot");
    assert_eq!(balance(&c, alice).await, (1_000 - (1..=30).sum::<u128>(), 0));
    assert_eq!(c.stats().log_applied, a.stats().log_applied);
    let fresh = harness.open_as("d", clock.clone(), None);
    assert!(fresh.is_err(), "without a seed the whole log is replayed, and here it is unreadable");
    a.shutdown().await;
    c.shutdown().await;
}
