//! Settlement epochs against a naive model: random scripts of earnings, spending, payout-address
//! changes and epoch closes, checked after every close. Every unit must be conserved, cumulative
//! amounts must never fall, and nobody is paid more than they earned or for money they spent.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use tributary_core::registry::AccountKind;
use tributary_core::{AccountId, Amount, EvmAddress, ModelId};
use tributary_ledger::store::{EpochRecord, NewReceipt, Payment, ReceiptSigner};
use tributary_ledger::{Command, Outcome, SqliteStore, Store, StoreError, SystemClock};
use tributary_settlement::PayoutTree;

const USERS: usize = 4;

struct ZeroSigner;

impl ReceiptSigner for ZeroSigner {
    fn sign(&self, _hash: &[u8; 32]) -> [u8; 64] {
        [0; 64]
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// A paid inference paying these users these amounts.
    Earn(Vec<(usize, u64)>),
    /// A user spends part of their balance inside the ledger.
    Spend(usize, u64),
    /// A user sets (or clears) their payout address, one of three.
    SetAddress(usize, Option<u8>),
    Close,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::collection::vec((0..USERS, 1u64..1_000), 1..4).prop_map(Op::Earn),
        1 => (0..USERS, 1u64..800).prop_map(|(u, a)| Op::Spend(u, a)),
        1 => (0..USERS, proptest::option::of(0u8..3)).prop_map(|(u, a)| Op::SetAddress(u, a)),
        1 => Just(Op::Close),
    ]
}

fn address(index: u8) -> EvmAddress {
    EvmAddress([index + 1; 20])
}

async fn create(store: &dyn Store, kind: AccountKind, name: &str) -> AccountId {
    let command = Command::CreateAccount {
        kind,
        name: name.into(),
        payout_address: None,
        api_key_hash: *blake3::hash(name.as_bytes()).as_bytes(),
    };
    match store.execute(command.into()).await {
        Ok(Outcome::AccountCreated(id)) => id,
        other => panic!("account creation failed: {other:?}"),
    }
}

async fn available(store: &dyn Store, id: AccountId) -> u128 {
    store.account(id).await.expect("read").expect("exists").balance.0
}

/// The model: what each user is owed and holds, and each address's cumulative payout.
#[derive(Default)]
struct Model {
    owed: [u128; USERS],
    address: [Option<u8>; USERS],
    cumulative: BTreeMap<EvmAddress, u128>,
    epoch: u64,
}

async fn run(script: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open_with_signer(
        &dir.path().join("db"),
        Arc::new(SystemClock),
        Some(Arc::new(ZeroSigner)),
    )
    .expect("store opens");
    let operator = create(&store, AccountKind::Operator, "operator").await;
    let payer = create(&store, AccountKind::User, "payer").await;
    let sink = create(&store, AccountKind::User, "sink").await;
    let mut users = Vec::new();
    for i in 0..USERS {
        users.push(create(&store, AccountKind::User, &format!("user{i}")).await);
    }
    let clearing = store.system_accounts().clearing;
    store
        .execute(Command::Deposit { account: payer, amount: Amount(u64::MAX.into()) }.into())
        .await
        .expect("deposit");
    let mut model = Model::default();
    let mut previous: Option<EpochRecord> = None;

    for op in script {
        match op {
            Op::Earn(lines) => {
                let fee: u128 = lines.iter().map(|&(_, a)| u128::from(a)).sum();
                let hold = match store
                    .execute(
                        Command::Hold { from: payer, to: clearing, amount: Amount(fee), timeout_ms: 60_000 }
                            .into(),
                    )
                    .await
                {
                    Ok(Outcome::Transfer(transfer)) => transfer.id,
                    other => panic!("hold failed: {other:?}"),
                };
                let payments = lines
                    .iter()
                    .map(|&(u, amount)| Payment {
                        account: users[u],
                        role: "data".into(),
                        amount: Amount(amount.into()),
                    })
                    .collect();
                let receipt = NewReceipt { caller: payer, model: ModelId(1), body: "{}".into() };
                let settled = store
                    .execute(Command::SettleInference { hold, fee: Amount(fee), payments, receipt }.into())
                    .await;
                prop_assert!(matches!(settled, Ok(Outcome::InferenceSettled(_))), "{settled:?}");
                for (u, amount) in lines {
                    model.owed[u] += u128::from(amount);
                }
            }
            Op::Spend(u, amount) => {
                let amount = u128::from(amount).min(available(&store, users[u]).await);
                if amount > 0 {
                    store
                        .execute(
                            Command::Transfer { from: users[u], to: sink, amount: Amount(amount) }.into(),
                        )
                        .await
                        .expect("a transfer within the balance");
                }
            }
            Op::SetAddress(u, index) => {
                let command =
                    Command::SetPayoutAddress { account: users[u], payout_address: index.map(address) };
                store.execute(command.into()).await.expect("set address");
                model.address[u] = index;
            }
            Op::Close => {
                // Nobody but the operator closes an epoch, and a refusal changes nothing.
                let refused = store.execute(Command::CloseEpoch { caller: users[0] }.into()).await;
                prop_assert!(matches!(refused, Err(StoreError::Forbidden(_))), "{refused:?}");
                let mut before = [0u128; USERS];
                let mut expected_settled = 0u128;
                for u in 0..USERS {
                    before[u] = available(&store, users[u]).await;
                    let due = model.owed[u].min(before[u]);
                    match model.address[u] {
                        Some(index) if due > 0 => {
                            *model.cumulative.entry(address(index)).or_default() += due;
                            expected_settled += due;
                            model.owed[u] = 0;
                        }
                        Some(_) => model.owed[u] = 0,
                        None => model.owed[u] = due,
                    }
                }
                let record = match store.execute(Command::CloseEpoch { caller: operator }.into()).await {
                    Ok(Outcome::EpochClosed(record)) => record,
                    other => panic!("close failed: {other:?}"),
                };
                model.epoch += 1;
                prop_assert_eq!(record.epoch, model.epoch);
                prop_assert_eq!(record.settled.0, expected_settled);
                // Each account lost exactly its payout, and the ledger still balances.
                let (lines_total, owed_total) = {
                    let mut lines_total = 0u128;
                    let mut owed_total = 0u128;
                    for u in 0..USERS {
                        let (lines, owed) = store.settlements(users[u]).await.expect("settlements");
                        let this_epoch: u128 =
                            lines.iter().filter(|l| l.epoch == record.epoch).map(|l| l.amount.0).sum();
                        prop_assert_eq!(available(&store, users[u]).await, before[u] - this_epoch);
                        lines_total += this_epoch;
                        owed_total += owed.0;
                        prop_assert_eq!(owed.0, model.owed[u], "user {} owed", u);
                    }
                    (lines_total, owed_total)
                };
                let _ = owed_total;
                prop_assert_eq!(lines_total, expected_settled);
                let summary = store.ledger_summary().await.expect("audit");
                prop_assert_eq!(summary.totals.debits_posted, summary.totals.credits_posted);
                // The tree holds every address ever paid, cumulative, never less than before.
                let payouts: BTreeMap<EvmAddress, u128> = store
                    .epoch_payouts(record.epoch)
                    .await
                    .expect("payouts")
                    .into_iter()
                    .map(|(a, m)| (a, m.0))
                    .collect();
                prop_assert_eq!(&payouts, &model.cumulative);
                prop_assert_eq!(record.total.0, model.cumulative.values().sum::<u128>());
                prop_assert_eq!(record.payees, model.cumulative.len() as u64);
                let root = (!payouts.is_empty())
                    .then(|| PayoutTree::new(payouts.into_iter().collect()).expect("tree").root());
                prop_assert_eq!(record.root, root);
                if let Some(previous) = &previous {
                    prop_assert!(record.total >= previous.total);
                    prop_assert_eq!(record.receipts_first, previous.receipts_last + 1);
                }
                previous = Some(record);
            }
        }
    }
    store.shutdown().await;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn epochs_conserve_money_and_never_pay_twice(script in proptest::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(run(script))?;
    }
}
