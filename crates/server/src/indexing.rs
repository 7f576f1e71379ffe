//! Keeps each datanet's index up to date with its accepted contributions, in the background.
//!
//! New contributions go into a new small segment within moments (the loop wakes when
//! contributions are added, and at least every [`REFRESH_INTERVAL_MS`]). When a datanet has more
//! than [`SEGMENTS_MAX`] segments they are merged, which means rebuilt from the contributions (the
//! source of truth), so a merged index is by construction the index built from scratch. Queries take
//! a snapshot (`Arc`) of a datanet's segment set and are never blocked by building or merging.
//!
//! At start the manifests are loaded and every segment's header and small sections are checked;
//! the large sections are checked in the background. A datanet whose index fails either check is
//! rebuilt from its contributions, with a warning in the log.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tributary_core::DatanetId;
use tributary_index::segment::{DocumentInput, Segment, build_segments};
use tributary_index::store::{self as segment_store, SegmentSet};
use tributary_index::{IndexError, IndexView};
use tributary_ledger::store::{Store, StoreError};

/// The background loop's longest sleep.
pub const REFRESH_INTERVAL_MS: u64 = 250;
/// Segments a datanet may have before they are merged.
pub const SEGMENTS_MAX: usize = 8;
/// Contributions read from the store per build step.
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

/// The index state of one datanet, as reported to users.
#[derive(Clone, Debug)]
pub struct DatanetIndexState {
    pub version: String,
    pub contributions_indexed: u64,
    pub contributions_pending: u64,
    pub segments: usize,
}

pub struct IndexManager {
    root: PathBuf,
    /// Held for the manager's life so that an offline `tributary index build` cannot write the
    /// same files while the node runs.
    _lock: std::fs::File,
    store: Arc<dyn Store>,
    sets: RwLock<HashMap<DatanetId, Arc<SegmentSet>>>,
    /// One build at a time: builds are CPU-bound and the machine is small.
    build: tokio::sync::Mutex<()>,
    wake: tokio::sync::Notify,
    /// Datanets whose accepted set changed other than by new contributions (a review accepted an
    /// older one, an upheld dispute removed one): rebuilt whole on the next refresh.
    stale: std::sync::Mutex<std::collections::HashSet<DatanetId>>,
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
        let lock = lock_index(root)?;
        let datanets = store.datanet_ids().await?;
        let mut sets = HashMap::new();
        for datanet in datanets {
            let dir = datanet_dir(root, datanet);
            let loaded = tokio::task::spawn_blocking(move || segment_store::load(&dir)).await;
            match loaded {
                Ok(Ok(set)) => {
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
        // index holds, and the node may have stopped before rebuilding it: an index that does not
        // hold exactly as many contributions as are accepted up to its last one is rebuilt.
        let mut stale = std::collections::HashSet::new();
        for (datanet, set) in &sets {
            let accepted = store.count_accepted_after(*datanet, 0).await?;
            let beyond = store.count_accepted_after(*datanet, set.indexed_through).await?;
            if accepted - beyond.min(accepted) != set.contributions {
                tracing::warn!(%datanet, "index out of step with accepted contributions; rebuilding it");
                stale.insert(*datanet);
            }
        }
        Ok(Arc::new(IndexManager {
            root: root.to_owned(),
            _lock: lock,
            store,
            sets: RwLock::new(sets),
            build: tokio::sync::Mutex::new(()),
            wake: tokio::sync::Notify::new(),
            stale: std::sync::Mutex::new(stale),
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

    /// Marks a datanet for a full rebuild: its accepted contributions changed other than by
    /// appending (see `stale`).
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
            self.refresh(datanet).await?;
        }
        Ok(())
    }

    /// Brings a datanet's index up to date with its accepted contributions, and returns when done.
    pub async fn refresh(&self, datanet: DatanetId) -> Result<Arc<SegmentSet>, IndexingError> {
        let _build = self.build.lock().await;
        if self.stale.lock().expect("stale lock").remove(&datanet) {
            let rebuilt = match self.rebuild_segments(datanet).await {
                Ok(segments) => segments,
                Err(error) => {
                    self.stale.lock().expect("stale lock").insert(datanet);
                    return Err(error);
                }
            };
            let set = set_of(rebuilt);
            let committed = set.segments.clone();
            let dir = datanet_dir(&self.root, datanet);
            tokio::task::spawn_blocking(move || segment_store::commit(&dir, &committed))
                .await
                .map_err(|e| IndexingError::Task(e.to_string()))??;
            tracing::info!(%datanet, contributions = set.contributions, "index rebuilt after a status change");
            self.sets.write().expect("index sets lock").insert(datanet, Arc::new(set));
        }
        loop {
            let current = self.set(datanet);
            let new = self
                .store
                .accepted_contributions(datanet, current.indexed_through, BUILD_BATCH_CONTRIBUTIONS)
                .await?;
            if new.is_empty() {
                return Ok(current);
            }
            let dir = datanet_dir(&self.root, datanet);
            let mut segments = current.segments.clone();
            segments.extend(build_and_open(dir.clone(), new).await?);
            let next =
                if segments.len() > SEGMENTS_MAX { self.rebuild_segments(datanet).await? } else { segments };
            let set = set_of(next);
            let committed = set.segments.clone();
            let dir_for_commit = dir.clone();
            tokio::task::spawn_blocking(move || segment_store::commit(&dir_for_commit, &committed))
                .await
                .map_err(|e| IndexingError::Task(e.to_string()))??;
            tracing::debug!(%datanet, segments = set.segments.len(), contributions = set.contributions, "index updated");
            self.sets.write().expect("index sets lock").insert(datanet, Arc::new(set));
        }
    }

    /// All of a datanet's accepted contributions, built into as few segments as the limits allow.
    async fn rebuild_segments(&self, datanet: DatanetId) -> Result<Vec<Arc<Segment>>, IndexingError> {
        let all = all_accepted_contributions(self.store.as_ref(), datanet).await?;
        build_and_open(datanet_dir(&self.root, datanet), all).await
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
                let _build = self.build.lock().await;
                self.sets.write().expect("index sets lock").remove(&datanet);
                let _ = segment_store::clear(&datanet_dir(&self.root, datanet));
            }
        }
    }
}

fn set_of(segments: Vec<Arc<Segment>>) -> SegmentSet {
    let mut set = SegmentSet::default();
    for segment in &segments {
        for document in segment.documents() {
            set.indexed_through = set.indexed_through.max(document.contribution);
        }
        set.contributions += segment.documents().len() as u64;
    }
    set.segments = segments;
    set
}

async fn build_and_open(
    dir: PathBuf,
    contributions: Vec<tributary_ledger::store::IndexableContribution>,
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
) -> Result<Vec<tributary_ledger::store::IndexableContribution>, StoreError> {
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
