//! The writer's half of the contribution pipeline and of the validators' rules: the decisions
//! that need the order of the writer (earliest registration wins, one vote each) and the money
//! they move (bonds, stakes, slashing), all inside the batch transaction. The rules themselves are
//! in `tributary_validation`; this module applies them to stored state.
//!
//! In memory, per datanet: its owner, pool and rules; the exact-duplicate map (normalised content
//! hash → earliest contribution) and the MinHash LSH index, rebuilt on open from the hashes and
//! signatures stored with every contribution that passed the duplicate stages; and the set of
//! holds that are stakes or bonds, which no client may post or void.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tributary_core::registry::{AccountKind, ContributionStatus};
use tributary_core::rules::{AcceptancePolicy, DatanetRules, Findings};
use tributary_core::{AccountId, Amount, ContributionId, DatanetId, TransferId};
use tributary_validation::minhash::{LshIndex, signature_from_bytes, signature_to_bytes};
use tributary_validation::votes::{self, Decision};

use super::{BatchWrites, Units, WriterState, internal, record_transfer};
use crate::state::{LedgerError, LedgerOp};
use crate::store::{
    ContributionStatusCode, DisputeRecord, DisputeResolution, DisputeStatus, DisputeVoteRecord,
    NewContribution, Outcome, Screening, SlashLine, StakeRecord, StoreError, VoteRecord,
};

/// The schema of this module, appended to the store's migrations.
pub(super) const MIGRATION: &str = r#"
-- The pipeline's record on each contribution: the normalised content hash and the MinHash
-- signature (set while the contribution blocks later duplicates), what each stage found (JSON),
-- and the hold of its bond.
ALTER TABLE contributions ADD COLUMN normalized_hash BLOB;
ALTER TABLE contributions ADD COLUMN signature BLOB;
ALTER TABLE contributions ADD COLUMN findings TEXT;
ALTER TABLE contributions ADD COLUMN bond_hold INTEGER;
CREATE TABLE datanet_rules (
    datanet INTEGER PRIMARY KEY,
    rules TEXT NOT NULL
);
CREATE TABLE stakes (
    datanet INTEGER NOT NULL,
    validator INTEGER NOT NULL,
    hold INTEGER NOT NULL,
    amount BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (datanet, validator)
);
CREATE TABLE votes (
    contribution INTEGER NOT NULL,
    validator INTEGER NOT NULL,
    approve INTEGER NOT NULL,
    stake BLOB NOT NULL,
    reason TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (contribution, validator)
);
CREATE TABLE disputes (
    id INTEGER PRIMARY KEY,
    contribution INTEGER NOT NULL,
    datanet INTEGER NOT NULL,
    disputer INTEGER NOT NULL,
    evidence INTEGER,
    claim TEXT NOT NULL,
    status TEXT NOT NULL,
    resolution TEXT,
    bond_hold INTEGER,
    created_at_ms INTEGER NOT NULL,
    decided_at_ms INTEGER
);
CREATE INDEX disputes_contribution ON disputes (contribution);
CREATE TABLE dispute_votes (
    dispute INTEGER NOT NULL,
    validator INTEGER NOT NULL,
    uphold INTEGER NOT NULL,
    stake BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (dispute, validator)
);
"#;

/// Shortest reasoned claim a validator may dispute with (no evidence contribution).
pub const CLAIM_BYTES_MIN: usize = 10;
/// Longest dispute claim or vote reason.
pub const CLAIM_BYTES_MAX: usize = 4096;

#[derive(Clone, Copy, Debug)]
pub(super) struct DatanetInfo {
    pub owner: AccountId,
    pub pool: AccountId,
    pub rules: DatanetRules,
}

#[derive(Default)]
pub(super) struct Dedup {
    hashes: HashMap<[u8; 32], ContributionId>,
    lsh: LshIndex,
}

#[derive(Default)]
pub(super) struct ValidationState {
    pub datanets: HashMap<DatanetId, DatanetInfo>,
    dedup: HashMap<DatanetId, Dedup>,
    /// Pending holds that are stakes or bonds.
    pub protected: HashSet<TransferId>,
    pub next_dispute_id: u64,
}

type StepResult = rusqlite::Result<Result<Outcome, StoreError>>;

impl ValidationState {
    /// Loads datanets, their rules and dedup state, and the protected holds. Contributions stored
    /// before the pipeline existed are measured and recorded first.
    pub(super) fn load(conn: &Connection) -> Result<ValidationState, StoreError> {
        backfill(conn).map_err(internal)?;
        let mut state = ValidationState::default();
        let mut statement = conn
            .prepare(
                "SELECT d.id, d.owner, d.pool_account, r.rules FROM datanets d \
                 LEFT JOIN datanet_rules r ON r.datanet = d.id",
            )
            .map_err(internal)?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, Option<String>>(3)?,
                ))
            })
            .map_err(internal)?;
        for row in rows {
            let (id, owner, pool, rules) = row.map_err(internal)?;
            let rules = parse_rules(rules.as_deref())?;
            state.datanets.insert(
                DatanetId(id as u64),
                DatanetInfo { owner: AccountId(owner as u64), pool: AccountId(pool as u64), rules },
            );
        }
        let mut statement = conn
            .prepare(
                "SELECT id, datanet, normalized_hash, signature FROM contributions \
                 WHERE signature IS NOT NULL ORDER BY id",
            )
            .map_err(internal)?;
        let mut rows = statement.query([]).map_err(internal)?;
        while let Some(row) = rows.next().map_err(internal)? {
            let id = ContributionId(row.get::<_, i64>(0).map_err(internal)? as u64);
            let datanet = DatanetId(row.get::<_, i64>(1).map_err(internal)? as u64);
            let hash: Vec<u8> = row.get(2).map_err(internal)?;
            let signature: Vec<u8> = row.get(3).map_err(internal)?;
            let hash: [u8; 32] =
                hash.try_into().map_err(|_| internal(format!("{id}: stored hash is not 32 bytes")))?;
            let signature = signature_from_bytes(&signature)
                .ok_or_else(|| internal(format!("{id}: stored signature has the wrong length")))?;
            let dedup = state.dedup.entry(datanet).or_default();
            dedup.hashes.entry(hash).or_insert(id);
            dedup.lsh.insert(id.0, &signature);
        }
        let mut statement = conn
            .prepare("SELECT hold FROM stakes UNION SELECT bond_hold FROM contributions WHERE bond_hold IS NOT NULL \
                 UNION SELECT bond_hold FROM disputes WHERE bond_hold IS NOT NULL")
            .map_err(internal)?;
        let holds = statement
            .query_map([], |row| row.get::<_, i64>(0).map(|id| TransferId(id as u64)))
            .map_err(internal)?;
        for hold in holds {
            state.protected.insert(hold.map_err(internal)?);
        }
        state.next_dispute_id = conn
            .query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM disputes", [], |row| row.get::<_, i64>(0))
            .map_err(internal)? as u64;
        Ok(state)
    }
}

fn parse_rules(text: Option<&str>) -> Result<DatanetRules, StoreError> {
    text.map(|t| serde_json::from_str(t).map_err(internal)).transpose().map(Option::unwrap_or_default)
}

fn parse_findings(text: Option<&str>) -> Findings {
    text.and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default()
}

/// Contributions stored before the pipeline have no normalised hash: measure and record them,
/// registering every one not rejected (so existing text blocks later copies).
fn backfill(conn: &Connection) -> rusqlite::Result<()> {
    let mut statement =
        conn.prepare("SELECT id, body, status FROM contributions WHERE normalized_hash IS NULL ORDER BY id")?;
    let rows: Vec<(i64, String, String)> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<Result<_, _>>()?;
    if rows.is_empty() {
        return Ok(());
    }
    let mut update = conn.prepare(
        "UPDATE contributions SET normalized_hash = ?2, signature = ?3, findings = ?4 WHERE id = ?1",
    )?;
    for (id, body, status) in rows {
        let screening = Screening::measure(&body);
        let registered = status != ContributionStatus::Rejected.as_str();
        let mut findings = Findings::default();
        findings.record("pipeline", "skipped", Some("added before the pipeline existed".into()));
        update.execute(params![
            id,
            &screening.normalized_hash[..],
            registered.then(|| signature_to_bytes(&screening.signature)),
            serde_json::to_string(&findings).expect("findings serialize"),
        ])?;
    }
    Ok(())
}

pub(super) fn insert_rules(
    tx: &Transaction<'_>,
    datanet: DatanetId,
    rules: &DatanetRules,
) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT OR REPLACE INTO datanet_rules (datanet, rules) VALUES (?1, ?2)")?
        .execute(params![datanet.0 as i64, serde_json::to_string(rules).expect("rules serialize")])?;
    Ok(())
}

pub(super) fn set_rules(
    tx: &Transaction<'_>,
    state: &mut WriterState,
    caller: AccountId,
    datanet: DatanetId,
    rules: &DatanetRules,
) -> StepResult {
    let Some(info) = state.validation.datanets.get_mut(&datanet) else {
        return Ok(Err(StoreError::NotFound { what: "datanet", id: datanet.to_string() }));
    };
    if info.owner != caller {
        return Ok(Err(StoreError::Forbidden(format!("only the owner of {datanet} can change its rules"))));
    }
    if let Err(message) = rules.validate() {
        return Ok(Err(StoreError::Invalid(message)));
    }
    insert_rules(tx, datanet, rules)?;
    info.rules = *rules;
    Ok(Ok(Outcome::RulesSet(datanet)))
}

/// Why the duplicate stages reject, for bond forfeits.
const DUPLICATION_REASONS: [&str; 3] = ["duplicate", "near_duplicate", "copied"];

#[allow(clippy::too_many_arguments)]
pub(super) fn add_contribution(
    tx: &Transaction<'_>,
    state: &mut WriterState,
    datanet: DatanetId,
    contributor: AccountId,
    contribution: &NewContribution,
    screening: Option<&Screening>,
    now_ms: u64,
    writes: &mut BatchWrites,
) -> StepResult {
    let Some(info) = state.validation.datanets.get(&datanet).copied() else {
        return Ok(Err(StoreError::NotFound { what: "datanet", id: datanet.to_string() }));
    };
    let rules = info.rules;
    let measured;
    let screening = match screening {
        Some(screening) => screening,
        None => {
            measured = Screening::measure(&contribution.text);
            &measured
        }
    };
    // 1. Limits: a text outside them is bad input, refused with nothing stored.
    if let Err(violation) = tributary_validation::check_limits(
        contribution.text.len(),
        screening.normalized_bytes,
        screening.words,
        &rules,
    ) {
        return Ok(Err(StoreError::Invalid(violation.to_string())));
    }
    let mut findings = Findings::default();
    findings.record("limits", "passed", None);
    let dedup = state.validation.dedup.entry(datanet).or_default();
    let (status, reason) = verdict(dedup, &rules, screening, &mut findings);
    // The bond: forfeited to the pool when the duplicate stages reject, held until the dispute
    // window ends otherwise. A contributor who cannot pay it is refused, with nothing stored.
    let mut bond_hold = None;
    if !rules.bond.is_zero() {
        let forfeit = status == ContributionStatus::Rejected
            && reason.as_deref().is_some_and(|r| DUPLICATION_REASONS.contains(&r));
        let op = if forfeit {
            LedgerOp::Transfer { debit: contributor, credit: info.pool, amount: rules.bond }
        } else {
            LedgerOp::Hold {
                debit: contributor,
                credit: info.pool,
                amount: rules.bond,
                timeout_ms: rules.dispute_window_ms,
            }
        };
        match state.ledger.apply(op, now_ms) {
            Ok(transfer) => {
                record_transfer(tx, &transfer, writes)?;
                if forfeit {
                    findings.record("bond", "forfeited", Some(format!("{} to {}", rules.bond, info.pool)));
                } else {
                    findings.record(
                        "bond",
                        "held",
                        Some(format!("{} until the dispute window ends", rules.bond)),
                    );
                    bond_hold = Some(transfer.id);
                }
            }
            Err(error) => return Ok(Err(StoreError::Ledger(error))),
        }
    }
    let id = ContributionId(state.next_contribution_id);
    let registered = status != ContributionStatus::Rejected;
    tx.prepare_cached(
        "INSERT INTO contributions (id, datanet, contributor, title, body, source, content_hash, status, reason,
         created_at_ms, normalized_hash, signature, findings, bond_hold)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        id.0 as i64,
        datanet.0 as i64,
        contributor.0 as i64,
        contribution.title,
        contribution.text,
        contribution.source,
        &blake3::hash(contribution.text.as_bytes()).as_bytes()[..],
        status.as_str(),
        reason,
        now_ms as i64,
        &screening.normalized_hash[..],
        registered.then(|| signature_to_bytes(&screening.signature)),
        serde_json::to_string(&findings).expect("findings serialize"),
        bond_hold.map(|h| h.0 as i64),
    ])?;
    state.next_contribution_id += 1;
    if registered {
        let dedup = state.validation.dedup.entry(datanet).or_default();
        dedup.hashes.entry(screening.normalized_hash).or_insert(id);
        dedup.lsh.insert(id.0, &screening.signature);
    }
    if let Some(hold) = bond_hold {
        state.validation.protected.insert(hold);
    }
    Ok(Ok(Outcome::ContributionAdded { id, status: status.into(), reason }))
}

/// Stages 2–6 (see the crate `tributary_validation`), recording each in `findings`.
fn verdict(
    dedup: &Dedup,
    rules: &DatanetRules,
    screening: &Screening,
    findings: &mut Findings,
) -> (ContributionStatus, Option<String>) {
    if let Some(&earlier) = dedup.hashes.get(&screening.normalized_hash) {
        findings.duplicate_of = Some(earlier);
        findings.record("exact_duplicate", "rejected", Some(format!("same normalised text as {earlier}")));
        return (ContributionStatus::Rejected, Some("duplicate".into()));
    }
    findings.record("exact_duplicate", "passed", None);
    if let Some(found) = dedup.lsh.best_match(&screening.signature, rules.near_duplicate_bps) {
        let earlier = ContributionId(found.id);
        findings.near_duplicate_of = Some(earlier);
        findings.similarity_bps = Some(found.similarity_bps);
        findings.record(
            "near_duplicate",
            "rejected",
            Some(format!(
                "estimated Jaccard {:.2} with {earlier} (threshold {:.2})",
                f64::from(found.similarity_bps) / 1e4,
                f64::from(rules.near_duplicate_bps) / 1e4
            )),
        );
        return (ContributionStatus::Rejected, Some("near_duplicate".into()));
    }
    findings.record("near_duplicate", "passed", None);
    match &screening.containment {
        None => findings.record("containment", "skipped", Some("not measured".into())),
        Some(containment) => {
            findings.contained_bps = Some(containment.contained_bps);
            if containment.contained_bps >= rules.containment_bps && !containment.sources.is_empty() {
                findings.copied_from = containment.sources.iter().map(|&id| ContributionId(id)).collect();
                let names: Vec<String> = findings.copied_from.iter().map(ToString::to_string).collect();
                findings.record(
                    "containment",
                    "rejected",
                    Some(format!(
                        "{:.2} of the words are long spans copied from {}",
                        f64::from(containment.contained_bps) / 1e4,
                        names.join(", ")
                    )),
                );
                return (ContributionStatus::Rejected, Some("copied".into()));
            }
            findings.record("containment", "passed", None);
        }
    }
    findings.repetition_bps = Some(screening.quality.repetition_bps);
    findings.symbol_bps = Some(screening.quality.symbol_bps);
    let flags = tributary_validation::quality::flags(screening.quality, rules);
    if !flags.is_empty() {
        findings.record("quality", "flagged", Some(flags.join("; ")));
        return (ContributionStatus::Flagged, Some("quality".into()));
    }
    findings.record("quality", "passed", None);
    match rules.policy {
        AcceptancePolicy::Auto => {
            findings.record("policy", "accepted", Some("auto".into()));
            (ContributionStatus::Accepted, None)
        }
        AcceptancePolicy::Review => {
            findings.record("policy", "pending", Some("awaiting validator review".into()));
            (ContributionStatus::Pending, Some("awaiting_review".into()))
        }
    }
}

fn stake_of(
    tx: &Transaction<'_>,
    datanet: DatanetId,
    validator: AccountId,
) -> rusqlite::Result<Option<StakeRecord>> {
    tx.prepare_cached("SELECT hold, amount, created_at_ms FROM stakes WHERE datanet = ?1 AND validator = ?2")?
        .query_row(params![datanet.0 as i64, validator.0 as i64], |row| {
            Ok(StakeRecord {
                datanet,
                validator,
                hold: TransferId(row.get::<_, i64>(0)? as u64),
                amount: Amount(row.get::<_, Units>(1)?.0),
                created_at_ms: row.get::<_, i64>(2)? as u64,
            })
        })
        .optional()
}

fn stakes_of(tx: &Transaction<'_>, datanet: DatanetId) -> rusqlite::Result<HashMap<AccountId, u128>> {
    let mut statement = tx.prepare_cached("SELECT validator, amount FROM stakes WHERE datanet = ?1")?;
    let rows = statement.query_map([datanet.0 as i64], |row| {
        Ok((AccountId(row.get::<_, i64>(0)? as u64), row.get::<_, Units>(1)?.0))
    })?;
    rows.collect()
}

fn write_stake(tx: &Transaction<'_>, stake: &StakeRecord) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO stakes (datanet, validator, hold, amount, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        stake.datanet.0 as i64,
        stake.validator.0 as i64,
        stake.hold.0 as i64,
        Units(stake.amount.0),
        stake.created_at_ms as i64
    ])?;
    Ok(())
}

/// A hold that is still pending and not past its expiry (an expired hold is released at the end
/// of the batch; until then it can be neither posted nor voided).
fn live_hold(state: &WriterState, hold: TransferId, now_ms: u64) -> Option<crate::state::Hold> {
    state.ledger.hold(hold).copied().filter(|h| h.expires_at_ms > now_ms)
}

/// Applies a ledger operation the caller has already checked cannot fail.
fn apply_checked(
    tx: &Transaction<'_>,
    state: &mut WriterState,
    op: LedgerOp,
    now_ms: u64,
    writes: &mut BatchWrites,
) -> rusqlite::Result<TransferId> {
    let transfer = state.ledger.apply(op, now_ms).expect("checked before any change");
    record_transfer(tx, &transfer, writes)?;
    Ok(transfer.id)
}

pub(super) fn stake(
    tx: &Transaction<'_>,
    state: &mut WriterState,
    validator: AccountId,
    datanet: DatanetId,
    amount: Amount,
    now_ms: u64,
    writes: &mut BatchWrites,
) -> StepResult {
    let Some(info) = state.validation.datanets.get(&datanet).copied() else {
        return Ok(Err(StoreError::NotFound { what: "datanet", id: datanet.to_string() }));
    };
    if amount.is_zero() {
        return Ok(Err(StoreError::Ledger(LedgerError::ZeroAmount)));
    }
    let existing = stake_of(tx, datanet, validator)?;
    let Some(total) = existing.as_ref().map_or(Some(amount.0), |s| s.amount.0.checked_add(amount.0)) else {
        return Ok(Err(StoreError::Ledger(LedgerError::Overflow)));
    };
    let available = state.ledger.account(validator).map_or(0, |a| a.balances.available());
    if available < amount.0 {
        return Ok(Err(StoreError::Ledger(LedgerError::InsufficientFunds {
            account: validator,
            available: Amount(available),
            requested: amount,
        })));
    }
    if let Some(existing) = &existing {
        apply_checked(tx, state, LedgerOp::Void { hold: existing.hold }, now_ms, writes)?;
        state.validation.protected.remove(&existing.hold);
    }
    let hold = apply_checked(
        tx,
        state,
        LedgerOp::Lock { debit: validator, credit: info.pool, amount: Amount(total) },
        now_ms,
        writes,
    )?;
    state.validation.protected.insert(hold);
    let record = StakeRecord {
        datanet,
        validator,
        amount: Amount(total),
        hold,
        created_at_ms: existing.map_or(now_ms, |s| s.created_at_ms),
    };
    write_stake(tx, &record)?;
    Ok(Ok(Outcome::Staked(record)))
}

pub(super) fn unstake(
    tx: &Transaction<'_>,
    state: &mut WriterState,
    validator: AccountId,
    datanet: DatanetId,
    now_ms: u64,
    writes: &mut BatchWrites,
) -> StepResult {
    let Some(info) = state.validation.datanets.get(&datanet).copied() else {
        return Ok(Err(StoreError::NotFound { what: "datanet", id: datanet.to_string() }));
    };
    let Some(existing) = stake_of(tx, datanet, validator)? else {
        return Ok(Err(StoreError::NotFound { what: "stake", id: format!("{validator} in {datanet}") }));
    };
    let bound: i64 = tx
        .prepare_cached(
            "SELECT COUNT(*) FROM votes v JOIN contributions c ON c.id = v.contribution
             WHERE v.validator = ?1 AND c.datanet = ?2 AND v.approve = 1
               AND (v.created_at_ms + ?3 > ?4
                    OR EXISTS (SELECT 1 FROM disputes d WHERE d.contribution = c.id AND d.status = 'open'))",
        )?
        .query_row(
            params![validator.0 as i64, datanet.0 as i64, info.rules.dispute_window_ms as i64, now_ms as i64],
            |row| row.get(0),
        )?;
    if bound > 0 {
        return Ok(Err(StoreError::Conflict(format!(
            "the stake is bound by {bound} approval(s) still inside the dispute window or under dispute"
        ))));
    }
    apply_checked(tx, state, LedgerOp::Void { hold: existing.hold }, now_ms, writes)?;
    state.validation.protected.remove(&existing.hold);
    tx.prepare_cached("DELETE FROM stakes WHERE datanet = ?1 AND validator = ?2")?
        .execute(params![datanet.0 as i64, validator.0 as i64])?;
    Ok(Ok(Outcome::Unstaked(existing)))
}

struct ContributionRow {
    datanet: DatanetId,
    contributor: AccountId,
    status: ContributionStatus,
    findings: Findings,
    bond_hold: Option<TransferId>,
}

fn contribution_row(tx: &Transaction<'_>, id: ContributionId) -> rusqlite::Result<Option<ContributionRow>> {
    tx.prepare_cached(
        "SELECT datanet, contributor, status, findings, bond_hold FROM contributions WHERE id = ?1",
    )?
    .query_row([id.0 as i64], |row| {
        let status: String = row.get(2)?;
        let findings: Option<String> = row.get(3)?;
        Ok(ContributionRow {
            datanet: DatanetId(row.get::<_, i64>(0)? as u64),
            contributor: AccountId(row.get::<_, i64>(1)? as u64),
            status: ContributionStatus::parse(&status).unwrap_or(ContributionStatus::Rejected),
            findings: parse_findings(findings.as_deref()),
            bond_hold: row.get::<_, Option<i64>>(4)?.map(|h| TransferId(h as u64)),
        })
    })
    .optional()
}

fn update_contribution(
    tx: &Transaction<'_>,
    id: ContributionId,
    status: ContributionStatus,
    reason: Option<&str>,
    findings: &Findings,
) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE contributions SET status = ?2, reason = ?3, findings = ?4 WHERE id = ?1")?
        .execute(params![
            id.0 as i64,
            status.as_str(),
            reason,
            serde_json::to_string(findings).expect("findings serialize")
        ])?;
    tx.prepare_cached(
        "UPDATE datanets SET status_changes = status_changes + 1 \
         WHERE id = (SELECT datanet FROM contributions WHERE id = ?1)",
    )?
    .execute([id.0 as i64])?;
    Ok(())
}

pub(super) fn vote(
    tx: &Transaction<'_>,
    state: &mut WriterState,
    validator: AccountId,
    contribution: ContributionId,
    approve: bool,
    reason: &str,
    now_ms: u64,
) -> StepResult {
    if reason.len() > CLAIM_BYTES_MAX {
        return Ok(Err(StoreError::Invalid(format!("reason is longer than {CLAIM_BYTES_MAX} bytes"))));
    }
    let Some(mut row) = contribution_row(tx, contribution)? else {
        return Ok(Err(StoreError::NotFound { what: "contribution", id: contribution.to_string() }));
    };
    let Some(info) = state.validation.datanets.get(&row.datanet).copied() else {
        return Ok(Err(StoreError::NotFound { what: "datanet", id: row.datanet.to_string() }));
    };
    let stakes = stakes_of(tx, row.datanet)?;
    // A datanet nobody has staked on is reviewed by its owner (the curator), whose vote decides.
    let curator_decides = stakes.is_empty() && validator == info.owner;
    let stake = match stakes.get(&validator) {
        Some(&amount) => amount,
        None if curator_decides => 0,
        None => {
            return Ok(Err(StoreError::Forbidden(format!(
                "only validators of {} (accounts with stake in it) can vote on its contributions",
                row.datanet
            ))));
        }
    };
    if row.contributor == validator {
        return Ok(Err(StoreError::Forbidden("validators cannot vote on their own contributions".into())));
    }
    if !matches!(row.status, ContributionStatus::Pending | ContributionStatus::Flagged) {
        return Ok(Err(StoreError::Conflict(format!(
            "{contribution} is {}; only pending or flagged contributions are reviewed",
            row.status.as_str()
        ))));
    }
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO votes (contribution, validator, approve, stake, reason, created_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            contribution.0 as i64,
            validator.0 as i64,
            approve,
            Units(stake),
            reason,
            now_ms as i64
        ])?;
    if inserted == 0 {
        return Ok(Err(StoreError::Conflict(format!("{validator} has already voted on {contribution}"))));
    }
    // Tally with the stakes as they are now (a validator who left counts for nothing).
    let total: u128 = stakes.values().sum();
    let (mut approvals, mut for_stake, mut against_stake) = (0u32, 0u128, 0u128);
    let mut statement = tx.prepare_cached("SELECT validator, approve FROM votes WHERE contribution = ?1")?;
    let votes = statement.query_map([contribution.0 as i64], |row| {
        Ok((AccountId(row.get::<_, i64>(0)? as u64), row.get::<_, bool>(1)?))
    })?;
    for vote in votes {
        let (voter, approve) = vote?;
        let stake = stakes.get(&voter).copied().unwrap_or(0);
        if stake == 0 {
            continue;
        }
        if approve {
            approvals += 1;
            for_stake += stake;
        } else {
            against_stake += stake;
        }
    }
    let decision = if curator_decides {
        if approve { Decision::For } else { Decision::Against }
    } else {
        votes::review_decision(approvals, for_stake, against_stake, total, info.rules.approvals_required)
    };
    let summary = format!(
        "{approvals} approval(s), approving stake {for_stake}, rejecting stake {against_stake}, of {total} staked"
    );
    let status = match decision {
        Decision::Open => row.status,
        Decision::For => {
            row.findings.record("review", "accepted", Some(summary));
            update_contribution(tx, contribution, ContributionStatus::Accepted, None, &row.findings)?;
            ContributionStatus::Accepted
        }
        Decision::Against => {
            row.findings.record("review", "rejected", Some(summary));
            update_contribution(
                tx,
                contribution,
                ContributionStatus::Rejected,
                Some("rejected_by_validators"),
                &row.findings,
            )?;
            ContributionStatus::Rejected
        }
    };
    Ok(Ok(Outcome::Voted {
        contribution,
        datanet: row.datanet,
        status: ContributionStatusCode::from(status),
    }))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn open_dispute(
    tx: &Transaction<'_>,
    state: &mut WriterState,
    disputer: AccountId,
    contribution: ContributionId,
    evidence: Option<ContributionId>,
    claim: &str,
    now_ms: u64,
    writes: &mut BatchWrites,
) -> StepResult {
    if claim.len() > CLAIM_BYTES_MAX {
        return Ok(Err(StoreError::Invalid(format!("claim is longer than {CLAIM_BYTES_MAX} bytes"))));
    }
    let Some(row) = contribution_row(tx, contribution)? else {
        return Ok(Err(StoreError::NotFound { what: "contribution", id: contribution.to_string() }));
    };
    if row.status != ContributionStatus::Accepted {
        return Ok(Err(StoreError::Conflict(format!(
            "{contribution} is {}; only accepted contributions (the ones that earn) are disputed",
            row.status.as_str()
        ))));
    }
    // Whoever would be slashed cannot collect the disputer's share of it.
    if row.contributor == disputer {
        return Ok(Err(StoreError::Forbidden("contributors cannot dispute their own contributions".into())));
    }
    let approved: i64 = tx
        .prepare_cached(
            "SELECT COUNT(*) FROM votes WHERE contribution = ?1 AND validator = ?2 AND approve = 1",
        )?
        .query_row(params![contribution.0 as i64, disputer.0 as i64], |r| r.get(0))?;
    if approved > 0 {
        return Ok(Err(StoreError::Forbidden(
            "validators who approved a contribution cannot dispute it".into(),
        )));
    }
    match evidence {
        Some(earlier) => {
            if earlier.0 >= contribution.0 {
                return Ok(Err(StoreError::Invalid(format!(
                    "evidence {earlier} is not earlier than {contribution}"
                ))));
            }
            if contribution_row(tx, earlier)?.is_none() {
                return Ok(Err(StoreError::NotFound { what: "contribution", id: earlier.to_string() }));
            }
        }
        None => {
            if stake_of(tx, row.datanet, disputer)?.is_none() || claim.trim().len() < CLAIM_BYTES_MIN {
                return Ok(Err(StoreError::Invalid(format!(
                    "a dispute needs evidence (the id of an earlier contribution this one copies), or a \
                     validator of {}'s reasoned claim of at least {CLAIM_BYTES_MIN} bytes",
                    row.datanet
                ))));
            }
        }
    }
    let open: i64 = tx
        .prepare_cached("SELECT COUNT(*) FROM disputes WHERE contribution = ?1 AND status = 'open'")?
        .query_row([contribution.0 as i64], |r| r.get(0))?;
    if open > 0 {
        return Ok(Err(StoreError::Conflict(format!("{contribution} already has an open dispute"))));
    }
    // The disputer locks the datanet's bond too: a dismissed dispute forfeits it to the pool, so a
    // frivolous dispute costs what a frivolous contribution does.
    let Some(info) = state.validation.datanets.get(&row.datanet).copied() else {
        return Ok(Err(StoreError::NotFound { what: "datanet", id: row.datanet.to_string() }));
    };
    let dispute_bond = info.rules.bond;
    let available = state.ledger.account(disputer).map_or(0, |a| a.balances.available());
    if available < dispute_bond.0 {
        return Ok(Err(StoreError::Ledger(LedgerError::InsufficientFunds {
            account: disputer,
            available: Amount(available),
            requested: dispute_bond,
        })));
    }
    // A bond still held is locked until the dispute is decided, so its window cannot release it.
    if let Some(hold) = row.bond_hold
        && let Some(pending) = live_hold(state, hold, now_ms)
        && pending.expires_at_ms != crate::state::LOCK_EXPIRES_AT_MS
    {
        apply_checked(tx, state, LedgerOp::Void { hold }, now_ms, writes)?;
        let lock = apply_checked(
            tx,
            state,
            LedgerOp::Lock { debit: pending.debit, credit: pending.credit, amount: Amount(pending.amount) },
            now_ms,
            writes,
        )?;
        state.validation.protected.remove(&hold);
        state.validation.protected.insert(lock);
        tx.prepare_cached("UPDATE contributions SET bond_hold = ?2 WHERE id = ?1")?
            .execute(params![contribution.0 as i64, lock.0 as i64])?;
    }
    let bond_hold = if dispute_bond.is_zero() {
        None
    } else {
        let lock = apply_checked(
            tx,
            state,
            LedgerOp::Lock { debit: disputer, credit: info.pool, amount: dispute_bond },
            now_ms,
            writes,
        )?;
        state.validation.protected.insert(lock);
        Some(lock)
    };
    let id = state.validation.next_dispute_id;
    tx.prepare_cached(
        "INSERT INTO disputes (id, contribution, datanet, disputer, evidence, claim, status, bond_hold, created_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'open', ?7, ?8)",
    )?
    .execute(params![
        id as i64,
        contribution.0 as i64,
        row.datanet.0 as i64,
        disputer.0 as i64,
        evidence.map(|e| e.0 as i64),
        claim,
        bond_hold.map(|h| h.0 as i64),
        now_ms as i64
    ])?;
    state.validation.next_dispute_id += 1;
    Ok(Ok(Outcome::DisputeOpened(id)))
}

pub(super) fn dispute_vote(
    tx: &Transaction<'_>,
    state: &mut WriterState,
    validator: AccountId,
    dispute: u64,
    uphold: bool,
    now_ms: u64,
    writes: &mut BatchWrites,
) -> StepResult {
    let found: Option<(i64, i64, i64, String, Option<i64>)> = tx
        .prepare_cached(
            "SELECT contribution, datanet, disputer, status, bond_hold FROM disputes WHERE id = ?1",
        )?
        .query_row([dispute as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .optional()?;
    let Some((contribution, datanet, disputer, status, dispute_bond)) = found else {
        return Ok(Err(StoreError::NotFound { what: "dispute", id: format!("dsp_{dispute}") }));
    };
    let (contribution, datanet, disputer) =
        (ContributionId(contribution as u64), DatanetId(datanet as u64), AccountId(disputer as u64));
    if status != DisputeStatus::Open.as_str() {
        return Ok(Err(StoreError::Conflict(format!("dispute dsp_{dispute} is already {status}"))));
    }
    let Some(info) = state.validation.datanets.get(&datanet).copied() else {
        return Ok(Err(StoreError::NotFound { what: "datanet", id: datanet.to_string() }));
    };
    let stakes = stakes_of(tx, datanet)?;
    let total: u128 = stakes.values().sum();
    let stake = stakes.get(&validator).copied().unwrap_or(0);
    let owner_decides = total == 0 && validator == info.owner;
    if stake == 0 && !owner_decides {
        return Ok(Err(StoreError::Forbidden(format!(
            "only validators of {datanet} can vote on its disputes (its owner decides while it has no stake)"
        ))));
    }
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO dispute_votes (dispute, validator, uphold, stake, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![dispute as i64, validator.0 as i64, uphold, Units(stake), now_ms as i64])?;
    if inserted == 0 {
        return Ok(Err(StoreError::Conflict(format!(
            "{validator} has already voted on dispute dsp_{dispute}"
        ))));
    }
    let decision = if owner_decides {
        if uphold { Decision::For } else { Decision::Against }
    } else {
        let (mut for_stake, mut against_stake) = (0u128, 0u128);
        let mut statement =
            tx.prepare_cached("SELECT validator, uphold FROM dispute_votes WHERE dispute = ?1")?;
        let votes = statement.query_map([dispute as i64], |row| {
            Ok((AccountId(row.get::<_, i64>(0)? as u64), row.get::<_, bool>(1)?))
        })?;
        for vote in votes {
            let (voter, uphold) = vote?;
            let stake = stakes.get(&voter).copied().unwrap_or(0);
            if uphold { for_stake += stake } else { against_stake += stake }
        }
        votes::dispute_decision(for_stake, against_stake, total)
    };
    let status = match decision {
        Decision::Open => DisputeStatus::Open,
        Decision::Against => {
            release_bond(tx, state, contribution, now_ms, writes)?;
            // The disputer's bond is forfeited to the pool.
            let mut resolution = DisputeResolution::default();
            if let Some(hold) = dispute_bond.map(|h| TransferId(h as u64))
                && let Some(pending) = live_hold(state, hold, now_ms)
            {
                apply_checked(tx, state, LedgerOp::Post { hold, amount: None }, now_ms, writes)?;
                state.validation.protected.remove(&hold);
                let amount = Amount(pending.amount);
                resolution.slashed.push(SlashLine { account: disputer, role: "dispute_bond".into(), amount });
                resolution.to_pool = amount;
            }
            tx.prepare_cached(
                "UPDATE disputes SET status = 'dismissed', decided_at_ms = ?2, resolution = ?3 WHERE id = ?1",
            )?
            .execute(params![
                dispute as i64,
                now_ms as i64,
                serde_json::to_string(&resolution).expect("resolutions serialize")
            ])?;
            DisputeStatus::Dismissed
        }
        Decision::For => {
            // The disputer's bond comes back.
            if let Some(hold) = dispute_bond.map(|h| TransferId(h as u64))
                && live_hold(state, hold, now_ms).is_some()
            {
                apply_checked(tx, state, LedgerOp::Void { hold }, now_ms, writes)?;
                state.validation.protected.remove(&hold);
            }
            let resolution =
                uphold_dispute(tx, state, dispute, contribution, datanet, disputer, info, now_ms, writes)?;
            tx.prepare_cached(
                "UPDATE disputes SET status = 'upheld', decided_at_ms = ?2, resolution = ?3 WHERE id = ?1",
            )?
            .execute(params![
                dispute as i64,
                now_ms as i64,
                serde_json::to_string(&resolution).expect("resolutions serialize")
            ])?;
            DisputeStatus::Upheld
        }
    };
    Ok(Ok(Outcome::DisputeVoted { dispute, datanet, status }))
}

/// A dismissed dispute releases the contribution's locked bond.
fn release_bond(
    tx: &Transaction<'_>,
    state: &mut WriterState,
    contribution: ContributionId,
    now_ms: u64,
    writes: &mut BatchWrites,
) -> rusqlite::Result<()> {
    if let Some(row) = contribution_row(tx, contribution)?
        && let Some(hold) = row.bond_hold
        && live_hold(state, hold, now_ms).is_some()
    {
        apply_checked(tx, state, LedgerOp::Void { hold }, now_ms, writes)?;
        state.validation.protected.remove(&hold);
    }
    Ok(())
}

/// Upholds a dispute: the contribution is rejected, its bond is taken whole and each approving
/// validator loses `VALIDATOR_SLASH_BPS` of their stake, all posted to the datanet's pool, from
/// which the disputer's part is paid. Every step is a ledger transfer.
#[allow(clippy::too_many_arguments)]
fn uphold_dispute(
    tx: &Transaction<'_>,
    state: &mut WriterState,
    dispute: u64,
    contribution: ContributionId,
    datanet: DatanetId,
    disputer: AccountId,
    info: DatanetInfo,
    now_ms: u64,
    writes: &mut BatchWrites,
) -> rusqlite::Result<DisputeResolution> {
    let mut row = contribution_row(tx, contribution)?.expect("a dispute's contribution exists");
    let mut resolution = DisputeResolution::default();
    if let Some(hold) = row.bond_hold
        && let Some(pending) = live_hold(state, hold, now_ms)
    {
        apply_checked(tx, state, LedgerOp::Post { hold, amount: None }, now_ms, writes)?;
        state.validation.protected.remove(&hold);
        resolution.slashed.push(SlashLine {
            account: pending.debit,
            role: "bond".into(),
            amount: Amount(pending.amount),
        });
    }
    let approvers: Vec<AccountId> = tx
        .prepare_cached(
            "SELECT validator FROM votes WHERE contribution = ?1 AND approve = 1 ORDER BY validator",
        )?
        .query_map([contribution.0 as i64], |r| r.get::<_, i64>(0).map(|v| AccountId(v as u64)))?
        .collect::<rusqlite::Result<_>>()?;
    for approver in approvers {
        let Some(stake) = stake_of(tx, datanet, approver)? else { continue };
        let slashed = votes::validator_slash(stake.amount.0);
        if slashed == 0 {
            continue;
        }
        // Post the slashed part of the lock (which releases the rest), then lock the rest again.
        apply_checked(
            tx,
            state,
            LedgerOp::Post { hold: stake.hold, amount: Some(Amount(slashed)) },
            now_ms,
            writes,
        )?;
        state.validation.protected.remove(&stake.hold);
        let remaining = stake.amount.0 - slashed;
        if remaining > 0 {
            let hold = apply_checked(
                tx,
                state,
                LedgerOp::Lock { debit: approver, credit: info.pool, amount: Amount(remaining) },
                now_ms,
                writes,
            )?;
            state.validation.protected.insert(hold);
            write_stake(tx, &StakeRecord { amount: Amount(remaining), hold, ..stake })?;
        } else {
            tx.prepare_cached("DELETE FROM stakes WHERE datanet = ?1 AND validator = ?2")?
                .execute(params![datanet.0 as i64, approver.0 as i64])?;
        }
        resolution.slashed.push(SlashLine {
            account: approver,
            role: "stake".into(),
            amount: Amount(slashed),
        });
    }
    let total: u128 = resolution.slashed.iter().map(|l| l.amount.0).sum();
    let (to_disputer, to_pool) = votes::split_slashed(Amount(total));
    let disputer_receives = matches!(
        state.ledger.account(disputer).map(|a| a.kind),
        Some(AccountKind::User | AccountKind::Operator)
    );
    if !to_disputer.is_zero() && disputer_receives {
        apply_checked(
            tx,
            state,
            LedgerOp::Transfer { debit: info.pool, credit: disputer, amount: to_disputer },
            now_ms,
            writes,
        )?;
        resolution.to_disputer = to_disputer;
        resolution.to_pool = to_pool;
    } else {
        resolution.to_pool = Amount(total);
    }
    row.findings.record(
        "dispute",
        "rejected",
        Some(format!(
            "dispute dsp_{dispute} upheld; {total} slashed, {} to the disputer",
            resolution.to_disputer
        )),
    );
    update_contribution(
        tx,
        contribution,
        ContributionStatus::Rejected,
        Some("dispute_upheld"),
        &row.findings,
    )?;
    Ok(resolution)
}

// Reads, on the store's read connections.

pub(super) fn read_findings(text: Option<&str>) -> Findings {
    parse_findings(text)
}

pub(super) fn read_rules(text: Option<&str>) -> DatanetRules {
    parse_rules(text).unwrap_or_default()
}

pub(super) fn read_stakes(conn: &Connection, datanet: DatanetId) -> rusqlite::Result<Vec<StakeRecord>> {
    let mut statement = conn.prepare_cached(
        "SELECT validator, hold, amount, created_at_ms FROM stakes WHERE datanet = ?1 ORDER BY validator",
    )?;
    let rows = statement.query_map([datanet.0 as i64], |row| {
        Ok(StakeRecord {
            datanet,
            validator: AccountId(row.get::<_, i64>(0)? as u64),
            hold: TransferId(row.get::<_, i64>(1)? as u64),
            amount: Amount(row.get::<_, Units>(2)?.0),
            created_at_ms: row.get::<_, i64>(3)? as u64,
        })
    })?;
    rows.collect()
}

pub(super) fn read_votes(
    conn: &Connection,
    contribution: ContributionId,
) -> rusqlite::Result<Vec<VoteRecord>> {
    let mut statement = conn.prepare_cached(
        "SELECT validator, approve, stake, reason, created_at_ms FROM votes WHERE contribution = ?1 ORDER BY created_at_ms, validator",
    )?;
    let rows = statement.query_map([contribution.0 as i64], |row| {
        Ok(VoteRecord {
            validator: AccountId(row.get::<_, i64>(0)? as u64),
            approve: row.get(1)?,
            stake: Amount(row.get::<_, Units>(2)?.0),
            reason: row.get(3)?,
            created_at_ms: row.get::<_, i64>(4)? as u64,
        })
    })?;
    rows.collect()
}

pub(super) fn read_dispute(conn: &Connection, id: u64) -> Result<Option<DisputeRecord>, StoreError> {
    let found = conn
        .query_row(
            "SELECT contribution, datanet, disputer, evidence, claim, status, resolution, created_at_ms, decided_at_ms
             FROM disputes WHERE id = ?1",
            [id as i64],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, Option<i64>>(8)?,
                ))
            },
        )
        .optional()
        .map_err(internal)?;
    let Some((contribution, datanet, disputer, evidence, claim, status, resolution, created, decided)) =
        found
    else {
        return Ok(None);
    };
    let mut statement = conn
        .prepare_cached(
            "SELECT validator, uphold, stake, created_at_ms FROM dispute_votes WHERE dispute = ?1 ORDER BY created_at_ms, validator",
        )
        .map_err(internal)?;
    let votes = statement
        .query_map([id as i64], |row| {
            Ok(DisputeVoteRecord {
                validator: AccountId(row.get::<_, i64>(0)? as u64),
                uphold: row.get(1)?,
                stake: Amount(row.get::<_, Units>(2)?.0),
                created_at_ms: row.get::<_, i64>(3)? as u64,
            })
        })
        .map_err(internal)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(internal)?;
    Ok(Some(DisputeRecord {
        id,
        contribution: ContributionId(contribution as u64),
        datanet: DatanetId(datanet as u64),
        disputer: AccountId(disputer as u64),
        evidence: evidence.map(|e| ContributionId(e as u64)),
        claim,
        status: DisputeStatus::parse(&status)
            .ok_or_else(|| internal(format!("unknown dispute status {status:?}")))?,
        resolution: resolution.map(|r| serde_json::from_str(&r).map_err(internal)).transpose()?,
        votes,
        created_at_ms: created as u64,
        decided_at_ms: decided.map(|d| d as u64),
    }))
}
