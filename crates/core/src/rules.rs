//! A datanet's validation rules and the findings of the contribution pipeline, as plain data.
//! The pipeline itself (normalisation, hashing, MinHash, quality, vote and slash rules) lives in
//! the `validation` crate; these types are here because datanets and contributions carry them.

use crate::amount::Amount;
use crate::ids::ContributionId;

/// Basis points in a whole, for ratios and thresholds.
pub const RATIO_BPS_WHOLE: u32 = 10_000;
/// Longest text a contribution may have, whatever a datanet allows.
pub const CONTRIBUTION_BYTES_MAX: u32 = 1024 * 1024;
/// Longest dispute window (and so bond hold) a datanet may set: the ledger's longest hold, one day.
pub const DISPUTE_WINDOW_MS_MAX: u64 = 24 * 60 * 60 * 1000;
/// Most approvals a datanet may require under the review policy.
pub const APPROVALS_REQUIRED_MAX: u32 = 64;

/// What happens to a contribution that passes every automatic check.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AcceptancePolicy {
    /// Accepted at once.
    Auto,
    /// Pending until the datanet's validators decide (see `validation::votes`).
    Review,
}

/// A datanet's validation settings. Every field has a documented default ([`DatanetRules::default`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatanetRules {
    /// Shortest text accepted, in bytes of UTF-8 (after normalisation). Default 1.
    pub min_bytes: u32,
    /// Longest text accepted, in bytes of UTF-8. Default and ceiling [`CONTRIBUTION_BYTES_MAX`].
    pub max_bytes: u32,
    /// Fewest words a text must have. Default 1.
    pub min_words: u32,
    /// Estimated Jaccard similarity of word 5-gram shingles at or above which a contribution is a
    /// near duplicate of an earlier one, in basis points. Default 8000 (0.8).
    pub near_duplicate_bps: u32,
    /// Share of a contribution's words covered by long spans copied from other contributors'
    /// accepted text at or above which it is rejected, in basis points. Default 5000 ("mostly").
    pub containment_bps: u32,
    /// Shortest copied span, in words, that counts towards containment. Default 12.
    pub containment_span_words: u32,
    /// Repeated word 5-grams (1 - distinct/all) at or above which a contribution is flagged, in
    /// basis points. Default 5000.
    pub repetition_max_bps: u32,
    /// Symbols (neither letters, digits nor whitespace) among non-whitespace characters at or above
    /// which a contribution is flagged, in basis points. Default 3000.
    pub symbol_max_bps: u32,
    pub policy: AcceptancePolicy,
    /// Validators that must approve under the review policy (their stake must also outweigh the
    /// stake that rejected). Default 1.
    pub approvals_required: u32,
    /// Bond each contribution holds from its contributor until the dispute window ends. Default 0,
    /// so that a new contributor with no balance can still contribute.
    pub bond: Amount,
    /// How long a bond is held after the contribution is added. Default one hour.
    pub dispute_window_ms: u64,
}

impl Default for DatanetRules {
    fn default() -> Self {
        DatanetRules {
            min_bytes: 1,
            max_bytes: CONTRIBUTION_BYTES_MAX,
            min_words: 1,
            near_duplicate_bps: 8_000,
            containment_bps: 5_000,
            containment_span_words: 12,
            repetition_max_bps: 5_000,
            symbol_max_bps: 3_000,
            policy: AcceptancePolicy::Auto,
            approvals_required: 1,
            bond: Amount(0),
            dispute_window_ms: 60 * 60 * 1000,
        }
    }
}

impl DatanetRules {
    /// Checks the settings are consistent; the message says what to fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.min_bytes == 0 || self.min_bytes > self.max_bytes {
            return Err("min_bytes must be at least 1 and at most max_bytes".into());
        }
        if self.max_bytes > CONTRIBUTION_BYTES_MAX {
            return Err(format!("max_bytes must be at most {CONTRIBUTION_BYTES_MAX}"));
        }
        if self.min_words == 0 {
            return Err("min_words must be at least 1".into());
        }
        for (name, value) in [
            ("near_duplicate_bps", self.near_duplicate_bps),
            ("containment_bps", self.containment_bps),
            ("repetition_max_bps", self.repetition_max_bps),
            ("symbol_max_bps", self.symbol_max_bps),
        ] {
            if value == 0 || value > RATIO_BPS_WHOLE {
                return Err(format!("{name} must be 1 to {RATIO_BPS_WHOLE}"));
            }
        }
        if self.containment_span_words < 6 {
            return Err("containment_span_words must be at least 6".into());
        }
        if self.approvals_required == 0 || self.approvals_required > APPROVALS_REQUIRED_MAX {
            return Err(format!("approvals_required must be 1 to {APPROVALS_REQUIRED_MAX}"));
        }
        if self.dispute_window_ms == 0 || self.dispute_window_ms > DISPUTE_WINDOW_MS_MAX {
            return Err(format!("dispute_window_ms must be 1 to {DISPUTE_WINDOW_MS_MAX}"));
        }
        Ok(())
    }
}

/// One pipeline stage's result, recorded on the contribution in order.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct StageRecord {
    /// limits, exact_duplicate, near_duplicate, containment, quality, policy, review or dispute.
    pub stage: String,
    /// passed, rejected, flagged, pending or accepted.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What the pipeline (and later reviews and disputes) found about a contribution.
#[derive(Clone, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Findings {
    pub stages: Vec<StageRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<ContributionId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub near_duplicate_of: Option<ContributionId>,
    /// Estimated Jaccard similarity to `near_duplicate_of` (or the most similar earlier
    /// contribution found), in basis points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity_bps: Option<u32>,
    /// Contributions of other contributors the text was copied from (containment).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub copied_from: Vec<ContributionId>,
    /// Share of words covered by copied spans, in basis points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contained_bps: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repetition_bps: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symbol_bps: Option<u32>,
}

impl Findings {
    pub fn record(&mut self, stage: &str, outcome: &str, detail: Option<String>) {
        self.stages.push(StageRecord { stage: stage.to_owned(), outcome: outcome.to_owned(), detail });
    }
}
