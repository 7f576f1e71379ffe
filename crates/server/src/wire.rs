//! Wire types: the JSON the API speaks. They are converted to and from domain types by hand so
//! that a change in the domain never changes the API by accident. Amounts and ids are strings.

use serde::{Deserialize, Serialize};
use tributary_core::registry::{Account, Backend, Contribution, Datanet, Model};
use tributary_core::{AccountId, Amount, DatanetId, TransferId};
use tributary_ledger::state::{Transfer, TransferKind};
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
        let kind = match transfer.kind {
            TransferKind::Posted => "posted",
            TransferKind::Pending => "pending",
            TransferKind::PostPending => "post_pending",
            TransferKind::VoidPending => "void_pending",
            TransferKind::ExpirePending => "expire_pending",
        };
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
