//! Settlement epochs in the SQLite store: the writer's side (closing an epoch inside a batch
//! transaction) and the readers' queries. See [`EpochRecord`] for what closing means.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tributary_core::registry::AccountKind;
use tributary_core::{AccountId, Amount, EvmAddress, TransferId};
use tributary_settlement::PayoutTree;
use tributary_settlement::tree::{StandardTree, receipt_leaf};

use super::{BatchWrites, Units, WriterState, internal, record_transfer};
use crate::state::LedgerOp;
use crate::store::{EpochRecord, Outcome, SettlementLine, StoreError};

pub(super) const MIGRATION: &str = r#"
-- Settlement epochs (store::EpochRecord). `payouts` holds the payout tree's values, 36 bytes per
-- address (the 20-byte address, then the cumulative amount as 16 bytes big-endian), by address.
CREATE TABLE epochs (
    epoch INTEGER PRIMARY KEY,
    root BLOB,
    receipts_root BLOB,
    receipts_first INTEGER NOT NULL,
    receipts_last INTEGER NOT NULL,
    total BLOB NOT NULL,
    payees INTEGER NOT NULL,
    settled BLOB NOT NULL,
    accounts_settled INTEGER NOT NULL,
    payouts BLOB NOT NULL,
    tx_hash TEXT,
    publish_error TEXT,
    created_at_ms INTEGER NOT NULL
);
-- Each account's payout in each epoch, with the address it went to and the ledger transfer.
CREATE TABLE settlements (
    account INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    address BLOB NOT NULL,
    amount BLOB NOT NULL,
    transfer INTEGER NOT NULL,
    PRIMARY KEY (account, epoch)
) WITHOUT ROWID;
-- Earnings kept at the last close because the account had no payout address then.
CREATE TABLE settlement_owed (
    account INTEGER PRIMARY KEY,
    amount BLOB NOT NULL
);
-- Closing an epoch reads the earnings of its receipts.
CREATE INDEX earnings_receipt ON earnings (receipt);
"#;

const PAYOUT_BYTES: usize = 20 + 16;

fn encode_payouts(payouts: &[(EvmAddress, u128)]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(payouts.len() * PAYOUT_BYTES);
    for (address, amount) in payouts {
        bytes.extend_from_slice(&address.0);
        bytes.extend_from_slice(&amount.to_be_bytes());
    }
    bytes
}

fn decode_payouts(bytes: &[u8]) -> Result<Vec<(EvmAddress, u128)>, StoreError> {
    if !bytes.len().is_multiple_of(PAYOUT_BYTES) {
        return Err(internal("stored epoch payouts are not whole entries"));
    }
    Ok(bytes
        .chunks_exact(PAYOUT_BYTES)
        .map(|entry| {
            let (address, amount) = entry.split_at(20);
            let address = EvmAddress(address.try_into().expect("20 bytes"));
            (address, u128::from_be_bytes(amount.try_into().expect("16 bytes")))
        })
        .collect())
}

fn hash32(bytes: Option<Vec<u8>>) -> Result<Option<[u8; 32]>, StoreError> {
    bytes.map(|b| b.as_slice().try_into().map_err(|_| internal("a stored root is not 32 bytes"))).transpose()
}

/// One account's payout as planned before anything changes.
struct Payout {
    account: AccountId,
    address: EvmAddress,
    amount: u128,
}

/// Closes the next epoch inside the writer's batch transaction. Everything is planned and checked
/// before the first ledger operation, so a refusal changes nothing.
pub(super) fn close_epoch(
    tx: &Transaction<'_>,
    state: &mut WriterState,
    caller: AccountId,
    now_ms: u64,
    writes: &mut BatchWrites,
) -> rusqlite::Result<Result<Outcome, StoreError>> {
    if state.operator != Some(caller) {
        return Ok(Err(StoreError::Forbidden("only the node's operator closes epochs".into())));
    }
    let started = std::time::Instant::now();
    let previous: Option<(i64, i64, Vec<u8>)> = tx
        .query_row(
            "SELECT epoch, receipts_last, payouts FROM epochs ORDER BY epoch DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    // The previous epoch's leaves, sorted by address: every address ever paid, cumulative.
    let (epoch, receipts_first, previous_leaves) = match previous {
        Some((epoch, receipts_last, payouts)) => match decode_payouts(&payouts) {
            Ok(values) => (epoch as u64 + 1, receipts_last as u64 + 1, values),
            Err(error) => return Ok(Err(error)),
        },
        None => (1, 1, Vec::new()),
    };
    let receipts_last = state.next_receipt_id - 1;

    // What each account is owed: kept from earlier closes, plus the earnings of this epoch's receipts.
    let mut owed: BTreeMap<u64, u128> = BTreeMap::new();
    let add = |owed: &mut BTreeMap<u64, u128>, account: i64, amount: Units| -> Result<(), StoreError> {
        let entry = owed.entry(account as u64).or_default();
        *entry = entry.checked_add(amount.0).ok_or_else(|| internal("owed earnings overflow"))?;
        Ok(())
    };
    {
        let mut kept = tx.prepare_cached("SELECT account, amount FROM settlement_owed")?;
        let mut rows = kept.query([])?;
        while let Some(row) = rows.next()? {
            if let Err(error) = add(&mut owed, row.get(0)?, row.get(1)?) {
                return Ok(Err(error));
            }
        }
        let mut earned =
            tx.prepare_cached("SELECT account, amount FROM earnings WHERE receipt BETWEEN ?1 AND ?2")?;
        let mut rows = earned.query(params![receipts_first as i64, receipts_last as i64])?;
        while let Some(row) = rows.next()? {
            if let Err(error) = add(&mut owed, row.get(0)?, row.get(1)?) {
                return Ok(Err(error));
            }
        }
    }

    let read_owed = started.elapsed();
    // The plan: people's accounts are paid what they are owed, capped at what they hold; those
    // without a payout address keep it owed. Internal accounts (pools, protocol) stay in the ledger.
    let mut payouts = Vec::new();
    let mut still_owed = Vec::new();
    let mut settled = 0u128;
    let mut added: std::collections::HashMap<EvmAddress, u128> = Default::default();
    {
        let mut address_of = tx.prepare_cached("SELECT payout_address FROM accounts WHERE id = ?1")?;
        for (account, amount) in owed {
            let id = AccountId(account);
            let Some(entry) = state.ledger.account(id) else { continue };
            if !matches!(entry.kind, AccountKind::User | AccountKind::Operator) {
                continue;
            }
            let due = amount.min(entry.balances.available());
            if due == 0 {
                continue;
            }
            let address: Option<String> = address_of.query_row([account as i64], |row| row.get(0))?;
            match address.map(|text| EvmAddress::from_stored(&text)) {
                None => still_owed.push((account, due)),
                Some(None) => {
                    return Ok(Err(internal(format!("{id} has a malformed stored payout address"))));
                }
                Some(Some(address)) => {
                    // Sums stay below the ledger's total money, which fits in u128; checked anyway.
                    let total = added.entry(address).or_default();
                    *total = match total.checked_add(due) {
                        Some(sum) => sum,
                        None => return Ok(Err(internal("a cumulative payout overflows"))),
                    };
                    settled = match settled.checked_add(due) {
                        Some(sum) => sum,
                        None => return Ok(Err(internal("an epoch's payouts overflow"))),
                    };
                    payouts.push(Payout { account: id, address, amount: due });
                }
            }
        }
    }
    let Some(cumulative) = merge_leaves(previous_leaves, added) else {
        return Ok(Err(internal("a cumulative payout overflows")));
    };
    let Some(total) = cumulative.iter().try_fold(0u128, |sum, (_, amount)| sum.checked_add(*amount)) else {
        return Ok(Err(internal("the payout tree's total overflows")));
    };
    let planned = started.elapsed();
    let (root, cumulative) = if cumulative.is_empty() {
        (None, cumulative)
    } else {
        match PayoutTree::new(cumulative) {
            Ok(tree) => (Some(tree.root()), tree.into_values()),
            Err(error) => return Ok(Err(internal(error))),
        }
    };
    let mut receipt_leaves = Vec::new();
    {
        let mut hashes = tx.prepare_cached("SELECT id, hash FROM receipts WHERE id BETWEEN ?1 AND ?2")?;
        let mut rows = hashes.query(params![receipts_first as i64, receipts_last as i64])?;
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let hash: Vec<u8> = row.get(1)?;
            let Ok(hash) = <[u8; 32]>::try_from(hash.as_slice()) else {
                return Ok(Err(internal("a stored receipt hash is not 32 bytes")));
            };
            receipt_leaves.push(receipt_leaf(id as u64, &hash));
        }
    }
    let receipts_root = match receipt_leaves.is_empty() {
        true => None,
        false => match StandardTree::new(receipt_leaves) {
            Ok(tree) => Some(tree.root()),
            Err(error) => return Ok(Err(internal(error))),
        },
    };

    let trees = started.elapsed();
    // Apply: every payout is within its account's available balance, checked above.
    let mut transfers = Vec::with_capacity(payouts.len());
    for payout in &payouts {
        let op = LedgerOp::Transfer {
            debit: payout.account,
            credit: state.system.external,
            amount: Amount(payout.amount),
        };
        let transfer = state.ledger.apply(op, now_ms).expect("a payout is within the available balance");
        transfers.push(transfer.id);
        record_transfer(tx, &transfer, writes)?;
    }
    insert_settlements(tx, epoch, &payouts, &transfers)?;
    tx.execute("DELETE FROM settlement_owed", [])?;
    let mut keep = tx.prepare_cached("INSERT INTO settlement_owed (account, amount) VALUES (?1, ?2)")?;
    for (account, amount) in still_owed {
        keep.execute(params![account as i64, Units(amount)])?;
    }
    let record = EpochRecord {
        epoch,
        root,
        receipts_root,
        receipts_first,
        receipts_last,
        total: Amount(total),
        payees: cumulative.len() as u64,
        settled: Amount(settled),
        accounts_settled: payouts.len() as u64,
        tx_hash: None,
        publish_error: None,
        created_at_ms: now_ms,
    };
    tx.prepare_cached(
        "INSERT INTO epochs (epoch, root, receipts_root, receipts_first, receipts_last, total, payees, settled,
         accounts_settled, payouts, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        epoch as i64,
        root.as_ref().map(|r| &r[..]),
        receipts_root.as_ref().map(|r| &r[..]),
        receipts_first as i64,
        receipts_last as i64,
        Units(total),
        record.payees as i64,
        Units(settled),
        record.accounts_settled as i64,
        encode_payouts(&cumulative),
        now_ms as i64
    ])?;
    tracing::info!(
        epoch,
        payouts = record.accounts_settled,
        payees = record.payees,
        read_owed_ms = read_owed.as_millis() as u64,
        plan_ms = (planned - read_owed).as_millis() as u64,
        trees_ms = (trees - planned).as_millis() as u64,
        write_ms = (started.elapsed() - trees).as_millis() as u64,
        "epoch closed; durable with its batch"
    );
    Ok(Ok(Outcome::EpochClosed(record)))
}

/// The new leaves: the previous ones (sorted by address) with this epoch's payouts added, still
/// sorted. `None` if an amount would overflow.
fn merge_leaves(
    previous: Vec<(EvmAddress, u128)>,
    added: std::collections::HashMap<EvmAddress, u128>,
) -> Option<Vec<(EvmAddress, u128)>> {
    let mut added: Vec<(EvmAddress, u128)> = added.into_iter().collect();
    added.sort_unstable_by_key(|(address, _)| *address);
    let mut merged = Vec::with_capacity(previous.len() + added.len());
    let mut new = added.into_iter().peekable();
    for (address, amount) in previous {
        while let Some((next, _)) = new.peek()
            && *next < address
        {
            merged.push(new.next()?);
        }
        match new.peek() {
            Some((next, more)) if *next == address => {
                merged.push((address, amount.checked_add(*more)?));
                new.next();
            }
            _ => merged.push((address, amount)),
        }
    }
    merged.extend(new);
    Some(merged)
}

/// The epoch's settlement rows, many per statement.
fn insert_settlements(
    tx: &Transaction<'_>,
    epoch: u64,
    payouts: &[Payout],
    transfers: &[TransferId],
) -> rusqlite::Result<()> {
    const ROWS: usize = 200;
    let statement_for = |rows: usize| {
        let mut sql =
            String::from("INSERT INTO settlements (account, epoch, address, amount, transfer) VALUES ");
        sql.push_str(&vec!["(?,?,?,?,?)"; rows].join(","));
        sql
    };
    for (chunk, ids) in payouts.chunks(ROWS).zip(transfers.chunks(ROWS)) {
        let mut statement = tx.prepare_cached(&statement_for(chunk.len()))?;
        for (row, (payout, transfer)) in chunk.iter().zip(ids).enumerate() {
            let at = row * 5 + 1;
            statement.raw_bind_parameter(at, payout.account.0 as i64)?;
            statement.raw_bind_parameter(at + 1, epoch as i64)?;
            statement.raw_bind_parameter(at + 2, &payout.address.0[..])?;
            statement.raw_bind_parameter(at + 3, Units(payout.amount))?;
            statement.raw_bind_parameter(at + 4, transfer.0 as i64)?;
        }
        statement.raw_execute()?;
    }
    Ok(())
}

pub(super) fn record_publication(
    tx: &Transaction<'_>,
    epoch: u64,
    tx_hash: Option<&str>,
    error: Option<&str>,
) -> rusqlite::Result<Result<Outcome, StoreError>> {
    // A recorded publication is never undone by a later failure: with several nodes (or a retry
    // racing a slow success) the failure is the contract refusing the same root a second time.
    let updated = tx
        .prepare_cached(
            "UPDATE epochs SET tx_hash = COALESCE(?2, tx_hash), \
             publish_error = CASE WHEN ?2 IS NOT NULL OR tx_hash IS NOT NULL THEN NULL ELSE ?3 END \
             WHERE epoch = ?1",
        )?
        .execute(params![epoch as i64, tx_hash, error])?;
    Ok(match updated {
        0 => Err(StoreError::NotFound { what: "epoch", id: epoch.to_string() }),
        _ => Ok(Outcome::EpochPublicationRecorded(epoch)),
    })
}

const EPOCH_SELECT: &str = "SELECT epoch, root, receipts_root, receipts_first, receipts_last, total, payees, \
     settled, accounts_settled, tx_hash, publish_error, created_at_ms FROM epochs";

fn epoch_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<EpochRecord, StoreError>> {
    let root = hash32(row.get(1)?);
    let receipts_root = hash32(row.get(2)?);
    let record = |root, receipts_root| -> rusqlite::Result<EpochRecord> {
        Ok(EpochRecord {
            epoch: row.get::<_, i64>(0)? as u64,
            root,
            receipts_root,
            receipts_first: row.get::<_, i64>(3)? as u64,
            receipts_last: row.get::<_, i64>(4)? as u64,
            total: Amount(row.get::<_, Units>(5)?.0),
            payees: row.get::<_, i64>(6)? as u64,
            settled: Amount(row.get::<_, Units>(7)?.0),
            accounts_settled: row.get::<_, i64>(8)? as u64,
            tx_hash: row.get(9)?,
            publish_error: row.get(10)?,
            created_at_ms: row.get::<_, i64>(11)? as u64,
        })
    };
    Ok(match (root, receipts_root) {
        (Ok(root), Ok(receipts_root)) => Ok(record(root, receipts_root)?),
        (Err(error), _) | (_, Err(error)) => Err(error),
    })
}

pub(super) fn epoch(conn: &Connection, epoch: u64) -> Result<Option<EpochRecord>, StoreError> {
    conn.query_row(&format!("{EPOCH_SELECT} WHERE epoch = ?1"), [epoch as i64], epoch_from_row)
        .optional()
        .map_err(internal)?
        .transpose()
}

pub(super) fn epochs(conn: &Connection, limit: u32) -> Result<Vec<EpochRecord>, StoreError> {
    let mut statement =
        conn.prepare_cached(&format!("{EPOCH_SELECT} ORDER BY epoch DESC LIMIT ?1")).map_err(internal)?;
    let rows = statement.query_map([limit], epoch_from_row).map_err(internal)?;
    rows.map(|row| row.map_err(internal).and_then(|record| record)).collect()
}

pub(super) fn epoch_payouts(conn: &Connection, epoch: u64) -> Result<Vec<(EvmAddress, Amount)>, StoreError> {
    let payouts: Option<Vec<u8>> = conn
        .query_row("SELECT payouts FROM epochs WHERE epoch = ?1", [epoch as i64], |row| row.get(0))
        .optional()
        .map_err(internal)?;
    let payouts = payouts.ok_or_else(|| StoreError::NotFound { what: "epoch", id: epoch.to_string() })?;
    Ok(decode_payouts(&payouts)?.into_iter().map(|(address, amount)| (address, Amount(amount))).collect())
}

pub(super) fn receipt_epoch(conn: &Connection, id: u64) -> Result<Option<u64>, StoreError> {
    conn.query_row(
        "SELECT epoch FROM epochs WHERE receipts_first <= ?1 AND receipts_last >= ?1 ORDER BY epoch LIMIT 1",
        [id as i64],
        |row| row.get::<_, i64>(0),
    )
    .optional()
    .map(|epoch| epoch.map(|e| e as u64))
    .map_err(internal)
}

pub(super) fn receipt_hashes(
    conn: &Connection,
    first: u64,
    last: u64,
) -> Result<Vec<(u64, [u8; 32])>, StoreError> {
    let mut statement = conn
        .prepare_cached("SELECT id, hash FROM receipts WHERE id BETWEEN ?1 AND ?2 ORDER BY id")
        .map_err(internal)?;
    let rows = statement
        .query_map(params![first as i64, last as i64], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
        })
        .map_err(internal)?;
    rows.map(|row| {
        let (id, hash) = row.map_err(internal)?;
        let hash =
            hash.as_slice().try_into().map_err(|_| internal("a stored receipt hash is not 32 bytes"))?;
        Ok((id as u64, hash))
    })
    .collect()
}

pub(super) fn settlements(
    conn: &Connection,
    account: AccountId,
) -> Result<(Vec<SettlementLine>, Amount), StoreError> {
    let tx = conn.unchecked_transaction().map_err(internal)?;
    let mut statement = tx
        .prepare_cached(
            "SELECT epoch, address, amount, transfer FROM settlements WHERE account = ?1 ORDER BY epoch DESC",
        )
        .map_err(internal)?;
    let rows = statement
        .query_map([account.0 as i64], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, Vec<u8>>(1)?,
                row.get::<_, Units>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })
        .map_err(internal)?;
    let mut lines = Vec::new();
    for row in rows {
        let (epoch, address, amount, transfer) = row.map_err(internal)?;
        lines.push(SettlementLine {
            epoch: epoch as u64,
            address: EvmAddress(
                address.as_slice().try_into().map_err(|_| internal("a stored address is not 20 bytes"))?,
            ),
            amount: Amount(amount.0),
            transfer: TransferId(transfer as u64),
        });
    }
    drop(statement);
    let kept: Option<Units> = tx
        .query_row("SELECT amount FROM settlement_owed WHERE account = ?1", [account.0 as i64], |row| {
            row.get(0)
        })
        .optional()
        .map_err(internal)?;
    let last_closed: i64 = tx
        .query_row("SELECT COALESCE(MAX(receipts_last), 0) FROM epochs", [], |row| row.get(0))
        .map_err(internal)?;
    let mut owed = kept.map_or(0, |units| units.0);
    let mut since = tx
        .prepare_cached("SELECT amount FROM earnings WHERE account = ?1 AND receipt > ?2")
        .map_err(internal)?;
    let mut rows = since.query(params![account.0 as i64, last_closed]).map_err(internal)?;
    while let Some(row) = rows.next().map_err(internal)? {
        let amount: Units = row.get(0).map_err(internal)?;
        owed = owed.checked_add(amount.0).ok_or_else(|| internal("owed earnings overflow"))?;
    }
    Ok((lines, Amount(owed)))
}
