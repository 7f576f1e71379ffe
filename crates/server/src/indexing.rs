//! Keeps each datanet's index up to date with its accepted contributions, in the background.
//!
//! *Layout.* A datanet's segments are a pure function of its accepted contributions in id order,
//! so every node sharing a database holds the same segments and reports the same index version,
//! whatever its refresh timing, however late it started, and whether or not it rebuilt from
//! scratch. The contributions are numbered 0, 1, … in id order and cut into groups like a binary
//! counter: for `n` of them and a block of `B` ([`LAYOUT_BLOCK_CONTRIBUTIONS`]), one group for each
//! set bit of `n / B` (`2^k · B` contributions, largest first, from number 0 up), then a tail group
//! of the remaining `n mod B` ([`layout_groups`]). Each group is built on its own by the
//! deterministic builder (`build_segments`, which cuts a group into several segments only where the
//! size limits force it). A refresh rebuilds only the groups whose contributions changed: an append
//! rebuilds the tail and the groups a carry merges, so each contribution is rebuilt O(log n) times
//! in all (plus the tail, at most `B` contributions, on each refresh that finds new ones), and a
//! datanet has at most log2(n / B) + 1 groups.
//!
//! *Changes other than appends.* A review that accepts an older contribution, or an upheld dispute
//! that removes one, may be decided by another node sharing the database, so the refresh checks in
//! the store that as many contributions are accepted up to the last one indexed as the index holds
//! (counts; the background loop spaces these checks out on large datanets so that they take a small
//! share of its time, [`STATUS_CHECK_SPACING_FACTOR`]). On a difference, or when this node's routes
//! report a change ([`IndexManager::invalidate`]), the accepted contributions are read again and
//! every group whose contributions differ is rebuilt. Queries take a snapshot (`Arc`) of a
//! datanet's segment set and are never blocked by building.
//!
//! At start the manifests are loaded and every segment's header and small sections are checked;
//! the large sections are checked in the background. A datanet whose index fails either check is
//! rebuilt from its contributions, with a warning in the log. A loaded set that does not follow
//! the layout (written by an older node, or by the offline build) keeps serving queries until the
//! first refresh has rebuilt the groups that differ.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tributary_core::DatanetId;
use tributary_index::segment::{DocumentInput, Segment, build_segments};
use tributary_index::store::{self as segment_store, SegmentSet};
use tributary_index::{IndexError, IndexView};
use tributary_ledger::store::{IndexableContribution, Store, StoreError};

/// The background loop's longest sleep.
pub const REFRESH_INTERVAL_MS: u64 = 250;
/// Contributions in a block of the layout: the tail group holds fewer, every other group a power
/// of two times as many. Larger blocks mean fewer segments but more rebuilt per refresh.
pub const LAYOUT_BLOCK_CONTRIBUTIONS: usize = 1024;
/// After checking a datanet's accepted contributions below its index (a count over all of them),
/// the background loop waits this many times as long as the check took before the next one.
pub const STATUS_CHECK_SPACING_FACTOR: u32 = 20;
/// Contributions read from the store per page.
const BUILD_BATCH_CONTRIBUTIONS: u32 = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum IndexingError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("index build task failed: {0}")]
    Task(String),
}

/// How the index manager lays out segments.
#[derive(Clone, Copy, Debug)]
pub struct IndexingConfig {
    /// See [`LAYOUT_BLOCK_CONTRIBUTIONS`]; every node sharing a database must use the same.
    pub layout_block_contributions: usize,
}

impl Default for IndexingConfig {
    fn default() -> Self {
        IndexingConfig { layout_block_contributions: LAYOUT_BLOCK_CONTRIBUTIONS }
    }
}

/// The index state of one datanet, as reported to users.
#[derive(Clone, Debug)]
pub struct DatanetIndexState {
    pub version: String,
    pub contributions_indexed: u64,
    pub contributions_pending: u64,
    pub segments: usize,
}

/// The groups of the layout for `count` contributions, as ranges of their positions in id order:
/// one of `block << k` for each set bit `k` of `count / block`, largest first, then the remaining
/// `count % block`, if any.
pub fn layout_groups(count: usize, block: usize) -> Vec<Range<usize>> {
    assert!(block > 0, "a layout block holds at least one contribution");
    let blocks = count / block;
    let mut groups = Vec::new();
    let mut start = 0;
    for bit in (0..usize::BITS).rev() {
        if (blocks >> bit) & 1 == 1 {
            let end = start + (block << bit);
            groups.push(start..end);
            start = end;
        }
    }
    if start < count {
        groups.push(start..count);
    }
    debug_assert_eq!(groups.last().map_or(0, |g| g.end), count);
    groups
}

/// The name a manifest gives the layout with blocks of `block` contributions.
pub fn layout_name(block: usize) -> String {
    format!("binary-counter {block}")
}

/// Builds a datanet's whole index in `dir` from all its accepted `contributions` (in id order), in
/// the layout with blocks of `block`, and commits it: the same segments the index manager ends up
/// with. Blocking; for the offline `tributary index build`.
pub fn build_in_layout(
    dir: &Path,
    contributions: &[IndexableContribution],
    block: usize,
    progress: &dyn Fn(u64),
) -> Result<Vec<Arc<Segment>>, IndexError> {
    let mut segments = Vec::new();
    for group in layout_groups(contributions.len(), block) {
        let inputs: Vec<DocumentInput<'_>> = contributions[group]
            .iter()
            .map(|c| DocumentInput { contribution: c.id.0, contributor: c.contributor.0, text: &c.text })
            .collect();
        for path in build_segments(dir, &inputs, progress)? {
            segments.push(Arc::new(Segment::open(&path)?));
        }
    }
    segment_store::commit_with_layout(dir, &segments, Some(&layout_name(block)))?;
    Ok(segments)
}

pub struct IndexManager {
    root: PathBuf,
    config: IndexingConfig,
    /// Held for the manager's life so that an offline `tributary index build` cannot write the
    /// same files while the node runs.
    _lock: std::fs::File,
    store: Arc<dyn Store>,
    sets: RwLock<HashMap<DatanetId, Arc<SegmentSet>>>,
    /// What the builder knows of each datanet's segments. Locked for a whole refresh: one build at
    /// a time, as builds are CPU-bound and the machine is small.
    build: tokio::sync::Mutex<HashMap<DatanetId, Built>>,
    wake: tokio::sync::Notify,
    /// Datanets this node saw change other than by new contributions (a review accepted an older
    /// one, an upheld dispute removed one): their accepted contributions are read again on the next
    /// refresh. Changes made by other nodes are found by the status check instead.
    stale: std::sync::Mutex<std::collections::HashSet<DatanetId>>,
}

/// What the builder knows of a datanet's current segments.
#[derive(Debug, Default)]
struct Built {
    /// The distinct contributions the segments hold, in id order.
    ids: Vec<u64>,
    /// The groups of the layout over `ids` whose segments are exactly what the builder makes of
    /// their contributions: all of them, unless the set was written without the layout.
    groups: Vec<Group>,
    /// When the background loop next checks the accepted contributions below the last indexed
    /// (`None`: at its next refresh).
    next_status_check: Option<Instant>,
    /// The store's count of status changes in the datanet when `ids` was known to be right
    /// (`None`: not yet known). Any status change made by any node bumps it, so a difference
    /// means the indexed contributions must be read again.
    status_changes: Option<u64>,
}

#[derive(Debug)]
struct Group {
    /// Positions in `Built::ids`.
    range: Range<usize>,
    segments: Vec<Arc<Segment>>,
}

impl Built {
    /// Recovers the groups of a loaded set. A group is trusted when its segments hold exactly its
    /// contributions and either the manifest names this layout or the group is one segment (the
    /// builder makes one segment of whatever fits in one, so that is what it would make).
    fn of(set: &SegmentSet, block: usize) -> Built {
        let mut ids: Vec<u64> = Vec::new();
        let mut spans = Vec::with_capacity(set.segments.len());
        for segment in &set.segments {
            let mut first = None;
            for document in segment.documents() {
                // A document too large for one segment continues at the start of the next.
                if ids.last() != Some(&document.contribution) {
                    ids.push(document.contribution);
                }
                first.get_or_insert(ids.len() - 1);
            }
            spans.push(first.unwrap_or(ids.len())..ids.len());
        }
        if !ids.windows(2).all(|pair| pair[0] < pair[1]) {
            // Not in id order: nothing here can be trusted, the whole datanet is read again.
            return Built::default();
        }
        let named = set.layout.as_deref() == Some(layout_name(block).as_str());
        let mut groups = Vec::new();
        for range in layout_groups(ids.len(), block) {
            let overlapping: Vec<usize> = (0..spans.len())
                .filter(|&s| spans[s].start < range.end && spans[s].end > range.start)
                .collect();
            let inside =
                overlapping.iter().all(|&s| spans[s].start >= range.start && spans[s].end <= range.end);
            if inside && !overlapping.is_empty() && (named || overlapping.len() == 1) {
                let segments = overlapping.iter().map(|&s| Arc::clone(&set.segments[s])).collect();
                groups.push(Group { range, segments });
            }
        }
        Built { ids, groups, next_status_check: None, status_changes: None }
    }

    /// Every indexed contribution is in a trusted group.
    fn follows_layout(&self, block: usize) -> bool {
        self.groups.len() == layout_groups(self.ids.len(), block).len()
    }

    fn status_check_due(&self) -> bool {
        self.next_status_check.is_none_or(|at| Instant::now() >= at)
    }
}

impl std::fmt::Debug for IndexManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexManager").field("root", &self.root).finish_non_exhaustive()
    }
}

impl IndexManager {
    /// Loads every datanet's index from `root` (DATA/index). Problems are logged and the datanet
    /// starts empty, to be rebuilt by the background loop.
    pub async fn open(root: &Path, store: Arc<dyn Store>) -> Result<Arc<IndexManager>, IndexingError> {
        IndexManager::open_with(root, store, IndexingConfig::default()).await
    }

    /// [`IndexManager::open`] with a layout other than the default (tests use small blocks).
    pub async fn open_with(
        root: &Path,
        store: Arc<dyn Store>,
        config: IndexingConfig,
    ) -> Result<Arc<IndexManager>, IndexingError> {
        assert!(config.layout_block_contributions > 0, "a layout block holds at least one contribution");
        let lock = lock_index(root)?;
        let datanets = store.datanet_ids().await?;
        let mut sets = HashMap::new();
        let mut builds = HashMap::new();
        for datanet in datanets {
            let dir = datanet_dir(root, datanet);
            let loaded = tokio::task::spawn_blocking(move || segment_store::load(&dir)).await;
            match loaded {
                Ok(Ok(set)) => {
                    let built = Built::of(&set, config.layout_block_contributions);
                    if !built.follows_layout(config.layout_block_contributions) {
                        tracing::info!(%datanet, "index not in this node's layout; the groups that differ will be rebuilt");
                    }
                    builds.insert(datanet, built);
                    sets.insert(datanet, Arc::new(set));
                }
                Ok(Err(error)) => {
                    tracing::warn!(datanet = %datanet, %error, "index unreadable; rebuilding it from the contributions");
                    segment_store::clear(&datanet_dir(root, datanet))?;
                }
                Err(error) => return Err(IndexingError::Task(error.to_string())),
            }
        }
        // A review or a dispute may have changed which contributions are accepted below what an
        // index holds while the node was stopped: the first refresh of each datanet checks (every
        // `Built` starts with its status check due).
        Ok(Arc::new(IndexManager {
            root: root.to_owned(),
            config,
            _lock: lock,
            store,
            sets: RwLock::new(sets),
            build: tokio::sync::Mutex::new(builds),
            wake: tokio::sync::Notify::new(),
            stale: std::sync::Mutex::new(std::collections::HashSet::new()),
        }))
    }

    /// Starts the background loop (and the full verification of what was loaded).
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let manager = Arc::clone(self);
        tokio::spawn(async move {
            manager.verify_loaded().await;
            loop {
                if let Err(error) = manager.refresh_all().await {
                    tracing::error!(%error, "index refresh failed; retrying");
                }
                let _ =
                    tokio::time::timeout(Duration::from_millis(REFRESH_INTERVAL_MS), manager.wake.notified())
                        .await;
            }
        })
    }

    /// Tells the background loop that contributions were added.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Tells the background loop that a datanet's accepted contributions changed other than by
    /// appending (see `stale`): they are read again on the next refresh.
    pub fn invalidate(&self, datanet: DatanetId) {
        self.stale.lock().expect("stale lock").insert(datanet);
        self.notify();
    }

    /// The current segment set of a datanet (empty if it has none yet).
    pub fn set(&self, datanet: DatanetId) -> Arc<SegmentSet> {
        self.sets.read().expect("index sets lock").get(&datanet).cloned().unwrap_or_default()
    }

    /// A consistent view over several datanets, in the order given.
    pub fn view(&self, datanets: &[DatanetId]) -> IndexView {
        let sets = self.sets.read().expect("index sets lock");
        let mut segments = Vec::new();
        for datanet in datanets {
            if let Some(set) = sets.get(datanet) {
                segments.extend(set.segments.iter().map(|s| (datanet.0, Arc::clone(s))));
            }
        }
        IndexView::with_datanets(segments)
    }

    pub async fn state(&self, datanet: DatanetId) -> Result<DatanetIndexState, IndexingError> {
        let set = self.set(datanet);
        let pending = self.store.count_accepted_after(datanet, set.indexed_through).await?;
        Ok(DatanetIndexState {
            version: set.version(),
            contributions_indexed: set.contributions,
            contributions_pending: pending,
            segments: set.segments.len(),
        })
    }

    async fn refresh_all(&self) -> Result<(), IndexingError> {
        for datanet in self.store.datanet_ids().await? {
            self.refresh_checking(datanet, false).await?;
        }
        Ok(())
    }

    /// Brings a datanet's index up to date with its accepted contributions, checking for changes
    /// other than appends, and returns when done.
    pub async fn refresh(&self, datanet: DatanetId) -> Result<Arc<SegmentSet>, IndexingError> {
        self.refresh_checking(datanet, true).await
    }

    /// [`IndexManager::refresh`]; the status check is made only when `check_status` or when due.
    async fn refresh_checking(
        &self,
        datanet: DatanetId,
        check_status: bool,
    ) -> Result<Arc<SegmentSet>, IndexingError> {
        let block = self.config.layout_block_contributions;
        let mut builds = self.build.lock().await;
        let built = builds.entry(datanet).or_default();
        let invalidated = self.stale.lock().expect("stale lock").remove(&datanet);
        // Read before the contributions, so that a change made while they are read is seen next time.
        let status_changes = self.store.status_changes(datanet).await?;
        let changed_elsewhere = built.status_changes.is_some_and(|seen| seen != status_changes);
        let mut reread = invalidated || built.ids.is_empty() || changed_elsewhere;
        if changed_elsewhere {
            tracing::info!(%datanet, "a contribution changed status; reading the accepted ones again");
        }
        if !reread && (check_status || built.status_check_due()) {
            reread = self.accepted_below_changed(datanet, built).await?;
            if reread {
                tracing::info!(%datanet, "accepted contributions changed below the index; reading them again");
            }
        }
        loop {
            let target = match reread {
                true => self.store.count_accepted_after(datanet, 0).await?,
                false => {
                    let last = built.ids.last().copied().unwrap_or(0);
                    built.ids.len() as u64 + self.store.count_accepted_after(datanet, last).await?
                }
            };
            let target = usize::try_from(target).expect("a datanet's contributions fit in memory");
            let current = self.set(datanet);
            if target == built.ids.len()
                && built.follows_layout(block)
                && (!reread || current.segments.is_empty() && target == 0)
            {
                built.status_changes = Some(status_changes);
                return Ok(current);
            }
            match self.rebuild(datanet, built, target, !reread).await {
                Ok(Some(next)) => {
                    let next_status_check = built.next_status_check;
                    *built = next;
                    built.next_status_check = next_status_check;
                    built.status_changes = Some(status_changes);
                    reread = false;
                }
                Ok(None) => {
                    // The store changed while it was being read: read it all again, soon.
                    self.invalidate(datanet);
                    return Ok(self.set(datanet));
                }
                Err(error) => {
                    if reread {
                        // Whatever made this a full read (an invalidation, a status change found)
                        // still holds: the next refresh reads again.
                        self.stale.lock().expect("stale lock").insert(datanet);
                    }
                    return Err(error);
                }
            }
        }
    }

    /// Whether the store's accepted contributions differ from the indexed ones in how many there
    /// are up to the end of each group of the layout (so a change is missed only if another change
    /// in the same group makes up for it before the next check). The counts are linear in the
    /// datanet's contributions (about twice one count over all of them, as the groups halve), so
    /// the background loop's next check waits a multiple of this one's duration.
    async fn accepted_below_changed(
        &self,
        datanet: DatanetId,
        built: &mut Built,
    ) -> Result<bool, IndexingError> {
        let started = Instant::now();
        let indexed = built.ids.len() as u64;
        let last = built.ids.last().copied().unwrap_or(0);
        let beyond = self.store.count_accepted_after(datanet, last).await?;
        let mut changed = self.store.count_accepted_after(datanet, 0).await? != indexed + beyond;
        for group in layout_groups(built.ids.len(), self.config.layout_block_contributions) {
            if changed {
                break;
            }
            let after_group = self.store.count_accepted_after(datanet, built.ids[group.end - 1]).await?;
            changed = after_group != indexed - group.end as u64 + beyond;
        }
        let beyond_again = self.store.count_accepted_after(datanet, last).await?;
        built.next_status_check = Some(Instant::now() + started.elapsed() * STATUS_CHECK_SPACING_FACTOR);
        if beyond_again != beyond {
            // Contributions arrived between the counts, which then say nothing: check next time.
            built.next_status_check = None;
            return Ok(false);
        }
        Ok(changed)
    }

    /// Makes the datanet's index the layout of its first `target` accepted contributions, reusing
    /// every group of `built` with the same contributions. With `trust_indexed`, the contributions
    /// indexed are taken to still be the first accepted ones (no status change), so groups within
    /// them are reused without reading the store; otherwise every group is read and compared.
    /// `None` when the store changed under the reads.
    async fn rebuild(
        &self,
        datanet: DatanetId,
        built: &Built,
        target: usize,
        trust_indexed: bool,
    ) -> Result<Option<Built>, IndexingError> {
        let block = self.config.layout_block_contributions;
        let dir = datanet_dir(&self.root, datanet);
        let current = self.set(datanet);
        // With nothing to lose, every group is published as soon as it is built, so that a large
        // first build is searchable (and survives a restart) part by part. Otherwise the old set
        // serves until the new one is complete, and its files stay until then.
        let publish_each_group = current.segments.is_empty();
        let trusted: &[u64] = if trust_indexed { &built.ids } else { &[] };
        let by_first: HashMap<(u64, usize), &Group> =
            built.groups.iter().map(|g| ((built.ids[g.range.start], g.range.len()), g)).collect();
        let reusable = |ids: &[u64]| -> Option<&Group> {
            let group = by_first.get(&(*ids.first()?, ids.len()))?;
            (built.ids[group.range.clone()] == *ids).then_some(*group)
        };
        let mut next = Built::default();
        let mut segments: Vec<Arc<Segment>> = Vec::new();
        let mut built_groups = 0;
        for range in layout_groups(target, block) {
            let known = range.start.min(trusted.len())..range.end.min(trusted.len());
            let reused = match range.end <= trusted.len() {
                true => reusable(&trusted[range.clone()])
                    .map(|g| (g.segments.clone(), trusted[range.clone()].to_vec())),
                false => None,
            };
            let (group_segments, group_ids) = match reused {
                Some(reused) => reused,
                None => {
                    let after = next.ids.last().copied().unwrap_or(0);
                    let contributions = self.read_accepted(datanet, after, range.len()).await?;
                    let ids: Vec<u64> = contributions.iter().map(|c| c.id.0).collect();
                    if ids.len() != range.len() || ids[..known.len()] != trusted[known] {
                        return Ok(None);
                    }
                    match reusable(&ids) {
                        Some(group) => (group.segments.clone(), ids),
                        None => {
                            built_groups += 1;
                            (build_and_open(dir.clone(), contributions).await?, ids)
                        }
                    }
                }
            };
            let start = next.ids.len();
            next.ids.extend_from_slice(&group_ids);
            segments.extend(group_segments.iter().cloned());
            next.groups.push(Group { range: start..next.ids.len(), segments: group_segments });
            if publish_each_group && built_groups > 0 {
                self.publish(datanet, &segments).await?;
            }
        }
        debug_assert!(
            next.ids.windows(2).all(|pair| pair[0] < pair[1]),
            "accepted contributions in id order"
        );
        let unchanged = current.layout.as_deref() == Some(layout_name(block).as_str())
            && current.segments.iter().map(|s| s.id()).eq(segments.iter().map(|s| s.id()));
        if !unchanged {
            let set = self.publish(datanet, &segments).await?;
            tracing::debug!(%datanet, segments = set.segments.len(), contributions = set.contributions, built_groups, "index updated");
        }
        Ok(Some(next))
    }

    /// Commits `segments` as the datanet's set (deleting every other segment file) and serves it.
    async fn publish(
        &self,
        datanet: DatanetId,
        segments: &[Arc<Segment>],
    ) -> Result<Arc<SegmentSet>, IndexingError> {
        let layout = layout_name(self.config.layout_block_contributions);
        let dir = datanet_dir(&self.root, datanet);
        let committed = segments.to_vec();
        let set = Arc::new(set_of(segments.to_vec(), layout.clone()));
        tokio::task::spawn_blocking(move || {
            segment_store::commit_with_layout(&dir, &committed, Some(&layout))
        })
        .await
        .map_err(|e| IndexingError::Task(e.to_string()))??;
        self.sets.write().expect("index sets lock").insert(datanet, Arc::clone(&set));
        Ok(set)
    }

    /// The first `count` accepted contributions of a datanet with ids above `after` (fewer if
    /// there are not as many), read in pages.
    async fn read_accepted(
        &self,
        datanet: DatanetId,
        mut after: u64,
        count: usize,
    ) -> Result<Vec<IndexableContribution>, IndexingError> {
        let mut contributions = Vec::with_capacity(count);
        while contributions.len() < count {
            let limit = (count - contributions.len()).min(BUILD_BATCH_CONTRIBUTIONS as usize) as u32;
            let page = self.store.accepted_contributions(datanet, after, limit).await?;
            let Some(last) = page.last() else { break };
            after = last.id.0;
            let short = page.len() < limit as usize;
            contributions.extend(page);
            if short {
                break;
            }
        }
        Ok(contributions)
    }

    /// Checks every byte of the loaded segments; a datanet that fails is rebuilt.
    async fn verify_loaded(&self) {
        let loaded: Vec<(DatanetId, Arc<SegmentSet>)> =
            self.sets.read().expect("index sets lock").iter().map(|(d, s)| (*d, Arc::clone(s))).collect();
        for (datanet, set) in loaded {
            let segments = set.segments.clone();
            let verified =
                tokio::task::spawn_blocking(move || segments.iter().try_for_each(|s| s.verify())).await;
            if let Ok(Err(error)) = verified {
                tracing::warn!(%datanet, %error, "index corrupt; rebuilding it from the contributions");
                let mut builds = self.build.lock().await;
                builds.remove(&datanet);
                self.sets.write().expect("index sets lock").remove(&datanet);
                let _ = segment_store::clear(&datanet_dir(&self.root, datanet));
            }
        }
    }
}

fn set_of(segments: Vec<Arc<Segment>>, layout: String) -> SegmentSet {
    let (indexed_through, contributions) = segment_store::coverage(&segments);
    SegmentSet { segments, indexed_through, contributions, layout: Some(layout) }
}

async fn build_and_open(
    dir: PathBuf,
    contributions: Vec<IndexableContribution>,
) -> Result<Vec<Arc<Segment>>, IndexingError> {
    tokio::task::spawn_blocking(move || {
        let inputs: Vec<DocumentInput<'_>> = contributions
            .iter()
            .map(|c| DocumentInput { contribution: c.id.0, contributor: c.contributor.0, text: &c.text })
            .collect();
        let paths = build_segments(&dir, &inputs, &|_| {})?;
        paths.iter().map(|p| Segment::open(p).map(Arc::new)).collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| IndexingError::Task(e.to_string()))?
    .map_err(IndexingError::from)
}

/// Takes the index directory's exclusive lock, failing at once if another process holds it.
pub fn lock_index(root: &Path) -> Result<std::fs::File, IndexError> {
    std::fs::create_dir_all(root).map_err(|e| IndexError::io(root, e))?;
    let path = root.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| IndexError::io(&path, e))?;
    file.try_lock().map_err(|_| IndexError::Corrupt {
        path: path.clone(),
        reason: "locked by another process (is the node running? use POST /v1/datanets/{id}/index)".into(),
    })?;
    Ok(file)
}

/// Every accepted contribution of a datanet, in id order, read in pages: what a full rebuild
/// of its index is made from.
pub async fn all_accepted_contributions(
    store: &dyn Store,
    datanet: DatanetId,
) -> Result<Vec<IndexableContribution>, StoreError> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = store.accepted_contributions(datanet, after, BUILD_BATCH_CONTRIBUTIONS).await?;
        let Some(last) = page.last() else { break };
        after = last.id.0;
        all.extend(page);
    }
    Ok(all)
}

/// Where a datanet's segments live.
pub fn datanet_dir(root: &Path, datanet: DatanetId) -> PathBuf {
    root.join(datanet.to_string())
}
