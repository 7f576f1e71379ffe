//! The registry's data: accounts, datanets, contributions and models, as plain values.

use crate::amount::Amount;
use crate::ids::{AccountId, ContributionId, DatanetId, ModelId};
use crate::money::{Price, SplitPolicy};

/// What an account is for. Internal accounts belong to the node, not to a person, and have no key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// A person or agent with an API key.
    User,
    /// The node operator: a user with the right to deposit and to administer.
    Operator,
    /// The world outside the ledger: deposits are debited here, so it is the one account whose
    /// balance may go negative (its debit excess is the total money in the ledger).
    External,
    /// The protocol's share of every fee.
    Protocol,
    /// Validators' shares before they are paid out.
    ValidatorsPool,
    /// A datanet's pool: data shares that no single contribution earned.
    DatanetPool,
    /// Where callers' holds for paid inferences wait until the fee is split; it is empty again
    /// after every settlement.
    Clearing,
}

impl AccountKind {
    pub const ALL: [AccountKind; 7] = [
        AccountKind::User,
        AccountKind::Operator,
        AccountKind::External,
        AccountKind::Protocol,
        AccountKind::ValidatorsPool,
        AccountKind::DatanetPool,
        AccountKind::Clearing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::User => "user",
            AccountKind::Operator => "operator",
            AccountKind::External => "external",
            AccountKind::Protocol => "protocol",
            AccountKind::ValidatorsPool => "validators_pool",
            AccountKind::DatanetPool => "datanet_pool",
            AccountKind::Clearing => "clearing",
        }
    }

    pub fn parse(text: &str) -> Option<AccountKind> {
        AccountKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// Only the external account may have more debits than credits.
    pub fn may_go_negative(self) -> bool {
        self == AccountKind::External
    }
}

/// An account as the registry and the ledger see it together.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Account {
    pub id: AccountId,
    pub kind: AccountKind,
    pub name: String,
    pub payout_address: Option<crate::address::EvmAddress>,
    /// Credits posted minus debits posted and pending: what the account can spend now.
    pub balance: Amount,
    /// Debits pending: held for payments not yet settled.
    pub held: Amount,
    pub created_at_ms: u64,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Datanet {
    pub id: DatanetId,
    pub owner: AccountId,
    pub name: String,
    pub description: String,
    pub license: String,
    pub pool_account: AccountId,
    pub contributions: u64,
    pub created_at_ms: u64,
    /// How contributions are validated.
    pub rules: crate::rules::DatanetRules,
}

/// Where a contribution stands in validation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ContributionStatus {
    Accepted,
    Pending,
    Flagged,
    Rejected,
}

impl ContributionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ContributionStatus::Accepted => "accepted",
            ContributionStatus::Pending => "pending",
            ContributionStatus::Flagged => "flagged",
            ContributionStatus::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<ContributionStatus> {
        [Self::Accepted, Self::Pending, Self::Flagged, Self::Rejected]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Contribution {
    pub id: ContributionId,
    pub datanet: DatanetId,
    pub contributor: AccountId,
    pub title: String,
    pub text: String,
    pub source: Option<String>,
    /// BLAKE3 of the text's UTF-8 bytes.
    pub content_hash: [u8; 32],
    pub status: ContributionStatus,
    pub reason: Option<String>,
    pub created_at_ms: u64,
    /// What each stage of the pipeline (and later reviews and disputes) found.
    pub findings: crate::rules::Findings,
}

/// How a model produces answers.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Backend {
    /// The built-in ∞-gram model over the model's datanets.
    Infinigram,
    /// The built-in extractive retrieval model over the model's datanets.
    Retrieval,
    /// Any OpenAI-compatible server.
    #[serde(rename = "openai")]
    OpenAi {
        base_url: String,
        model: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_key: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rag: Option<bool>,
    },
}

#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct ModelSpec {
    pub name: String,
    pub datanets: Vec<DatanetId>,
    pub backend: Backend,
    pub price: Price,
    pub split: SplitPolicy,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Model {
    pub id: ModelId,
    pub owner: AccountId,
    pub spec: ModelSpec,
    pub created_at_ms: u64,
}
