//! Tributary's money: the ledger state machine ([`state`]), the storage trait every backend
//! implements ([`store`]), and the embedded SQLite backend ([`sqlite`]) with its single writer and
//! group commit.

pub mod postgres;
pub mod sqlite;
pub mod state;
pub mod store;

pub use sqlite::{SqliteStore, seed_replica};
pub use store::{Command, Outcome, Request, Store, StoreError};

/// Where the store reads the time. The ledger state machine itself never reads a clock; the writer
/// asks this once per batch and passes the time in.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> u64;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_millis() as u64)
            .unwrap_or(0)
    }
}
