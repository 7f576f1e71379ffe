//! The domain core of Tributary: ids, amounts, registry records and the money math (fees and
//! splits). It does no IO, reads no clock and draws no random numbers; callers pass those in, so
//! everything here is deterministic and replayable.

pub mod address;
pub mod amount;
pub mod ids;
pub mod money;
pub mod registry;
pub mod rules;

pub use address::EvmAddress;
pub use amount::Amount;
pub use ids::{AccountId, ContributionId, DatanetId, ModelId, TransferId};
