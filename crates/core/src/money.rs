//! Fee and split arithmetic. Every function here is exact: integer units in, integer units out, and
//! the parts of a split always sum to the whole.
//!
//! Rounding rule (largest remainder, also called Hamilton's method): each part first gets the floor
//! of its exact share; the units left over (fewer than the number of parts) go one each to the parts
//! with the largest fractional remainders, ties to the earlier part. It is deterministic, never
//! gives a part more than one unit above its exact share, and conserves every unit.

use crate::amount::Amount;

/// Basis points in a whole: a split policy's four parts sum to this.
pub const BASIS_POINTS_TOTAL: u32 = 10_000;

/// Tokens per price unit: prices are quoted per 1000 tokens.
pub const TOKENS_PER_PRICE_UNIT: u128 = 1_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount overflows 128 bits")]
    Overflow,
    #[error("split weights are all zero")]
    ZeroWeights,
    #[error("split weights sum to more than 2^64 - 1")]
    WeightsTooLarge,
    #[error("split must sum to {BASIS_POINTS_TOTAL} basis points, got {0}")]
    SplitNotWhole(u32),
}

/// Prices of a model, in smallest units.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Price {
    pub input_per_1k: Amount,
    pub output_per_1k: Amount,
    pub request: Amount,
}

/// How a fee is divided, in basis points; the four parts sum to [`BASIS_POINTS_TOTAL`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct SplitPolicy {
    pub owner_bps: u16,
    pub data_bps: u16,
    pub validators_bps: u16,
    pub protocol_bps: u16,
}

/// A fee divided by a [`SplitPolicy`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FeeSplit {
    pub owner: Amount,
    pub data: Amount,
    pub validators: Amount,
    pub protocol: Amount,
}

impl SplitPolicy {
    /// Checks that the parts sum to exactly one whole.
    pub fn validate(&self) -> Result<(), MoneyError> {
        let total = self.parts().iter().map(|&bps| u32::from(bps)).sum::<u32>();
        if total == BASIS_POINTS_TOTAL { Ok(()) } else { Err(MoneyError::SplitNotWhole(total)) }
    }

    fn parts(&self) -> [u16; 4] {
        [self.owner_bps, self.data_bps, self.validators_bps, self.protocol_bps]
    }

    /// Divides `fee` by this policy with largest-remainder rounding.
    pub fn split(&self, fee: Amount) -> Result<FeeSplit, MoneyError> {
        self.validate()?;
        let weights = self.parts().map(u64::from);
        let parts = largest_remainder(fee, &weights)?;
        Ok(FeeSplit { owner: parts[0], data: parts[1], validators: parts[2], protocol: parts[3] })
    }
}

impl FeeSplit {
    pub fn total(&self) -> Option<Amount> {
        self.owner.checked_add(self.data)?.checked_add(self.validators)?.checked_add(self.protocol)
    }
}

/// `in/1000 * price_in + out/1000 * price_out + request`, rounded up to a whole unit.
pub fn fee(input_tokens: u64, output_tokens: u64, price: &Price) -> Result<Amount, MoneyError> {
    let input = u128::from(input_tokens).checked_mul(price.input_per_1k.0).ok_or(MoneyError::Overflow)?;
    let output = u128::from(output_tokens).checked_mul(price.output_per_1k.0).ok_or(MoneyError::Overflow)?;
    let metered = input.checked_add(output).ok_or(MoneyError::Overflow)?;
    let metered_units = metered.div_ceil(TOKENS_PER_PRICE_UNIT);
    metered_units.checked_add(price.request.0).map(Amount).ok_or(MoneyError::Overflow)
}

/// Divides `total` into parts proportional to `weights`, conserving every unit (see the module
/// documentation for the rounding rule). The weights must not all be zero and must sum to at most
/// `u64::MAX`, which keeps every intermediate product inside `u128`.
pub fn largest_remainder(total: Amount, weights: &[u64]) -> Result<Vec<Amount>, MoneyError> {
    let weight_sum =
        weights.iter().try_fold(0u64, |sum, &w| sum.checked_add(w)).ok_or(MoneyError::WeightsTooLarge)?;
    if weight_sum == 0 {
        return Err(MoneyError::ZeroWeights);
    }
    let weight_sum = u128::from(weight_sum);
    // total * w / W = quotient * w + remainder * w / W, where remainder < W <= 2^64 - 1 and
    // w <= 2^64 - 1, so remainder * w < 2^128 and nothing overflows.
    let quotient = total.0 / weight_sum;
    let remainder = total.0 % weight_sum;
    let mut parts = Vec::with_capacity(weights.len());
    let mut fractions = Vec::with_capacity(weights.len());
    let mut assigned: u128 = 0;
    for (index, &weight) in weights.iter().enumerate() {
        let weight = u128::from(weight);
        let scaled = remainder * weight;
        let part = quotient * weight + scaled / weight_sum;
        assigned += part;
        parts.push(part);
        fractions.push((scaled % weight_sum, index));
    }
    let mut leftover = total.0 - assigned;
    debug_assert!(leftover < weights.len() as u128, "leftover is below the number of parts");
    // Largest fractional remainder first; ties go to the earlier part.
    fractions.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, index) in &fractions {
        if leftover == 0 {
            break;
        }
        parts[index] += 1;
        leftover -= 1;
    }
    let parts: Vec<Amount> = parts.into_iter().map(Amount).collect();
    assert_eq!(parts.iter().map(|p| p.0).sum::<u128>(), total.0, "largest remainder conserves units");
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn price(input: u128, output: u128, request: u128) -> Price {
        Price { input_per_1k: Amount(input), output_per_1k: Amount(output), request: Amount(request) }
    }

    fn check_fee(input_tokens: u64, output_tokens: u64, p: Price, expected: Option<u128>) {
        assert_eq!(fee(input_tokens, output_tokens, &p).ok().map(|a| a.0), expected);
    }

    #[test]
    fn fee_rounds_up_once_over_the_sum() {
        check_fee(0, 0, price(5, 7, 0), Some(0));
        check_fee(1, 0, price(5, 7, 0), Some(1));
        check_fee(1000, 1000, price(5, 7, 3), Some(15));
        check_fee(100, 100, price(5, 5, 0), Some(1)); // 0.5 + 0.5 = 1 exactly, not 2
        check_fee(1500, 0, price(3, 0, 10), Some(15)); // 4.5 rounds up to 5
        check_fee(u64::MAX, 0, price(u128::MAX, 0, 0), None);
        check_fee(0, 0, price(0, 0, u128::MAX), Some(u128::MAX));
    }

    fn check_split(total: u128, weights: &[u64], expected: &[u128]) {
        let parts = largest_remainder(Amount(total), weights).expect("valid weights");
        assert_eq!(parts.iter().map(|p| p.0).collect::<Vec<_>>(), expected);
    }

    #[test]
    fn largest_remainder_examples() {
        check_split(10, &[1, 1, 1], &[4, 3, 3]);
        check_split(100, &[1, 1, 1], &[34, 33, 33]);
        check_split(7, &[5000, 3000, 2000, 0], &[4, 2, 1, 0]); // 3.5, 2.1, 1.4 -> leftover to 3.5
        check_split(0, &[1, 2], &[0, 0]);
        check_split(u128::MAX, &[1, 1], &[u128::MAX / 2 + 1, u128::MAX / 2]);
        assert_eq!(largest_remainder(Amount(5), &[0, 0]), Err(MoneyError::ZeroWeights));
        assert_eq!(largest_remainder(Amount(5), &[u64::MAX, 1]), Err(MoneyError::WeightsTooLarge));
    }

    /// Any split policy that sums to one whole: three random cuts of 0..=10,000.
    pub(super) fn whole_policy() -> impl Strategy<Value = SplitPolicy> {
        [0u16..=10_000, 0u16..=10_000, 0u16..=10_000].prop_map(|mut cuts| {
            cuts.sort_unstable();
            SplitPolicy {
                owner_bps: cuts[0],
                data_bps: cuts[1] - cuts[0],
                validators_bps: cuts[2] - cuts[1],
                protocol_bps: 10_000 - cuts[2],
            }
        })
    }

    #[test]
    fn split_policy_must_be_whole() {
        let policy = SplitPolicy { owner_bps: 5000, data_bps: 3000, validators_bps: 1000, protocol_bps: 999 };
        assert_eq!(policy.validate(), Err(MoneyError::SplitNotWhole(9999)));
        assert!(policy.split(Amount(10)).is_err());
    }

    proptest! {
        #[test]
        fn largest_remainder_conserves_and_stays_within_one_unit(
            total in any::<u128>(),
            weights in proptest::collection::vec(0u64..=u64::MAX / 64, 1..40),
        ) {
            prop_assume!(weights.iter().any(|&w| w > 0));
            let parts = largest_remainder(Amount(total), &weights).expect("weights are valid");
            prop_assert_eq!(parts.len(), weights.len());
            prop_assert_eq!(parts.iter().map(|p| p.0).sum::<u128>(), total);
            let weight_sum: u128 = weights.iter().map(|&w| u128::from(w)).sum();
            for (part, &weight) in parts.iter().zip(&weights) {
                // floor(exact) <= part <= floor(exact) + 1, with exact = total * w / W.
                let weight = u128::from(weight);
                let floor = (total / weight_sum) * weight + (total % weight_sum) * weight / weight_sum;
                prop_assert!(part.0 == floor || part.0 == floor + 1);
                if weight == 0 {
                    prop_assert_eq!(part.0, 0);
                }
            }
        }

        #[test]
        fn policy_split_sums_to_fee(
            fee_units in any::<u128>(),
            policy in whole_policy(),
        ) {
            let split = policy.split(Amount(fee_units)).expect("policy is whole");
            prop_assert_eq!(split.total(), Some(Amount(fee_units)));
        }

        #[test]
        fn fee_is_the_ceiling_of_the_exact_fee(
            input_tokens in 0u64..1_000_000_000, output_tokens in 0u64..1_000_000_000,
            input_price in 0u128..1u128 << 60, output_price in 0u128..1u128 << 60, request in 0u128..1u128 << 60,
        ) {
            let charged = fee(input_tokens, output_tokens, &price(input_price, output_price, request)).expect("no overflow").0;
            let metered = u128::from(input_tokens) * input_price + u128::from(output_tokens) * output_price;
            // charged - request is the smallest integer whose thousandfold covers the metered amount.
            let units = charged - request;
            prop_assert!(units * 1000 >= metered);
            prop_assert!(units == 0 || (units - 1) * 1000 < metered);
        }
    }
}

/// One payee's part of an inference fee.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SplitLine<P> {
    pub payee: P,
    pub role: SplitRole,
    pub amount: Amount,
}

/// Why a payee is paid.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SplitRole {
    Owner,
    /// A contribution's share of the data part.
    Data,
    /// The data part that no contribution earned, for a datanet's pool.
    DataPool,
    Validators,
    Protocol,
}

impl SplitRole {
    pub fn as_str(self) -> &'static str {
        match self {
            SplitRole::Owner => "owner",
            SplitRole::Data => "data",
            SplitRole::DataPool => "data_pool",
            SplitRole::Validators => "validators",
            SplitRole::Protocol => "protocol",
        }
    }
}

/// Who receives each part of an inference fee.
#[derive(Clone, Debug)]
pub struct InferencePayees<P> {
    pub owner: P,
    pub validators: P,
    pub protocol: P,
    /// Where the data part goes when nothing was attributed.
    pub data_pool: P,
    /// Attributed payees with integer weights (shares scaled to integers); weights must not all be
    /// zero when the list is not empty.
    pub data: Vec<(P, u64)>,
}

/// Splits an inference fee: the policy's four parts by largest remainder, then the data part over
/// the attributed payees by their weights, again by largest remainder. Parts of zero are left out;
/// the amounts always sum to the fee exactly.
pub fn split_inference<P: Copy>(
    fee: Amount,
    policy: &SplitPolicy,
    payees: &InferencePayees<P>,
) -> Result<Vec<SplitLine<P>>, MoneyError> {
    let parts = policy.split(fee)?;
    let mut lines = vec![SplitLine { payee: payees.owner, role: SplitRole::Owner, amount: parts.owner }];
    let weights: Vec<u64> = payees.data.iter().map(|&(_, w)| w).collect();
    if weights.iter().any(|&w| w > 0) {
        let shares = largest_remainder(parts.data, &weights)?;
        for (&(payee, _), amount) in payees.data.iter().zip(shares) {
            lines.push(SplitLine { payee, role: SplitRole::Data, amount });
        }
    } else {
        lines.push(SplitLine { payee: payees.data_pool, role: SplitRole::DataPool, amount: parts.data });
    }
    lines.push(SplitLine { payee: payees.validators, role: SplitRole::Validators, amount: parts.validators });
    lines.push(SplitLine { payee: payees.protocol, role: SplitRole::Protocol, amount: parts.protocol });
    lines.retain(|line| !line.amount.is_zero());
    assert_eq!(lines.iter().map(|l| l.amount.0).sum::<u128>(), fee.0, "inference splits conserve the fee");
    Ok(lines)
}

#[cfg(test)]
mod inference_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn inference_splits_conserve_the_fee(
            fee in any::<u128>(),
            policy in super::tests::whole_policy(),
            weights in proptest::collection::vec(0u64..=u64::MAX / 1024, 0..20),
        ) {
            let payees = InferencePayees {
                owner: 1u32, validators: 2, protocol: 3, data_pool: 4,
                data: weights.iter().enumerate().map(|(i, &w)| (10 + i as u32, w)).collect(),
            };
            let lines = split_inference(Amount(fee), &policy, &payees).expect("valid policy");
            prop_assert_eq!(lines.iter().map(|l| l.amount.0).sum::<u128>(), fee);
            prop_assert!(lines.iter().all(|l| !l.amount.is_zero()));
            let attributed = weights.iter().any(|&w| w > 0);
            prop_assert_eq!(lines.iter().any(|l| l.role == SplitRole::DataPool), !attributed && policy.split(Amount(fee)).expect("whole").data.0 > 0);
        }
    }

    #[test]
    fn the_data_part_follows_the_weights() {
        let policy = SplitPolicy { owner_bps: 5000, data_bps: 3000, validators_bps: 1500, protocol_bps: 500 };
        let payees = InferencePayees {
            owner: 'o',
            validators: 'v',
            protocol: 'p',
            data_pool: 'd',
            data: vec![('a', 3), ('b', 1)],
        };
        let lines = split_inference(Amount(1000), &policy, &payees).expect("split");
        let got: Vec<(char, u128)> = lines.iter().map(|l| (l.payee, l.amount.0)).collect();
        assert_eq!(got, [('o', 500), ('a', 225), ('b', 75), ('v', 150), ('p', 50)]);
        let unattributed = InferencePayees { data: vec![], ..payees };
        let lines = split_inference(Amount(1000), &policy, &unattributed).expect("split");
        assert!(
            lines.iter().any(|l| l.payee == 'd' && l.amount == Amount(300) && l.role == SplitRole::DataPool)
        );
    }
}
