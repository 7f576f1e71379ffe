//! Property tests of the ledger state machine against a naive model: random operation sequences
//! must conserve money, never overdraw an account, follow the hold rules, and replay to the same
//! state from the transfer history alone.

use std::collections::BTreeMap;

use proptest::prelude::*;
use tributary_core::registry::AccountKind;
use tributary_core::{AccountId, Amount, TransferId};
use tributary_ledger::state::{Balances, LedgerError, LedgerOp, LedgerState, Transfer, TransferKind, replay};

const EXTERNAL: AccountId = AccountId(1);
const USERS: u64 = 4;

#[derive(Clone, Debug)]
enum Step {
    Transfer { debit: u64, credit: u64, amount: u128 },
    Hold { debit: u64, credit: u64, amount: u128, timeout_ms: u64 },
    Post { hold_index: usize, amount: Option<u128> },
    Void { hold_index: usize },
    Advance { ms: u64 },
}

fn step() -> impl Strategy<Value = Step> {
    let account = 1..=USERS + 1;
    let amount = prop_oneof![0u128..50, 0u128..5000, Just(1u128 << 100)];
    prop_oneof![
        3 => (account.clone(), account.clone(), amount.clone())
            .prop_map(|(debit, credit, amount)| Step::Transfer { debit, credit, amount }),
        2 => (account.clone(), account, amount.clone(), 0u64..3000)
            .prop_map(|(debit, credit, amount, timeout_ms)| Step::Hold { debit, credit, amount, timeout_ms }),
        2 => (0usize..8, proptest::option::of(0u128..100)).prop_map(|(hold_index, amount)| Step::Post { hold_index, amount }),
        1 => (0usize..8).prop_map(|hold_index| Step::Void { hold_index }),
        1 => (0u64..2000).prop_map(|ms| Step::Advance { ms }),
    ]
}

/// The naive model: a signed net balance per account and a list of live holds.
#[derive(Default)]
struct Model {
    net: BTreeMap<u64, i128>,
    held: BTreeMap<u64, u128>,
    holds: Vec<(TransferId, u64, u64, u128, u64)>,
}

impl Model {
    fn available(&self, account: u64) -> i128 {
        self.net.get(&account).copied().unwrap_or(0) - self.held.get(&account).copied().unwrap_or(0) as i128
    }
}

fn new_state() -> LedgerState {
    let mut state = LedgerState::new(1);
    state.add_account(EXTERNAL, AccountKind::External, Balances::default());
    for user in 2..=USERS + 1 {
        state.add_account(AccountId(user), AccountKind::User, Balances::default());
    }
    state
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_conserve_money_and_follow_the_rules(steps in proptest::collection::vec(step(), 1..120)) {
        let mut state = new_state();
        let mut model = Model::default();
        let mut history: Vec<Transfer> = Vec::new();
        let mut now_ms = 1_000u64;
        for step in steps {
            let before = state.clone();
            let result = match step.clone() {
                Step::Advance { ms } => {
                    now_ms += ms;
                    let expired = state.expire(now_ms);
                    for transfer in &expired {
                        prop_assert_eq!(transfer.kind, TransferKind::ExpirePending);
                        let position = model.holds.iter().position(|h| Some(h.0) == transfer.pending_id).expect("model knows the hold");
                        let (_, debit, _, amount, expires) = model.holds.remove(position);
                        prop_assert!(expires <= now_ms);
                        *model.held.get_mut(&debit).expect("held") -= amount;
                    }
                    prop_assert!(model.holds.iter().all(|h| h.4 > now_ms), "every due hold expired");
                    history.extend(expired);
                    continue;
                }
                Step::Transfer { debit, credit, amount } => {
                    let result = state.apply(LedgerOp::Transfer { debit: AccountId(debit), credit: AccountId(credit), amount: Amount(amount) }, now_ms);
                    let allowed = amount > 0 && debit != credit && (debit == EXTERNAL.0 || model.available(debit) >= amount as i128);
                    if allowed {
                        prop_assert!(result.is_ok(), "{:?} -> {:?}", step, result);
                        *model.net.entry(debit).or_default() -= amount as i128;
                        *model.net.entry(credit).or_default() += amount as i128;
                    }
                    result
                }
                Step::Hold { debit, credit, amount, timeout_ms } => {
                    let result = state.apply(LedgerOp::Hold { debit: AccountId(debit), credit: AccountId(credit), amount: Amount(amount), timeout_ms }, now_ms);
                    let allowed = amount > 0 && debit != credit && timeout_ms > 0
                        && (debit == EXTERNAL.0 || model.available(debit) >= amount as i128);
                    if allowed {
                        let transfer = result.clone().expect("allowed hold succeeds");
                        model.holds.push((transfer.id, debit, credit, amount, now_ms + timeout_ms));
                        *model.held.entry(debit).or_default() += amount;
                    }
                    result
                }
                Step::Post { hold_index, amount } => {
                    let Some(&(id, debit, credit, held, _)) = model.holds.get(hold_index) else {
                        let missing = state.apply(LedgerOp::Post { hold: TransferId(9_999_999), amount: None }, now_ms);
                        prop_assert_eq!(missing, Err(LedgerError::HoldNotPending(TransferId(9_999_999))));
                        continue;
                    };
                    let result = state.apply(LedgerOp::Post { hold: id, amount: amount.map(Amount) }, now_ms);
                    let posted = amount.unwrap_or(held);
                    if posted <= held {
                        prop_assert!(result.is_ok(), "{:?}", result);
                        model.holds.remove(hold_index);
                        *model.held.get_mut(&debit).expect("held") -= held;
                        *model.net.entry(debit).or_default() -= posted as i128;
                        *model.net.entry(credit).or_default() += posted as i128;
                        // A resolved hold can never be resolved again.
                        let again = state.apply(LedgerOp::Void { hold: id }, now_ms);
                        prop_assert_eq!(again, Err(LedgerError::HoldNotPending(id)));
                    }
                    result
                }
                Step::Void { hold_index } => {
                    let Some(&(id, debit, _, held, _)) = model.holds.get(hold_index) else { continue };
                    let result = state.apply(LedgerOp::Void { hold: id }, now_ms);
                    prop_assert!(result.is_ok());
                    model.holds.remove(hold_index);
                    *model.held.get_mut(&debit).expect("held") -= held;
                    result
                }
            };
            match result {
                Ok(transfer) => history.push(transfer),
                Err(_) => {
                    // A failed operation changes nothing at all.
                    prop_assert_eq!(format!("{:?}", sorted(&before)), format!("{:?}", sorted(&state)));
                    prop_assert_eq!(before.next_transfer_id(), state.next_transfer_id());
                }
            }
            prop_assert!(state.check_invariants().is_ok(), "{:?}", state.check_invariants());
            for user in 2..=USERS + 1 {
                let balances = state.account(AccountId(user)).expect("exists").balances;
                prop_assert_eq!(balances.available() as i128, model.available(user));
            }
        }
        // The history alone rebuilds exactly the same state.
        let accounts = state.accounts().map(|(&id, a)| (id, a.kind)).collect::<Vec<_>>();
        let rebuilt = replay(accounts, &history).expect("history is consistent");
        prop_assert_eq!(format!("{:?}", sorted(&rebuilt)), format!("{:?}", sorted(&state)));
        prop_assert_eq!(rebuilt.holds().count(), state.holds().count());
    }
}

fn sorted(state: &LedgerState) -> Vec<(AccountId, Balances)> {
    let mut accounts: Vec<_> = state.accounts().map(|(&id, a)| (id, a.balances)).collect();
    accounts.sort_by_key(|(id, _)| *id);
    accounts
}

#[test]
fn counters_never_overflow() {
    let mut state = new_state();
    let huge = Amount(u128::MAX - 5);
    let first = state.apply(LedgerOp::Transfer { debit: EXTERNAL, credit: AccountId(2), amount: huge }, 0);
    assert!(first.is_ok());
    let before = format!("{:?}", sorted(&state));
    let second =
        state.apply(LedgerOp::Transfer { debit: EXTERNAL, credit: AccountId(3), amount: Amount(10) }, 0);
    assert_eq!(second, Err(LedgerError::Overflow));
    assert_eq!(format!("{:?}", sorted(&state)), before);
    assert!(state.check_invariants().is_ok());
}
