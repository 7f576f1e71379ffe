//! Tributary's money: the ledger state machine ([`state`]), the storage trait every backend
//! implements ([`store`]), and the embedded SQLite backend ([`sqlite`]) with its single writer and
//! group commit.

pub mod state;
