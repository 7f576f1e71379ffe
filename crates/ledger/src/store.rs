//! The storage trait: everything the server asks of a backend, in domain terms. Backends (the
//! embedded SQLite store now, PostgreSQL later) implement it; callers never see SQL.
//!
//! Writes are [`Command`]s. A backend applies them atomically, each with its own result, and
//! acknowledges a command only once it is durable. A command may carry an idempotency key: the
//! first successful outcome is stored with the key in the same transaction, and a retry with the
//! same key and the same request returns that outcome without a second effect. A failed command
//! stores nothing, so it can be retried.

use tributary_core::registry::{
    Account, AccountKind, Contribution, ContributionStatus, Datanet, Model, ModelSpec,
};
use tributary_core::rules::DatanetRules;
use tributary_core::{AccountId, Amount, ContributionId, DatanetId, EvmAddress, ModelId, TransferId};
use tributary_validation::containment::Containment;
use tributary_validation::minhash::Signature;
use tributary_validation::quality::Quality;

use crate::state::{LedgerError, Totals, Transfer};

/// Most commands applied in one durable batch (one fsync). TigerBeetle's batch size.
pub const BATCH_COMMANDS_MAX: usize = 8190;
/// Longest idempotency key accepted.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 128;

/// A write to the store. Serializable: the PostgreSQL backend logs commands for every node to replay.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum Command {
    CreateAccount {
        kind: AccountKind,
        name: String,
        payout_address: Option<EvmAddress>,
        api_key_hash: [u8; 32],
    },
    SetPayoutAddress {
        account: AccountId,
        payout_address: Option<EvmAddress>,
    },
    CreateDatanet {
        owner: AccountId,
        name: String,
        description: String,
        license: String,
        rules: DatanetRules,
    },
    /// Replaces a datanet's validation rules; only its owner may.
    SetDatanetRules {
        caller: AccountId,
        datanet: DatanetId,
        rules: DatanetRules,
    },
    /// Adds a contribution through the pipeline (limits, exact and near duplicates, containment,
    /// quality, policy; see `tributary_validation`), holding the datanet's bond. `screening` carries
    /// what can be measured outside the writer (hashes, signature, quality, containment over the
    /// index); without it the writer measures everything but containment.
    AddContribution {
        datanet: DatanetId,
        contributor: AccountId,
        contribution: NewContribution,
        screening: Option<Box<Screening>>,
    },
    /// Adds `amount` to the validator's stake in a datanet: a lock (a hold that never expires) on
    /// the validator's own balance, credited to the datanet's pool if it is ever slashed.
    Stake {
        validator: AccountId,
        datanet: DatanetId,
        amount: Amount,
    },
    /// Releases the validator's whole stake, unless approvals still inside the dispute window or
    /// under dispute bind it.
    Unstake {
        validator: AccountId,
        datanet: DatanetId,
    },
    /// A validator's review of a pending or flagged contribution; one per validator.
    Vote {
        validator: AccountId,
        contribution: ContributionId,
        approve: bool,
        reason: String,
    },
    /// Disputes an accepted contribution with evidence: an earlier contribution it copies, or (from
    /// a validator of its datanet) a reasoned claim.
    OpenDispute {
        disputer: AccountId,
        contribution: ContributionId,
        evidence: Option<ContributionId>,
        claim: String,
    },
    /// A validator's vote on an open dispute; one per validator. A datanet without stake lets its
    /// owner decide.
    DisputeVote {
        validator: AccountId,
        dispute: u64,
        uphold: bool,
    },
    CreateModel {
        owner: AccountId,
        spec: ModelSpec,
    },
    /// Money from outside the ledger: debits the external account.
    Deposit {
        account: AccountId,
        amount: Amount,
    },
    /// Moves money from `from` to `to`; `from` is always the authenticated caller.
    Transfer {
        from: AccountId,
        to: AccountId,
        amount: Amount,
    },
    /// Holds money of `from` payable to `to` until posted, voided or expired.
    Hold {
        from: AccountId,
        to: AccountId,
        amount: Amount,
        timeout_ms: u64,
    },
    /// Posts a hold; only the account the hold debits may post it.
    PostHold {
        caller: AccountId,
        hold: TransferId,
        amount: Option<Amount>,
    },
    /// Voids a hold; either party of the hold may void it.
    VoidHold {
        caller: AccountId,
        hold: TransferId,
    },
    /// Settles a paid inference atomically: posts `fee` of the caller's hold on the clearing
    /// account (releasing the rest), pays every split line out of clearing, and appends the signed
    /// receipt to the node's receipt chain. Nothing happens unless all of it can.
    SettleInference {
        hold: TransferId,
        fee: Amount,
        payments: Vec<Payment>,
        receipt: NewReceipt,
    },
    /// Closes the current settlement epoch; only the operator may. See [`EpochRecord`].
    CloseEpoch {
        caller: AccountId,
    },
    /// Records the chain transaction that published an epoch's root, or why publishing failed.
    RecordEpochPublication {
        epoch: u64,
        tx_hash: Option<String>,
        error: Option<String>,
    },
}

/// One split line of a settlement: who is paid, in which role, how much.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Payment {
    pub account: AccountId,
    /// owner, data, data_pool, validators or protocol.
    pub role: String,
    pub amount: Amount,
}

/// What an account earned from paid inferences.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Earnings {
    /// Total per role, by role name.
    pub by_role: Vec<(String, Amount)>,
    pub total: Amount,
    /// Paid inferences that paid this account anything.
    pub inferences: u64,
    /// The requested page of lines, newest first.
    pub lines: Vec<EarningLine>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EarningLine {
    pub receipt: u64,
    pub role: String,
    pub amount: Amount,
    pub created_at_ms: u64,
}

/// A closed settlement epoch.
///
/// Closing an epoch pays out, for every person's account, what it earned from paid inferences
/// since it was last paid out, capped at what it still holds (earnings spent inside the ledger are
/// not paid twice): a transfer from the account to the external account, because the money leaves
/// the ledger for the chain. Amounts are credited to the account's payout address at that moment;
/// accounts without one keep their earnings owed until they set one. The epoch's payout tree holds
/// every address ever paid with its cumulative amount, so amounts never decrease from one epoch to
/// the next and a payee can skip epochs and claim once.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    pub epoch: u64,
    /// Root of the payout tree (OpenZeppelin standard, leaves `(address, uint256)`); `None` while
    /// no address has ever been paid.
    pub root: Option<[u8; 32]>,
    /// Root of the tree of this epoch's receipts (leaves `(uint256 id, bytes32 hash)`); `None`
    /// when the epoch has no receipts.
    pub receipts_root: Option<[u8; 32]>,
    /// The receipts this epoch commits: ids `receipts_first..=receipts_last` (none when first > last).
    pub receipts_first: u64,
    pub receipts_last: u64,
    /// Sum of the cumulative amounts in the payout tree.
    pub total: Amount,
    /// Leaves of the payout tree: distinct payout addresses.
    pub payees: u64,
    /// Paid out by this epoch.
    pub settled: Amount,
    pub accounts_settled: u64,
    /// The transaction that published `root` on chain, once it has.
    pub tx_hash: Option<String>,
    pub publish_error: Option<String>,
    pub created_at_ms: u64,
}

/// One account's payout in one epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettlementLine {
    pub epoch: u64,
    pub address: EvmAddress,
    pub amount: Amount,
    pub transfer: TransferId,
}

/// The parts of a receipt the caller provides; the store adds its id, time, the previous
/// receipt's hash, its own hash and the node's signature.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct NewReceipt {
    pub caller: AccountId,
    pub model: ModelId,
    /// The receipt's content, canonical JSON, signed as given.
    pub body: String,
}

/// A stored receipt. `hash = BLAKE3("tributary-receipt-v1" ‖ id as u64 LE ‖ created_at_ms as u64 LE
/// ‖ prev_hash ‖ body)`, and `signature` is the node's ed25519 signature of `hash`.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct ReceiptRecord {
    pub id: u64,
    pub caller: AccountId,
    pub model: ModelId,
    pub body: String,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
    #[serde(with = "signature_bytes")]
    pub signature: [u8; 64],
    pub created_at_ms: u64,
    /// Transfers the settlement made: the posted hold, then one per split line.
    pub transfers: Vec<TransferId>,
}

mod signature_bytes {
    pub fn serialize<S: serde::Serializer>(bytes: &[u8; 64], serializer: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&bytes[..], serializer)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<[u8; 64], D::Error> {
        let bytes: Vec<u8> = serde::Deserialize::deserialize(deserializer)?;
        bytes.try_into().map_err(|_| serde::de::Error::custom("a signature is 64 bytes"))
    }
}

/// A MinHash signature as its words (serde handles arrays of at most 32 elements).
mod signature_words {
    use tributary_validation::minhash::Signature;

    pub fn serialize<S: serde::Serializer>(words: &Signature, serializer: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&words[..], serializer)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Signature, D::Error> {
        let words: Vec<u32> = serde::Deserialize::deserialize(deserializer)?;
        let length = words.len();
        words.try_into().map_err(|_| serde::de::Error::custom(format!("a signature has {length} words")))
    }
}

/// The receipt hash (see [`ReceiptRecord`]).
pub fn receipt_hash(id: u64, created_at_ms: u64, prev_hash: &[u8; 32], body: &str) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"tributary-receipt-v1");
    hasher.update(&id.to_le_bytes());
    hasher.update(&created_at_ms.to_le_bytes());
    hasher.update(prev_hash);
    hasher.update(body.as_bytes());
    *hasher.finalize().as_bytes()
}

/// Signs receipt hashes with the node's key. The store signs inside its writer, where the receipt
/// chain's order is decided.
pub trait ReceiptSigner: Send + Sync + 'static {
    fn sign(&self, hash: &[u8; 32]) -> [u8; 64];
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct NewContribution {
    pub title: String,
    pub text: String,
    pub source: Option<String>,
}

/// What the pipeline measures of a text before the writer decides.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Screening {
    pub normalized_hash: [u8; 32],
    /// Bytes and words of the normal form.
    pub normalized_bytes: usize,
    pub words: usize,
    #[serde(with = "signature_words")]
    pub signature: Signature,
    pub quality: Quality,
    /// Long spans copied from other contributors' accepted text; `None` when not measured.
    pub containment: Option<Containment>,
}

impl Screening {
    /// Everything but containment (which needs the datanet's index).
    pub fn measure(text: &str) -> Screening {
        let normalized = tributary_validation::normalize(text);
        let shingles = tributary_validation::minhash::shingle_hashes(&normalized);
        Screening {
            normalized_hash: tributary_validation::content_hash(&normalized),
            normalized_bytes: normalized.len(),
            words: tributary_validation::text::words(&normalized).count(),
            signature: tributary_validation::minhash::signature_of_shingles(&shingles),
            quality: tributary_validation::quality::measure(&normalized, &shingles),
            containment: None,
        }
    }
}

/// A validator's stake in a datanet.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StakeRecord {
    pub datanet: DatanetId,
    pub validator: AccountId,
    pub amount: Amount,
    /// The lock holding it.
    pub hold: TransferId,
    pub created_at_ms: u64,
}

/// A validator's review vote on a contribution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoteRecord {
    pub validator: AccountId,
    pub approve: bool,
    /// The validator's stake when they voted.
    pub stake: Amount,
    pub reason: String,
    pub created_at_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisputeStatus {
    Open,
    Upheld,
    Dismissed,
}

impl DisputeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DisputeStatus::Open => "open",
            DisputeStatus::Upheld => "upheld",
            DisputeStatus::Dismissed => "dismissed",
        }
    }

    pub fn parse(text: &str) -> Option<DisputeStatus> {
        [DisputeStatus::Open, DisputeStatus::Upheld, DisputeStatus::Dismissed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One amount taken when a dispute was upheld.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SlashLine {
    pub account: AccountId,
    /// bond or stake.
    pub role: String,
    pub amount: Amount,
}

/// What an upheld dispute moved.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct DisputeResolution {
    pub slashed: Vec<SlashLine>,
    pub to_disputer: Amount,
    pub to_pool: Amount,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisputeVoteRecord {
    pub validator: AccountId,
    pub uphold: bool,
    pub stake: Amount,
    pub created_at_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisputeRecord {
    pub id: u64,
    pub contribution: ContributionId,
    pub datanet: DatanetId,
    pub disputer: AccountId,
    pub evidence: Option<ContributionId>,
    pub claim: String,
    pub status: DisputeStatus,
    pub resolution: Option<DisputeResolution>,
    pub votes: Vec<DisputeVoteRecord>,
    pub created_at_ms: u64,
    pub decided_at_ms: Option<u64>,
}

/// Each request's own result, in order; the outer error means nothing in the batch was applied.
pub type BatchResult = Result<Vec<Result<Outcome, StoreError>>, StoreError>;

/// A command with its optional idempotency key.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Request {
    pub command: Command,
    pub idempotency: Option<IdempotencyKey>,
}

impl From<Command> for Request {
    fn from(command: Command) -> Request {
        Request { command, idempotency: None }
    }
}

/// A client-chosen key, scoped to the calling account, with a hash of the request it was first
/// used for (so that reusing a key for a different request is detected).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct IdempotencyKey {
    pub scope: AccountId,
    pub key: String,
    pub request_hash: [u8; 32],
}

/// The result of a successful command.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    AccountCreated(AccountId),
    PayoutAddressSet(AccountId),
    DatanetCreated(DatanetId),
    ContributionAdded {
        id: ContributionId,
        status: ContributionStatusCode,
        reason: Option<String>,
    },
    ModelCreated(ModelId),
    Transfer(Transfer),
    InferenceSettled(ReceiptRecord),
    EpochClosed(EpochRecord),
    EpochPublicationRecorded(u64),
    RulesSet(DatanetId),
    Staked(StakeRecord),
    Unstaked(StakeRecord),
    /// A review vote; `status` is the contribution's status after it.
    Voted {
        contribution: ContributionId,
        datanet: DatanetId,
        status: ContributionStatusCode,
    },
    DisputeOpened(u64),
    /// A dispute vote; `status` is the dispute's status after it.
    DisputeVoted {
        dispute: u64,
        datanet: DatanetId,
        status: DisputeStatus,
    },
}

/// A [`ContributionStatus`] that can be stored with an outcome.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContributionStatusCode {
    Accepted,
    Pending,
    Flagged,
    Rejected,
}

impl From<ContributionStatus> for ContributionStatusCode {
    fn from(status: ContributionStatus) -> Self {
        match status {
            ContributionStatus::Accepted => Self::Accepted,
            ContributionStatus::Pending => Self::Pending,
            ContributionStatus::Flagged => Self::Flagged,
            ContributionStatus::Rejected => Self::Rejected,
        }
    }
}

impl From<ContributionStatusCode> for ContributionStatus {
    fn from(status: ContributionStatusCode) -> Self {
        match status {
            ContributionStatusCode::Accepted => Self::Accepted,
            ContributionStatusCode::Pending => Self::Pending,
            ContributionStatusCode::Flagged => Self::Flagged,
            ContributionStatusCode::Rejected => Self::Rejected,
        }
    }
}

/// What the index needs of a contribution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexableContribution {
    pub id: ContributionId,
    pub contributor: AccountId,
    pub text: String,
}

/// The node's internal accounts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SystemAccounts {
    pub external: AccountId,
    pub protocol: AccountId,
    pub validators_pool: AccountId,
    /// Holds for paid inferences are credited here until settled.
    pub clearing: AccountId,
}

/// Ledger-wide figures for operators and auditors.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LedgerSummary {
    pub totals: Totals,
    /// The external account's debits minus credits: money deposited and still in the ledger.
    pub external_debit_excess: u128,
    pub accounts: u64,
    pub transfers: u64,
    pub holds_pending: u64,
}

/// Counters of the write path since the store opened.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct StoreStats {
    pub batches: u64,
    pub commands: u64,
    pub commit_micros_total: u64,
    /// The last batch of the shared log this node has applied (PostgreSQL backend only).
    pub log_applied: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("{what} {id} does not exist")]
    NotFound { what: &'static str, id: String },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    /// The request is valid but conflicts with the current state (already voted, not open, …).
    #[error("{0}")]
    Conflict(String),
    #[error("idempotency key {0:?} was already used for a different request")]
    IdempotencyConflict(String),
    #[error("the node is overloaded; retry shortly")]
    Overloaded,
    #[error("the store is shutting down")]
    ShuttingDown,
    #[error("storage failure: {0}")]
    Internal(String),
}

/// Everything the node asks of its storage.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies one request durably.
    async fn execute(&self, request: Request) -> Result<Outcome, StoreError> {
        let mut results = self.execute_batch(vec![request]).await?;
        results.pop().ok_or_else(|| StoreError::Internal("empty batch result".into()))?
    }

    /// Applies one request and answers as soon as it is applied, before it is durable: only for
    /// operations whose loss in a crash harms no one. An inference hold is one: if it is lost, the
    /// settlement that would have followed it never happens either, and no money moved. The
    /// default is the durable [`Store::execute`].
    async fn execute_provisional(&self, request: Request) -> Result<Outcome, StoreError> {
        self.execute(request).await
    }

    /// Applies requests in order, each independently, and acknowledges them together once durable.
    /// The outer error means nothing was applied.
    async fn execute_batch(
        &self,
        requests: Vec<Request>,
    ) -> Result<Vec<Result<Outcome, StoreError>>, StoreError>;

    fn system_accounts(&self) -> SystemAccounts;

    /// Counters of the write path, for metrics.
    fn stats(&self) -> StoreStats;

    async fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError>;
    /// The account an API key (by its hash) belongs to.
    async fn account_by_key_hash(
        &self,
        key_hash: [u8; 32],
    ) -> Result<Option<(AccountId, AccountKind)>, StoreError>;
    async fn operator(&self) -> Result<Option<AccountId>, StoreError>;
    async fn datanet(&self, id: DatanetId) -> Result<Option<Datanet>, StoreError>;
    async fn datanets(&self) -> Result<Vec<Datanet>, StoreError>;
    /// Just the ids of all datanets, in order: cheap enough to poll (no contribution counts).
    async fn datanet_ids(&self) -> Result<Vec<DatanetId>, StoreError>;
    async fn contribution(&self, id: ContributionId) -> Result<Option<Contribution>, StoreError>;
    async fn model(&self, id: ModelId) -> Result<Option<Model>, StoreError>;
    /// Accepted contributions of a datanet with ids above `after`, in id order, at most `limit`:
    /// what the index is built from.
    async fn accepted_contributions(
        &self,
        datanet: DatanetId,
        after: u64,
        limit: u32,
    ) -> Result<Vec<IndexableContribution>, StoreError>;
    /// How many accepted contributions of a datanet have ids above `after`.
    async fn count_accepted_after(&self, datanet: DatanetId, after: u64) -> Result<u64, StoreError>;
    /// How many times a stored contribution of the datanet changed status (review decisions,
    /// upheld disputes): an index that only appends compares it to notice the others.
    async fn status_changes(&self, datanet: DatanetId) -> Result<u64, StoreError>;
    async fn models(&self) -> Result<Vec<Model>, StoreError>;
    /// The validators' stakes in a datanet, by validator id.
    async fn stakes(&self, datanet: DatanetId) -> Result<Vec<StakeRecord>, StoreError>;
    /// The review votes on a contribution, in the order cast.
    async fn contribution_votes(&self, contribution: ContributionId) -> Result<Vec<VoteRecord>, StoreError>;
    async fn dispute(&self, id: u64) -> Result<Option<DisputeRecord>, StoreError>;
    async fn transfer(&self, id: TransferId) -> Result<Option<Transfer>, StoreError>;
    async fn receipt(&self, id: u64) -> Result<Option<ReceiptRecord>, StoreError>;
    /// An account's earnings from paid inferences: totals, and lines for receipts below `before`
    /// (all when `None`), newest first, at most `limit`.
    async fn earnings(
        &self,
        account: AccountId,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Earnings, StoreError>;
    async fn epoch(&self, epoch: u64) -> Result<Option<EpochRecord>, StoreError>;
    /// Closed epochs, newest first, at most `limit`.
    async fn epochs(&self, limit: u32) -> Result<Vec<EpochRecord>, StoreError>;
    /// The payout tree's values of an epoch: every address with its cumulative amount, by address.
    async fn epoch_payouts(&self, epoch: u64) -> Result<Vec<(EvmAddress, Amount)>, StoreError>;
    /// The epoch whose receipts tree holds receipt `id`, if one has closed since.
    async fn receipt_epoch(&self, id: u64) -> Result<Option<u64>, StoreError>;
    /// Ids and hashes of receipts `first..=last`.
    async fn receipt_hashes(&self, first: u64, last: u64) -> Result<Vec<(u64, [u8; 32])>, StoreError>;
    /// An account's payouts, newest epoch first, and what it is still owed (earned since its last
    /// payout, or kept for want of a payout address).
    async fn settlements(&self, account: AccountId) -> Result<(Vec<SettlementLine>, Amount), StoreError>;
    /// Transfers that debit or credit `account`, newest first.
    async fn account_transfers(&self, account: AccountId, limit: u32) -> Result<Vec<Transfer>, StoreError>;
    /// Recomputes the summary from persisted state, replaying the whole history and checking every
    /// invariant on the way (an audit, not a cheap call).
    async fn ledger_summary(&self) -> Result<LedgerSummary, StoreError>;
    /// Stops accepting writes, finishes what was accepted, and waits until it is durable.
    async fn shutdown(&self);
}
