//! The PostgreSQL backend: many nodes on one database.
//!
//! PostgreSQL holds the authority, as an ordered log of command batches (`log_batches`). A node's
//! writer appends a batch in one PostgreSQL transaction that first takes a transaction-scoped
//! advisory lock and reads every batch appended since the node last looked. It applies those to its
//! state, then its own batch, and appends that. Every node therefore decides each command against
//! the same state, in the same order, and the ledger's rules (no overdraft, one effect per
//! idempotency key, one epoch close at a time) hold across nodes exactly as they hold inside one.
//! The receipt chain is one chain over the whole log, in log order.
//!
//! What a node serves reads from is its replica: a local SQLite file built by applying the log
//! (the same code path as the embedded store). A replica is derived data: deleting it costs only
//! the time to replay the log. Idle writers poll the log so replicas stay a few milliseconds behind.
//!
//! Beside the log, each batch writes its transfers to a `transfers` table in the same transaction,
//! in one set-based statement, amounts as `numeric(39,0)`; the `account_balances` view derives
//! every account's balances from them. They let an operator audit the money in SQL (debits equal
//! credits, no account but the external one below zero) without trusting any node.
//!
//! Every node on one database must sign receipts with the same key (replay re-signs them, and
//! ed25519 signatures are deterministic): the first node records a probe signature and a node
//! with a different key refuses to start.

use postgres::{Client, NoTls, Statement};

use crate::state::Transfer;
use crate::store::{ReceiptSigner, Request, StoreError};

/// The advisory lock every appending transaction holds (an arbitrary constant: "tribuTAR").
const LOG_LOCK: i64 = 0x7472_6962_7554_4152;
/// The advisory lock held while migrating, so that nodes starting together migrate once.
const MIGRATION_LOCK: i64 = LOG_LOCK + 1;

/// PostgreSQL schema versions, applied in order; `schema_migrations` records each.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE cluster (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    id text NOT NULL,
    -- The first node's signature of a fixed message: every node must sign receipts alike.
    receipt_key_probe bytea NOT NULL
);
CREATE TABLE log_batches (
    seq bigint PRIMARY KEY CHECK (seq > 0),
    node text NOT NULL,
    -- The Tributary version that decided the batch: replay is only exact on the same code.
    version text NOT NULL,
    at_ms bigint NOT NULL,
    requests integer NOT NULL,
    -- The batch's requests, JSON.
    body bytea NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE transfers (
    id bigint PRIMARY KEY,
    seq bigint NOT NULL REFERENCES log_batches (seq),
    kind text NOT NULL,
    debit_account bigint NOT NULL,
    credit_account bigint NOT NULL,
    amount numeric(39,0) NOT NULL CHECK (amount >= 0),
    pending_id bigint,
    expires_at_ms bigint,
    created_at_ms bigint NOT NULL
);
-- Every account's balances, from the transfers alone (a view, so the write path pays nothing
-- for it). A post or a void releases the hold it names in full.
CREATE VIEW account_balances AS
WITH moves (account, debits_posted, credits_posted, debits_pending, credits_pending) AS (
    SELECT debit_account, amount, 0, 0, 0 FROM transfers WHERE kind IN ('posted', 'post_pending')
    UNION ALL
    SELECT credit_account, 0, amount, 0, 0 FROM transfers WHERE kind IN ('posted', 'post_pending')
    UNION ALL
    SELECT debit_account, 0, 0, amount, 0 FROM transfers WHERE kind = 'pending'
    UNION ALL
    SELECT credit_account, 0, 0, 0, amount FROM transfers WHERE kind = 'pending'
    UNION ALL
    SELECT hold.debit_account, 0, 0, -hold.amount, 0
    FROM transfers release JOIN transfers hold ON hold.id = release.pending_id
    UNION ALL
    SELECT hold.credit_account, 0, 0, 0, -hold.amount
    FROM transfers release JOIN transfers hold ON hold.id = release.pending_id
)
SELECT account AS id,
    sum(debits_posted)::numeric(39,0) AS debits_posted,
    sum(credits_posted)::numeric(39,0) AS credits_posted,
    sum(debits_pending)::numeric(39,0) AS debits_pending,
    sum(credits_pending)::numeric(39,0) AS credits_pending
FROM moves GROUP BY account;
"#];

/// This build's version, written with every batch.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The message whose signature identifies the receipt key (see the module notes).
const KEY_PROBE_MESSAGE: &[u8] = b"tributary-cluster-receipt-key-probe-v1";

/// A PostgreSQL error with its causes: the client's own message names only the kind of failure
/// ("db error"), the server's reason is its source.
fn describe(error: &postgres::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn log_error(error: postgres::Error) -> StoreError {
    StoreError::Internal(format!("postgresql: {}", describe(&error)))
}

/// One batch of the log.
#[derive(Debug)]
pub(crate) struct LoggedBatch {
    pub seq: u64,
    pub at_ms: u64,
    pub requests: Vec<Request>,
}

/// A batch to append, with what it did.
pub(crate) struct Append<'a> {
    pub seq: u64,
    pub at_ms: u64,
    pub requests: &'a [&'a Request],
    pub transfers: &'a [Transfer],
}

/// The synchronous client drives a runtime of its own, which may be neither used nor dropped on a
/// thread of an async runtime; dropping it there (say, when opening fails) hands it to a thread.
struct OwnClient(Option<Client>);

impl std::ops::Deref for OwnClient {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.0.as_ref().expect("the client is only taken when dropped")
    }
}

impl std::ops::DerefMut for OwnClient {
    fn deref_mut(&mut self) -> &mut Client {
        self.0.as_mut().expect("the client is only taken when dropped")
    }
}

impl Drop for OwnClient {
    fn drop(&mut self) {
        if let Some(client) = self.0.take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            let _ = std::thread::spawn(move || drop(client)).join();
        }
    }
}

/// A node's connection to the shared log, with its statements prepared once.
pub struct PgLog {
    client: OwnClient,
    statements: Statements,
    url: String,
    node: String,
    cluster: String,
}

/// The log's statements. A batch costs four round trips, three of them under the lock: the lock
/// with `BEGIN`, the read of what others appended, the append (batch and transfers in one
/// statement), and `COMMIT`.
struct Statements {
    read_after: Statement,
    append: Statement,
}

impl Statements {
    fn prepare(client: &mut Client) -> Result<Statements, postgres::Error> {
        Ok(Statements {
            read_after: client
                .prepare("SELECT seq, at_ms, body, version FROM log_batches WHERE seq > $1 ORDER BY seq LIMIT $2")?,
            append: client.prepare(
                "WITH batch AS ( \
                     INSERT INTO log_batches (seq, node, at_ms, requests, body, version) \
                     VALUES ($1, $2, $3, $4, $5, $14) \
                     RETURNING seq) \
                 INSERT INTO transfers (id, seq, kind, debit_account, credit_account, amount, pending_id, \
                     expires_at_ms, created_at_ms) \
                 SELECT t.id, batch.seq, t.kind, t.debit, t.credit, t.amount::numeric, t.pending, t.expires, \
                     t.created \
                 FROM batch, unnest($6::int8[], $7::text[], $8::int8[], $9::int8[], $10::text[], $11::int8[], \
                     $12::int8[], $13::int8[]) AS t(id, kind, debit, credit, amount, pending, expires, created)",
            )?,
        })
    }
}

impl std::fmt::Debug for PgLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLog").field("node", &self.node).field("cluster", &self.cluster).finish()
    }
}

impl PgLog {
    /// Connects, migrates the schema and joins (or founds) the cluster. Blocking: call it off the
    /// async runtime (the `postgres` client runs its own).
    pub fn connect(url: &str, node: &str, signer: &dyn ReceiptSigner) -> Result<PgLog, StoreError> {
        let mut client = Client::connect(url, NoTls)
            .map_err(|e| StoreError::Internal(format!("connecting to PostgreSQL: {}", describe(&e))))?;
        migrate(&mut client).map_err(log_error)?;
        let probe = signer.sign(blake3::hash(KEY_PROBE_MESSAGE).as_bytes()).to_vec();
        let mut tx = client.transaction().map_err(log_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).map_err(log_error)?;
        let row = tx.query_opt("SELECT id, receipt_key_probe FROM cluster", &[]).map_err(log_error)?;
        let cluster = match row {
            Some(row) => {
                let id: String = row.get(0);
                let recorded: Vec<u8> = row.get(1);
                if recorded != probe {
                    return Err(StoreError::Invalid(
                        "this node's receipt key differs from the one the other nodes on this database \
                         sign with; copy node.key from an existing node's data directory"
                            .into(),
                    ));
                }
                id
            }
            None => {
                let row = tx
                    .query_one(
                        "INSERT INTO cluster (id, receipt_key_probe) \
                         VALUES (md5(random()::text || clock_timestamp()::text), $1) RETURNING id",
                        &[&probe],
                    )
                    .map_err(log_error)?;
                row.get(0)
            }
        };
        tx.commit().map_err(log_error)?;
        let statements = Statements::prepare(&mut client).map_err(log_error)?;
        Ok(PgLog {
            client: OwnClient(Some(client)),
            statements,
            url: url.to_owned(),
            node: node.to_owned(),
            cluster,
        })
    }

    /// The cluster's id: names the replica, so a replica of another database is never reused.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// Batches after `after`, at most `limit`, without locking: for catching up while idle. The
    /// log has no gaps: batch `n + 1` is appended only after batch `n` committed.
    pub(crate) fn read_after(&mut self, after: u64, limit: i64) -> Result<Vec<LoggedBatch>, StoreError> {
        self.reconnect_if_closed()?;
        read_after(&mut self.client, &self.statements, after, limit)
    }

    /// A connection that broke (the server restarted, a commit's answer was lost) is replaced
    /// before the next use rather than failing every batch from then on.
    fn reconnect_if_closed(&mut self) -> Result<(), StoreError> {
        if self.client.is_closed() {
            tracing::warn!("the PostgreSQL connection closed; reconnecting");
            let mut client = Client::connect(&self.url, NoTls)
                .map_err(|e| StoreError::Internal(format!("reconnecting to PostgreSQL: {}", describe(&e))))?;
            self.statements = Statements::prepare(&mut client).map_err(log_error)?;
            self.client = OwnClient(Some(client));
        }
        Ok(())
    }

    /// Starts an appending transaction: takes the log lock, which is held until commit or rollback.
    pub(crate) fn begin(&mut self) -> Result<LogTransaction<'_>, StoreError> {
        self.reconnect_if_closed()?;
        // One round trip for both; the lock is taken before the first read, so that read sees
        // every batch committed before this node got the lock.
        self.client
            .batch_execute(&format!("BEGIN; SELECT pg_advisory_xact_lock({LOG_LOCK})"))
            .map_err(log_error)?;
        Ok(LogTransaction { log: self, finished: false })
    }
}

/// An appending transaction holding the log lock; rolled back if dropped before `commit`.
pub(crate) struct LogTransaction<'a> {
    log: &'a mut PgLog,
    finished: bool,
}

impl LogTransaction<'_> {
    /// Every batch after `after` (others' batches, or this node's own if its replica fell behind).
    pub fn read_after(&mut self, after: u64) -> Result<Vec<LoggedBatch>, StoreError> {
        read_after(&mut self.log.client, &self.log.statements, after, i64::MAX)
    }

    /// Appends a batch and its transfers in one statement, whatever the batch's size.
    pub fn append(&mut self, batch: &Append<'_>) -> Result<(), StoreError> {
        let body = serde_json::to_vec(batch.requests).map_err(|e| StoreError::Internal(e.to_string()))?;
        let column = |f: &dyn Fn(&Transfer) -> i64| batch.transfers.iter().map(f).collect::<Vec<i64>>();
        let ids = column(&|t| t.id.0 as i64);
        let debits = column(&|t| t.debit.0 as i64);
        let credits = column(&|t| t.credit.0 as i64);
        let created = column(&|t| t.created_at_ms as i64);
        let kinds: Vec<&str> = batch.transfers.iter().map(|t| t.kind.as_str()).collect();
        let amounts: Vec<String> = batch.transfers.iter().map(|t| t.amount.0.to_string()).collect();
        let pending: Vec<Option<i64>> =
            batch.transfers.iter().map(|t| t.pending_id.map(|id| id.0 as i64)).collect();
        let expires: Vec<Option<i64>> =
            batch.transfers.iter().map(|t| t.expires_at_ms.map(|ms| ms as i64)).collect();
        let log = &mut *self.log;
        log.client
            .execute(
                &log.statements.append,
                &[
                    &(batch.seq as i64),
                    &log.node,
                    &(batch.at_ms as i64),
                    &(batch.requests.len() as i32),
                    &body,
                    &ids,
                    &kinds,
                    &debits,
                    &credits,
                    &amounts,
                    &pending,
                    &expires,
                    &created,
                    &VERSION,
                ],
            )
            .map_err(log_error)?;
        Ok(())
    }

    /// Commits: the batch is durable (and the lock released) when this returns `Ok`.
    pub fn commit(mut self) -> Result<(), StoreError> {
        self.finished = true;
        self.log.client.batch_execute("COMMIT").map_err(log_error)
    }
}

impl Drop for LogTransaction<'_> {
    fn drop(&mut self) {
        if !self.finished {
            // Releases the lock; a broken connection released it already, and is replaced on the
            // next use.
            let _ = self.log.client.batch_execute("ROLLBACK");
        }
    }
}

fn read_after(
    client: &mut Client,
    statements: &Statements,
    after: u64,
    limit: i64,
) -> Result<Vec<LoggedBatch>, StoreError> {
    let rows = client.query(&statements.read_after, &[&(after as i64), &limit]).map_err(log_error)?;
    let mut batches = Vec::with_capacity(rows.len());
    for row in rows {
        let seq: i64 = row.get(0);
        let at_ms: i64 = row.get(1);
        let body: &[u8] = row.get(2);
        let version: &str = row.get(3);
        if version != VERSION {
            // Another version may decide a command differently; applying its batches here could
            // make this replica disagree with the node that wrote them.
            return Err(StoreError::Internal(format!(
                "log batch {seq} was written by Tributary {version} and this node runs {VERSION}: every node \
                 on one database must run the same version (stop them all to upgrade)"
            )));
        }
        let requests = serde_json::from_slice(body)
            .map_err(|e| StoreError::Internal(format!("log batch {seq} is unreadable: {e}")))?;
        batches.push(LoggedBatch { seq: seq as u64, at_ms: at_ms as u64, requests });
    }
    Ok(batches)
}

/// Applies the migrations not yet recorded, under an advisory lock so concurrent starts migrate once.
fn migrate(client: &mut Client) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )?;
    let applied: i32 = tx.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[])?.get(0);
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        tx.batch_execute(migration)?;
        tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[&(index as i32 + 1)])?;
    }
    tx.commit()
}
