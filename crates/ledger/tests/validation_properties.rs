//! Random sequences of validation operations (stakes, unstakes, contributions with bonds, votes,
//! disputes, dispute votes, time passing) against the store: whatever happens, every unit deposited
//! is still in the ledger, held or available, the history replays to the same balances, and no lock
//! was ever released but by the rules.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use tributary_core::registry::AccountKind;
use tributary_core::rules::{AcceptancePolicy, DatanetRules};
use tributary_core::{AccountId, Amount, ContributionId};
use tributary_ledger::store::NewContribution;
use tributary_ledger::{Clock, Command, Outcome, SqliteStore, Store};

#[derive(Default)]
struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Clone, Debug)]
enum Op {
    Stake { who: usize, amount: u128 },
    Unstake { who: usize },
    Contribute { who: usize, text: usize, variant: usize, reviewed: bool },
    Vote { who: usize, contribution: usize, approve: bool },
    Dispute { who: usize, contribution: usize, evidence: usize },
    DisputeVote { who: usize, dispute: usize, uphold: bool },
    Wait { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..5usize, 1..400u128).prop_map(|(who, amount)| Op::Stake { who, amount }),
        (0..5usize).prop_map(|who| Op::Unstake { who }),
        (0..5usize, 0..6usize, 0..4usize, any::<bool>())
            .prop_map(|(who, text, variant, reviewed)| Op::Contribute { who, text, variant, reviewed }),
        (0..5usize, 0..12usize, any::<bool>()).prop_map(|(who, contribution, approve)| Op::Vote {
            who,
            contribution,
            approve
        }),
        (0..5usize, 0..12usize, 0..3usize).prop_map(|(who, contribution, evidence)| Op::Dispute {
            who,
            contribution,
            evidence
        }),
        (0..5usize, 0..4usize, any::<bool>()).prop_map(|(who, dispute, uphold)| Op::DisputeVote {
            who,
            dispute,
            uphold
        }),
        (1..2_000u64).prop_map(|ms| Op::Wait { ms }),
    ]
}

const TEXTS: [&str; 6] = [
    "The LORD is my shepherd; I shall not want. He maketh me to lie down in green pastures.",
    "the lord is my shepherd i shall not want he maketh me to lie down in green pastures",
    "In the beginning God created the heaven and the earth, and the earth was without form.",
    "Blessed is the man that walketh not in the counsel of the ungodly, nor standeth in the way.",
    "I will lift up mine eyes unto the hills, from whence cometh my help, which made heaven and earth.",
    "buy cheap pills now buy cheap pills now buy cheap pills now buy cheap pills now buy cheap pills now",
];
const DEPOSIT: u128 = 1_000;

async fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock(AtomicU64::new(1)));
    let store =
        SqliteStore::open(&dir.path().join("t.db"), Arc::clone(&clock) as Arc<dyn Clock>).expect("open");
    let mut users = Vec::new();
    for i in 0..5 {
        let command = Command::CreateAccount {
            kind: AccountKind::User,
            name: format!("u{i}"),
            payout_address: None,
            api_key_hash: *blake3::hash(&[i]).as_bytes(),
        };
        let Ok(Outcome::AccountCreated(id)) = store.execute(command.into()).await else { panic!("account") };
        store
            .execute(Command::Deposit { account: id, amount: Amount(DEPOSIT) }.into())
            .await
            .expect("deposit");
        users.push(id);
    }
    let mut datanets = Vec::new();
    for policy in [AcceptancePolicy::Auto, AcceptancePolicy::Review] {
        let rules =
            DatanetRules { policy, bond: Amount(25), dispute_window_ms: 3_000, ..DatanetRules::default() };
        let command = Command::CreateDatanet {
            owner: users[0],
            name: "d".into(),
            description: String::new(),
            license: "x".into(),
            rules,
        };
        let Ok(Outcome::DatanetCreated(id)) = store.execute(command.into()).await else { panic!("datanet") };
        datanets.push(id);
    }
    let mut contributions: Vec<ContributionId> = Vec::new();
    let mut disputes: Vec<u64> = Vec::new();
    for op in ops {
        let command = match op {
            Op::Stake { who, amount } => {
                Command::Stake { validator: users[who], datanet: datanets[1], amount: Amount(amount) }
            }
            Op::Unstake { who } => Command::Unstake { validator: users[who], datanet: datanets[1] },
            Op::Contribute { who, text, variant, reviewed } => Command::AddContribution {
                datanet: datanets[usize::from(reviewed)],
                contributor: users[who],
                contribution: NewContribution {
                    title: "t".into(),
                    // Variants append words, so some texts are distinct enough to be accepted.
                    text: format!("{} {}", TEXTS[text], "and it came to pass in those days ".repeat(variant)),
                    source: None,
                },
                screening: None,
            },
            Op::Vote { who, contribution, approve } => match contributions.get(contribution) {
                Some(&contribution) => {
                    Command::Vote { validator: users[who], contribution, approve, reason: String::new() }
                }
                None => continue,
            },
            Op::Dispute { who, contribution, evidence } => {
                match (contributions.get(contribution), contributions.get(evidence)) {
                    (Some(&contribution), Some(&evidence)) => Command::OpenDispute {
                        disputer: users[who],
                        contribution,
                        evidence: Some(evidence),
                        claim: String::new(),
                    },
                    _ => continue,
                }
            }
            Op::DisputeVote { who, dispute, uphold } => match disputes.get(dispute) {
                Some(&dispute) => Command::DisputeVote { validator: users[who], dispute, uphold },
                None => continue,
            },
            Op::Wait { ms } => {
                clock.0.fetch_add(ms, Ordering::SeqCst);
                continue;
            }
        };
        match store.execute(command.into()).await {
            Ok(Outcome::ContributionAdded { id, .. }) => contributions.push(id),
            Ok(Outcome::DisputeOpened(id)) => disputes.push(id),
            _ => {}
        }
    }
    // The writer is alive and well (a panic in it would refuse every later write).
    store
        .execute(Command::Deposit { account: users[0], amount: Amount(1) }.into())
        .await
        .expect("the writer still works");
    // Every unit deposited is in a user's balance or held, or in a datanet's pool.
    let mut total = 0u128;
    let mut accounts: Vec<AccountId> = users.clone();
    for datanet in &datanets {
        accounts.push(store.datanet(*datanet).await.expect("read").expect("exists").pool_account);
    }
    for account in accounts {
        let read = store.account(account).await.expect("read").expect("exists");
        total += read.balance.0 + read.held.0;
    }
    assert_eq!(total, DEPOSIT * 5 + 1, "money conserved");
    let summary = store.ledger_summary().await.expect("the history replays and every invariant holds");
    assert_eq!(summary.external_debit_excess, DEPOSIT * 5 + 1);
    // Stakes recorded equal the locks held for them.
    let stakes = store.stakes(datanets[1]).await.expect("stakes");
    for stake in stakes {
        let held = store.account(stake.validator).await.expect("read").expect("exists").held.0;
        assert!(held >= stake.amount.0, "{stake:?} held {held}");
    }
    store.shutdown().await;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn validation_operations_conserve_every_unit(
        stakes in proptest::collection::vec(1..300u128, 4),
        contributions in proptest::collection::vec((0..5usize, 0..6usize, 0..4usize, any::<bool>()), 4..10),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        // Validators and contributions first, so that votes and disputes have something to act on.
        let mut all: Vec<Op> = stakes.iter().enumerate().map(|(i, &amount)| Op::Stake { who: i + 1, amount }).collect();
        all.extend(contributions.into_iter().map(|(who, text, variant, reviewed)| Op::Contribute { who, text, variant, reviewed }));
        all.extend(ops);
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(run(all));
    }
}
