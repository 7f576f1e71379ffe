//! Wire types: the JSON the API speaks. They are converted to and from domain types by hand so
//! that a change in the domain never changes the API by accident. Amounts and ids are strings.

use serde::{Deserialize, Serialize};
use tributary_core::registry::{Account, Backend, Contribution, Datanet, Model};
use tributary_core::{AccountId, Amount, DatanetId, TransferId};
use tributary_ledger::state::Transfer;
use utoipa::ToSchema;

#[derive(Serialize, Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct CreateAccountRequest {
    pub name: String,
    /// An EVM address (checksummed or all one case) that will receive on-chain payouts.
    #[serde(default)]
    pub payout_address: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct CreateAccountResponse {
    #[schema(value_type = String, example = "acct_4")]
    pub id: AccountId,
    /// Shown once; the node keeps only its hash.
    pub api_key: String,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct AccountResponse {
    #[schema(value_type = String)]
    pub id: AccountId,
    pub name: String,
    pub kind: String,
    pub payout_address: Option<String>,
    /// Spendable now, in smallest units.
    #[schema(value_type = String, example = "1000")]
    pub balance: Amount,
    /// Held for payments not yet settled, in smallest units.
    #[schema(value_type = String, example = "0")]
    pub held: Amount,
    pub created_at_ms: u64,
}

impl From<Account> for AccountResponse {
    fn from(account: Account) -> Self {
        AccountResponse {
            id: account.id,
            name: account.name,
            kind: account.kind.as_str().to_owned(),
            payout_address: account.payout_address.map(|a| a.to_string()),
            balance: account.balance,
            held: account.held,
            created_at_ms: account.created_at_ms,
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct UpdateAccountRequest {
    /// The new payout address, or null to remove it.
    pub payout_address: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct DepositRequest {
    #[schema(value_type = String)]
    pub account: AccountId,
    #[schema(value_type = String, example = "1000")]
    pub amount: Amount,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    #[schema(value_type = String)]
    pub to: AccountId,
    #[schema(value_type = String, example = "250")]
    pub amount: Amount,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    #[schema(value_type = String)]
    pub to: AccountId,
    #[schema(value_type = String, example = "250")]
    pub amount: Amount,
    /// How long the hold lasts unless posted or voided; at most one day.
    pub timeout_ms: u64,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct PostHoldRequest {
    /// How much of the hold to pay; all of it when absent. The rest is released.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub amount: Option<Amount>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct TransferResponse {
    #[schema(value_type = String, example = "xfr_17")]
    pub id: TransferId,
    /// posted, pending (a hold), post_pending, void_pending or expire_pending.
    pub kind: String,
    #[schema(value_type = String)]
    pub from: AccountId,
    #[schema(value_type = String)]
    pub to: AccountId,
    #[schema(value_type = String)]
    pub amount: Amount,
    /// The hold this transfer posts or releases.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub hold: Option<TransferId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
    pub created_at_ms: u64,
}

impl From<Transfer> for TransferResponse {
    fn from(transfer: Transfer) -> Self {
        let kind = transfer.kind.as_str();
        TransferResponse {
            id: transfer.id,
            kind: kind.to_owned(),
            from: transfer.debit,
            to: transfer.credit,
            amount: transfer.amount,
            hold: transfer.pending_id,
            expires_at_ms: transfer.expires_at_ms,
            created_at_ms: transfer.created_at_ms,
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct TransferList {
    pub data: Vec<TransferResponse>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct CreateDatanetRequest {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The licence contributors grant, e.g. an SPDX identifier such as "CC-BY-4.0".
    pub license: String,
    /// Validation rules; defaults when absent.
    #[serde(default)]
    pub rules: Option<RulesWire>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct CreatedResponse {
    /// The new object's id.
    pub id: String,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct DatanetResponse {
    #[schema(value_type = String)]
    pub id: DatanetId,
    #[schema(value_type = String)]
    pub owner: AccountId,
    pub name: String,
    pub description: String,
    pub license: String,
    /// The account that collects data shares no single contribution earned.
    #[schema(value_type = String)]
    pub pool_account: AccountId,
    pub contributions: u64,
    pub created_at_ms: u64,
    /// Content hash of the datanet's index segments: the version named in attributions.
    pub index_version: String,
    /// Accepted contributions in the index.
    pub contributions_indexed: u64,
    /// Accepted contributions not in the index yet (they are added within moments).
    pub contributions_pending: u64,
    pub rules: RulesWire,
}

impl DatanetResponse {
    pub fn new(d: Datanet, index: crate::indexing::DatanetIndexState) -> Self {
        DatanetResponse {
            index_version: index.version,
            contributions_indexed: index.contributions_indexed,
            contributions_pending: index.contributions_pending,
            id: d.id,
            owner: d.owner,
            name: d.name,
            description: d.description,
            license: d.license,
            pool_account: d.pool_account,
            contributions: d.contributions,
            created_at_ms: d.created_at_ms,
            rules: d.rules.into(),
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct AttributionRequest {
    /// Datanets to attribute over; give these or `model`.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub datanets: Option<Vec<DatanetId>>,
    /// A model whose datanets to attribute over.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub model: Option<tributary_core::ModelId>,
    pub text: String,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct AttributedSpanWire {
    /// Byte offsets into the text.
    pub start: usize,
    pub end: usize,
    pub text: String,
    /// Contributions containing the span.
    pub contributions: Vec<String>,
    /// Occurrences of the span in the corpus.
    pub occurrences: u64,
    /// Summed unigram surprisal of the span's words, in bits.
    pub surprisal_bits: f64,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct ContributionShareWire {
    pub id: String,
    #[schema(value_type = String)]
    pub contributor: AccountId,
    #[schema(value_type = String)]
    pub datanet: DatanetId,
    /// Fraction of the credit; the shares of one attribution sum to 1.
    pub share: f64,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct AttributionResponse {
    pub index_version: String,
    pub spans: Vec<AttributedSpanWire>,
    pub contributions: Vec<ContributionShareWire>,
}

impl From<tributary_attribution::Attribution> for AttributionResponse {
    fn from(a: tributary_attribution::Attribution) -> Self {
        AttributionResponse {
            index_version: a.index_version,
            spans: a
                .spans
                .into_iter()
                .map(|s| AttributedSpanWire {
                    start: s.start,
                    end: s.end,
                    text: s.text,
                    contributions: s
                        .contributions
                        .into_iter()
                        .map(|c| tributary_core::ContributionId(c).to_string())
                        .collect(),
                    occurrences: s.occurrences,
                    surprisal_bits: s.surprisal_bits,
                })
                .collect(),
            contributions: a
                .contributions
                .into_iter()
                .map(|c| ContributionShareWire {
                    id: tributary_core::ContributionId(c.contribution).to_string(),
                    contributor: AccountId(c.contributor),
                    datanet: DatanetId(c.datanet),
                    share: c.share,
                })
                .collect(),
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct DatanetList {
    pub data: Vec<DatanetResponse>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct ContributionRequest {
    pub title: String,
    pub text: String,
    /// Where the text comes from (a URL or a citation).
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct ContributionOutcome {
    pub id: String,
    /// accepted, pending, flagged or rejected.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One item's outcome in a batch upload: either the contribution or the error that stopped it.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct BatchItemOutcome {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::error::ErrorDetail>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct BatchResponse {
    pub results: Vec<BatchItemOutcome>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct ContributionResponse {
    pub id: String,
    #[schema(value_type = String)]
    pub datanet: DatanetId,
    #[schema(value_type = String)]
    pub contributor: AccountId,
    pub title: String,
    pub text: String,
    pub source: Option<String>,
    /// BLAKE3 of the text's UTF-8 bytes, hex.
    pub content_hash: String,
    pub status: String,
    pub reason: Option<String>,
    pub created_at_ms: u64,
    /// Each pipeline stage's outcome, and what it found.
    pub findings: FindingsWire,
    /// Validators' review votes.
    pub votes: Vec<VoteWire>,
}

impl From<Contribution> for ContributionResponse {
    fn from(c: Contribution) -> Self {
        ContributionResponse {
            id: c.id.to_string(),
            datanet: c.datanet,
            contributor: c.contributor,
            title: c.title,
            text: c.text,
            source: c.source,
            content_hash: hex::encode(c.content_hash),
            status: c.status.as_str().to_owned(),
            reason: c.reason,
            created_at_ms: c.created_at_ms,
            findings: c.findings.into(),
            votes: Vec::new(),
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BackendWire {
    /// The built-in ∞-gram model over the model's datanets.
    Infinigram,
    /// The built-in retrieval model over the model's datanets.
    Retrieval,
    /// Any OpenAI-compatible server.
    #[serde(rename = "openai")]
    OpenAi {
        base_url: String,
        model: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_key: Option<String>,
        /// Inject the best retrieved passages into the prompt.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rag: Option<bool>,
    },
}

impl From<BackendWire> for Backend {
    fn from(wire: BackendWire) -> Self {
        match wire {
            BackendWire::Infinigram => Backend::Infinigram,
            BackendWire::Retrieval => Backend::Retrieval,
            BackendWire::OpenAi { base_url, model, api_key, rag } => {
                Backend::OpenAi { base_url, model, api_key, rag }
            }
        }
    }
}

impl BackendWire {
    /// The backend as shown to readers: an upstream API key is never revealed.
    pub fn redacted(backend: &Backend) -> BackendWire {
        match backend {
            Backend::Infinigram => BackendWire::Infinigram,
            Backend::Retrieval => BackendWire::Retrieval,
            Backend::OpenAi { base_url, model, api_key, rag } => BackendWire::OpenAi {
                base_url: base_url.clone(),
                model: model.clone(),
                api_key: api_key.as_ref().map(|_| "[redacted]".to_owned()),
                rag: *rag,
            },
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct PriceWire {
    #[schema(value_type = String, example = "20")]
    pub input_per_1k: Amount,
    #[schema(value_type = String, example = "60")]
    pub output_per_1k: Amount,
    #[schema(value_type = String, example = "1")]
    pub request: Amount,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct SplitWire {
    pub owner_bps: u16,
    pub data_bps: u16,
    pub validators_bps: u16,
    pub protocol_bps: u16,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct CreateModelRequest {
    pub name: String,
    #[schema(value_type = Vec<String>)]
    pub datanets: Vec<DatanetId>,
    pub backend: BackendWire,
    pub price: PriceWire,
    pub split: SplitWire,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct ModelResponse {
    pub id: String,
    #[schema(value_type = String)]
    pub owner: AccountId,
    pub name: String,
    #[schema(value_type = Vec<String>)]
    pub datanets: Vec<DatanetId>,
    pub backend: BackendWire,
    pub price: PriceWire,
    pub split: SplitWire,
    pub created_at_ms: u64,
}

impl From<Model> for ModelResponse {
    fn from(m: Model) -> Self {
        ModelResponse {
            id: m.id.to_string(),
            owner: m.owner,
            name: m.spec.name,
            datanets: m.spec.datanets,
            backend: BackendWire::redacted(&m.spec.backend),
            price: PriceWire {
                input_per_1k: m.spec.price.input_per_1k,
                output_per_1k: m.spec.price.output_per_1k,
                request: m.spec.price.request,
            },
            split: SplitWire {
                owner_bps: m.spec.split.owner_bps,
                data_bps: m.spec.split.data_bps,
                validators_bps: m.spec.split.validators_bps,
                protocol_bps: m.spec.split.protocol_bps,
            },
            created_at_ms: m.created_at_ms,
        }
    }
}

/// One entry of the OpenAI-compatible model list.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct OpenAiModel {
    pub id: String,
    pub object: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
    pub owned_by: String,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct OpenAiModelList {
    pub object: String,
    pub data: Vec<OpenAiModel>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct LedgerResponse {
    /// Sums over all accounts, as decimal strings; they may exceed 2^128 - 1 because posted
    /// counters grow with every movement of money.
    pub debits_posted: String,
    pub credits_posted: String,
    pub debits_pending: String,
    pub credits_pending: String,
    /// Money that has entered the ledger through deposits and not left it.
    #[schema(value_type = String)]
    pub deposited: Amount,
    pub accounts: u64,
    pub transfers: u64,
    pub holds_pending: u64,
    /// True when debits equal credits and every account is within its limit.
    pub balanced: bool,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct HealthResponse {
    pub status: String,
}

/// A datanet's validation rules (see ARCHITECTURE.md, "Contribution pipeline"). Every field is
/// optional on input and takes its default.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
#[serde(default, deny_unknown_fields)]
pub struct RulesWire {
    /// Shortest text, in bytes after normalisation (default 1).
    pub min_bytes: u32,
    /// Longest text, in bytes (default and ceiling 1048576).
    pub max_bytes: u32,
    /// Fewest words (default 1).
    pub min_words: u32,
    /// Near-duplicate threshold: estimated Jaccard of word 5-gram shingles, 0 to 1 (default 0.8).
    pub near_duplicate_threshold: f64,
    /// Share of words in long spans copied from other contributors at which a text is rejected
    /// (default 0.5).
    pub containment_threshold: f64,
    /// Shortest copied span that counts, in words (default 12).
    pub containment_span_words: u32,
    /// Repeated 5-gram share at which a text is flagged (default 0.5).
    pub repetition_max: f64,
    /// Symbol share at which a text is flagged (default 0.3).
    pub symbol_max: f64,
    /// auto (accept what passes) or review (validators decide).
    pub policy: String,
    /// Approvals needed under review (default 1).
    pub approvals_required: u32,
    /// Bond per contribution, smallest units (default "0").
    #[schema(value_type = String)]
    pub bond: Amount,
    /// How long a bond is held, ms (default 3600000, at most one day).
    pub dispute_window_ms: u64,
}

fn ratio_to_bps(name: &str, ratio: f64) -> Result<u32, String> {
    if !(ratio.is_finite() && ratio > 0.0 && ratio <= 1.0) {
        return Err(format!("{name} must be greater than 0 and at most 1"));
    }
    Ok((ratio * 10_000.0).round() as u32)
}

impl Default for RulesWire {
    fn default() -> Self {
        tributary_core::rules::DatanetRules::default().into()
    }
}

impl From<tributary_core::rules::DatanetRules> for RulesWire {
    fn from(r: tributary_core::rules::DatanetRules) -> Self {
        RulesWire {
            min_bytes: r.min_bytes,
            max_bytes: r.max_bytes,
            min_words: r.min_words,
            near_duplicate_threshold: f64::from(r.near_duplicate_bps) / 1e4,
            containment_threshold: f64::from(r.containment_bps) / 1e4,
            containment_span_words: r.containment_span_words,
            repetition_max: f64::from(r.repetition_max_bps) / 1e4,
            symbol_max: f64::from(r.symbol_max_bps) / 1e4,
            policy: match r.policy {
                tributary_core::rules::AcceptancePolicy::Auto => "auto".into(),
                tributary_core::rules::AcceptancePolicy::Review => "review".into(),
            },
            approvals_required: r.approvals_required,
            bond: r.bond,
            dispute_window_ms: r.dispute_window_ms,
        }
    }
}

impl RulesWire {
    /// The domain rules, checked; the error says what to fix.
    pub fn to_rules(&self) -> Result<tributary_core::rules::DatanetRules, String> {
        let rules = tributary_core::rules::DatanetRules {
            min_bytes: self.min_bytes,
            max_bytes: self.max_bytes,
            min_words: self.min_words,
            near_duplicate_bps: ratio_to_bps("near_duplicate_threshold", self.near_duplicate_threshold)?,
            containment_bps: ratio_to_bps("containment_threshold", self.containment_threshold)?,
            containment_span_words: self.containment_span_words,
            repetition_max_bps: ratio_to_bps("repetition_max", self.repetition_max)?,
            symbol_max_bps: ratio_to_bps("symbol_max", self.symbol_max)?,
            policy: match self.policy.as_str() {
                "auto" => tributary_core::rules::AcceptancePolicy::Auto,
                "review" => tributary_core::rules::AcceptancePolicy::Review,
                other => return Err(format!("policy must be auto or review, not {other:?}")),
            },
            approvals_required: self.approvals_required,
            bond: self.bond,
            dispute_window_ms: self.dispute_window_ms,
        };
        rules.validate()?;
        Ok(rules)
    }
}

/// What the pipeline found about a contribution, stage by stage.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct FindingsWire {
    pub stages: Vec<StageWire>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub near_duplicate_of: Option<String>,
    /// Estimated Jaccard similarity to `near_duplicate_of`, 0 to 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f64>,
    /// Contributions of other contributors the text was copied from.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub copied_from: Vec<String>,
    /// Share of words in spans copied from other contributors, 0 to 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contained: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repetition: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symbols: Option<f64>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct StageWire {
    pub stage: String,
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl From<tributary_core::rules::Findings> for FindingsWire {
    fn from(f: tributary_core::rules::Findings) -> Self {
        let ratio = |bps: Option<u32>| bps.map(|b| f64::from(b) / 1e4);
        FindingsWire {
            stages: f
                .stages
                .into_iter()
                .map(|s| StageWire { stage: s.stage, outcome: s.outcome, detail: s.detail })
                .collect(),
            duplicate_of: f.duplicate_of.map(|id| id.to_string()),
            near_duplicate_of: f.near_duplicate_of.map(|id| id.to_string()),
            similarity: ratio(f.similarity_bps),
            copied_from: f.copied_from.iter().map(ToString::to_string).collect(),
            contained: ratio(f.contained_bps),
            repetition: ratio(f.repetition_bps),
            symbols: ratio(f.symbol_bps),
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct VoteWire {
    #[schema(value_type = String)]
    pub validator: AccountId,
    pub approve: bool,
    #[schema(value_type = String)]
    pub stake: Amount,
    pub reason: String,
    pub created_at_ms: u64,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct StakeRequest {
    /// Smallest units to add to your stake (locked on your balance).
    #[schema(value_type = String)]
    pub amount: Amount,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct StakeResponse {
    #[schema(value_type = String)]
    pub datanet: DatanetId,
    #[schema(value_type = String)]
    pub validator: AccountId,
    #[schema(value_type = String)]
    pub amount: Amount,
    /// The lock (a hold that never expires) holding the stake.
    #[schema(value_type = String)]
    pub hold: TransferId,
    pub created_at_ms: u64,
}

impl From<tributary_ledger::store::StakeRecord> for StakeResponse {
    fn from(s: tributary_ledger::store::StakeRecord) -> Self {
        StakeResponse {
            datanet: s.datanet,
            validator: s.validator,
            amount: s.amount,
            hold: s.hold,
            created_at_ms: s.created_at_ms,
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct ValidatorList {
    pub data: Vec<StakeResponse>,
    /// Sum of the stakes.
    #[schema(value_type = String)]
    pub total_stake: Amount,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct VoteRequest {
    /// true to approve, false to reject.
    pub approve: bool,
    #[serde(default)]
    pub reason: String,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct VoteResponse {
    pub contribution: String,
    /// The contribution's status after the vote.
    pub status: String,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct OpenDisputeRequest {
    /// The contribution disputed (it must be accepted).
    pub contribution: String,
    /// An earlier contribution it copies.
    #[serde(default)]
    pub evidence: Option<String>,
    /// Why; required (at least 10 bytes) when there is no evidence, and then only from a validator.
    #[serde(default)]
    pub claim: String,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct DisputeVoteRequest {
    /// true to uphold the dispute (the contribution copied or is junk), false to dismiss it.
    pub uphold: bool,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct DisputeVoteWire {
    #[schema(value_type = String)]
    pub validator: AccountId,
    pub uphold: bool,
    #[schema(value_type = String)]
    pub stake: Amount,
    pub created_at_ms: u64,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct SlashWire {
    #[schema(value_type = String)]
    pub account: AccountId,
    /// bond or stake.
    pub role: String,
    #[schema(value_type = String)]
    pub amount: Amount,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct DisputeResponse {
    pub id: String,
    pub contribution: String,
    #[schema(value_type = String)]
    pub datanet: DatanetId,
    #[schema(value_type = String)]
    pub disputer: AccountId,
    pub evidence: Option<String>,
    pub claim: String,
    /// open, upheld or dismissed.
    pub status: String,
    pub votes: Vec<DisputeVoteWire>,
    /// What was slashed when upheld.
    pub slashed: Vec<SlashWire>,
    #[schema(value_type = String)]
    pub to_disputer: Amount,
    #[schema(value_type = String)]
    pub to_pool: Amount,
    pub created_at_ms: u64,
    pub decided_at_ms: Option<u64>,
}

impl From<tributary_ledger::store::DisputeRecord> for DisputeResponse {
    fn from(d: tributary_ledger::store::DisputeRecord) -> Self {
        let resolution = d.resolution.unwrap_or_default();
        DisputeResponse {
            id: format!("dsp_{}", d.id),
            contribution: d.contribution.to_string(),
            datanet: d.datanet,
            disputer: d.disputer,
            evidence: d.evidence.map(|e| e.to_string()),
            claim: d.claim,
            status: d.status.as_str().to_owned(),
            votes: d
                .votes
                .into_iter()
                .map(|v| DisputeVoteWire {
                    validator: v.validator,
                    uphold: v.uphold,
                    stake: v.stake,
                    created_at_ms: v.created_at_ms,
                })
                .collect(),
            slashed: resolution
                .slashed
                .into_iter()
                .map(|l| SlashWire { account: l.account, role: l.role, amount: l.amount })
                .collect(),
            to_disputer: resolution.to_disputer,
            to_pool: resolution.to_pool,
            created_at_ms: d.created_at_ms,
            decided_at_ms: d.decided_at_ms,
        }
    }
}
