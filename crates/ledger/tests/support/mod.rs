//! The backends the storage suites run against: each case gets a fresh embedded store, or a fresh
//! PostgreSQL database (created for the case and dropped after it) with a fresh replica directory.
//!
//! PostgreSQL is found at `TRIBUTARY_TEST_POSTGRES` (a server URL without a database name;
//! default `postgresql://postgres@127.0.0.1:5432`). `./scripts/test.sh` makes sure it runs.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use tributary_ledger::store::ReceiptSigner;
use tributary_ledger::{Clock, SqliteStore};

pub fn postgres_server() -> String {
    std::env::var("TRIBUTARY_TEST_POSTGRES").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432".into())
}

/// Runs a blocking PostgreSQL call off the async runtime (the synchronous client has its own).
fn off_runtime<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(work).join().expect("postgres helper thread")
}

/// Runs SQL as the server's administrator, on the `postgres` database.
pub fn admin(sql: &str) {
    let (server, sql) = (postgres_server(), sql.to_owned());
    off_runtime(move || {
        let mut client =
            postgres::Client::connect(&format!("{server}/postgres"), postgres::NoTls).expect("connect");
        client.batch_execute(&sql).expect("admin statement");
    });
}

/// A database of its own for one test, dropped (with any connections left) when the test ends.
pub struct PgDatabase {
    pub url: String,
    name: String,
}

impl PgDatabase {
    pub fn create() -> PgDatabase {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let name = format!(
            "tributary_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").subsec_nanos()
        );
        let server = postgres_server();
        let create = name.clone();
        let admin = server.clone();
        off_runtime(move || {
            let mut client = postgres::Client::connect(&format!("{admin}/postgres"), postgres::NoTls)
                .expect("PostgreSQL is reachable (./scripts/test.sh starts it)");
            client.batch_execute(&format!("CREATE DATABASE {create}")).expect("create test database");
        });
        PgDatabase { url: format!("{server}/{name}"), name }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs a query on the database and returns the first column of every row as text.
    pub fn query_text(&self, sql: &str) -> Vec<String> {
        let (url, sql) = (self.url.clone(), sql.to_owned());
        off_runtime(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
            client.query(&sql, &[]).expect("query").iter().map(|row| row.get::<_, String>(0)).collect()
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (server, name) = (postgres_server(), self.name.clone());
        off_runtime(move || {
            if let Ok(mut client) = postgres::Client::connect(&format!("{server}/postgres"), postgres::NoTls)
            {
                let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        });
    }
}

/// A deterministic stand-in for the node's ed25519 key: what matters here is that the same key
/// signs alike and a different key signs differently. PostgreSQL nodes opened without a signer
/// (every node there needs one) get key 7.
pub struct KeyedSigner([u8; 32]);

impl KeyedSigner {
    pub fn with_key(key_byte: u8) -> Arc<dyn ReceiptSigner> {
        Arc::new(KeyedSigner([key_byte; 32]))
    }
}

impl ReceiptSigner for KeyedSigner {
    fn sign(&self, hash: &[u8; 32]) -> [u8; 64] {
        let first = blake3::keyed_hash(&self.0, hash);
        let second = blake3::keyed_hash(&self.0, first.as_bytes());
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(first.as_bytes());
        signature[32..].copy_from_slice(second.as_bytes());
        signature
    }
}

/// Where a case's store lives.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub postgres: Option<PgDatabase>,
}

impl Harness {
    pub fn embedded() -> Harness {
        Harness { dir: tempfile::tempdir().expect("tempdir"), postgres: None }
    }

    pub fn postgres() -> Harness {
        Harness { dir: tempfile::tempdir().expect("tempdir"), postgres: Some(PgDatabase::create()) }
    }

    pub fn open(&self, clock: Arc<dyn Clock>) -> SqliteStore {
        self.try_open(clock, None).expect("store opens")
    }

    pub fn try_open(
        &self,
        clock: Arc<dyn Clock>,
        signer: Option<Arc<dyn ReceiptSigner>>,
    ) -> Result<SqliteStore, tributary_ledger::StoreError> {
        self.open_as("node-a", clock, signer)
    }

    /// Opens a node by name: on PostgreSQL each name has its own replica directory, so two names
    /// are two nodes on one database.
    pub fn open_as(
        &self,
        node: &str,
        clock: Arc<dyn Clock>,
        signer: Option<Arc<dyn ReceiptSigner>>,
    ) -> Result<SqliteStore, tributary_ledger::StoreError> {
        match &self.postgres {
            None => SqliteStore::open_with_signer(&self.dir.path().join("t.db"), clock, signer),
            Some(database) => {
                let signer = signer.unwrap_or_else(|| KeyedSigner::with_key(7));
                SqliteStore::open_postgres(&database.url, &self.dir.path().join(node), node, clock, signer)
            }
        }
    }

    /// The SQLite file the (first) node works on: the store itself, or its replica.
    pub fn local_file(&self) -> PathBuf {
        match &self.postgres {
            None => self.dir.path().join("t.db"),
            Some(_) => {
                let replicas = self.dir.path().join("node-a");
                std::fs::read_dir(&replicas)
                    .expect("replica directory")
                    .map(|entry| entry.expect("entry").path())
                    .find(|path| path.extension().is_some_and(|e| e == "db"))
                    .expect("a replica file")
            }
        }
    }
}

/// Declares each listed `async fn case(backend: Backend)` as one test per backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::support::Harness::embedded()).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::support::Harness::postgres()).await
                }
            )*
        }
    };
}
