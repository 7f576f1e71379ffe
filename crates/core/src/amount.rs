//! Amounts of money in the smallest unit, as `u128`. Never floating point.
//!
//! On the wire an amount is a JSON string of decimal digits, because JSON numbers lose precision
//! above 2^53 in most clients.

use std::fmt;
use std::str::FromStr;

/// A non-negative amount of the smallest unit.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Amount(pub u128);

/// Decimal digits in `u128::MAX`; longer text cannot be a valid amount.
pub const AMOUNT_DIGITS_MAX: usize = 39;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountParseError {
    #[error("amount is empty; send a string of decimal digits such as \"1000\"")]
    Empty,
    #[error(
        "amount {0:?} is not a non-negative integer; send a string of decimal digits in the smallest unit"
    )]
    NotDigits(String),
    #[error("amount {0:?} is larger than the maximum 340282366920938463463374607431768211455")]
    Overflow(String),
}

impl Amount {
    pub const ZERO: Amount = Amount(0);

    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for Amount {
    type Err = AmountParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err(AmountParseError::Empty);
        }
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AmountParseError::NotDigits(text.to_owned()));
        }
        let significant = text.trim_start_matches('0');
        if significant.len() > AMOUNT_DIGITS_MAX {
            return Err(AmountParseError::Overflow(text.to_owned()));
        }
        if significant.is_empty() {
            return Ok(Amount::ZERO);
        }
        significant.parse::<u128>().map(Amount).map_err(|_| AmountParseError::Overflow(text.to_owned()))
    }
}

impl serde::Serialize for Amount {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Amount {
    /// Only strings are accepted: a JSON number would already have lost precision in many clients.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Amount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string of decimal digits (an integer amount in the smallest unit)")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Amount, E> {
                text.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Option<u128>) {
        assert_eq!(text.parse::<Amount>().ok().map(|a| a.0), expected, "{text:?}");
    }

    #[test]
    fn parses_strictly() {
        check("0", Some(0));
        check("000", Some(0));
        check("1000", Some(1000));
        check("00042", Some(42));
        check("340282366920938463463374607431768211455", Some(u128::MAX));
        check("340282366920938463463374607431768211456", None);
        check("1000000000000000000000000000000000000000000", None);
        check("", None);
        check("-1", None);
        check("+1", None);
        check("1.5", None);
        check("1e3", None);
        check(" 1", None);
        check("١", None);
    }

    #[test]
    fn json_accepts_strings_only() {
        assert_eq!(serde_json::from_str::<Amount>("\"12\"").ok(), Some(Amount(12)));
        assert!(serde_json::from_str::<Amount>("12").is_err());
        assert!(serde_json::from_str::<Amount>("-12").is_err());
        assert!(serde_json::from_str::<Amount>("1.0").is_err());
        assert_eq!(
            serde_json::to_string(&Amount(u128::MAX)).ok().as_deref(),
            Some("\"340282366920938463463374607431768211455\"")
        );
    }
}
