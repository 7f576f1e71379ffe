//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`.
//!
//! One writer thread owns the only write connection and the live [`LedgerState`]. Requests reach it
//! through a bounded queue; it takes everything queued (up to [`BATCH_COMMANDS_MAX`] commands),
//! applies each command against the in-memory state, writes the rows in one transaction, commits
//! (one fsync for the whole batch: group commit), and only then answers every request in the
//! batch. If the commit fails, nothing in the batch is acknowledged and the in-memory state is
//! reloaded from disk, so memory never runs ahead of what is durable.
//!
//! Readers use their own connections; WAL lets them read the last committed state while the
//! writer works.
//!
//! The same store is also a PostgreSQL node's replica (`open_postgres`, see `postgres.rs`): there
//! the writer appends each batch to the shared log, after applying what other nodes appended,
//! before committing it here, and applies other nodes' batches while idle.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use tokio::sync::oneshot;
use tributary_core::registry::{
    Account, AccountKind, Contribution, ContributionStatus, Datanet, Model, ModelSpec,
};
use tributary_core::{AccountId, Amount, ContributionId, DatanetId, EvmAddress, ModelId, TransferId};

mod epochs;
mod validation;

use crate::Clock;
use crate::postgres::{Append, LoggedBatch, PgLog};
use crate::state::{
    Balances, Hold, IdMap, InvariantViolation, LedgerError, LedgerOp, LedgerState, Replay, Transfer,
    TransferKind,
};
use crate::store::{
    BATCH_COMMANDS_MAX, BatchResult, Command, DisputeRecord, EarningLine, Earnings, EpochRecord,
    IndexableContribution, LedgerSummary, NewReceipt, Outcome, Payment, ReceiptRecord, ReceiptSigner,
    Request, SettlementLine, StakeRecord, Store, StoreError, StoreStats, SystemAccounts, VoteRecord,
    receipt_hash,
};

/// How often an idle replica looks for batches other nodes appended to the log.
const LOG_POLL_MS: u64 = 5;
/// Log batches applied per replica transaction while catching up.
const LOG_PAGE_BATCHES: usize = 256;
/// Log batches an idle writer applies before it looks at its own queue again.
const LOG_FOLLOW_BATCHES_MAX: usize = 4 * LOG_PAGE_BATCHES;
/// Submissions that may wait for the writer; beyond this the store answers "overloaded".
pub const QUEUE_SUBMISSIONS_MAX: usize = 65_536;
/// SQLite page size of a new database file.
const PAGE_BYTES: i64 = 4 * 1024;
/// WAL size, in pages, at which the writer checkpoints it into the database file.
const WAL_CHECKPOINT_PAGES: i64 = 4_096;
/// Page cache of the writer connection, in KiB (SQLite takes a negative number as KiB).
const WRITER_CACHE_KIB: i64 = 128 * 1024;
/// Transfers after which the writer snapshots the balances of the accounts they touched into the
/// `accounts` table (it also does so when idle and at shutdown). Balances are derived from the
/// transfers, which are written with every batch; snapshotting them per batch would rewrite
/// thousands of account rows per commit.
const BALANCE_SNAPSHOT_TRANSFERS: u64 = 65_536;
/// Transfers indexed into account history per indexing transaction.
const HISTORY_CHUNK_TRANSFERS: u64 = 65_536;
/// How long the writer waits for requests before it spends idle time on account history.
const HISTORY_IDLE_MS: u64 = 20;
/// Read connections kept open for reuse.
const READERS_IDLE_MAX: usize = 8;
/// The writer wakes at least this often to expire holds.
const EXPIRY_POLL_MS_MAX: u64 = 250;

/// The first three internal accounts, created with every new store; the clearing account came later
/// and its id is looked up (see `ensure_clearing_account`).
const SYSTEM_ACCOUNTS: SystemAccounts = SystemAccounts {
    external: AccountId(1),
    protocol: AccountId(2),
    validators_pool: AccountId(3),
    clearing: AccountId(0),
};

/// Schema migrations, applied in order; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    payout_address TEXT,
    api_key_hash BLOB UNIQUE,
    debits_posted BLOB NOT NULL,
    credits_posted BLOB NOT NULL,
    debits_pending BLOB NOT NULL,
    credits_pending BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE transfers (
    id INTEGER PRIMARY KEY,
    kind INTEGER NOT NULL,
    debit_account INTEGER NOT NULL,
    credit_account INTEGER NOT NULL,
    amount BLOB NOT NULL,
    pending_id INTEGER,
    expires_at_ms INTEGER,
    created_at_ms INTEGER NOT NULL
);
-- An account's history, derived from `transfers` by the writer in chunks when it is idle or a
-- chunk is full, never in the acknowledged write path. One row per account per chunk holds the
-- ids of that account's transfers in the chunk (ascending, as LEB128 deltas): keyed by account,
-- per-transfer rows would land all over the index and cost more than the transfers themselves.
-- Readers add the unindexed tail (ids above `indexed_through`) by a bounded scan.
CREATE TABLE account_history (
    account INTEGER NOT NULL,
    last_transfer INTEGER NOT NULL,
    transfers BLOB NOT NULL,
    PRIMARY KEY (account, last_transfer)
) WITHOUT ROWID;
CREATE TABLE history_watermark (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_through INTEGER NOT NULL
);
INSERT INTO history_watermark (id, indexed_through) VALUES (1, 0);
-- The balance columns of `accounts` hold the balances after transfer `snapshot_through`.
CREATE TABLE balance_watermark (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    snapshot_through INTEGER NOT NULL
);
INSERT INTO balance_watermark (id, snapshot_through) VALUES (1, 0);
CREATE TABLE holds (
    id INTEGER PRIMARY KEY,
    debit_account INTEGER NOT NULL,
    credit_account INTEGER NOT NULL,
    amount BLOB NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
CREATE TABLE datanets (
    id INTEGER PRIMARY KEY,
    owner INTEGER NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    license TEXT NOT NULL,
    pool_account INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE contributions (
    id INTEGER PRIMARY KEY,
    datanet INTEGER NOT NULL,
    contributor INTEGER NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    source TEXT,
    content_hash BLOB NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX contributions_datanet ON contributions (datanet, id);
CREATE TABLE models (
    id INTEGER PRIMARY KEY,
    owner INTEGER NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE idempotency (
    scope INTEGER NOT NULL,
    key TEXT NOT NULL,
    request_hash BLOB NOT NULL,
    outcome TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);
"#,
    r#"
-- Receipts of paid inferences, one hash chain per node (this store has one writer).
CREATE TABLE receipts (
    id INTEGER PRIMARY KEY,
    caller INTEGER NOT NULL,
    model INTEGER NOT NULL,
    body TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL,
    signature BLOB NOT NULL,
    transfers TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
"#,
    r#"
-- Each split line of each settlement, by payee: the earnings views.
CREATE TABLE earnings (
    account INTEGER NOT NULL,
    receipt INTEGER NOT NULL,
    role TEXT NOT NULL,
    amount BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (account, receipt, role)
) WITHOUT ROWID;
"#,
    epochs::MIGRATION,
    validation::MIGRATION,
    r#"
-- In a replica of a PostgreSQL log (see `postgres.rs`): the last log batch applied here, and the
-- time it was decided at. Empty in an embedded store.
CREATE TABLE replication (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    applied_seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL
);
"#,
    r#"
-- How many times a contribution of the datanet already stored changed status (a review, an
-- upheld dispute): what an index that appends new contributions would otherwise miss.
ALTER TABLE datanets ADD COLUMN status_changes INTEGER NOT NULL DEFAULT 0;
"#,
];

enum Message {
    Submit(Vec<Request>, Reply),
    /// Answered once the replica has applied everything in the log when it was asked.
    Sync(oneshot::Sender<Result<(), StoreError>>),
    Shutdown(oneshot::Sender<()>),
}

#[derive(Default)]
struct Stats {
    batches: AtomicU64,
    commands: AtomicU64,
    commit_micros_total: AtomicU64,
    /// The last log batch applied (replicas only).
    log_applied: AtomicU64,
}

/// The embedded SQLite store.
pub struct SqliteStore {
    path: PathBuf,
    system: SystemAccounts,
    /// Balances as of the last commit; the writer publishes into it after every commit, so
    /// readers see exactly what has been acknowledged.
    committed: Arc<RwLock<IdMap<AccountId, Balances>>>,
    sender: SyncSender<Message>,
    readers: Mutex<Vec<Connection>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    stats: Arc<Stats>,
    replicated: bool,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish_non_exhaustive()
    }
}

fn internal(error: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(error.to_string())
}

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // Larger pages mean fewer WAL frames (one write call each) per commit. It only takes effect
    // when the file is created.
    conn.pragma_update(None, "page_size", PAGE_BYTES)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`, checks the persisted ledger against its
    /// transfer history, and starts the writer.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with_signer(path, clock, None)
    }

    /// Opens the store with the node's receipt signer; without one, paid inferences are refused.
    pub fn open_with_signer(
        path: &Path,
        clock: Arc<dyn Clock>,
        signer: Option<Arc<dyn ReceiptSigner>>,
    ) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_inner(path, clock, signer, None)
    }

    /// Opens a node on a PostgreSQL database shared with other nodes (see `postgres.rs`): connects,
    /// migrates, and brings the node's replica (a file in `replicas`, named after the cluster) up to
    /// date with the log before returning. `node` names this node in the log. Every node on one
    /// database signs receipts with the same key (log replay re-signs them): one with another key
    /// is refused.
    pub fn open_postgres(
        url: &str,
        replicas: &Path,
        node: &str,
        clock: Arc<dyn Clock>,
        signer: Arc<dyn ReceiptSigner>,
    ) -> Result<SqliteStore, StoreError> {
        // The synchronous client runs its own runtime, so it must not be driven from an async one.
        let (url, node, probe_signer) = (url.to_owned(), node.to_owned(), Arc::clone(&signer));
        let log = std::thread::spawn(move || PgLog::connect(&url, &node, probe_signer.as_ref()))
            .join()
            .map_err(|_| internal("connecting to PostgreSQL panicked"))??;
        std::fs::create_dir_all(replicas)
            .map_err(|e| internal(format!("creating {}: {e}", replicas.display())))?;
        let path = replicas.join(format!("replica-{}.db", log.cluster()));
        SqliteStore::open_inner(&path, clock, Some(signer), Some(log))
    }

    fn open_inner(
        path: &Path,
        clock: Arc<dyn Clock>,
        signer: Option<Arc<dyn ReceiptSigner>>,
        mut log: Option<PgLog>,
    ) -> Result<SqliteStore, StoreError> {
        let mut conn = open_connection(path).map_err(internal)?;
        if log.is_some() {
            // A replica is derived data: what the log holds is durable, and whatever a crash takes
            // from the replica is applied again from the log at the next start. So its commits
            // need not wait for the disk (WAL with synchronous=NORMAL never corrupts; it may lose
            // the last commits on power loss).
            conn.pragma_update(None, "synchronous", "NORMAL").map_err(internal)?;
        }
        // The writer touches account rows and index pages all over the file; a large page cache
        // keeps them in memory instead of re-reading them from the OS for every batch.
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB).map_err(internal)?;
        // Account pages are rewritten by nearly every batch; checkpointing less often copies each
        // hot page back to the database file once per checkpoint instead of many times.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES).map_err(internal)?;
        migrate(&mut conn).map_err(internal)?;
        let mut writer_state = WriterState::load(&conn)?;
        writer_state.signer = signer.clone();
        if let Some(log) = log.as_mut() {
            std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        catch_up(&mut conn, &mut writer_state, log, usize::MAX).map_err(StoreError::from)
                    })
                    .join()
                    .map_err(|_| internal("catching up with the log panicked"))?
            })?;
        }
        let system = writer_state.system;
        let committed: IdMap<AccountId, Balances> =
            writer_state.ledger.accounts().map(|(id, account)| (*id, account.balances)).collect();
        let committed = Arc::new(RwLock::new(committed));
        let writer_committed = Arc::clone(&committed);
        let (sender, receiver) = std::sync::mpsc::sync_channel(QUEUE_SUBMISSIONS_MAX);
        let stats = Arc::new(Stats::default());
        stats.log_applied.store(writer_state.applied_seq, Ordering::Relaxed);
        let writer_stats = Arc::clone(&stats);
        let replicated = log.is_some();
        let handle = std::thread::Builder::new()
            .name("tributary-writer".into())
            .spawn(move || {
                Writer {
                    conn,
                    state: writer_state,
                    clock,
                    stats: writer_stats,
                    committed: writer_committed,
                    signer,
                    log,
                }
                .run(receiver);
            })
            .map_err(internal)?;
        Ok(SqliteStore {
            path: path.to_owned(),
            system,
            committed,
            sender,
            readers: Mutex::new(Vec::new()),
            writer: Mutex::new(Some(handle)),
            stats,
            replicated,
        })
    }

    /// Queues requests for the writer and returns where the answer will arrive, without waiting.
    pub fn submit(
        &self,
        requests: Vec<Request>,
        provisional: bool,
    ) -> Result<oneshot::Receiver<BatchResult>, StoreError> {
        let (sender, answer) = oneshot::channel();
        let reply = Reply { sender: Some(sender), provisional };
        match self.sender.try_send(Message::Submit(requests, reply)) {
            Ok(()) => Ok(answer),
            Err(TrySendError::Full(_)) => Err(StoreError::Overloaded),
            Err(TrySendError::Disconnected(_)) => Err(StoreError::ShuttingDown),
        }
    }

    /// In a replica, waits until everything in the shared log at the time of the call is applied
    /// here; at once in an embedded store.
    pub async fn sync(&self) -> Result<(), StoreError> {
        if !self.replicated {
            return Ok(());
        }
        let (reply, done) = oneshot::channel();
        match self.sender.try_send(Message::Sync(reply)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(StoreError::Overloaded),
            Err(TrySendError::Disconnected(_)) => return Err(StoreError::ShuttingDown),
        }
        done.await.map_err(|_| StoreError::ShuttingDown)?
    }

    /// A lookup by id or key. In a replica, what another node has just created may not have arrived
    /// yet: a miss waits for the replica to catch up with the log and looks again, so a client that
    /// creates something through one node can use it through another at once.
    async fn lookup<T: Send + 'static>(
        &self,
        query: impl Fn(&Connection) -> Result<Option<T>, StoreError> + Clone + Send + 'static,
    ) -> Result<Option<T>, StoreError> {
        let found = self.read(query.clone()).await?;
        if found.is_some() || !self.replicated {
            return Ok(found);
        }
        self.sync().await?;
        self.read(query).await
    }

    /// Applies requests, blocking the calling thread until they are durable (for non-async callers).
    pub fn execute_batch_blocking(&self, requests: Vec<Request>) -> BatchResult {
        self.submit(requests, false)?.blocking_recv().map_err(|_| StoreError::ShuttingDown)?
    }

    fn shutdown_blocking(&self) {
        // Joining a thread is allowed inside an async runtime; waiting on a channel there is not.
        let (reply, _done) = oneshot::channel();
        let _ = self.sender.send(Message::Shutdown(reply));
        let handle = self.writer.lock().expect("writer lock").take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = match self.readers.lock().expect("readers lock").pop() {
            Some(conn) => conn,
            None => open_connection(&self.path).map_err(internal)?,
        };
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let result = query(&conn);
            (conn, result)
        })
        .await
        .map_err(internal)?;
        let mut readers = self.readers.lock().expect("readers lock");
        if readers.len() < READERS_IDLE_MAX {
            readers.push(conn);
        }
        result
    }
}

/// Copies a PostgreSQL node's replica into `into` (another node's replica directory) as one
/// consistent snapshot, safe while the node runs: the new node then replays only the log after it
/// instead of all of it. Returns the snapshot's path and the last log batch it holds.
pub fn seed_replica(replicas: &Path, into: &Path) -> Result<(PathBuf, u64), StoreError> {
    let source = std::fs::read_dir(replicas)
        .map_err(|e| internal(format!("reading {}: {e}", replicas.display())))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("replica-") && n.ends_with(".db"))
        })
        .ok_or_else(|| StoreError::Invalid(format!("{} holds no replica", replicas.display())))?;
    let name = source.file_name().expect("a file name").to_owned();
    std::fs::create_dir_all(into).map_err(|e| internal(format!("creating {}: {e}", into.display())))?;
    let target = into.join(&name);
    if target.exists() {
        return Err(StoreError::Conflict(format!(
            "{} exists; a replica is never overwritten",
            target.display()
        )));
    }
    let conn = Connection::open(&source).map_err(internal)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(internal)?;
    // One read transaction: the copy is the replica as of one commit, even while its node writes.
    let partial = into.join(format!(".{}.partial", name.to_string_lossy()));
    let _ = std::fs::remove_file(&partial);
    conn.execute("VACUUM INTO ?1", [partial.to_string_lossy()]).map_err(internal)?;
    let copy = Connection::open(&partial).map_err(internal)?;
    let applied: i64 = copy
        .query_row("SELECT applied_seq FROM replication", [], |row| row.get(0))
        .optional()
        .map_err(internal)?
        .ok_or_else(|| {
            StoreError::Invalid(format!("{} is not a replica of a PostgreSQL log", source.display()))
        })?;
    drop(copy);
    std::fs::rename(&partial, &target).map_err(internal)?;
    Ok((target, applied as u64))
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.shutdown_blocking();
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn execute_provisional(&self, request: Request) -> Result<Outcome, StoreError> {
        let mut results = self.submit(vec![request], true)?.await.map_err(|_| StoreError::ShuttingDown)??;
        results.pop().ok_or_else(|| StoreError::Internal("empty batch result".into()))?
    }

    async fn execute_batch(&self, requests: Vec<Request>) -> BatchResult {
        if requests.len() > BATCH_COMMANDS_MAX {
            return Err(StoreError::Invalid(format!("a batch holds at most {BATCH_COMMANDS_MAX} commands")));
        }
        self.submit(requests, false)?.await.map_err(|_| StoreError::ShuttingDown)?
    }

    fn system_accounts(&self) -> SystemAccounts {
        self.system
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            batches: self.stats.batches.load(Ordering::Relaxed),
            commands: self.stats.commands.load(Ordering::Relaxed),
            commit_micros_total: self.stats.commit_micros_total.load(Ordering::Relaxed),
            log_applied: self.replicated.then(|| self.stats.log_applied.load(Ordering::Relaxed)),
        }
    }

    async fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        let account = self
            .lookup(move |conn| {
                conn.query_row(&format!("{ACCOUNT_SELECT} WHERE id = ?1"), [id.0 as i64], account_from_row)
                    .optional()
                    .map_err(internal)?
                    .transpose()
            })
            .await?;
        // The row's balance columns are a snapshot; the acknowledged balances live in memory.
        Ok(account.map(|mut account| {
            if let Some(balances) = self.committed.read().expect("committed balances lock").get(&id) {
                account.balance = Amount(balances.available());
                account.held = Amount(balances.debits_pending);
            }
            account
        }))
    }

    async fn account_by_key_hash(
        &self,
        key_hash: [u8; 32],
    ) -> Result<Option<(AccountId, AccountKind)>, StoreError> {
        self.lookup(move |conn| {
            let row: Option<(i64, String)> = conn
                .query_row("SELECT id, kind FROM accounts WHERE api_key_hash = ?1", [&key_hash[..]], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()
                .map_err(internal)?;
            row.map(|(id, kind)| Ok((AccountId(id as u64), parse_kind(&kind)?))).transpose()
        })
        .await
    }

    async fn operator(&self) -> Result<Option<AccountId>, StoreError> {
        self.lookup(|conn| {
            conn.query_row("SELECT id FROM accounts WHERE kind = 'operator'", [], |row| row.get::<_, i64>(0))
                .optional()
                .map(|id| id.map(|id| AccountId(id as u64)))
                .map_err(internal)
        })
        .await
    }

    async fn datanet(&self, id: DatanetId) -> Result<Option<Datanet>, StoreError> {
        self.lookup(move |conn| {
            conn.query_row(&format!("{DATANET_SELECT} WHERE d.id = ?1"), [id.0 as i64], datanet_from_row)
                .optional()
                .map_err(internal)
        })
        .await
    }

    async fn datanets(&self) -> Result<Vec<Datanet>, StoreError> {
        self.read(|conn| {
            let mut statement = conn.prepare(&format!("{DATANET_SELECT} ORDER BY d.id")).map_err(internal)?;
            let rows = statement.query_map([], datanet_from_row).map_err(internal)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(internal)
        })
        .await
    }

    async fn datanet_ids(&self) -> Result<Vec<DatanetId>, StoreError> {
        self.read(|conn| {
            let mut statement =
                conn.prepare_cached("SELECT id FROM datanets ORDER BY id").map_err(internal)?;
            let rows = statement
                .query_map([], |row| row.get::<_, i64>(0).map(|id| DatanetId(id as u64)))
                .map_err(internal)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(internal)
        })
        .await
    }

    async fn contribution(&self, id: ContributionId) -> Result<Option<Contribution>, StoreError> {
        self.lookup(move |conn| {
            conn.query_row(
                "SELECT id, datanet, contributor, title, body, source, content_hash, status, reason, created_at_ms,
                 findings FROM contributions WHERE id = ?1",
                [id.0 as i64],
                |row| {
                    let hash: Vec<u8> = row.get(6)?;
                    let status: String = row.get(7)?;
                    Ok((
                        Contribution {
                            id: ContributionId(row.get::<_, i64>(0)? as u64),
                            datanet: DatanetId(row.get::<_, i64>(1)? as u64),
                            contributor: AccountId(row.get::<_, i64>(2)? as u64),
                            title: row.get(3)?,
                            text: row.get(4)?,
                            source: row.get(5)?,
                            content_hash: hash.as_slice().try_into().unwrap_or([0; 32]),
                            status: ContributionStatus::Accepted,
                            reason: row.get(8)?,
                            created_at_ms: row.get::<_, i64>(9)? as u64,
                            findings: validation::read_findings(row.get::<_, Option<String>>(10)?.as_deref()),
                        },
                        status,
                    ))
                },
            )
            .optional()
            .map_err(internal)?
            .map(|(mut contribution, status)| {
                contribution.status = ContributionStatus::parse(&status)
                    .ok_or_else(|| internal(format!("unknown contribution status {status:?}")))?;
                Ok(contribution)
            })
            .transpose()
        })
        .await
    }

    async fn model(&self, id: ModelId) -> Result<Option<Model>, StoreError> {
        self.lookup(move |conn| {
            conn.query_row(&format!("{MODEL_SELECT} WHERE id = ?1"), [id.0 as i64], model_from_row)
                .optional()
                .map_err(internal)?
                .transpose()
        })
        .await
    }

    async fn accepted_contributions(
        &self,
        datanet: DatanetId,
        after: u64,
        limit: u32,
    ) -> Result<Vec<IndexableContribution>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT id, contributor, body FROM contributions WHERE datanet = ?1 AND status = 'accepted' \
                     AND id > ?2 ORDER BY id LIMIT ?3",
                )
                .map_err(internal)?;
            let rows = statement
                .query_map(params![datanet.0 as i64, after as i64, limit], |row| {
                    Ok(IndexableContribution {
                        id: ContributionId(row.get::<_, i64>(0)? as u64),
                        contributor: AccountId(row.get::<_, i64>(1)? as u64),
                        text: row.get(2)?,
                    })
                })
                .map_err(internal)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(internal)
        })
        .await
    }

    async fn status_changes(&self, datanet: DatanetId) -> Result<u64, StoreError> {
        self.read(move |conn| {
            conn.query_row("SELECT status_changes FROM datanets WHERE id = ?1", [datanet.0 as i64], |row| {
                row.get::<_, i64>(0)
            })
            .optional()
            .map(|changes| changes.unwrap_or(0) as u64)
            .map_err(internal)
        })
        .await
    }

    async fn count_accepted_after(&self, datanet: DatanetId, after: u64) -> Result<u64, StoreError> {
        self.read(move |conn| {
            conn.query_row(
                "SELECT COUNT(*) FROM contributions WHERE datanet = ?1 AND status = 'accepted' AND id > ?2",
                params![datanet.0 as i64, after as i64],
                |row| row.get::<_, i64>(0),
            )
            .map(|count| count as u64)
            .map_err(internal)
        })
        .await
    }

    async fn stakes(&self, datanet: DatanetId) -> Result<Vec<StakeRecord>, StoreError> {
        self.read(move |conn| validation::read_stakes(conn, datanet).map_err(internal)).await
    }

    async fn contribution_votes(&self, contribution: ContributionId) -> Result<Vec<VoteRecord>, StoreError> {
        self.read(move |conn| validation::read_votes(conn, contribution).map_err(internal)).await
    }

    async fn dispute(&self, id: u64) -> Result<Option<DisputeRecord>, StoreError> {
        self.lookup(move |conn| validation::read_dispute(conn, id)).await
    }

    async fn models(&self) -> Result<Vec<Model>, StoreError> {
        self.read(|conn| {
            let mut statement = conn.prepare(&format!("{MODEL_SELECT} ORDER BY id")).map_err(internal)?;
            let rows = statement.query_map([], model_from_row).map_err(internal)?;
            rows.map(|row| row.map_err(internal)?).collect()
        })
        .await
    }

    async fn transfer(&self, id: TransferId) -> Result<Option<Transfer>, StoreError> {
        self.lookup(move |conn| {
            conn.query_row(&format!("{TRANSFER_SELECT} WHERE id = ?1"), [id.0 as i64], transfer_from_row)
                .optional()
                .map_err(internal)?
                .transpose()
        })
        .await
    }

    async fn receipt(&self, id: u64) -> Result<Option<ReceiptRecord>, StoreError> {
        self.lookup(move |conn| {
            let row = conn
                .query_row(
                    "SELECT id, caller, model, body, prev_hash, hash, signature, transfers, created_at_ms
                     FROM receipts WHERE id = ?1",
                    [id as i64],
                    |row| {
                        Ok((
                            (row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?),
                            row.get::<_, String>(3)?,
                            (row.get::<_, Vec<u8>>(4)?, row.get::<_, Vec<u8>>(5)?, row.get::<_, Vec<u8>>(6)?),
                            row.get::<_, String>(7)?,
                            row.get::<_, i64>(8)?,
                        ))
                    },
                )
                .optional()
                .map_err(internal)?;
            row.map(|((id, caller, model), body, (prev_hash, hash, signature), transfers, created_at_ms)| {
                Ok(ReceiptRecord {
                    id: id as u64,
                    caller: AccountId(caller as u64),
                    model: ModelId(model as u64),
                    body,
                    prev_hash: prev_hash
                        .as_slice()
                        .try_into()
                        .map_err(|_| internal("bad stored prev_hash"))?,
                    hash: hash.as_slice().try_into().map_err(|_| internal("bad stored hash"))?,
                    signature: signature
                        .as_slice()
                        .try_into()
                        .map_err(|_| internal("bad stored signature"))?,
                    created_at_ms: created_at_ms as u64,
                    transfers: serde_json::from_str(&transfers).map_err(internal)?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn earnings(
        &self,
        account: AccountId,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Earnings, StoreError> {
        self.read(move |conn| {
            let tx = conn.unchecked_transaction().map_err(internal)?;
            let mut earnings = Earnings::default();
            let mut by_role: std::collections::BTreeMap<String, u128> = Default::default();
            let mut receipts = HashSet::new();
            let mut all = tx
                .prepare_cached("SELECT receipt, role, amount FROM earnings WHERE account = ?1")
                .map_err(internal)?;
            let mut rows = all.query([account.0 as i64]).map_err(internal)?;
            while let Some(row) = rows.next().map_err(internal)? {
                let receipt: i64 = row.get(0).map_err(internal)?;
                let role: String = row.get(1).map_err(internal)?;
                let amount: Units = row.get(2).map_err(internal)?;
                let entry = by_role.entry(role).or_default();
                *entry = entry.checked_add(amount.0).ok_or_else(|| internal("earnings overflow"))?;
                receipts.insert(receipt);
            }
            drop(rows);
            drop(all);
            let total = by_role.values().try_fold(0u128, |s, v| s.checked_add(*v)).ok_or_else(|| internal("earnings overflow"))?;
            earnings.total = Amount(total);
            earnings.by_role = by_role.into_iter().map(|(role, amount)| (role, Amount(amount))).collect();
            earnings.inferences = receipts.len() as u64;
            let mut page = tx
                .prepare_cached(
                    "SELECT receipt, role, amount, created_at_ms FROM earnings WHERE account = ?1 AND receipt < ?2
                     ORDER BY receipt DESC, role LIMIT ?3",
                )
                .map_err(internal)?;
            let before = before.map_or(i64::MAX, |b| b as i64);
            let rows = page
                .query_map(params![account.0 as i64, before, limit], |row| {
                    Ok(EarningLine {
                        receipt: row.get::<_, i64>(0)? as u64,
                        role: row.get(1)?,
                        amount: Amount(row.get::<_, Units>(2)?.0),
                        created_at_ms: row.get::<_, i64>(3)? as u64,
                    })
                })
                .map_err(internal)?;
            earnings.lines = rows.collect::<rusqlite::Result<Vec<_>>>().map_err(internal)?;
            Ok(earnings)
        })
        .await
    }

    async fn epoch(&self, epoch: u64) -> Result<Option<EpochRecord>, StoreError> {
        self.lookup(move |conn| epochs::epoch(conn, epoch)).await
    }

    async fn epochs(&self, limit: u32) -> Result<Vec<EpochRecord>, StoreError> {
        self.read(move |conn| epochs::epochs(conn, limit)).await
    }

    async fn epoch_payouts(&self, epoch: u64) -> Result<Vec<(EvmAddress, Amount)>, StoreError> {
        self.read(move |conn| epochs::epoch_payouts(conn, epoch)).await
    }

    async fn receipt_epoch(&self, id: u64) -> Result<Option<u64>, StoreError> {
        self.lookup(move |conn| epochs::receipt_epoch(conn, id)).await
    }

    async fn receipt_hashes(&self, first: u64, last: u64) -> Result<Vec<(u64, [u8; 32])>, StoreError> {
        self.read(move |conn| epochs::receipt_hashes(conn, first, last)).await
    }

    async fn settlements(&self, account: AccountId) -> Result<(Vec<SettlementLine>, Amount), StoreError> {
        self.read(move |conn| epochs::settlements(conn, account)).await
    }

    async fn account_transfers(&self, account: AccountId, limit: u32) -> Result<Vec<Transfer>, StoreError> {
        self.read(move |conn| {
            // One read transaction, so the watermark and both queries see the same snapshot.
            let tx = conn.unchecked_transaction().map_err(internal)?;
            let indexed_through: i64 = tx
                .query_row("SELECT indexed_through FROM history_watermark", [], |row| row.get(0))
                .map_err(internal)?;
            let mut transfers = Vec::new();
            let mut tail = tx
                .prepare(&format!(
                    "{TRANSFER_SELECT} WHERE id > ?1 AND (debit_account = ?2 OR credit_account = ?2) \
                     ORDER BY id DESC LIMIT ?3"
                ))
                .map_err(internal)?;
            for row in tail
                .query_map(params![indexed_through, account.0 as i64, limit], transfer_from_row)
                .map_err(internal)?
            {
                transfers.push(row.map_err(internal)??);
            }
            if transfers.len() < limit as usize {
                let mut chunks = tx
                    .prepare(
                        "SELECT transfers FROM account_history WHERE account = ?1 AND last_transfer <= ?2 \
                         ORDER BY last_transfer DESC",
                    )
                    .map_err(internal)?;
                let mut by_id = tx.prepare(&format!("{TRANSFER_SELECT} WHERE id = ?1")).map_err(internal)?;
                let mut rows = chunks.query(params![account.0 as i64, indexed_through]).map_err(internal)?;
                'chunks: while let Some(row) = rows.next().map_err(internal)? {
                    let encoded: Vec<u8> = row.get(0).map_err(internal)?;
                    let ids = decode_ids(&encoded).ok_or_else(|| internal("corrupt account history row"))?;
                    for id in ids.into_iter().rev() {
                        if transfers.len() >= limit as usize {
                            break 'chunks;
                        }
                        let transfer =
                            by_id.query_row([id as i64], transfer_from_row).map_err(internal)??;
                        transfers.push(transfer);
                    }
                }
            }
            Ok(transfers)
        })
        .await
    }

    async fn ledger_summary(&self) -> Result<LedgerSummary, StoreError> {
        self.read(|conn| {
            let (state, _) = load_ledger(conn)?;
            state.check_invariants().map_err(internal)?;
            let count = |sql: &str| conn.query_row(sql, [], |row| row.get::<_, i64>(0)).map_err(internal);
            Ok(LedgerSummary {
                totals: state.totals(),
                external_debit_excess: state
                    .account(SYSTEM_ACCOUNTS.external)
                    .map(|a| a.balances.debits_posted.saturating_sub(a.balances.credits_posted))
                    .unwrap_or(0),
                accounts: count("SELECT COUNT(*) FROM accounts")? as u64,
                transfers: count("SELECT COUNT(*) FROM transfers")? as u64,
                holds_pending: count("SELECT COUNT(*) FROM holds")? as u64,
            })
        })
        .await
    }

    async fn shutdown(&self) {
        let (reply, done) = oneshot::channel();
        if self.sender.send(Message::Shutdown(reply)).is_ok() {
            let _ = done.await;
        }
    }
}

const ACCOUNT_SELECT: &str = "SELECT id, kind, name, payout_address, debits_posted, credits_posted, \
     debits_pending, credits_pending, created_at_ms FROM accounts";
const DATANET_SELECT: &str = "SELECT d.id, d.owner, d.name, d.description, d.license, d.pool_account, \
     d.created_at_ms, (SELECT COUNT(*) FROM contributions c WHERE c.datanet = d.id), \
     (SELECT rules FROM datanet_rules r WHERE r.datanet = d.id) FROM datanets d";
const MODEL_SELECT: &str = "SELECT id, owner, spec, created_at_ms FROM models";
const TRANSFER_SELECT: &str = "SELECT id, kind, debit_account, credit_account, amount, pending_id, \
     expires_at_ms, created_at_ms FROM transfers";

/// An amount as SQLite stores it: an integer when it fits in `i64` (nearly always, and cheapest),
/// decimal text above that. Amount columns have BLOB affinity, so SQLite keeps each value exactly
/// as given and never converts it to floating point.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Units(u128);

impl rusqlite::ToSql for Units {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value};
        Ok(ToSqlOutput::Owned(match i64::try_from(self.0) {
            Ok(small) => Value::Integer(small),
            Err(_) => Value::Text(self.0.to_string()),
        }))
    }
}

impl rusqlite::types::FromSql for Units {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        use rusqlite::types::{FromSqlError, ValueRef};
        match value {
            ValueRef::Integer(small) => {
                u128::try_from(small).map(Units).map_err(|_| FromSqlError::OutOfRange(small))
            }
            ValueRef::Text(text) => std::str::from_utf8(text)
                .ok()
                .and_then(|text| text.parse::<u128>().ok())
                .map(Units)
                .ok_or(FromSqlError::InvalidType),
            _ => Err(FromSqlError::InvalidType),
        }
    }
}

fn parse_kind(text: &str) -> Result<AccountKind, StoreError> {
    AccountKind::parse(text).ok_or_else(|| internal(format!("unknown account kind {text:?}")))
}

fn balances_from_row(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Balances> {
    Ok(Balances {
        debits_posted: row.get::<_, Units>(first)?.0,
        credits_posted: row.get::<_, Units>(first + 1)?.0,
        debits_pending: row.get::<_, Units>(first + 2)?.0,
        credits_pending: row.get::<_, Units>(first + 3)?.0,
    })
}

fn account_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Account, StoreError>> {
    let kind: String = row.get(1)?;
    let address: Option<String> = row.get(3)?;
    let balances = balances_from_row(row, 4)?;
    let id = AccountId(row.get::<_, i64>(0)? as u64);
    let name: String = row.get(2)?;
    let created_at_ms = row.get::<_, i64>(8)? as u64;
    Ok((|| {
        Ok(Account {
            id,
            kind: parse_kind(&kind)?,
            name,
            payout_address: address.map(|a| a.parse::<EvmAddress>().map_err(internal)).transpose()?,
            balance: Amount(balances.available()),
            held: Amount(balances.debits_pending),
            created_at_ms,
        })
    })())
}

fn datanet_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Datanet> {
    Ok(Datanet {
        id: DatanetId(row.get::<_, i64>(0)? as u64),
        owner: AccountId(row.get::<_, i64>(1)? as u64),
        name: row.get(2)?,
        description: row.get(3)?,
        license: row.get(4)?,
        pool_account: AccountId(row.get::<_, i64>(5)? as u64),
        created_at_ms: row.get::<_, i64>(6)? as u64,
        contributions: row.get::<_, i64>(7)? as u64,
        rules: validation::read_rules(row.get::<_, Option<String>>(8)?.as_deref()),
    })
}

fn model_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Model, StoreError>> {
    let spec: String = row.get(2)?;
    let id = ModelId(row.get::<_, i64>(0)? as u64);
    let owner = AccountId(row.get::<_, i64>(1)? as u64);
    let created_at_ms = row.get::<_, i64>(3)? as u64;
    Ok(serde_json::from_str::<ModelSpec>(&spec)
        .map(|spec| Model { id, owner, spec, created_at_ms })
        .map_err(internal))
}

fn transfer_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Transfer, StoreError>> {
    let kind: i64 = row.get(1)?;
    let amount: Units = row.get(4)?;
    let id = TransferId(row.get::<_, i64>(0)? as u64);
    let debit = AccountId(row.get::<_, i64>(2)? as u64);
    let credit = AccountId(row.get::<_, i64>(3)? as u64);
    let pending_id = row.get::<_, Option<i64>>(5)?.map(|id| TransferId(id as u64));
    let expires_at_ms = row.get::<_, Option<i64>>(6)?.map(|ms| ms as u64);
    let created_at_ms = row.get::<_, i64>(7)? as u64;
    Ok((|| {
        Ok(Transfer {
            id,
            kind: TransferKind::from_code(kind)
                .ok_or_else(|| internal(format!("unknown transfer kind {kind}")))?,
            debit,
            credit,
            amount: Amount(amount.0),
            pending_id,
            expires_at_ms,
            created_at_ms,
        })
    })())
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let applied: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", (index + 1) as i64)?;
        tx.commit()?;
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let accounts: i64 = tx.query_row("SELECT COUNT(*) FROM accounts", [], |row| row.get(0))?;
    if accounts == 0 {
        for (id, kind, name) in [
            (SYSTEM_ACCOUNTS.external, AccountKind::External, "external"),
            (SYSTEM_ACCOUNTS.protocol, AccountKind::Protocol, "protocol"),
            (SYSTEM_ACCOUNTS.validators_pool, AccountKind::ValidatorsPool, "validators pool"),
        ] {
            insert_account(&tx, id, kind, name, None, None, 0)?;
        }
    }
    tx.commit()?;
    ensure_clearing_account(conn)?;
    Ok(())
}

/// The store's internal accounts, with the clearing account's id.
fn system_accounts(conn: &Connection) -> rusqlite::Result<SystemAccounts> {
    let clearing: i64 =
        conn.query_row("SELECT id FROM accounts WHERE kind = 'clearing'", [], |row| row.get(0))?;
    Ok(SystemAccounts { clearing: AccountId(clearing as u64), ..SYSTEM_ACCOUNTS })
}

/// Creates the clearing account in stores made before it existed.
fn ensure_clearing_account(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let exists: i64 =
        tx.query_row("SELECT COUNT(*) FROM accounts WHERE kind = 'clearing'", [], |row| row.get(0))?;
    if exists == 0 {
        let id: i64 = tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM accounts", [], |row| row.get(0))?;
        insert_account(
            &tx,
            AccountId(id as u64),
            AccountKind::Clearing,
            "inference clearing",
            None,
            None,
            0,
        )?;
    }
    tx.commit()
}

fn insert_account(
    tx: &Connection,
    id: AccountId,
    kind: AccountKind,
    name: &str,
    payout_address: Option<EvmAddress>,
    api_key_hash: Option<&[u8; 32]>,
    now_ms: u64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO accounts (id, kind, name, payout_address, api_key_hash, debits_posted, credits_posted,
         debits_pending, credits_pending, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, 0, 0, 0, 0, ?6)",
    )?
    .execute(params![
        id.0 as i64,
        kind.as_str(),
        name,
        payout_address.map(|a| a.to_string()),
        api_key_hash.map(|h| &h[..]),
        now_ms as i64
    ])?;
    Ok(())
}

/// Loads the persisted ledger and checks it against its own history.
///
/// The transfers are the durable record; the balance columns of `accounts` are a snapshot of the
/// balances after transfer `snapshot_through`, written in bulk now and then (see the writer). So:
/// replay the history up to the snapshot point and require it to equal the snapshot exactly (a
/// pair assertion: a tampered or corrupted balance is refused, never served), then replay the rest
/// to reach the current state, whose pending holds must equal the `holds` table. Also returns the
/// accounts the rest changed: their rows are behind the state, and the next snapshot must write them.
fn load_ledger(conn: &Connection) -> Result<(LedgerState, Vec<AccountId>), StoreError> {
    // One read transaction, so every query below sees the same committed state.
    let tx = conn.unchecked_transaction().map_err(internal)?;
    let snapshot_through: i64 = tx
        .query_row("SELECT snapshot_through FROM balance_watermark", [], |row| row.get(0))
        .map_err(internal)?;
    let mut statement = tx
        .prepare(
            "SELECT id, kind, debits_posted, credits_posted, debits_pending, credits_pending FROM accounts",
        )
        .map_err(internal)?;
    let rows = statement
        .query_map([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?, balances_from_row(row, 2)?))
        })
        .map_err(internal)?;
    let mut snapshot = Vec::new();
    for row in rows {
        let (id, kind, balances) = row.map_err(internal)?;
        snapshot.push((AccountId(id as u64), parse_kind(&kind)?, balances));
    }
    drop(statement);
    let violation = |what: String| {
        internal(InvariantViolation(format!("persisted ledger disagrees with its history: {what}")))
    };
    let mut replay = Replay::new(snapshot.iter().map(|(id, kind, _)| (*id, *kind)));
    let mut compared = false;
    let compare = |replay: &Replay| -> Result<(), StoreError> {
        for (id, _, stored) in &snapshot {
            let expected = replay.balances(*id);
            if expected != Some(*stored) {
                return Err(violation(format!("account {id} stored {stored:?}, history gives {expected:?}")));
            }
        }
        Ok(())
    };
    let mut changed_since_snapshot = Vec::new();
    let mut statement = tx.prepare(&format!("{TRANSFER_SELECT} ORDER BY id")).map_err(internal)?;
    let mut rows = statement.query([]).map_err(internal)?;
    while let Some(row) = rows.next().map_err(internal)? {
        let transfer = transfer_from_row(row).map_err(internal)??;
        if transfer.id.0 as i64 > snapshot_through {
            if !compared {
                compare(&replay)?;
                compared = true;
            }
            changed_since_snapshot.extend([transfer.debit, transfer.credit]);
        }
        replay.apply(&transfer).map_err(internal)?;
    }
    changed_since_snapshot.sort_unstable();
    changed_since_snapshot.dedup();
    if !compared {
        compare(&replay)?;
    }
    drop(rows);
    drop(statement);
    let state = replay.finish();
    let mut statement = tx
        .prepare("SELECT id, debit_account, credit_account, amount, expires_at_ms FROM holds")
        .map_err(internal)?;
    let rows = statement
        .query_map([], |row| {
            Ok(Hold {
                id: TransferId(row.get::<_, i64>(0)? as u64),
                debit: AccountId(row.get::<_, i64>(1)? as u64),
                credit: AccountId(row.get::<_, i64>(2)? as u64),
                amount: row.get::<_, Units>(3)?.0,
                expires_at_ms: row.get::<_, i64>(4)? as u64,
            })
        })
        .map_err(internal)?;
    let stored_holds = rows.collect::<rusqlite::Result<HashSet<Hold>>>().map_err(internal)?;
    let replayed_holds: HashSet<Hold> = state.holds().copied().collect();
    if stored_holds != replayed_holds {
        return Err(violation("pending holds differ".into()));
    }
    state.check_invariants().map_err(internal)?;
    Ok((state, changed_since_snapshot))
}

/// What the writer keeps in memory besides the ledger.
struct WriterState {
    ledger: LedgerState,
    system: SystemAccounts,
    signer: Option<Arc<dyn ReceiptSigner>>,
    /// The next receipt's id and the hash it chains to.
    next_receipt_id: u64,
    last_receipt_hash: [u8; 32],
    /// Account history covers transfers up to and including this id.
    history_indexed_through: u64,
    /// The `accounts` balance columns hold the balances after this transfer.
    snapshot_through: u64,
    /// Accounts whose balances changed since that snapshot.
    dirty: Vec<AccountId>,
    datanets: HashSet<DatanetId>,
    operator: Option<AccountId>,
    next_account_id: u64,
    next_datanet_id: u64,
    next_contribution_id: u64,
    next_model_id: u64,
    /// Datanet rules, dedup state and protected holds (see `sqlite/validation.rs`).
    validation: validation::ValidationState,
    /// In a replica: the last log batch applied, and the time it was decided at (a node decides
    /// its batches no earlier, so time in the log never runs backwards).
    applied_seq: u64,
    last_at_ms: u64,
}

impl WriterState {
    fn load(conn: &Connection) -> Result<WriterState, StoreError> {
        // Accounts whose rows predate transfers after the snapshot: the next snapshot must write
        // them, or it would move the watermark past changes their rows do not hold.
        let (ledger, dirty) = load_ledger(conn)?;
        let next = |table: &str| -> Result<u64, StoreError> {
            conn.query_row(&format!("SELECT COALESCE(MAX(id), 0) + 1 FROM {table}"), [], |row| {
                row.get::<_, i64>(0)
            })
            .map(|id| id as u64)
            .map_err(internal)
        };
        let mut statement = conn.prepare("SELECT id FROM datanets").map_err(internal)?;
        let datanets = statement
            .query_map([], |row| row.get::<_, i64>(0).map(|id| DatanetId(id as u64)))
            .map_err(internal)?
            .collect::<rusqlite::Result<HashSet<_>>>()
            .map_err(internal)?;
        let operator = conn
            .query_row("SELECT id FROM accounts WHERE kind = 'operator'", [], |row| row.get::<_, i64>(0))
            .optional()
            .map_err(internal)?
            .map(|id| AccountId(id as u64));
        let history_indexed_through = conn
            .query_row("SELECT indexed_through FROM history_watermark", [], |row| row.get::<_, i64>(0))
            .map_err(internal)? as u64;
        let snapshot_through = conn
            .query_row("SELECT snapshot_through FROM balance_watermark", [], |row| row.get::<_, i64>(0))
            .map_err(internal)? as u64;
        let last_receipt: Option<(i64, Vec<u8>)> = conn
            .query_row("SELECT id, hash FROM receipts ORDER BY id DESC LIMIT 1", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()
            .map_err(internal)?;
        let (applied_seq, last_at_ms) = conn
            .query_row("SELECT applied_seq, at_ms FROM replication", [], |row| {
                Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64))
            })
            .optional()
            .map_err(internal)?
            .unwrap_or((0, 0));
        let (next_receipt_id, last_receipt_hash) = match last_receipt {
            Some((id, hash)) => (
                id as u64 + 1,
                hash.as_slice().try_into().map_err(|_| internal("stored receipt hash is not 32 bytes"))?,
            ),
            None => (1, [0u8; 32]),
        };
        Ok(WriterState {
            ledger,
            system: system_accounts(conn).map_err(internal)?,
            signer: None,
            next_receipt_id,
            last_receipt_hash,
            history_indexed_through,
            snapshot_through,
            dirty,
            datanets,
            operator,
            next_account_id: next("accounts")?,
            next_datanet_id: next("datanets")?,
            next_contribution_id: next("contributions")?,
            next_model_id: next("models")?,
            validation: validation::ValidationState::load(conn)?,
            applied_seq,
            last_at_ms,
        })
    }
}

struct Writer {
    conn: Connection,
    state: WriterState,
    clock: Arc<dyn Clock>,
    stats: Arc<Stats>,
    committed: Arc<RwLock<IdMap<AccountId, Balances>>>,
    signer: Option<Arc<dyn ReceiptSigner>>,
    /// The shared log, when this store is a replica of a PostgreSQL database.
    log: Option<PgLog>,
}

/// Where a submission's results go: after its batch is durable, or, for a provisional
/// submission, as soon as it is applied.
struct Reply {
    sender: Option<oneshot::Sender<BatchResult>>,
    provisional: bool,
}

/// Each submission's results, and the accounts whose balances the batch changed.
struct Committed {
    results: Vec<Vec<Result<Outcome, StoreError>>>,
    touched: Vec<AccountId>,
    /// A replica's failure to commit a batch the log already holds.
    replica_error: Option<rusqlite::Error>,
}

/// Why a batch was not made durable; nothing in it is acknowledged.
#[derive(Debug, thiserror::Error)]
enum CommitError {
    #[error(transparent)]
    Local(#[from] rusqlite::Error),
    #[error(transparent)]
    Log(#[from] StoreError),
    /// The shared log could not be reached before anything was applied: the in-memory state is
    /// untouched, so there is nothing to reload.
    #[error("the database is unreachable: {0}")]
    Unreachable(StoreError),
}

impl Writer {
    fn run(mut self, receiver: Receiver<Message>) {
        let mut shutdown: Option<oneshot::Sender<()>> = None;
        loop {
            let wait_ms = match self.state.ledger.next_expiry_ms() {
                Some(at) => at.saturating_sub(self.clock.now_ms()).clamp(1, EXPIRY_POLL_MS_MAX),
                None => EXPIRY_POLL_MS_MAX,
            };
            let mut batch: Vec<(Vec<Request>, Reply)> = Vec::new();
            let mut syncs = Vec::new();
            let mut commands = 0usize;
            let mut idle_wait_ms =
                if self.history_lag() > 0 { wait_ms.min(HISTORY_IDLE_MS) } else { wait_ms };
            if self.log.is_some() {
                idle_wait_ms = idle_wait_ms.min(LOG_POLL_MS);
            }
            let first = receiver.recv_timeout(Duration::from_millis(idle_wait_ms));
            if matches!(first, Err(RecvTimeoutError::Timeout)) {
                let _ = self.follow_log(LOG_FOLLOW_BATCHES_MAX);
                // Idle: bring the derived data (balance snapshot, account history) up to date.
                self.snapshot_balances();
                if self.history_lag() > 0 {
                    self.index_history();
                }
            }
            match first {
                Ok(Message::Submit(requests, reply)) => {
                    commands += requests.len();
                    batch.push((requests, reply));
                }
                Ok(Message::Sync(reply)) => syncs.push(reply),
                Ok(Message::Shutdown(reply)) => shutdown = Some(reply),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            // Group commit: take whatever else is already waiting, up to one batch.
            while commands < BATCH_COMMANDS_MAX {
                match receiver.try_recv() {
                    Ok(Message::Submit(requests, reply)) => {
                        commands += requests.len();
                        batch.push((requests, reply));
                    }
                    Ok(Message::Sync(reply)) => syncs.push(reply),
                    Ok(Message::Shutdown(reply)) => shutdown = Some(reply),
                    Err(_) => break,
                }
            }
            let expiry_due = self.state.ledger.next_expiry_ms().is_some_and(|at| at <= self.clock.now_ms());
            if !batch.is_empty() || expiry_due {
                self.commit_batch(batch);
            }
            if !syncs.is_empty() {
                let result = self.follow_log(usize::MAX);
                for reply in syncs {
                    let _ = reply.send(result.clone());
                }
            }
            if self.history_lag() >= HISTORY_CHUNK_TRANSFERS {
                // Busy: index in full chunks, so the cost is amortised and the lag stays bounded.
                self.index_history();
            }
            if let Some(reply) = shutdown.take() {
                // Everything queued before the shutdown request is applied before it is answered.
                let mut rest = Vec::new();
                while let Ok(message) = receiver.try_recv() {
                    if let Message::Submit(requests, reply) = message {
                        rest.push((requests, reply));
                    }
                }
                if !rest.is_empty() {
                    self.commit_batch(rest);
                }
                self.snapshot_balances();
                let _ = reply.send(());
                break;
            }
        }
        tracing::debug!("ledger writer stopped");
    }

    /// Writes the balance snapshot in a transaction of its own (when idle or shutting down).
    fn snapshot_balances(&mut self) {
        if self.state.dirty.is_empty() {
            return;
        }
        let result = (|| -> rusqlite::Result<()> {
            let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut state =
                SnapshotProgress { through: self.state.snapshot_through, dirty: self.state.dirty.clone() };
            write_snapshot_rows(&tx, &self.state.ledger, &mut state)?;
            tx.commit()?;
            self.state.snapshot_through = state.through;
            self.state.dirty = state.dirty;
            Ok(())
        })();
        if let Err(error) = result {
            // The snapshot is derived data; the transfers are already durable. Retry later.
            tracing::error!(%error, "writing the balance snapshot failed");
        }
    }

    fn history_lag(&self) -> u64 {
        (self.state.ledger.next_transfer_id() - 1).saturating_sub(self.state.history_indexed_through)
    }

    /// Adds the next chunk of transfers to account history, sorted by account so that each index
    /// page is written once per chunk rather than once per transfer.
    fn index_history(&mut self) {
        let from = self.state.history_indexed_through;
        let result = (|| -> rusqlite::Result<u64> {
            let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut entries: Vec<(i64, i64)> = Vec::new();
            let mut through = from as i64;
            {
                let mut select =
                    tx.prepare_cached("SELECT id, debit_account, credit_account FROM transfers WHERE id > ?1 ORDER BY id LIMIT ?2")?;
                let mut rows = select.query(params![from as i64, HISTORY_CHUNK_TRANSFERS as i64])?;
                while let Some(row) = rows.next()? {
                    let id: i64 = row.get(0)?;
                    entries.push((row.get(1)?, id));
                    entries.push((row.get(2)?, id));
                    through = id;
                }
            }
            entries.sort_unstable();
            entries.dedup();
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO account_history (account, last_transfer, transfers) VALUES (?1, ?2, ?3)",
                )?;
                for group in entries.chunk_by(|a, b| a.0 == b.0) {
                    let ids: Vec<u64> = group.iter().map(|&(_, id)| id as u64).collect();
                    let last = *ids.last().expect("groups are not empty");
                    insert.execute(params![group[0].0, last as i64, encode_ids(&ids)])?;
                }
            }
            tx.execute("UPDATE history_watermark SET indexed_through = ?1", [through])?;
            tx.commit()?;
            Ok(through as u64)
        })();
        match result {
            Ok(through) => self.state.history_indexed_through = through,
            Err(error) => {
                // History is derived data: failing to index is logged and retried, never fatal.
                tracing::error!(%error, "indexing account history failed");
                std::thread::sleep(Duration::from_millis(EXPIRY_POLL_MS_MAX));
            }
        }
    }

    /// Publishes the balances of accounts a commit changed, for readers.
    fn publish(&self, touched: &[AccountId]) {
        let mut committed = self.committed.write().expect("committed balances lock");
        for id in touched {
            let balances = self.state.ledger.account(*id).expect("touched accounts exist").balances;
            committed.insert(*id, balances);
        }
        self.stats.log_applied.store(self.state.applied_seq, Ordering::Relaxed);
    }

    /// Replaces the in-memory state with what the database holds, after a failed commit.
    fn reload(&mut self) {
        match WriterState::load(&self.conn) {
            Ok(mut state) => {
                state.signer = self.signer.clone();
                self.state = state;
            }
            Err(error) => panic!("cannot reload ledger after a failed commit: {error}"),
        }
    }

    /// In a replica, applies (up to `batches_max`) batches other nodes appended to the log since
    /// the last look.
    fn follow_log(&mut self, batches_max: usize) -> Result<(), StoreError> {
        let Some(log) = self.log.as_mut() else { return Ok(()) };
        match catch_up(&mut self.conn, &mut self.state, log, batches_max) {
            Ok(touched) => {
                self.publish(&touched);
                Ok(())
            }
            Err(CatchUpError { error, applied_some }) => {
                if applied_some {
                    tracing::error!(%error, "applying the log failed; reloading the replica's state");
                    self.reload();
                } else {
                    tracing::warn!(%error, "the shared log is unreachable; retrying");
                }
                std::thread::sleep(Duration::from_millis(EXPIRY_POLL_MS_MAX));
                Err(error)
            }
        }
    }

    fn commit_batch(&mut self, mut batch: Vec<(Vec<Request>, Reply)>) {
        let started = Instant::now();
        let now_ms = self.clock.now_ms();
        let commands: usize = batch.iter().map(|(requests, _)| requests.len()).sum();
        match self.apply_and_commit(&mut batch, now_ms) {
            Ok(Committed { results, touched, replica_error }) => {
                self.publish(&touched);
                if let Some(error) = replica_error {
                    // The batch is durable in the log; the replica will apply it again from there.
                    tracing::error!(%error, "the replica failed to commit a logged batch; reloading it");
                    self.reload();
                }
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                self.stats.commands.fetch_add(commands as u64, Ordering::Relaxed);
                self.stats
                    .commit_micros_total
                    .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                for ((_, reply), results) in batch.into_iter().zip(results) {
                    if let Some(sender) = reply.sender {
                        let _ = sender.send(Ok(results));
                    }
                }
            }
            Err(CommitError::Unreachable(error)) => {
                tracing::error!(%error, commands, "the shared log is unreachable; the batch was not applied");
                for (_, reply) in batch {
                    if let Some(sender) = reply.sender {
                        let _ = sender.send(Err(StoreError::Internal(
                            "the database is unreachable; nothing was applied, retry later".into(),
                        )));
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, commands, "batch failed to commit; reloading state from disk");
                // Provisional submissions were answered already; their effect is lost with the batch.
                for (_, reply) in batch {
                    if let Some(sender) = reply.sender {
                        let _ = sender
                            .send(Err(StoreError::Internal("the write could not be made durable".into())));
                    }
                }
                self.reload();
            }
        }
    }

    fn apply_and_commit(
        &mut self,
        batch: &mut [(Vec<Request>, Reply)],
        mut now_ms: u64,
    ) -> Result<Committed, CommitError> {
        // A replica first takes the log's lock and applies what other nodes appended, so that its
        // own commands are decided against the latest state.
        let mut log_tx = match self.log.as_mut() {
            Some(log) => Some(log.begin().map_err(CommitError::Unreachable)?),
            None => None,
        };
        let foreign = match log_tx.as_mut() {
            Some(log_tx) => log_tx.read_after(self.state.applied_seq).map_err(CommitError::Unreachable)?,
            None => Vec::new(),
        };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut writes = BatchWrites::default();
        if log_tx.is_some() {
            for logged in foreign {
                apply_logged(&tx, &mut self.state, &logged, &mut writes)?;
            }
            now_ms = now_ms.max(self.state.last_at_ms);
        }
        let own_transfers_from = writes.transfers.len();
        let mut results = Vec::with_capacity(batch.len());
        for (requests, reply) in batch.iter_mut() {
            let mut submission_results = Vec::with_capacity(requests.len());
            for request in requests.iter() {
                submission_results.push(apply_request(&tx, &mut self.state, request, now_ms, &mut writes)?);
            }
            if reply.provisional
                && let Some(sender) = reply.sender.take()
            {
                let _ = sender.send(Ok(submission_results.clone()));
            }
            results.push(submission_results);
        }
        for transfer in self.state.ledger.expire(now_ms) {
            record_transfer(&tx, &transfer, &mut writes)?;
        }
        let touched = record_batch(&tx, &mut self.state, &mut writes)?;
        debug_assert_eq!(self.state.ledger.check_invariants(), Ok(()));
        let since_snapshot =
            (self.state.ledger.next_transfer_id() - 1).saturating_sub(self.state.snapshot_through);
        if since_snapshot >= BALANCE_SNAPSHOT_TRANSFERS {
            write_balance_snapshot(&tx, &mut self.state)?;
        }
        let Some(mut log_tx) = log_tx else {
            tx.commit()?;
            return Ok(Committed { results, touched, replica_error: None });
        };
        let requests: Vec<&Request> = batch.iter().flat_map(|(requests, _)| requests.iter()).collect();
        let own_transfers = &writes.transfers[own_transfers_from..];
        if !requests.is_empty() || !own_transfers.is_empty() {
            let seq = self.state.applied_seq + 1;
            log_tx.append(&Append { seq, at_ms: now_ms, requests: &requests, transfers: own_transfers })?;
            self.state.applied_seq = seq;
            self.state.last_at_ms = now_ms;
        }
        record_replication(&tx, &self.state)?;
        log_tx.commit()?;
        // Durable from here on: a replica that fails to commit applies the batch again from the log.
        let replica_error = tx.commit().err();
        Ok(Committed { results, touched, replica_error })
    }
}

/// Applies one request inside the batch transaction. The outer error is a storage failure that
/// aborts the whole batch; the inner result is the request's own.
fn apply_request(
    tx: &Transaction<'_>,
    state: &mut WriterState,
    request: &Request,
    now_ms: u64,
    writes: &mut BatchWrites,
) -> rusqlite::Result<Result<Outcome, StoreError>> {
    if let Some(key) = &request.idempotency {
        let previous: Option<(Vec<u8>, String)> = tx
            .prepare_cached("SELECT request_hash, outcome FROM idempotency WHERE scope = ?1 AND key = ?2")?
            .query_row(params![key.scope.0 as i64, key.key], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        if let Some((hash, outcome)) = previous {
            if hash != key.request_hash {
                return Ok(Err(StoreError::IdempotencyConflict(key.key.clone())));
            }
            return Ok(serde_json::from_str(&outcome).map_err(internal));
        }
    }
    let result = apply_command(tx, state, &request.command, now_ms, writes)?;
    if let (Ok(outcome), Some(key)) = (&result, &request.idempotency) {
        let outcome = serde_json::to_string(outcome).expect("outcomes serialize");
        tx.prepare_cached(
            "INSERT INTO idempotency (scope, key, request_hash, outcome, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![key.scope.0 as i64, key.key, &key.request_hash[..], outcome, now_ms as i64])?;
    }
    Ok(result)
}

fn apply_command(
    tx: &Transaction<'_>,
    state: &mut WriterState,
    command: &Command,
    now_ms: u64,
    writes: &mut BatchWrites,
) -> rusqlite::Result<Result<Outcome, StoreError>> {
    let is_person = |state: &WriterState, id: AccountId| -> Result<(), StoreError> {
        match state.ledger.account(id).map(|a| a.kind) {
            Some(AccountKind::User | AccountKind::Operator) => Ok(()),
            Some(_) => Err(StoreError::Invalid(format!("{id} is an internal account of the node"))),
            None => Err(StoreError::NotFound { what: "account", id: id.to_string() }),
        }
    };
    let result = match command {
        Command::CreateAccount { kind, name, payout_address, api_key_hash } => {
            if !matches!(kind, AccountKind::User | AccountKind::Operator) {
                return Ok(Err(StoreError::Invalid("only user and operator accounts can be created".into())));
            }
            if *kind == AccountKind::Operator && state.operator.is_some() {
                return Ok(Err(StoreError::Invalid("this node already has an operator".into())));
            }
            let id = AccountId(state.next_account_id);
            insert_account(tx, id, *kind, name, *payout_address, Some(api_key_hash), now_ms)?;
            state.next_account_id += 1;
            state.ledger.add_account(id, *kind, Balances::default());
            writes.touched.push(id);
            if *kind == AccountKind::Operator {
                state.operator = Some(id);
            }
            Ok(Outcome::AccountCreated(id))
        }
        Command::SetPayoutAddress { account, payout_address } => match is_person(state, *account) {
            Err(error) => Err(error),
            Ok(()) => {
                tx.prepare_cached("UPDATE accounts SET payout_address = ?2 WHERE id = ?1")?
                    .execute(params![account.0 as i64, payout_address.map(|a| a.to_string())])?;
                Ok(Outcome::PayoutAddressSet(*account))
            }
        },
        Command::CreateDatanet { owner, name, description, license, rules } => {
            match is_person(state, *owner).and_then(|()| rules.validate().map_err(StoreError::Invalid)) {
                Err(error) => Err(error),
                Ok(()) => {
                    let id = DatanetId(state.next_datanet_id);
                    let pool = AccountId(state.next_account_id);
                    insert_account(
                        tx,
                        pool,
                        AccountKind::DatanetPool,
                        &format!("pool of {id}"),
                        None,
                        None,
                        now_ms,
                    )?;
                    tx.prepare_cached(
                    "INSERT INTO datanets (id, owner, name, description, license, pool_account, created_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![id.0 as i64, owner.0 as i64, name, description, license, pool.0 as i64, now_ms as i64])?;
                    state.next_datanet_id += 1;
                    state.next_account_id += 1;
                    state.ledger.add_account(pool, AccountKind::DatanetPool, Balances::default());
                    writes.touched.push(pool);
                    state.datanets.insert(id);
                    validation::insert_rules(tx, id, rules)?;
                    state
                        .validation
                        .datanets
                        .insert(id, validation::DatanetInfo { owner: *owner, pool, rules: *rules });
                    Ok(Outcome::DatanetCreated(id))
                }
            }
        }
        Command::AddContribution { datanet, contributor, contribution, screening } => {
            if !state.datanets.contains(datanet) {
                Err(StoreError::NotFound { what: "datanet", id: datanet.to_string() })
            } else if let Err(error) = is_person(state, *contributor) {
                Err(error)
            } else {
                return validation::add_contribution(
                    tx,
                    state,
                    *datanet,
                    *contributor,
                    contribution,
                    screening.as_deref(),
                    now_ms,
                    writes,
                );
            }
        }
        Command::SetDatanetRules { caller, datanet, rules } => {
            return validation::set_rules(tx, state, *caller, *datanet, rules);
        }
        Command::Stake { validator, datanet, amount } => match is_person(state, *validator) {
            Err(error) => Err(error),
            Ok(()) => return validation::stake(tx, state, *validator, *datanet, *amount, now_ms, writes),
        },
        Command::Unstake { validator, datanet } => match is_person(state, *validator) {
            Err(error) => Err(error),
            Ok(()) => return validation::unstake(tx, state, *validator, *datanet, now_ms, writes),
        },
        Command::Vote { validator, contribution, approve, reason } => match is_person(state, *validator) {
            Err(error) => Err(error),
            Ok(()) => {
                return validation::vote(tx, state, *validator, *contribution, *approve, reason, now_ms);
            }
        },
        Command::OpenDispute { disputer, contribution, evidence, claim } => match is_person(state, *disputer)
        {
            Err(error) => Err(error),
            Ok(()) => {
                return validation::open_dispute(
                    tx,
                    state,
                    *disputer,
                    *contribution,
                    *evidence,
                    claim,
                    now_ms,
                    writes,
                );
            }
        },
        Command::DisputeVote { validator, dispute, uphold } => match is_person(state, *validator) {
            Err(error) => Err(error),
            Ok(()) => {
                return validation::dispute_vote(tx, state, *validator, *dispute, *uphold, now_ms, writes);
            }
        },
        Command::CreateModel { owner, spec } => {
            let missing = spec.datanets.iter().find(|d| !state.datanets.contains(d));
            if let Some(missing) = missing {
                Err(StoreError::NotFound { what: "datanet", id: missing.to_string() })
            } else if let Err(error) = spec.split.validate() {
                Err(StoreError::Invalid(error.to_string()))
            } else if let Err(error) = is_person(state, *owner) {
                Err(error)
            } else {
                let id = ModelId(state.next_model_id);
                tx.prepare_cached(
                    "INSERT INTO models (id, owner, name, spec, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    id.0 as i64,
                    owner.0 as i64,
                    spec.name,
                    serde_json::to_string(spec).expect("specs serialize"),
                    now_ms as i64
                ])?;
                state.next_model_id += 1;
                Ok(Outcome::ModelCreated(id))
            }
        }
        Command::Deposit { account, amount } => match is_person(state, *account) {
            Err(error) => Err(error),
            Ok(()) => ledger_op(
                tx,
                state,
                LedgerOp::Transfer { debit: SYSTEM_ACCOUNTS.external, credit: *account, amount: *amount },
                now_ms,
                writes,
            )?,
        },
        Command::Transfer { from, to, amount } => {
            let clearing = (*to == state.system.clearing)
                .then(|| StoreError::Invalid(format!("{to} is the node's inference clearing account")));
            let allowed = clearing.map_or(Ok(()), Err);
            match allowed.and_then(|()| is_person(state, *from)).and_then(|()| receivable(state, *to)) {
                Err(error) => Err(error),
                Ok(()) => ledger_op(
                    tx,
                    state,
                    LedgerOp::Transfer { debit: *from, credit: *to, amount: *amount },
                    now_ms,
                    writes,
                )?,
            }
        }
        Command::Hold { from, to, amount, timeout_ms } => {
            match is_person(state, *from).and_then(|()| receivable(state, *to)) {
                Err(error) => Err(error),
                Ok(()) => ledger_op(
                    tx,
                    state,
                    LedgerOp::Hold { debit: *from, credit: *to, amount: *amount, timeout_ms: *timeout_ms },
                    now_ms,
                    writes,
                )?,
            }
        }
        Command::PostHold { hold, .. } | Command::VoidHold { hold, .. }
            if state.validation.protected.contains(hold) =>
        {
            Err(StoreError::Forbidden(format!(
                "hold {hold} is a validator stake or a contribution bond; only the validation rules release it"
            )))
        }
        Command::PostHold { caller, hold, amount } => match state.ledger.hold(*hold) {
            None => Err(StoreError::Ledger(LedgerError::HoldNotPending(*hold))),
            Some(pending) if pending.debit != *caller => {
                Err(StoreError::Forbidden(format!("only the account that placed hold {hold} can post it")))
            }
            Some(pending) if pending.credit == state.system.clearing => {
                Err(StoreError::Forbidden(format!("hold {hold} pays for an inference; the node settles it")))
            }
            Some(_) => ledger_op(tx, state, LedgerOp::Post { hold: *hold, amount: *amount }, now_ms, writes)?,
        },
        Command::SettleInference { hold, fee, payments, receipt } => {
            settle_inference(tx, state, *hold, *fee, payments, receipt, now_ms, writes)?
        }
        Command::CloseEpoch { caller } => epochs::close_epoch(tx, state, *caller, now_ms, writes)?,
        Command::RecordEpochPublication { epoch, tx_hash, error } => {
            epochs::record_publication(tx, *epoch, tx_hash.as_deref(), error.as_deref())?
        }
        Command::VoidHold { caller, hold } => match state.ledger.hold(*hold) {
            None => Err(StoreError::Ledger(LedgerError::HoldNotPending(*hold))),
            Some(pending) if pending.debit != *caller && pending.credit != *caller => {
                Err(StoreError::Forbidden(format!("only the parties of hold {hold} can void it")))
            }
            Some(_) => ledger_op(tx, state, LedgerOp::Void { hold: *hold }, now_ms, writes)?,
        },
    };
    Ok(result)
}

/// Money may be paid to any account but the external one (withdrawals are not transfers).
/// Settles a paid inference (see [`Command::SettleInference`]): everything is checked before
/// anything changes, so the command either happens whole or not at all.
#[allow(clippy::too_many_arguments)]
fn settle_inference(
    tx: &Transaction<'_>,
    state: &mut WriterState,
    hold: TransferId,
    fee: Amount,
    payments: &[Payment],
    receipt: &NewReceipt,
    now_ms: u64,
    writes: &mut BatchWrites,
) -> rusqlite::Result<Result<Outcome, StoreError>> {
    let Some(signer) = state.signer.clone() else {
        return Ok(Err(StoreError::Invalid("this node has no receipt signing key".into())));
    };
    let Some(pending) = state.ledger.hold(hold).copied() else {
        return Ok(Err(StoreError::Ledger(LedgerError::HoldNotPending(hold))));
    };
    if pending.credit != state.system.clearing || pending.debit != receipt.caller {
        return Ok(Err(StoreError::Forbidden(format!("hold {hold} is not this caller's inference hold"))));
    }
    let total = payments.iter().try_fold(0u128, |sum, payment| sum.checked_add(payment.amount.0));
    if total != Some(fee.0) {
        return Ok(Err(StoreError::Invalid("split lines do not add up to the fee".into())));
    }
    for Payment { account: payee, .. } in payments {
        if *payee == state.system.clearing {
            return Ok(Err(StoreError::Invalid("the clearing account is not a payee".into())));
        }
        if let Err(error) = receivable(state, *payee) {
            return Ok(Err(error));
        }
    }
    let posted = match state.ledger.apply(LedgerOp::Post { hold, amount: Some(fee) }, now_ms) {
        Ok(transfer) => transfer,
        Err(error) => return Ok(Err(StoreError::Ledger(error))),
    };
    record_transfer(tx, &posted, writes)?;
    let mut transfers = vec![posted.id];
    for &Payment { account: payee, amount, .. } in payments.iter().filter(|p| !p.amount.is_zero()) {
        // Checked above: clearing now holds exactly the fee, and every payee can receive.
        let paid = state
            .ledger
            .apply(LedgerOp::Transfer { debit: state.system.clearing, credit: payee, amount }, now_ms)
            .expect("clearing holds the posted fee and every payee was checked");
        record_transfer(tx, &paid, writes)?;
        transfers.push(paid.id);
    }
    let clearing = state.ledger.account(state.system.clearing).map(|a| a.balances);
    assert!(
        clearing.is_some_and(|b| b.credits_posted == b.debits_posted),
        "the clearing account is empty after a settlement"
    );
    let id = state.next_receipt_id;
    let hash = receipt_hash(id, now_ms, &state.last_receipt_hash, &receipt.body);
    let record = ReceiptRecord {
        id,
        caller: receipt.caller,
        model: receipt.model,
        body: receipt.body.clone(),
        prev_hash: state.last_receipt_hash,
        hash,
        signature: signer.sign(&hash),
        created_at_ms: now_ms,
        transfers,
    };
    tx.prepare_cached(
        "INSERT INTO receipts (id, caller, model, body, prev_hash, hash, signature, transfers, created_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        id as i64,
        record.caller.0 as i64,
        record.model.0 as i64,
        record.body,
        &record.prev_hash[..],
        &record.hash[..],
        &record.signature[..],
        serde_json::to_string(&record.transfers).expect("ids serialize"),
        now_ms as i64
    ])?;
    let mut earning = tx.prepare_cached(
        "INSERT INTO earnings (account, receipt, role, amount, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    // One earnings row per payee and role: lines that repeat a payee in a role add up (their sum
    // is within the fee, so it cannot overflow).
    let mut lines: std::collections::BTreeMap<(AccountId, &str), u128> = Default::default();
    for payment in payments.iter().filter(|p| !p.amount.is_zero()) {
        *lines.entry((payment.account, payment.role.as_str())).or_default() += payment.amount.0;
    }
    for ((account, role), amount) in lines {
        earning.execute(params![account.0 as i64, id as i64, role, Units(amount), now_ms as i64])?;
    }
    state.next_receipt_id += 1;
    state.last_receipt_hash = hash;
    Ok(Ok(Outcome::InferenceSettled(record)))
}

fn receivable(state: &WriterState, id: AccountId) -> Result<(), StoreError> {
    match state.ledger.account(id).map(|a| a.kind) {
        Some(AccountKind::External) => {
            Err(StoreError::Invalid(format!("{id} is the node's external account")))
        }
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound { what: "account", id: id.to_string() }),
    }
}

fn ledger_op(
    tx: &Transaction<'_>,
    state: &mut WriterState,
    op: LedgerOp,
    now_ms: u64,
    writes: &mut BatchWrites,
) -> rusqlite::Result<Result<Outcome, StoreError>> {
    match state.ledger.apply(op, now_ms) {
        Ok(transfer) => {
            record_transfer(tx, &transfer, writes)?;
            Ok(Ok(Outcome::Transfer(transfer)))
        }
        Err(error) => Ok(Err(StoreError::Ledger(error))),
    }
}

fn record_transfer(
    tx: &Transaction<'_>,
    transfer: &Transfer,
    writes: &mut BatchWrites,
) -> rusqlite::Result<()> {
    match transfer.kind {
        TransferKind::Pending => {
            tx.prepare_cached(
                "INSERT INTO holds (id, debit_account, credit_account, amount, expires_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                transfer.id.0 as i64,
                transfer.debit.0 as i64,
                transfer.credit.0 as i64,
                Units(transfer.amount.0),
                transfer.expires_at_ms.map(|ms| ms as i64),
            ])?;
        }
        TransferKind::PostPending | TransferKind::VoidPending | TransferKind::ExpirePending => {
            let hold = transfer.pending_id.expect("resolutions name their hold");
            tx.prepare_cached("DELETE FROM holds WHERE id = ?1")?.execute([hold.0 as i64])?;
        }
        TransferKind::Posted => {}
    }
    writes.touched.push(transfer.debit);
    writes.touched.push(transfer.credit);
    writes.transfers.push(transfer.clone());
    Ok(())
}

/// Applies one batch of the log exactly as the node that appended it did: its requests at its
/// time, then the expiries due at that time.
fn apply_logged(
    tx: &Transaction<'_>,
    state: &mut WriterState,
    batch: &LoggedBatch,
    writes: &mut BatchWrites,
) -> rusqlite::Result<()> {
    assert_eq!(batch.seq, state.applied_seq + 1, "the log is applied in order, without gaps");
    for request in &batch.requests {
        // The result was the appending node's to report; here only the effect matters.
        let _ = apply_request(tx, state, request, batch.at_ms, writes)?;
    }
    for transfer in state.ledger.expire(batch.at_ms) {
        record_transfer(tx, &transfer, writes)?;
    }
    state.applied_seq = batch.seq;
    state.last_at_ms = batch.at_ms;
    Ok(())
}

fn record_replication(tx: &Transaction<'_>, state: &WriterState) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO replication (singleton, applied_seq, at_ms) VALUES (1, ?1, ?2) \
         ON CONFLICT (singleton) DO UPDATE SET applied_seq = excluded.applied_seq, at_ms = excluded.at_ms",
    )?
    .execute(params![state.applied_seq as i64, state.last_at_ms as i64])?;
    Ok(())
}

/// Brings a replica up to date with the log (at most `batches_max` batches, in transactions of
/// [`LOG_PAGE_BATCHES`]), and returns the accounts whose balances changed. On error the in-memory
/// state may be ahead of the replica's file and must be reloaded.
fn catch_up(
    conn: &mut Connection,
    state: &mut WriterState,
    log: &mut PgLog,
    batches_max: usize,
) -> Result<Vec<AccountId>, CatchUpError> {
    let mut changed = Vec::new();
    let mut remaining = batches_max;
    while remaining > 0 {
        let page = log
            .read_after(state.applied_seq, LOG_PAGE_BATCHES.min(remaining) as i64)
            .map_err(|error| CatchUpError { error, applied_some: false })?;
        if page.is_empty() {
            break;
        }
        remaining -= page.len();
        apply_page(conn, state, &page)
            .map_err(|error| CatchUpError { error, applied_some: true })
            .map(|touched| changed.extend(touched))?;
    }
    Ok(changed)
}

/// Why catching up stopped, and whether the in-memory state may be ahead of the replica's file.
struct CatchUpError {
    error: StoreError,
    applied_some: bool,
}

impl From<CatchUpError> for StoreError {
    fn from(failure: CatchUpError) -> StoreError {
        failure.error
    }
}

/// Applies a page of the log to the replica in one transaction; returns the accounts it changed.
fn apply_page(
    conn: &mut Connection,
    state: &mut WriterState,
    page: &[LoggedBatch],
) -> Result<Vec<AccountId>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(internal)?;
    let mut writes = BatchWrites::default();
    for batch in page {
        apply_logged(&tx, state, batch, &mut writes).map_err(internal)?;
    }
    let touched = record_batch(&tx, state, &mut writes).map_err(internal)?;
    record_replication(&tx, state).map_err(internal)?;
    tx.commit().map_err(internal)?;
    Ok(touched)
}

/// Inserts a batch's transfers and returns the accounts it touched, in id order, checked against
/// the ledger's rules and marked for the next balance snapshot.
fn record_batch(
    tx: &Transaction<'_>,
    state: &mut WriterState,
    writes: &mut BatchWrites,
) -> rusqlite::Result<Vec<AccountId>> {
    insert_transfers(tx, &writes.transfers)?;
    let mut touched = std::mem::take(&mut writes.touched);
    touched.sort_unstable();
    touched.dedup();
    // Pair the writes with assertions: a broken invariant is a bug, so stop before committing it.
    if let Err(violation) = state.ledger.check_accounts(&touched) {
        panic!("refusing to commit a batch: {violation}");
    }
    state.dirty.extend_from_slice(&touched);
    Ok(touched)
}

struct SnapshotProgress {
    through: u64,
    dirty: Vec<AccountId>,
}

fn write_balance_snapshot(tx: &Transaction<'_>, state: &mut WriterState) -> rusqlite::Result<()> {
    let mut progress =
        SnapshotProgress { through: state.snapshot_through, dirty: std::mem::take(&mut state.dirty) };
    write_snapshot_rows(tx, &state.ledger, &mut progress)?;
    state.snapshot_through = progress.through;
    state.dirty = progress.dirty;
    Ok(())
}

/// Writes the balances of every dirty account and moves the watermark to the newest transfer, so
/// that the stored balances are exactly those after it.
fn write_snapshot_rows(
    tx: &Transaction<'_>,
    ledger: &LedgerState,
    progress: &mut SnapshotProgress,
) -> rusqlite::Result<()> {
    progress.dirty.sort_unstable();
    progress.dirty.dedup();
    let mut update = tx.prepare_cached(
        "UPDATE accounts SET debits_posted = ?2, credits_posted = ?3, debits_pending = ?4, credits_pending = ?5
         WHERE id = ?1",
    )?;
    for id in &progress.dirty {
        let balances = ledger.account(*id).expect("dirty accounts exist").balances;
        update.execute(params![
            id.0 as i64,
            Units(balances.debits_posted),
            Units(balances.credits_posted),
            Units(balances.debits_pending),
            Units(balances.credits_pending),
        ])?;
    }
    let through = ledger.next_transfer_id() - 1;
    tx.prepare_cached("UPDATE balance_watermark SET snapshot_through = ?1")?.execute([through as i64])?;
    progress.dirty.clear();
    progress.through = through;
    Ok(())
}

/// Encodes ascending ids as LEB128 varints of their differences (the first from zero).
fn encode_ids(ids: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ids.len() * 2);
    let mut previous = 0u64;
    for &id in ids {
        let mut delta = id - previous;
        previous = id;
        loop {
            let byte = (delta & 0x7f) as u8;
            delta >>= 7;
            if delta == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    out
}

/// The inverse of [`encode_ids`]; `None` for bytes it could not have produced.
fn decode_ids(bytes: &[u8]) -> Option<Vec<u64>> {
    let mut ids = Vec::new();
    let mut previous = 0u64;
    let mut delta = 0u64;
    let mut shift = 0u32;
    for &byte in bytes {
        if shift >= 64 {
            return None;
        }
        delta |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            previous = previous.checked_add(delta)?;
            ids.push(previous);
            delta = 0;
            shift = 0;
        } else {
            shift += 7;
        }
    }
    if shift != 0 { None } else { Some(ids) }
}

/// What a batch writes at its end, in bulk: its transfers and the accounts whose balances changed.
/// Nothing in a batch reads the `transfers` table, so deferring those rows to the end is safe.
#[derive(Default)]
struct BatchWrites {
    transfers: Vec<Transfer>,
    touched: Vec<AccountId>,
}

/// Rows per multi-row INSERT: fewer statement executions, same rows.
const INSERT_ROWS_PER_STATEMENT: usize = 64;

fn insert_transfers(tx: &Transaction<'_>, transfers: &[Transfer]) -> rusqlite::Result<()> {
    const COLUMNS: &str = "INSERT INTO transfers (id, kind, debit_account, credit_account, amount, pending_id, \
                           expires_at_ms, created_at_ms) VALUES ";
    let statement_for = |rows: usize| {
        let mut sql = String::from(COLUMNS);
        for row in 0..rows {
            if row > 0 {
                sql.push(',');
            }
            sql.push_str("(?,?,?,?,?,?,?,?)");
        }
        sql
    };
    let full = statement_for(INSERT_ROWS_PER_STATEMENT);
    for chunk in transfers.chunks(INSERT_ROWS_PER_STATEMENT) {
        let sql =
            if chunk.len() == INSERT_ROWS_PER_STATEMENT { full.clone() } else { statement_for(chunk.len()) };
        let mut statement = tx.prepare_cached(&sql)?;
        let mut index = 1;
        for transfer in chunk {
            statement.raw_bind_parameter(index, transfer.id.0 as i64)?;
            statement.raw_bind_parameter(index + 1, transfer.kind.as_code())?;
            statement.raw_bind_parameter(index + 2, transfer.debit.0 as i64)?;
            statement.raw_bind_parameter(index + 3, transfer.credit.0 as i64)?;
            statement.raw_bind_parameter(index + 4, Units(transfer.amount.0))?;
            statement.raw_bind_parameter(index + 5, transfer.pending_id.map(|id| id.0 as i64))?;
            statement.raw_bind_parameter(index + 6, transfer.expires_at_ms.map(|ms| ms as i64))?;
            statement.raw_bind_parameter(index + 7, transfer.created_at_ms as i64)?;
            index += 8;
        }
        statement.raw_execute()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_lists_round_trip() {
        for ids in [vec![], vec![1], vec![1, 2, 3], vec![5, 300, 301, 70_000, u64::MAX / 2, u64::MAX]] {
            assert_eq!(decode_ids(&encode_ids(&ids)), Some(ids.clone()));
        }
        assert_eq!(encode_ids(&[1, 129]), vec![1, 0x80, 0x01]);
        assert_eq!(decode_ids(&[0x80]), None, "a truncated varint is refused");
    }
}
