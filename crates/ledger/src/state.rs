//! The money state machine, in memory and free of IO: accounts with four balance counters,
//! immutable transfers, and holds (two-phase transfers) that are posted, voided or expire.
//!
//! It follows TigerBeetle's model. Every transfer moves one amount from a debit account to a credit
//! account, so the sum of all debits always equals the sum of all credits. An account may never
//! have more debits (posted plus pending) than posted credits, except the `External` account, whose
//! debit excess is the money that has entered the ledger. `apply` validates an operation completely
//! before it changes anything, so a failed operation leaves no trace.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use tributary_core::registry::AccountKind;
use tributary_core::{AccountId, Amount, TransferId};

/// Account ids are assigned by the node, so no adversary picks the keys and SipHash's flood
/// resistance buys nothing; a multiplicative hash is several times cheaper on the hot path.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A hash map keyed by node-assigned ids.
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// The four counters of an account. Available balance = credits_posted - debits_posted - debits_pending.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Balances {
    pub debits_posted: u128,
    pub credits_posted: u128,
    pub debits_pending: u128,
    pub credits_pending: u128,
}

impl Balances {
    /// What the account can spend now; zero for an account in debit excess.
    pub fn available(&self) -> u128 {
        self.credits_posted.saturating_sub(self.debits_posted).saturating_sub(self.debits_pending)
    }

    fn within_limits(&self, kind: AccountKind) -> bool {
        kind.may_go_negative()
            || self.debits_posted.checked_add(self.debits_pending).is_some_and(|d| d <= self.credits_posted)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LedgerAccount {
    pub kind: AccountKind,
    pub balances: Balances,
}

/// How a transfer moved money.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferKind {
    /// Posted at once.
    Posted,
    /// A hold: pending until posted, voided or expired.
    Pending,
    /// Posts (part of) a hold; the rest of the hold is released.
    PostPending,
    /// Releases a hold on request.
    VoidPending,
    /// Releases a hold whose timeout passed.
    ExpirePending,
}

impl TransferKind {
    /// The kind's name in the API and in PostgreSQL's `transfers` table.
    pub fn as_str(self) -> &'static str {
        match self {
            TransferKind::Posted => "posted",
            TransferKind::Pending => "pending",
            TransferKind::PostPending => "post_pending",
            TransferKind::VoidPending => "void_pending",
            TransferKind::ExpirePending => "expire_pending",
        }
    }

    pub fn as_code(self) -> i64 {
        match self {
            TransferKind::Posted => 1,
            TransferKind::Pending => 2,
            TransferKind::PostPending => 3,
            TransferKind::VoidPending => 4,
            TransferKind::ExpirePending => 5,
        }
    }

    pub fn from_code(code: i64) -> Option<TransferKind> {
        Some(match code {
            1 => TransferKind::Posted,
            2 => TransferKind::Pending,
            3 => TransferKind::PostPending,
            4 => TransferKind::VoidPending,
            5 => TransferKind::ExpirePending,
            _ => return None,
        })
    }
}

/// An immutable record of one movement of money (or of the resolution of a hold).
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct Transfer {
    pub id: TransferId,
    pub kind: TransferKind,
    pub debit: AccountId,
    pub credit: AccountId,
    /// Posted amount for `Posted` and `PostPending`, held amount for `Pending`, released amount for
    /// `VoidPending` and `ExpirePending`.
    pub amount: Amount,
    /// The hold this transfer resolves.
    pub pending_id: Option<TransferId>,
    /// When a hold expires unless posted or voided.
    pub expires_at_ms: Option<u64>,
    pub created_at_ms: u64,
}

/// A hold that is still pending.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Hold {
    pub id: TransferId,
    pub debit: AccountId,
    pub credit: AccountId,
    pub amount: u128,
    pub expires_at_ms: u64,
}

/// One operation on the ledger.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LedgerOp {
    Transfer {
        debit: AccountId,
        credit: AccountId,
        amount: Amount,
    },
    Hold {
        debit: AccountId,
        credit: AccountId,
        amount: Amount,
        timeout_ms: u64,
    },
    /// Posts `amount` of the hold (all of it when `None`) and releases the rest.
    Post {
        hold: TransferId,
        amount: Option<Amount>,
    },
    Void {
        hold: TransferId,
    },
    /// A hold that never expires ([`LOCK_EXPIRES_AT_MS`]): validator stakes and disputed bonds.
    /// Only the node places locks (no command takes one from a client), and only the node's own
    /// rules post or void them.
    Lock {
        debit: AccountId,
        credit: AccountId,
        amount: Amount,
    },
}

/// The expiry recorded for a lock: far beyond any clock, and still an SQLite integer.
pub const LOCK_EXPIRES_AT_MS: u64 = i64::MAX as u64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("account {0} does not exist")]
    AccountNotFound(AccountId),
    #[error("debit and credit account are the same ({0})")]
    SameAccount(AccountId),
    #[error("amount must be greater than zero")]
    ZeroAmount,
    #[error("account {account} has {available} available, {requested} requested")]
    InsufficientFunds { account: AccountId, available: Amount, requested: Amount },
    #[error("the amount would overflow an account's 128-bit counter")]
    Overflow,
    #[error("hold {0} does not exist or is no longer pending")]
    HoldNotPending(TransferId),
    #[error("hold {hold} holds {held}, cannot post {requested}")]
    PostExceedsHold { hold: TransferId, held: Amount, requested: Amount },
    #[error("hold {0} has expired")]
    HoldExpired(TransferId),
    #[error("hold timeout must be between 1 and {max} ms")]
    BadTimeout { max: u64 },
}

/// The longest a hold may stay pending: one day.
pub const HOLD_TIMEOUT_MS_MAX: u64 = 24 * 60 * 60 * 1000;

/// A broken invariant: a bug, never a user error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ledger invariant violated: {0}")]
pub struct InvariantViolation(pub String);

/// Totals over all accounts; debits equal credits in a consistent ledger. Each account's counters
/// fit in u128, but their sum over many accounts may not (money circulates, and posted counters
/// only grow), so totals are summed in 256 bits.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Totals {
    pub debits_posted: Sum256,
    pub credits_posted: Sum256,
    pub debits_pending: Sum256,
    pub credits_pending: Sum256,
}

/// A 256-bit unsigned sum of u128 amounts, as four little-endian 64-bit limbs.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, PartialOrd, Ord)]
pub struct Sum256([u64; 4]);

impl Sum256 {
    pub fn add(&mut self, amount: u128) {
        let mut carry = amount;
        for limb in &mut self.0 {
            if carry == 0 {
                break;
            }
            let sum = u128::from(*limb) + (carry & u128::from(u64::MAX));
            *limb = sum as u64;
            carry = (carry >> 64) + (sum >> 64);
        }
        assert_eq!(carry, 0, "a sum of u128 amounts over fewer than 2^128 accounts fits in 256 bits");
    }

    pub fn from_u128(amount: u128) -> Sum256 {
        let mut sum = Sum256::default();
        sum.add(amount);
        sum
    }
}

impl std::fmt::Display for Sum256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Repeated division by 10^19 (the largest power of ten below 2^64), most significant limb first.
        const CHUNK: u128 = 10_000_000_000_000_000_000;
        let mut limbs = self.0;
        let mut chunks = Vec::new();
        loop {
            let mut remainder: u128 = 0;
            for limb in limbs.iter_mut().rev() {
                let current = (remainder << 64) | u128::from(*limb);
                *limb = (current / CHUNK) as u64;
                remainder = current % CHUNK;
            }
            chunks.push(remainder as u64);
            if limbs.iter().all(|&limb| limb == 0) {
                break;
            }
        }
        let mut chunks = chunks.into_iter().rev();
        write!(f, "{}", chunks.next().unwrap_or(0))?;
        for chunk in chunks {
            write!(f, "{chunk:019}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Default)]
pub struct LedgerState {
    accounts: IdMap<AccountId, LedgerAccount>,
    holds: BTreeMap<TransferId, Hold>,
    expiry: BTreeSet<(u64, TransferId)>,
    next_transfer_id: u64,
}

impl LedgerState {
    /// An empty ledger whose first transfer gets `next_transfer_id`.
    pub fn new(next_transfer_id: u64) -> LedgerState {
        LedgerState { next_transfer_id, ..LedgerState::default() }
    }

    pub fn add_account(&mut self, id: AccountId, kind: AccountKind, balances: Balances) {
        let previous = self.accounts.insert(id, LedgerAccount { kind, balances });
        assert!(previous.is_none(), "account {id} added twice");
    }

    pub fn restore_hold(&mut self, hold: Hold) {
        self.expiry.insert((hold.expires_at_ms, hold.id));
        self.holds.insert(hold.id, hold);
    }

    pub fn account(&self, id: AccountId) -> Option<&LedgerAccount> {
        self.accounts.get(&id)
    }

    pub fn accounts(&self) -> impl Iterator<Item = (&AccountId, &LedgerAccount)> {
        self.accounts.iter()
    }

    pub fn hold(&self, id: TransferId) -> Option<&Hold> {
        self.holds.get(&id)
    }

    pub fn holds(&self) -> impl Iterator<Item = &Hold> {
        self.holds.values()
    }

    pub fn next_transfer_id(&self) -> u64 {
        self.next_transfer_id
    }

    /// Validates `op` against the current state and, only if it is valid, applies it.
    pub fn apply(&mut self, op: LedgerOp, now_ms: u64) -> Result<Transfer, LedgerError> {
        match op {
            LedgerOp::Transfer { debit, credit, amount } => {
                let (debit_after, credit_after) = self.check_move(debit, credit, amount)?;
                let (debit_after, credit_after) = (
                    Balances { debits_posted: debit_after.debits_posted + amount.0, ..debit_after },
                    Balances { credits_posted: credit_after.credits_posted + amount.0, ..credit_after },
                );
                Ok(self.commit(debit, debit_after, credit, credit_after, |id| Transfer {
                    id,
                    kind: TransferKind::Posted,
                    debit,
                    credit,
                    amount,
                    pending_id: None,
                    expires_at_ms: None,
                    created_at_ms: now_ms,
                }))
            }
            LedgerOp::Hold { debit, credit, amount, timeout_ms } => {
                if timeout_ms == 0 || timeout_ms > HOLD_TIMEOUT_MS_MAX {
                    return Err(LedgerError::BadTimeout { max: HOLD_TIMEOUT_MS_MAX });
                }
                self.place_hold(debit, credit, amount, now_ms.saturating_add(timeout_ms), now_ms)
            }
            LedgerOp::Lock { debit, credit, amount } => {
                self.place_hold(debit, credit, amount, LOCK_EXPIRES_AT_MS, now_ms)
            }
            LedgerOp::Post { hold, amount } => {
                let pending = self.live_hold(hold, now_ms)?;
                let posted = amount.map_or(pending.amount, |a| a.0);
                if posted > pending.amount {
                    return Err(LedgerError::PostExceedsHold {
                        hold,
                        held: Amount(pending.amount),
                        requested: Amount(posted),
                    });
                }
                let transfer = self.resolve(pending, TransferKind::PostPending, posted, now_ms);
                Ok(transfer)
            }
            LedgerOp::Void { hold } => {
                let pending = self.live_hold(hold, now_ms)?;
                Ok(self.resolve(pending, TransferKind::VoidPending, pending.amount, now_ms))
            }
        }
    }

    fn place_hold(
        &mut self,
        debit: AccountId,
        credit: AccountId,
        amount: Amount,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> Result<Transfer, LedgerError> {
        let (debit_after, credit_after) = self.check_move(debit, credit, amount)?;
        let (debit_after, credit_after) = (
            Balances { debits_pending: debit_after.debits_pending + amount.0, ..debit_after },
            Balances { credits_pending: credit_after.credits_pending + amount.0, ..credit_after },
        );
        let transfer = self.commit(debit, debit_after, credit, credit_after, |id| Transfer {
            id,
            kind: TransferKind::Pending,
            debit,
            credit,
            amount,
            pending_id: None,
            expires_at_ms: Some(expires_at_ms),
            created_at_ms: now_ms,
        });
        self.restore_hold(Hold { id: transfer.id, debit, credit, amount: amount.0, expires_at_ms });
        Ok(transfer)
    }

    /// Releases every hold whose timeout has passed at `now_ms`.
    pub fn expire(&mut self, now_ms: u64) -> Vec<Transfer> {
        let due: Vec<TransferId> =
            self.expiry.iter().take_while(|(at, _)| *at <= now_ms).map(|&(_, id)| id).collect();
        due.into_iter()
            .map(|id| {
                let hold = *self.holds.get(&id).expect("expiry index matches holds");
                self.resolve(hold, TransferKind::ExpirePending, hold.amount, now_ms)
            })
            .collect()
    }

    /// The earliest time a hold expires, if any is pending.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.expiry.first().map(|&(at, _)| at)
    }

    pub fn totals(&self) -> Totals {
        let mut totals = Totals::default();
        for account in self.accounts.values() {
            let b = account.balances;
            totals.debits_posted.add(b.debits_posted);
            totals.credits_posted.add(b.credits_posted);
            totals.debits_pending.add(b.debits_pending);
            totals.credits_pending.add(b.credits_pending);
        }
        totals
    }

    /// Checks every invariant over the whole state: debits equal credits, no account beyond its
    /// limit, and pending counters equal to the holds that are pending.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        let totals = self.totals();
        if totals.debits_posted != totals.credits_posted {
            return Err(InvariantViolation(format!(
                "posted debits {} != posted credits {}",
                totals.debits_posted, totals.credits_posted
            )));
        }
        if totals.debits_pending != totals.credits_pending {
            return Err(InvariantViolation(format!(
                "pending debits {} != pending credits {}",
                totals.debits_pending, totals.credits_pending
            )));
        }
        let mut pending_debits: HashMap<AccountId, u128> = HashMap::new();
        let mut pending_credits: HashMap<AccountId, u128> = HashMap::new();
        for hold in self.holds.values() {
            *pending_debits.entry(hold.debit).or_default() += hold.amount;
            *pending_credits.entry(hold.credit).or_default() += hold.amount;
        }
        for (id, account) in &self.accounts {
            if !account.balances.within_limits(account.kind) {
                return Err(InvariantViolation(format!(
                    "account {id} is beyond its limit: {:?}",
                    account.balances
                )));
            }
            let debits = pending_debits.get(id).copied().unwrap_or(0);
            let credits = pending_credits.get(id).copied().unwrap_or(0);
            if account.balances.debits_pending != debits || account.balances.credits_pending != credits {
                return Err(InvariantViolation(format!(
                    "account {id} pending counters disagree with its holds"
                )));
            }
        }
        if self.expiry.len() != self.holds.len() {
            return Err(InvariantViolation("hold expiry index out of step".into()));
        }
        Ok(())
    }

    /// Checks the accounts a batch touched, each within its limit: cheap enough for every batch.
    /// The whole-ledger [`LedgerState::check_invariants`] runs on every load, and after every batch
    /// in debug builds.
    pub fn check_accounts(&self, ids: &[AccountId]) -> Result<(), InvariantViolation> {
        for id in ids {
            let account =
                self.accounts.get(id).ok_or_else(|| InvariantViolation(format!("account {id} vanished")))?;
            if !account.balances.within_limits(account.kind) {
                return Err(InvariantViolation(format!(
                    "account {id} is beyond its limit: {:?}",
                    account.balances
                )));
            }
        }
        Ok(())
    }

    /// Checks the common preconditions of a movement and returns the two accounts' balances,
    /// unchanged, for the caller to adjust.
    fn check_move(
        &self,
        debit: AccountId,
        credit: AccountId,
        amount: Amount,
    ) -> Result<(Balances, Balances), LedgerError> {
        if amount.is_zero() {
            return Err(LedgerError::ZeroAmount);
        }
        if debit == credit {
            return Err(LedgerError::SameAccount(debit));
        }
        let debit_account = self.accounts.get(&debit).ok_or(LedgerError::AccountNotFound(debit))?;
        let credit_account = self.accounts.get(&credit).ok_or(LedgerError::AccountNotFound(credit))?;
        let d = debit_account.balances;
        let c = credit_account.balances;
        // Every counter that this movement could raise must stay inside u128.
        let fits =
            d.debits_posted.checked_add(d.debits_pending).and_then(|x| x.checked_add(amount.0)).is_some()
                && c.credits_posted
                    .checked_add(c.credits_pending)
                    .and_then(|x| x.checked_add(amount.0))
                    .is_some();
        if !fits {
            return Err(LedgerError::Overflow);
        }
        if !debit_account.kind.may_go_negative() && d.available() < amount.0 {
            return Err(LedgerError::InsufficientFunds {
                account: debit,
                available: Amount(d.available()),
                requested: amount,
            });
        }
        Ok((d, c))
    }

    fn live_hold(&self, id: TransferId, now_ms: u64) -> Result<Hold, LedgerError> {
        let hold = *self.holds.get(&id).ok_or(LedgerError::HoldNotPending(id))?;
        if hold.expires_at_ms <= now_ms {
            return Err(LedgerError::HoldExpired(id));
        }
        Ok(hold)
    }

    /// Posts `posted` of a pending hold and releases the rest (voids post nothing).
    fn resolve(&mut self, hold: Hold, kind: TransferKind, amount: u128, now_ms: u64) -> Transfer {
        let posted = if kind == TransferKind::PostPending { amount } else { 0 };
        let debit = self.accounts[&hold.debit].balances;
        let credit = self.accounts[&hold.credit].balances;
        let debit_after = Balances {
            debits_pending: debit.debits_pending - hold.amount,
            debits_posted: debit.debits_posted + posted,
            ..debit
        };
        let credit_after = Balances {
            credits_pending: credit.credits_pending - hold.amount,
            credits_posted: credit.credits_posted + posted,
            ..credit
        };
        self.holds.remove(&hold.id);
        self.expiry.remove(&(hold.expires_at_ms, hold.id));
        self.commit(hold.debit, debit_after, hold.credit, credit_after, |id| Transfer {
            id,
            kind,
            debit: hold.debit,
            credit: hold.credit,
            amount: Amount(amount),
            pending_id: Some(hold.id),
            expires_at_ms: None,
            created_at_ms: now_ms,
        })
    }

    fn commit(
        &mut self,
        debit: AccountId,
        debit_after: Balances,
        credit: AccountId,
        credit_after: Balances,
        make: impl FnOnce(TransferId) -> Transfer,
    ) -> Transfer {
        let debit_kind = self.accounts[&debit].kind;
        assert!(debit_after.within_limits(debit_kind), "debit account {debit} stays within its limit");
        self.accounts.get_mut(&debit).expect("checked").balances = debit_after;
        self.accounts.get_mut(&credit).expect("checked").balances = credit_after;
        let id = TransferId(self.next_transfer_id);
        self.next_transfer_id += 1;
        make(id)
    }
}

/// Rebuilds balances and pending holds from the complete transfer history, for checking persisted
/// state against it ("pair assertions"): what was stored must equal what the history implies.
pub fn replay<'a>(
    accounts: impl IntoIterator<Item = (AccountId, AccountKind)>,
    transfers: impl IntoIterator<Item = &'a Transfer>,
) -> Result<LedgerState, InvariantViolation> {
    let mut replay = Replay::new(accounts);
    for transfer in transfers {
        replay.apply(transfer)?;
    }
    Ok(replay.finish())
}

/// An incremental [`replay`]: transfers are applied one at a time, in id order, and the balances
/// can be inspected at any point (to compare with a snapshot taken at that point).
#[derive(Debug)]
pub struct Replay {
    state: LedgerState,
    held: HashMap<TransferId, Hold>,
}

impl Replay {
    pub fn new(accounts: impl IntoIterator<Item = (AccountId, AccountKind)>) -> Replay {
        let mut state = LedgerState::new(1);
        for (id, kind) in accounts {
            state.add_account(id, kind, Balances::default());
        }
        Replay { state, held: HashMap::new() }
    }

    pub fn balances(&self, id: AccountId) -> Option<Balances> {
        self.state.account(id).map(|account| account.balances)
    }

    pub fn apply(&mut self, transfer: &Transfer) -> Result<(), InvariantViolation> {
        let bad = |what: &str| InvariantViolation(format!("transfer {}: {what}", transfer.id));
        let amount = transfer.amount.0;
        let state = &mut self.state;
        match transfer.kind {
            TransferKind::Posted => {
                bump(state, transfer.debit, |b| b.debits_posted += amount).ok_or_else(|| bad("no debit"))?;
                bump(state, transfer.credit, |b| b.credits_posted += amount)
                    .ok_or_else(|| bad("no credit"))?;
            }
            TransferKind::Pending => {
                let expires_at_ms = transfer.expires_at_ms.ok_or_else(|| bad("hold without expiry"))?;
                bump(state, transfer.debit, |b| b.debits_pending += amount).ok_or_else(|| bad("no debit"))?;
                bump(state, transfer.credit, |b| b.credits_pending += amount)
                    .ok_or_else(|| bad("no credit"))?;
                let hold = Hold {
                    id: transfer.id,
                    debit: transfer.debit,
                    credit: transfer.credit,
                    amount,
                    expires_at_ms,
                };
                self.held.insert(transfer.id, hold);
            }
            TransferKind::PostPending | TransferKind::VoidPending | TransferKind::ExpirePending => {
                let hold_id = transfer.pending_id.ok_or_else(|| bad("resolution without hold"))?;
                let hold =
                    self.held.remove(&hold_id).ok_or_else(|| bad("resolves a hold that is not pending"))?;
                let posted = if transfer.kind == TransferKind::PostPending { amount } else { 0 };
                if posted > hold.amount {
                    return Err(bad("posts more than held"));
                }
                bump(state, hold.debit, |b| {
                    b.debits_pending -= hold.amount;
                    b.debits_posted += posted;
                })
                .ok_or_else(|| bad("no debit"))?;
                bump(state, hold.credit, |b| {
                    b.credits_pending -= hold.amount;
                    b.credits_posted += posted;
                })
                .ok_or_else(|| bad("no credit"))?;
            }
        }
        state.next_transfer_id = state.next_transfer_id.max(transfer.id.0 + 1);
        Ok(())
    }

    pub fn finish(mut self) -> LedgerState {
        for hold in self.held.into_values() {
            self.state.restore_hold(hold);
        }
        self.state
    }
}

fn bump(state: &mut LedgerState, id: AccountId, change: impl FnOnce(&mut Balances)) -> Option<()> {
    change(&mut state.accounts.get_mut(&id)?.balances);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(amounts: &[u128], expected: &str) {
        let mut sum = Sum256::default();
        for &amount in amounts {
            sum.add(amount);
        }
        assert_eq!(sum.to_string(), expected);
    }

    #[test]
    fn sums_beyond_u128_print_exactly() {
        check(&[], "0");
        check(&[42], "42");
        check(&[10_000_000_000_000_000_000], "10000000000000000000");
        check(&[u128::MAX], "340282366920938463463374607431768211455");
        check(&[u128::MAX, 1], "340282366920938463463374607431768211456");
        check(&[u128::MAX, u128::MAX], "680564733841876926926749214863536422910");
        check(&[u128::MAX; 3], "1020847100762815390390123822295304634365");
    }
}
