//! The validators' rules: stake-weighted review and dispute decisions, slashing, and how the
//! validators' part of a fee is shared. All amounts are integer units and every split conserves
//! every unit (largest remainder, `core::money`).
//!
//! - Review (policy `review`): a pending or flagged contribution is **accepted** when at least the
//!   datanet's `approvals_required` validators approved it and the approving stake is greater than
//!   the rejecting stake; it is **rejected** when the rejecting stake is more than half of the
//!   datanet's staked total. Otherwise it stays open.
//! - Dispute: **upheld** when the upholding stake is more than half of the datanet's staked total,
//!   **dismissed** when the dismissing stake is at least half. Stakes are counted as they are when
//!   the decision is taken.
//! - Upheld: the contribution is rejected (it stops earning), its bond is slashed whole, and each
//!   validator who approved it loses [`VALIDATOR_SLASH_BPS`] of their stake in that datanet. Every
//!   slashed amount is split [`DISPUTER_SHARE_BPS`] to the disputer, the rest to the datanet's pool.
//! - Fees: the validators' part is split over the attributed datanets by their attributed weight,
//!   then inside each datanet pro rata to stake; a datanet without stake passes its part to the
//!   node's validators pool.

use tributary_core::Amount;
use tributary_core::money::{MoneyError, largest_remainder};

/// Share of an approving validator's stake slashed when a dispute is upheld: 20%.
pub const VALIDATOR_SLASH_BPS: u32 = 2_000;
/// Share of every slashed amount paid to the disputer; the rest goes to the datanet's pool.
pub const DISPUTER_SHARE_BPS: u32 = 5_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Open,
    /// Review: accepted. Dispute: upheld.
    For,
    /// Review: rejected. Dispute: dismissed.
    Against,
}

/// The review decision (see the module documentation). `for_stake`/`against_stake` are the stakes
/// of validators who approved/rejected; `total_stake` is the datanet's whole staked amount.
pub fn review_decision(
    approvals: u32,
    for_stake: u128,
    against_stake: u128,
    total_stake: u128,
    approvals_required: u32,
) -> Decision {
    if is_majority(against_stake, total_stake) {
        return Decision::Against;
    }
    if approvals >= approvals_required && for_stake > against_stake {
        return Decision::For;
    }
    Decision::Open
}

/// `stake > total / 2`, exactly, without overflow.
pub fn is_majority(stake: u128, total: u128) -> bool {
    stake <= total && stake > total - stake
}

/// The dispute decision (see the module documentation).
pub fn dispute_decision(uphold_stake: u128, dismiss_stake: u128, total_stake: u128) -> Decision {
    if is_majority(uphold_stake, total_stake) {
        Decision::For
    } else if total_stake > 0 && dismiss_stake >= total_stake - dismiss_stake {
        Decision::Against
    } else {
        Decision::Open
    }
}

/// `amount * bps / 10_000`, rounded down, without overflow.
pub fn fraction(amount: u128, bps: u32) -> u128 {
    let bps = u128::from(bps.min(10_000));
    amount / 10_000 * bps + amount % 10_000 * bps / 10_000
}

/// What an approving validator loses from `stake` when a dispute is upheld.
pub fn validator_slash(stake: u128) -> u128 {
    fraction(stake, VALIDATOR_SLASH_BPS)
}

/// Splits a slashed amount: (to the disputer, to the datanet's pool); they sum to `amount`.
pub fn split_slashed(amount: Amount) -> (Amount, Amount) {
    let disputer = Amount(fraction(amount.0, DISPUTER_SHARE_BPS));
    (disputer, Amount(amount.0 - disputer.0))
}

/// One attributed datanet for the fee split: its weight (its attributed share, scaled to an
/// integer) and its validators' stakes.
#[derive(Clone, Debug)]
pub struct DatanetValidators<P> {
    pub weight: u64,
    pub stakes: Vec<(P, u128)>,
}

/// Divides the validators' part of a fee (see the module documentation). Returns the payments to
/// validators (an account staked in several datanets appears once per datanet) and what goes to
/// the validators pool; together they are exactly `amount`.
pub fn validators_split<P: Copy>(
    amount: Amount,
    datanets: &[DatanetValidators<P>],
) -> Result<(Vec<(P, Amount)>, Amount), MoneyError> {
    let weights: Vec<u64> = datanets.iter().map(|d| d.weight).collect();
    if amount.is_zero() || weights.iter().all(|&w| w == 0) {
        return Ok((Vec::new(), amount));
    }
    let parts = largest_remainder(amount, &weights)?;
    let mut paid = Vec::new();
    let mut pool = 0u128;
    for (datanet, part) in datanets.iter().zip(parts) {
        let stakes = stake_weights(&datanet.stakes);
        if part.is_zero() {
            continue;
        }
        if stakes.iter().all(|&w| w == 0) {
            pool += part.0;
            continue;
        }
        for (&(validator, _), share) in datanet.stakes.iter().zip(largest_remainder(part, &stakes)?) {
            if !share.is_zero() {
                paid.push((validator, share));
            }
        }
    }
    let total: u128 = paid.iter().map(|(_, a)| a.0).sum::<u128>() + pool;
    assert_eq!(total, amount.0, "the validators' split conserves the amount");
    Ok((paid, Amount(pool)))
}

/// Stakes as u64 weights: shifted right together until their sum fits in 64 bits, which keeps
/// their proportions to within one part in 2^32 for any realistic number of validators.
pub fn stake_weights(stakes: &[(impl Copy, u128)]) -> Vec<u64> {
    let mut shift = 0u32;
    loop {
        let sum = stakes
            .iter()
            .try_fold(0u64, |sum, &(_, s)| u64::try_from(s >> shift).ok().and_then(|w| sum.checked_add(w)));
        if sum.is_some() {
            return stakes.iter().map(|&(_, s)| (s >> shift) as u64).collect();
        }
        shift += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn review_rules() {
        // One approval needed: a single approving validator with any stake decides.
        assert_eq!(review_decision(1, 10, 0, 100, 1), Decision::For);
        // Two needed.
        assert_eq!(review_decision(1, 60, 0, 100, 2), Decision::Open);
        assert_eq!(review_decision(2, 60, 30, 100, 2), Decision::For);
        // Approvals outweighed by rejections stay open; a rejecting majority rejects.
        assert_eq!(review_decision(2, 20, 40, 100, 2), Decision::Open);
        assert_eq!(review_decision(2, 20, 51, 100, 2), Decision::Against);
        assert_eq!(review_decision(0, 0, 50, 100, 1), Decision::Open);
        assert_eq!(review_decision(0, 0, 0, 0, 1), Decision::Open);
    }

    #[test]
    fn dispute_rules() {
        assert_eq!(dispute_decision(51, 0, 100), Decision::For);
        assert_eq!(dispute_decision(50, 0, 100), Decision::Open);
        assert_eq!(dispute_decision(0, 50, 100), Decision::Against);
        assert_eq!(dispute_decision(2, 0, 3), Decision::For);
        assert_eq!(dispute_decision(0, 0, 0), Decision::Open);
        assert!(is_majority(u128::MAX, u128::MAX));
        assert!(!is_majority(u128::MAX / 2, u128::MAX));
    }

    #[test]
    fn slashing_examples() {
        assert_eq!(validator_slash(1_000), 200);
        assert_eq!(validator_slash(4), 0);
        assert_eq!(
            validator_slash(u128::MAX),
            u128::MAX / 10_000 * 2_000 + u128::MAX % 10_000 * 2_000 / 10_000
        );
        assert_eq!(split_slashed(Amount(7)), (Amount(3), Amount(4)));
    }

    #[test]
    fn validators_share_by_stake_with_pool_fallback() {
        let datanets = [
            DatanetValidators { weight: 3, stakes: vec![('a', 100), ('b', 300)] },
            DatanetValidators { weight: 1, stakes: vec![] },
        ];
        let (paid, pool) = validators_split(Amount(1000), &datanets).expect("split");
        assert_eq!(paid, vec![('a', Amount(188)), ('b', Amount(562))]);
        assert_eq!(pool, Amount(250));
        let (paid, pool) = validators_split::<char>(Amount(10), &[]).expect("split");
        assert!(paid.is_empty());
        assert_eq!(pool, Amount(10));
    }

    proptest! {
        #[test]
        fn validators_split_conserves_every_unit(
            amount in any::<u128>(),
            datanets in proptest::collection::vec(
                (0u64..1_000_000, proptest::collection::vec(any::<u128>(), 0..6)), 0..6),
        ) {
            let datanets: Vec<DatanetValidators<usize>> = datanets
                .into_iter()
                .map(|(weight, stakes)| DatanetValidators {
                    weight,
                    stakes: stakes.into_iter().enumerate().collect(),
                })
                .collect();
            let (paid, pool) = validators_split(Amount(amount), &datanets).expect("weights fit");
            let total = paid.iter().try_fold(pool.0, |sum, (_, a)| sum.checked_add(a.0));
            prop_assert_eq!(total, Some(amount));
        }

        #[test]
        fn slashing_conserves_and_is_bounded(stake in any::<u128>()) {
            let slashed = validator_slash(stake);
            prop_assert!(slashed <= stake);
            prop_assert!(slashed <= stake / 5 + 1);
            let (disputer, pool) = split_slashed(Amount(slashed));
            prop_assert_eq!(disputer.0 + pool.0, slashed);
            prop_assert!(disputer.0 <= pool.0);
        }

        #[test]
        fn decisions_never_contradict(
            a in 0u128..1_000, b in 0u128..1_000, extra in 0u128..1_000, approvals in 0u32..5, k in 1u32..5,
        ) {
            let total = a + b + extra;
            let review = review_decision(approvals, a, b, total, k);
            if review == Decision::Against { prop_assert!(2 * b > total); }
            if review == Decision::For { prop_assert!(a > b && approvals >= k); }
            let dispute = dispute_decision(a, b, total);
            if dispute == Decision::For { prop_assert!(2 * a > total); }
            if dispute == Decision::Against { prop_assert!(2 * b >= total && 2 * a <= total); }
        }
    }
}
