//! The contribution pipeline, validators, bonds and disputes through the `Store` trait, so every
//! backend runs the same cases: each stage's verdict and record, the dedup state surviving a
//! restart, authorisation of votes and stake, and every slashed unit accounted for.

#[macro_use]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use support::Harness;
use tributary_core::registry::{AccountKind, ContributionStatus};
use tributary_core::rules::{AcceptancePolicy, DatanetRules};
use tributary_core::{AccountId, Amount, ContributionId, DatanetId};
use tributary_ledger::store::{ContributionStatusCode, DisputeStatus, NewContribution, Screening};
use tributary_ledger::{Clock, Command, Outcome, Store, StoreError};
use tributary_validation::containment::Containment;

#[derive(Default)]
struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

async fn user(store: &dyn Store, name: &str, deposit: u128) -> AccountId {
    let key_hash = *blake3::hash(name.as_bytes()).as_bytes();
    let command = Command::CreateAccount {
        kind: AccountKind::User,
        name: name.into(),
        payout_address: None,
        api_key_hash: key_hash,
    };
    let Ok(Outcome::AccountCreated(id)) = store.execute(command.into()).await else { panic!("account") };
    if deposit > 0 {
        store
            .execute(Command::Deposit { account: id, amount: Amount(deposit) }.into())
            .await
            .expect("deposit");
    }
    id
}

async fn datanet(store: &dyn Store, owner: AccountId, rules: DatanetRules) -> DatanetId {
    let command = Command::CreateDatanet {
        owner,
        name: "d".into(),
        description: String::new(),
        license: "CC0".into(),
        rules,
    };
    match store.execute(command.into()).await {
        Ok(Outcome::DatanetCreated(id)) => id,
        other => panic!("datanet: {other:?}"),
    }
}

fn add(datanet: DatanetId, contributor: AccountId, text: &str) -> Command {
    Command::AddContribution {
        datanet,
        contributor,
        contribution: NewContribution { title: "t".into(), text: text.into(), source: None },
        screening: None,
    }
}

async fn contribute(
    store: &dyn Store,
    datanet: DatanetId,
    contributor: AccountId,
    text: &str,
) -> (ContributionId, ContributionStatusCode, Option<String>) {
    match store.execute(add(datanet, contributor, text).into()).await {
        Ok(Outcome::ContributionAdded { id, status, reason }) => (id, status, reason),
        other => panic!("contribution: {other:?}"),
    }
}

async fn balance(store: &dyn Store, id: AccountId) -> (u128, u128) {
    let account = store.account(id).await.expect("read").expect("exists");
    (account.balance.0, account.held.0)
}

const PSALM: &str = "The LORD is my shepherd; I shall not want. He maketh me to lie down in green pastures: \
    he leadeth me beside the still waters. He restoreth my soul: he leadeth me in the paths of righteousness \
    for his name's sake.";
const GENESIS: &str = "In the beginning God created the heaven and the earth. And the earth was without form, \
    and void; and darkness was upon the face of the deep. And the Spirit of God moved upon the face of the waters.";

async fn each_stage_decides_and_is_recorded_and_dedup_survives_restart(backend: Harness) {
    let clock = Arc::new(ManualClock(AtomicU64::new(1)));
    let store = backend.open(clock.clone());
    let alice = user(&store, "alice", 0).await;
    let bob = user(&store, "bob", 0).await;
    let rules = DatanetRules { min_words: 5, ..DatanetRules::default() };
    let psalms = datanet(&store, alice, rules).await;
    let other = datanet(&store, alice, rules).await;

    let (first, status, _) = contribute(&store, psalms, alice, PSALM).await;
    assert_eq!(status, ContributionStatusCode::Accepted);
    // Layout only: the same normal form.
    let relaid = PSALM.replace(' ', "\n  ");
    let (exact, status, reason) = contribute(&store, psalms, bob, &relaid).await;
    assert_eq!((status, reason.as_deref()), (ContributionStatusCode::Rejected, Some("duplicate")));
    let record = store.contribution(exact).await.expect("read").expect("exists");
    assert_eq!(record.findings.duplicate_of, Some(first));
    assert_eq!(record.status, ContributionStatus::Rejected);
    // Case changes: a different hash, the same shingles.
    let (near, status, reason) = contribute(&store, psalms, bob, &PSALM.to_uppercase()).await;
    assert_eq!((status, reason.as_deref()), (ContributionStatusCode::Rejected, Some("near_duplicate")));
    let record = store.contribution(near).await.expect("read").expect("exists");
    assert_eq!(record.findings.near_duplicate_of, Some(first));
    assert!(record.findings.similarity_bps.expect("similarity") >= 8_000);
    let stages: Vec<&str> = record.findings.stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(stages, ["limits", "exact_duplicate", "near_duplicate"]);
    // Dedup is per datanet.
    assert_eq!(contribute(&store, other, bob, PSALM).await.1, ContributionStatusCode::Accepted);
    // Limits: refused, nothing stored.
    let before = store.datanet(psalms).await.expect("read").expect("exists").contributions;
    let refused = store.execute(add(psalms, bob, "too few words").into()).await;
    assert!(matches!(&refused, Err(StoreError::Invalid(m)) if m.contains("min_words")), "{refused:?}");
    assert_eq!(store.datanet(psalms).await.expect("read").expect("exists").contributions, before);
    // Quality: repetition flags.
    let spam = "buy cheap pills now ".repeat(30);
    let (flagged, status, reason) = contribute(&store, psalms, bob, &spam).await;
    assert_eq!((status, reason.as_deref()), (ContributionStatusCode::Flagged, Some("quality")));
    assert!(
        store.contribution(flagged).await.expect("read").expect("exists").findings.repetition_bps
            > Some(5_000)
    );
    // Containment, measured outside the writer: mostly copied from someone else → rejected, sources named.
    let mut screening = Screening::measure(GENESIS);
    screening.containment = Some(Containment { contained_bps: 9_000, sources: vec![first.0] });
    let copied = Command::AddContribution {
        datanet: psalms,
        contributor: bob,
        contribution: NewContribution { title: "t".into(), text: GENESIS.into(), source: None },
        screening: Some(Box::new(screening)),
    };
    let Ok(Outcome::ContributionAdded { id: copied, status, reason }) = store.execute(copied.into()).await
    else {
        panic!("copied")
    };
    assert_eq!((status, reason.as_deref()), (ContributionStatusCode::Rejected, Some("copied")));
    assert_eq!(
        store.contribution(copied).await.expect("read").expect("exists").findings.copied_from,
        [first]
    );
    // Restart: the exact and near-duplicate state comes back.
    store.shutdown().await;
    drop(store);
    let store = backend.open(clock);
    let (_, status, reason) = contribute(&store, psalms, bob, &format!("  {PSALM} ")).await;
    assert_eq!((status, reason.as_deref()), (ContributionStatusCode::Rejected, Some("duplicate")));
    let (_, status, reason) = contribute(&store, psalms, bob, &PSALM.to_lowercase()).await;
    assert_eq!((status, reason.as_deref()), (ContributionStatusCode::Rejected, Some("near_duplicate")));
    assert_eq!(contribute(&store, psalms, bob, GENESIS).await.1, ContributionStatusCode::Accepted);
}

async fn bonds_are_held_forfeited_on_duplicates_and_protected(backend: Harness) {
    let store = backend.open(Arc::new(ManualClock(AtomicU64::new(1))));
    let owner = user(&store, "owner", 0).await;
    let poor = user(&store, "poor", 0).await;
    let rich = user(&store, "rich", 100).await;
    let rules = DatanetRules { bond: Amount(10), ..DatanetRules::default() };
    let dn = datanet(&store, owner, rules).await;
    let pool = store.datanet(dn).await.expect("read").expect("exists").pool_account;
    let refused = store.execute(add(dn, poor, PSALM).into()).await;
    assert!(matches!(refused, Err(StoreError::Ledger(_))), "{refused:?}");
    assert_eq!(store.datanet(dn).await.expect("read").expect("exists").contributions, 0);
    let (_, status, _) = contribute(&store, dn, rich, PSALM).await;
    assert_eq!(status, ContributionStatusCode::Accepted);
    assert_eq!(balance(&store, rich).await, (90, 10));
    let (_, status, _) = contribute(&store, dn, rich, PSALM).await;
    assert_eq!(status, ContributionStatusCode::Rejected);
    assert_eq!(balance(&store, rich).await, (80, 10), "the duplicate's bond is forfeited");
    assert_eq!(balance(&store, pool).await.0, 10);
    let transfers = store.account_transfers(rich, 10).await.expect("history");
    let hold = transfers.iter().find(|t| t.expires_at_ms.is_some()).expect("the bond hold").id;
    let void = store.execute(Command::VoidHold { caller: rich, hold }.into()).await;
    assert!(matches!(void, Err(StoreError::Forbidden(_))), "{void:?}");
}

async fn review_votes_disputes_and_slashing_conserve_every_unit(backend: Harness) {
    let store = backend.open(Arc::new(ManualClock(AtomicU64::new(1))));
    let owner = user(&store, "owner", 0).await;
    let author = user(&store, "author", 0).await;
    let copier = user(&store, "copier", 100).await;
    let (v1, v2, v3) =
        (user(&store, "v1", 1_000).await, user(&store, "v2", 1_000).await, user(&store, "v3", 5_000).await);
    let outsider = user(&store, "outsider", 1_000).await;
    let honest = datanet(&store, owner, DatanetRules::default()).await;
    let reviewed = DatanetRules {
        policy: AcceptancePolicy::Review,
        approvals_required: 2,
        bond: Amount(50),
        ..DatanetRules::default()
    };
    let dn = datanet(&store, owner, reviewed).await;
    let pool = store.datanet(dn).await.expect("read").expect("exists").pool_account;
    let summary_before = store.ledger_summary().await.expect("summary");
    let (original, _, _) = contribute(&store, honest, author, PSALM).await;

    for (validator, amount) in [(v1, 500), (v2, 500), (v3, 4_000)] {
        let staked =
            store.execute(Command::Stake { validator, datanet: dn, amount: Amount(amount) }.into()).await;
        assert!(matches!(staked, Ok(Outcome::Staked(_))), "{staked:?}");
    }
    assert_eq!(balance(&store, v1).await, (500, 500));
    let too_much =
        store.execute(Command::Stake { validator: v1, datanet: dn, amount: Amount(501) }.into()).await;
    assert!(matches!(too_much, Err(StoreError::Ledger(_))), "{too_much:?}");
    let stakes = store.stakes(dn).await.expect("stakes");
    assert_eq!(stakes.iter().map(|s| s.amount.0).sum::<u128>(), 5_000);
    // Nobody spends someone else's stake, nor their own through the hold routes.
    let hold = stakes[0].hold;
    for caller in [v1, outsider] {
        let void = store.execute(Command::VoidHold { caller, hold }.into()).await;
        assert!(matches!(void, Err(StoreError::Forbidden(_))), "{void:?}");
        let post = store.execute(Command::PostHold { caller, hold, amount: None }.into()).await;
        assert!(matches!(post, Err(StoreError::Forbidden(_))), "{post:?}");
    }

    // The copy goes to the datanet under review (a different datanet, so dedup does not see it).
    let (copy, status, reason) = contribute(&store, dn, copier, PSALM).await;
    assert_eq!((status, reason.as_deref()), (ContributionStatusCode::Pending, Some("awaiting_review")));
    assert_eq!(balance(&store, copier).await, (50, 50));
    let vote =
        |validator, approve| Command::Vote { validator, contribution: copy, approve, reason: String::new() };
    let not_validator = store.execute(vote(outsider, true).into()).await;
    assert!(matches!(not_validator, Err(StoreError::Forbidden(_))), "{not_validator:?}");
    let first = store.execute(vote(v1, true).into()).await;
    assert!(matches!(first, Ok(Outcome::Voted { status: ContributionStatusCode::Pending, .. })), "{first:?}");
    let twice = store.execute(vote(v1, false).into()).await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");
    let second = store.execute(vote(v2, true).into()).await;
    assert!(
        matches!(second, Ok(Outcome::Voted { status: ContributionStatusCode::Accepted, .. })),
        "{second:?}"
    );
    assert_eq!(store.contribution_votes(copy).await.expect("votes").len(), 2);
    let late = store.execute(vote(v3, false).into()).await;
    assert!(matches!(late, Err(StoreError::Conflict(_))), "{late:?}");
    // Approvals inside the dispute window bind the stake.
    let unstake = store.execute(Command::Unstake { validator: v1, datanet: dn }.into()).await;
    assert!(matches!(unstake, Err(StoreError::Conflict(_))), "{unstake:?}");

    // Nobody who would be slashed collects the disputer's share.
    for disputer in [copier, v1] {
        let own = Command::OpenDispute {
            disputer,
            contribution: copy,
            evidence: Some(original),
            claim: String::new(),
        };
        assert!(matches!(store.execute(own.into()).await, Err(StoreError::Forbidden(_))));
    }
    // A dispute needs evidence or a validator's claim.
    let bare = Command::OpenDispute {
        disputer: outsider,
        contribution: copy,
        evidence: None,
        claim: "copied".into(),
    };
    assert!(matches!(store.execute(bare.into()).await, Err(StoreError::Invalid(_))));
    let later = Command::OpenDispute {
        disputer: outsider,
        contribution: original,
        evidence: Some(copy),
        claim: String::new(),
    };
    assert!(matches!(store.execute(later.into()).await, Err(StoreError::Invalid(_))));
    let open = Command::OpenDispute {
        disputer: outsider,
        contribution: copy,
        evidence: Some(original),
        claim: "verbatim copy of an earlier contribution".into(),
    };
    let Ok(Outcome::DisputeOpened(dispute)) = store.execute(open.clone().into()).await else {
        panic!("dispute")
    };
    assert!(matches!(store.execute(open.into()).await, Err(StoreError::Conflict(_))));
    let dispute_vote = |validator, uphold| Command::DisputeVote { validator, dispute, uphold };
    assert!(matches!(
        store.execute(dispute_vote(outsider, true).into()).await,
        Err(StoreError::Forbidden(_))
    ));
    // The colluders vote to dismiss; 1,000 of 5,000 staked is no majority.
    let dismiss = store.execute(dispute_vote(v1, false).into()).await;
    assert!(matches!(dismiss, Ok(Outcome::DisputeVoted { status: DisputeStatus::Open, .. })), "{dismiss:?}");
    store.execute(dispute_vote(v2, false).into()).await.expect("vote");
    assert!(matches!(store.execute(dispute_vote(v2, true).into()).await, Err(StoreError::Conflict(_))));
    let upheld = store.execute(dispute_vote(v3, true).into()).await;
    assert!(matches!(upheld, Ok(Outcome::DisputeVoted { status: DisputeStatus::Upheld, .. })), "{upheld:?}");

    let record = store.dispute(dispute).await.expect("read").expect("exists");
    let resolution = record.resolution.expect("resolution");
    // Bond 50 whole, 20% of 500 from each approving validator: 250 slashed, half to the disputer.
    let slashed: Vec<(AccountId, u128)> =
        resolution.slashed.iter().map(|l| (l.account, l.amount.0)).collect();
    assert_eq!(slashed, [(copier, 50), (v1, 100), (v2, 100)]);
    assert_eq!((resolution.to_disputer.0, resolution.to_pool.0), (125, 125));
    assert_eq!(balance(&store, copier).await, (50, 0));
    assert_eq!(balance(&store, v1).await, (500, 400));
    assert_eq!(balance(&store, v3).await, (1_000, 4_000), "the honest validator keeps everything");
    assert_eq!(balance(&store, outsider).await, (1_125, 0));
    assert_eq!(balance(&store, pool).await, (125, 0));
    let copy_record = store.contribution(copy).await.expect("read").expect("exists");
    assert_eq!(
        (copy_record.status, copy_record.reason.as_deref()),
        (ContributionStatus::Rejected, Some("dispute_upheld"))
    );
    let stakes: Vec<u128> = store.stakes(dn).await.expect("stakes").iter().map(|s| s.amount.0).collect();
    assert_eq!(stakes, [400, 400, 4_000]);
    // Every unit is still in the ledger: the audit replays the history and checks every invariant.
    let summary = store.ledger_summary().await.expect("summary");
    assert_eq!(summary.external_debit_excess, summary_before.external_debit_excess);
    assert_eq!(summary.totals.debits_posted, summary.totals.credits_posted);
    // Votes on decided items are refused.
    assert!(matches!(store.execute(dispute_vote(v3, true).into()).await, Err(StoreError::Conflict(_))));
    // The honest validator, who approved nothing, may leave.
    let left = store.execute(Command::Unstake { validator: v3, datanet: dn }.into()).await;
    assert!(matches!(left, Ok(Outcome::Unstaked(_))), "{left:?}");
    assert_eq!(balance(&store, v3).await, (5_000, 0));
}

async fn a_datanet_without_validators_is_reviewed_by_its_owner(backend: Harness) {
    let store = backend.open(Arc::new(ManualClock(AtomicU64::new(1))));
    let owner = user(&store, "owner", 0).await;
    let author = user(&store, "author", 0).await;
    let stranger = user(&store, "stranger", 0).await;
    let dn =
        datanet(&store, owner, DatanetRules { policy: AcceptancePolicy::Review, ..DatanetRules::default() })
            .await;
    let (pending, status, _) = contribute(&store, dn, author, PSALM).await;
    assert_eq!(status, ContributionStatusCode::Pending);
    let vote = |validator, contribution, approve| Command::Vote {
        validator,
        contribution,
        approve,
        reason: "ok".into(),
    };
    assert!(matches!(
        store.execute(vote(stranger, pending, true).into()).await,
        Err(StoreError::Forbidden(_))
    ));
    let decided = store.execute(vote(owner, pending, true).into()).await;
    assert!(
        matches!(decided, Ok(Outcome::Voted { status: ContributionStatusCode::Accepted, .. })),
        "{decided:?}"
    );
    // A flagged contribution: the owner rejects it.
    let (flagged, status, _) = contribute(&store, dn, author, &"buy cheap pills now ".repeat(30)).await;
    assert_eq!(status, ContributionStatusCode::Flagged);
    let decided = store.execute(vote(owner, flagged, false).into()).await;
    assert!(
        matches!(decided, Ok(Outcome::Voted { status: ContributionStatusCode::Rejected, .. })),
        "{decided:?}"
    );
    // Once someone stakes, the owner is one voice among the validators, and only if staked.
    let (later, _, _) = contribute(&store, dn, author, GENESIS).await;
    store.execute(Command::Deposit { account: stranger, amount: Amount(10) }.into()).await.expect("deposit");
    store
        .execute(Command::Stake { validator: stranger, datanet: dn, amount: Amount(10) }.into())
        .await
        .expect("stake");
    assert!(matches!(store.execute(vote(owner, later, true).into()).await, Err(StoreError::Forbidden(_))));
}

/// Regression: a dispute opened once the bond's window had passed, but before the writer released
/// the expired hold, tried to void it and panicked the writer (found by the random-operation test).
async fn a_dispute_at_the_end_of_the_bond_window_does_not_crash_the_writer(backend: Harness) {
    let clock = Arc::new(ManualClock(AtomicU64::new(1)));
    let store = backend.open(clock.clone());
    let owner = user(&store, "owner", 100).await;
    let author = user(&store, "author", 100).await;
    let disputer = user(&store, "disputer", 10).await;
    let rules = DatanetRules { bond: Amount(10), dispute_window_ms: 1_000, ..DatanetRules::default() };
    let dn = datanet(&store, owner, rules).await;
    let (original, _, _) = contribute(&store, dn, owner, GENESIS).await;
    let (disputed, _, _) = contribute(&store, dn, author, PSALM).await;
    assert_eq!(balance(&store, author).await, (90, 10));
    // The window ends; the dispute arrives before the writer has released the bond.
    clock.0.store(5_000, Ordering::SeqCst);
    let dispute = Command::OpenDispute {
        disputer,
        contribution: disputed,
        evidence: Some(original),
        claim: String::new(),
    };
    let Ok(Outcome::DisputeOpened(id)) = store.execute(dispute.into()).await else { panic!("dispute") };
    let decided =
        store.execute(Command::DisputeVote { validator: owner, dispute: id, uphold: true }.into()).await;
    assert!(
        matches!(decided, Ok(Outcome::DisputeVoted { status: DisputeStatus::Upheld, .. })),
        "{decided:?}"
    );
    // The bond had already been released by its window: nothing to slash, and the writer lives on.
    assert_eq!(balance(&store, author).await, (100, 0));
    store
        .execute(Command::Deposit { account: disputer, amount: Amount(1) }.into())
        .await
        .expect("writer alive");
}

async fn a_dismissed_dispute_forfeits_the_disputers_bond(backend: Harness) {
    let store = backend.open(Arc::new(ManualClock(AtomicU64::new(1))));
    let owner = user(&store, "owner", 100).await;
    let author = user(&store, "author", 100).await;
    let disputer = user(&store, "disputer", 30).await;
    let broke = user(&store, "broke", 0).await;
    let dn = datanet(&store, owner, DatanetRules { bond: Amount(20), ..DatanetRules::default() }).await;
    let pool = store.datanet(dn).await.expect("read").expect("exists").pool_account;
    let (earlier, _, _) = contribute(&store, dn, owner, GENESIS).await;
    let (disputed, _, _) = contribute(&store, dn, author, PSALM).await;
    let open = |disputer| Command::OpenDispute {
        disputer,
        contribution: disputed,
        evidence: Some(earlier),
        claim: String::new(),
    };
    assert!(
        matches!(store.execute(open(broke).into()).await, Err(StoreError::Ledger(_))),
        "a dispute needs the bond"
    );
    let Ok(Outcome::DisputeOpened(id)) = store.execute(open(disputer).into()).await else {
        panic!("dispute")
    };
    assert_eq!(balance(&store, disputer).await, (10, 20));
    let decided =
        store.execute(Command::DisputeVote { validator: owner, dispute: id, uphold: false }.into()).await;
    assert!(
        matches!(decided, Ok(Outcome::DisputeVoted { status: DisputeStatus::Dismissed, .. })),
        "{decided:?}"
    );
    assert_eq!(balance(&store, disputer).await, (10, 0), "the bond went to the pool");
    assert_eq!(balance(&store, author).await, (100, 0), "the contribution's bond is released");
    assert_eq!(balance(&store, pool).await.0, 20);
    let record = store.dispute(id).await.expect("read").expect("exists");
    let resolution = record.resolution.expect("resolution");
    assert_eq!(resolution.to_pool, Amount(20));
    assert_eq!(resolution.slashed[0].role, "dispute_bond");
    assert_eq!(
        store.contribution(disputed).await.expect("read").expect("exists").status,
        ContributionStatus::Accepted
    );
}

on_both_backends!(
    each_stage_decides_and_is_recorded_and_dedup_survives_restart,
    bonds_are_held_forfeited_on_duplicates_and_protected,
    review_votes_disputes_and_slashing_conserve_every_unit,
    a_datanet_without_validators_is_reviewed_by_its_owner,
    a_dispute_at_the_end_of_the_bond_window_does_not_crash_the_writer,
    a_dismissed_dispute_forfeits_the_disputers_bond,
);
