//! Typed identifiers. Each kind of object has its own id type so that an account id can never be
//! passed where a datanet id is expected; on the wire every id carries a short prefix
//! (`acct_12`, `dn_3`) for the same reason.

use std::fmt;
use std::str::FromStr;

/// The id text did not have the expected prefix or number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} id {text:?}: expected {prefix}_<number>")]
pub struct IdParseError {
    pub kind: &'static str,
    pub prefix: &'static str,
    pub text: String,
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
        pub struct $name(pub u64);

        impl $name {
            pub const PREFIX: &'static str = $prefix;
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}_{}", $prefix, self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                let error = || IdParseError { kind: $kind, prefix: $prefix, text: text.to_owned() };
                let digits = text
                    .strip_prefix($prefix)
                    .and_then(|rest| rest.strip_prefix('_'))
                    .ok_or_else(error)?;
                if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(error());
                }
                digits.parse::<u64>().map($name).map_err(|_| error())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// An account: a user, the operator, or one of the node's internal accounts.
    AccountId, "acct", "account"
);
id_type!(
    /// A datanet: a curated collection of contributions.
    DatanetId, "dn", "datanet"
);
id_type!(
    /// One contributed document.
    ContributionId, "ctb", "contribution"
);
id_type!(
    /// A registered model.
    ModelId, "mdl", "model"
);
id_type!(
    /// One immutable ledger transfer; a hold is a pending transfer and shares this id space.
    TransferId, "xfr", "transfer"
);

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Option<u64>) {
        assert_eq!(text.parse::<AccountId>().ok().map(|id| id.0), expected, "{text}");
    }

    #[test]
    fn parses_only_canonical_ids() {
        check("acct_0", Some(0));
        check("acct_42", Some(42));
        check("acct_18446744073709551615", Some(u64::MAX));
        check("acct_18446744073709551616", None);
        check("acct_", None);
        check("acct_-1", None);
        check("acct_+1", None);
        check("acct_1 ", None);
        check("dn_1", None);
        check("42", None);
        check("", None);
    }

    #[test]
    fn display_round_trips() {
        let id = DatanetId(7);
        assert_eq!(id.to_string(), "dn_7");
        assert_eq!("dn_7".parse::<DatanetId>(), Ok(id));
    }
}
