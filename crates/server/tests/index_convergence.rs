//! Several nodes on one database: each builds its own index of a datanet, and the segments (so the
//! index version) must be a pure function of the accepted contributions, whatever each node's
//! refresh timing, however late it started, and whether or not it rebuilt from scratch. Status
//! changes made through the store alone (as another node would make them) must be found without
//! `invalidate`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tributary_core::registry::AccountKind;
use tributary_core::rules::{AcceptancePolicy, DatanetRules};
use tributary_core::{AccountId, Amount, ContributionId, DatanetId};
use tributary_index::segment::{DocumentInput, Segment, build_segments};
use tributary_index::store as segment_store;
use tributary_ledger::store::{ContributionStatusCode, DisputeStatus, NewContribution};
use tributary_ledger::{Command, Outcome, SqliteStore, Store, SystemClock};
use tributary_server::indexing::{
    IndexManager, IndexingConfig, all_accepted_contributions, build_in_layout, datanet_dir, layout_groups,
    layout_name,
};

/// Small blocks, so that a few dozen contributions exercise carries and several groups.
const BLOCK: usize = 4;
/// A word every contribution contains, for queries over all of them.
const COMMON_WORD: &str = "river";

fn config() -> IndexingConfig {
    IndexingConfig { layout_block_contributions: BLOCK }
}

async fn open_manager(root: &Path, store: &Arc<dyn Store>) -> Arc<IndexManager> {
    IndexManager::open_with(root, Arc::clone(store), config()).await.expect("index manager opens")
}

async fn account(store: &dyn Store, name: &str) -> AccountId {
    let command = Command::CreateAccount {
        kind: AccountKind::User,
        name: name.into(),
        payout_address: None,
        api_key_hash: *blake3::hash(name.as_bytes()).as_bytes(),
    };
    let Ok(Outcome::AccountCreated(id)) = store.execute(command.into()).await else { panic!("account") };
    store.execute(Command::Deposit { account: id, amount: Amount(1_000_000) }.into()).await.expect("deposit");
    id
}

async fn datanet(store: &dyn Store, owner: AccountId, policy: AcceptancePolicy) -> DatanetId {
    // Generated texts share words: only exact duplicates are refused.
    let rules = DatanetRules {
        near_duplicate_bps: 10_000,
        containment_bps: 10_000,
        policy,
        ..DatanetRules::default()
    };
    let command = Command::CreateDatanet {
        owner,
        name: "rivers".into(),
        description: String::new(),
        license: "CC0".into(),
        rules,
    };
    match store.execute(command.into()).await {
        Ok(Outcome::DatanetCreated(id)) => id,
        other => panic!("datanet: {other:?}"),
    }
}

/// A distinct, ordinary-looking text for each `n`.
fn text(n: u64) -> String {
    const WORDS: [&str; 16] = [
        "stone", "willow", "harbour", "lantern", "meadow", "copper", "thistle", "orchard", "falcon", "ember",
        "glacier", "saffron", "timber", "quarry", "marble", "heron",
    ];
    let mut state = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut words = vec![format!("the {COMMON_WORD} carries number{n}")];
    for _ in 0..24 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        words.push(WORDS[(state % WORDS.len() as u64) as usize].to_owned());
    }
    format!("{}.", words.join(" "))
}

async fn contribute(
    store: &dyn Store,
    datanet: DatanetId,
    contributor: AccountId,
    n: u64,
) -> (ContributionId, ContributionStatusCode) {
    let command = Command::AddContribution {
        datanet,
        contributor,
        contribution: NewContribution { title: format!("t{n}"), text: text(n), source: None },
        screening: None,
    };
    match store.execute(command.into()).await {
        Ok(Outcome::ContributionAdded { id, status, .. }) => (id, status),
        other => panic!("contribution: {other:?}"),
    }
}

/// What a query over the whole datanet finds: every occurrence of the common word.
fn answer(manager: &IndexManager, datanet: DatanetId) -> Vec<(u64, u64)> {
    let view = manager.view(&[datanet]);
    let occurrences = view.occurrences(&[COMMON_WORD], 10_000);
    assert_eq!(occurrences.len() as u64, view.count(&[COMMON_WORD]), "every occurrence listed");
    occurrences.iter().map(|o| (o.contribution, o.offset)).collect()
}

/// Version, segments, contributions and query answer of a manager's index of `datanet`.
async fn snapshot(manager: &IndexManager, datanet: DatanetId) -> (String, usize, u64, Vec<(u64, u64)>) {
    let state = manager.state(datanet).await.expect("state");
    assert_eq!(state.contributions_pending, 0, "refreshed");
    (state.version, state.segments, state.contributions_indexed, answer(manager, datanet))
}

/// The groups of the layout for `count` contributions; each is one segment with texts this small.
fn expected_segments(count: usize) -> usize {
    layout_groups(count, BLOCK).len()
}

/// The index of the store's accepted contributions built offline in one go, as `tributary index
/// build` would with the layout.
async fn offline_version(store: &dyn Store, datanet: DatanetId, root: &Path) -> String {
    let contributions = all_accepted_contributions(store, datanet).await.expect("read");
    let dir = datanet_dir(root, datanet);
    segment_store::clear(&dir).expect("clear");
    build_in_layout(&dir, &contributions, BLOCK, &|_| {}).expect("offline build");
    segment_store::load(&dir).expect("load").version()
}

#[test]
fn layout_groups_follow_the_binary_counter() {
    fn check(count: usize, block: usize, expected: &[(usize, usize)]) {
        let groups: Vec<(usize, usize)> =
            layout_groups(count, block).iter().map(|g| (g.start, g.end)).collect();
        assert_eq!(groups, expected, "count {count}, block {block}");
    }
    check(0, 4, &[]);
    check(3, 4, &[(0, 3)]);
    check(4, 4, &[(0, 4)]);
    check(13, 4, &[(0, 8), (8, 12), (12, 13)]);
    check(23, 4, &[(0, 16), (16, 20), (20, 23)]);
    check(2047, 1024, &[(0, 1024), (1024, 2047)]);
    check(7, 1, &[(0, 4), (4, 6), (6, 7)]);
    // Logarithmic: never more groups than bits of count / block, plus the tail.
    for count in 0..5000 {
        let groups = layout_groups(count, 8).len();
        assert!(groups <= (usize::BITS - (count / 8).leading_zeros()) as usize + 1, "{count}: {groups}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_different_refresh_timings_converge_on_the_same_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("shared.db"), Arc::new(SystemClock)).expect("store"));
    let owner = account(store.as_ref(), "owner").await;
    let author = account(store.as_ref(), "author").await;
    let datanet = datanet(store.as_ref(), owner, AcceptancePolicy::Auto).await;

    let eager = open_manager(&dir.path().join("eager"), &store).await;
    let lazy = open_manager(&dir.path().join("lazy"), &store).await;
    const CONTRIBUTIONS: u64 = 37;
    for n in 0..CONTRIBUTIONS {
        let (_, status) = contribute(store.as_ref(), datanet, author, n).await;
        assert_eq!(status, ContributionStatusCode::Accepted);
        eager.refresh(datanet).await.expect("eager refresh");
        let state = eager.state(datanet).await.expect("state");
        assert_eq!(state.contributions_indexed, n + 1);
        assert_eq!(state.segments, expected_segments(n as usize + 1), "after {} contributions", n + 1);
        // The lazy node catches up at irregular moments only.
        if n == 5 || n == 6 || n == 22 {
            lazy.refresh(datanet).await.expect("lazy refresh");
        }
    }
    lazy.refresh(datanet).await.expect("lazy refresh");
    let expected = snapshot(&eager, datanet).await;
    assert_eq!(expected.1, expected_segments(CONTRIBUTIONS as usize));
    assert_eq!(expected.2, CONTRIBUTIONS);
    assert_eq!(expected.3.len() as u64, CONTRIBUTIONS, "the common word once per contribution");
    assert_eq!(snapshot(&lazy, datanet).await, expected, "refreshed rarely");

    // A node that starts late, from nothing.
    let late = open_manager(&dir.path().join("late"), &store).await;
    late.refresh(datanet).await.expect("late refresh");
    assert_eq!(snapshot(&late, datanet).await, expected, "started late");

    // A node whose index an older version wrote: one segment per batch, no layout in the manifest
    // (batches of 4 line up with the groups, but the first group is 8 segments, not 1).
    let old_root = dir.path().join("old");
    let old_dir = datanet_dir(&old_root, datanet);
    let contributions = all_accepted_contributions(store.as_ref(), datanet).await.expect("read");
    let mut old_segments = Vec::new();
    for batch in contributions.chunks(BLOCK) {
        let inputs: Vec<DocumentInput<'_>> = batch
            .iter()
            .map(|c| DocumentInput { contribution: c.id.0, contributor: c.contributor.0, text: &c.text })
            .collect();
        for path in build_segments(&old_dir, &inputs, &|_| {}).expect("build") {
            old_segments.push(Arc::new(Segment::open(&path).expect("open")));
        }
    }
    segment_store::commit(&old_dir, &old_segments).expect("commit");
    drop(old_segments);
    let old = open_manager(&old_root, &store).await;
    assert_ne!(old.state(datanet).await.expect("state").version, expected.0, "loaded as written");
    old.refresh(datanet).await.expect("old refresh");
    assert_eq!(snapshot(&old, datanet).await, expected, "rebuilt into the layout");
    let files = std::fs::read_dir(&old_dir)
        .expect("dir")
        .filter(|e| e.as_ref().expect("entry").path().extension().is_some_and(|x| x == "seg"));
    assert_eq!(files.count(), expected.1, "segment files no longer listed are deleted");

    // Restarting keeps the index as it is, and the offline build gives the same version.
    drop(eager);
    let restarted = open_manager(&dir.path().join("eager"), &store).await;
    assert_eq!(restarted.state(datanet).await.expect("state").version, expected.0, "loaded from disk");
    restarted.refresh(datanet).await.expect("refresh");
    assert_eq!(snapshot(&restarted, datanet).await, expected, "restarted");
    let manifest = std::fs::read_to_string(datanet_dir(&dir.path().join("eager"), datanet).join("MANIFEST"))
        .expect("manifest");
    assert!(manifest.contains(&format!("layout {}", layout_name(BLOCK))), "{manifest}");
    assert_eq!(offline_version(store.as_ref(), datanet, &dir.path().join("offline")).await, expected.0);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_changes_made_through_the_store_alone_are_found_without_invalidate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("shared.db"), Arc::new(SystemClock)).expect("store"));
    let owner = account(store.as_ref(), "owner").await;
    let author = account(store.as_ref(), "author").await;
    let disputer = account(store.as_ref(), "disputer").await;
    // Under review, the owner (no validators have staked) decides each contribution.
    let datanet = datanet(store.as_ref(), owner, AcceptancePolicy::Review).await;
    let review = |contribution, approve| Command::Vote {
        validator: owner,
        contribution,
        approve,
        reason: "reviewed".into(),
    };
    let mut ids = Vec::new();
    let mut held_back = Vec::new();
    for n in 0..21 {
        let (id, status) = contribute(store.as_ref(), datanet, author, n).await;
        assert_eq!(status, ContributionStatusCode::Pending);
        ids.push(id);
        // Two early contributions wait for their review until the others are indexed.
        if n == 2 || n == 9 {
            held_back.push(id);
            continue;
        }
        let decided = store.execute(review(id, true).into()).await;
        assert!(matches!(decided, Ok(Outcome::Voted { status: ContributionStatusCode::Accepted, .. })));
    }
    let this_node = open_manager(&dir.path().join("this"), &store).await;
    let other_node = open_manager(&dir.path().join("other"), &store).await;
    this_node.refresh(datanet).await.expect("refresh");
    other_node.refresh(datanet).await.expect("refresh");
    let before = snapshot(&this_node, datanet).await;
    assert_eq!(before.2, 19);
    assert_eq!(snapshot(&other_node, datanet).await, before);

    // Another node's validator accepts an older contribution: no `invalidate` here.
    let decided = store.execute(review(held_back[0], true).into()).await;
    assert!(matches!(decided, Ok(Outcome::Voted { status: ContributionStatusCode::Accepted, .. })));
    this_node.refresh(datanet).await.expect("refresh");
    let accepted_older = snapshot(&this_node, datanet).await;
    assert_eq!(accepted_older.2, 20, "the older contribution is indexed");
    assert!(accepted_older.3.iter().any(|(c, _)| *c == held_back[0].0));
    assert_eq!(accepted_older.1, expected_segments(20));
    let fresh = open_manager(&dir.path().join("fresh-1"), &store).await;
    fresh.refresh(datanet).await.expect("refresh");
    assert_eq!(snapshot(&fresh, datanet).await, accepted_older, "same as built from scratch");

    // The other node is driven only by its background loop, which finds the change on its own.
    let background = other_node.spawn();
    wait_for_version(&other_node, datanet, &accepted_older.0).await;
    assert_eq!(snapshot(&other_node, datanet).await, accepted_older);

    // An upheld dispute removes an accepted contribution (it copies an earlier one, says the
    // disputer; the owner decides).
    let disputed = ids[14];
    let open = Command::OpenDispute {
        disputer,
        contribution: disputed,
        evidence: Some(ids[0]),
        claim: String::new(),
    };
    let Ok(Outcome::DisputeOpened(dispute)) = store.execute(open.into()).await else { panic!("dispute") };
    let decided =
        store.execute(Command::DisputeVote { validator: owner, dispute, uphold: true }.into()).await;
    assert!(
        matches!(decided, Ok(Outcome::DisputeVoted { status: DisputeStatus::Upheld, .. })),
        "{decided:?}"
    );
    this_node.refresh(datanet).await.expect("refresh");
    let removed = snapshot(&this_node, datanet).await;
    assert_eq!(removed.2, 19, "the disputed contribution left the index");
    assert!(!removed.3.iter().any(|(c, _)| *c == disputed.0));
    assert_eq!(removed.1, expected_segments(19));
    let fresh = open_manager(&dir.path().join("fresh-2"), &store).await;
    fresh.refresh(datanet).await.expect("refresh");
    assert_eq!(snapshot(&fresh, datanet).await, removed, "same as built from scratch");
    wait_for_version(&other_node, datanet, &removed.0).await;
    assert_eq!(snapshot(&other_node, datanet).await, removed);

    // In one step, an older contribution accepted in the first group and one removed from the
    // last: the total count is unchanged, the count per group is not.
    let decided = store.execute(review(held_back[1], true).into()).await;
    assert!(matches!(decided, Ok(Outcome::Voted { status: ContributionStatusCode::Accepted, .. })));
    let removed_later = ids[18];
    let open = Command::OpenDispute {
        disputer,
        contribution: removed_later,
        evidence: Some(ids[0]),
        claim: String::new(),
    };
    let Ok(Outcome::DisputeOpened(dispute)) = store.execute(open.into()).await else { panic!("dispute") };
    let decided =
        store.execute(Command::DisputeVote { validator: owner, dispute, uphold: true }.into()).await;
    assert!(
        matches!(decided, Ok(Outcome::DisputeVoted { status: DisputeStatus::Upheld, .. })),
        "{decided:?}"
    );
    this_node.refresh(datanet).await.expect("refresh");
    let swapped = snapshot(&this_node, datanet).await;
    assert_eq!(swapped.2, 19);
    assert_ne!(swapped.0, removed.0, "the swap was noticed");
    assert!(swapped.3.iter().any(|(c, _)| *c == held_back[1].0));
    assert!(!swapped.3.iter().any(|(c, _)| *c == removed_later.0));
    let fresh = open_manager(&dir.path().join("fresh-3"), &store).await;
    fresh.refresh(datanet).await.expect("refresh");
    assert_eq!(snapshot(&fresh, datanet).await, swapped, "same as built from scratch");
    wait_for_version(&other_node, datanet, &swapped.0).await;
    assert_eq!(snapshot(&other_node, datanet).await, swapped);
    background.abort();
    let _ = background.await;
    store.shutdown().await;
}

/// Waits (up to ten seconds) until a manager's background loop has reached `version`.
async fn wait_for_version(manager: &IndexManager, datanet: DatanetId, version: &str) {
    let started = Instant::now();
    loop {
        let state = manager.state(datanet).await.expect("state");
        if state.version == version {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "background loop stuck at {state:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two status changes inside one group that leave every count as it was (one older contribution
/// accepted, another removed) are found all the same: every status change bumps the datanet's
/// counter in the store, whichever node made it.
#[tokio::test]
async fn a_swap_inside_one_group_is_found_by_the_status_change_counter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("shared.db"), Arc::new(SystemClock)).expect("store"));
    let owner = account(store.as_ref(), "owner").await;
    let author = account(store.as_ref(), "author").await;
    let disputer = account(store.as_ref(), "disputer").await;
    let datanet = datanet(store.as_ref(), owner, AcceptancePolicy::Review).await;
    let mut ids = Vec::new();
    for n in 0..10 {
        let (id, _) = contribute(store.as_ref(), datanet, author, 100 + n).await;
        ids.push(id);
        if n != 1 {
            let review =
                Command::Vote { validator: owner, contribution: id, approve: true, reason: "ok".into() };
            store.execute(review.into()).await.expect("accepted");
        }
    }
    let this_node = open_manager(&dir.path().join("this"), &store).await;
    this_node.refresh(datanet).await.expect("refresh");
    let before = snapshot(&this_node, datanet).await;
    assert_eq!(before.2, 9);
    assert_eq!(store.status_changes(datanet).await.expect("read"), 9, "each review counts");

    // Both inside the first group of 8: the counts up to each group's end do not move.
    let review = Command::Vote { validator: owner, contribution: ids[1], approve: true, reason: "ok".into() };
    store.execute(review.into()).await.expect("accepted");
    let open =
        Command::OpenDispute { disputer, contribution: ids[3], evidence: Some(ids[0]), claim: String::new() };
    let Ok(Outcome::DisputeOpened(dispute)) = store.execute(open.into()).await else { panic!("dispute") };
    store
        .execute(Command::DisputeVote { validator: owner, dispute, uphold: true }.into())
        .await
        .expect("upheld");
    assert_eq!(store.count_accepted_after(datanet, 0).await.expect("count"), 9);

    this_node.refresh(datanet).await.expect("refresh");
    let after = snapshot(&this_node, datanet).await;
    assert_ne!(after.0, before.0, "the swap was noticed");
    assert!(after.3.iter().any(|(c, _)| *c == ids[1].0));
    assert!(!after.3.iter().any(|(c, _)| *c == ids[3].0));
    let fresh = open_manager(&dir.path().join("fresh"), &store).await;
    fresh.refresh(datanet).await.expect("refresh");
    assert_eq!(snapshot(&fresh, datanet).await, after, "same as built from scratch");
    store.shutdown().await;
}
