//! EVM addresses: 20 bytes, accepted in lowercase, uppercase or EIP-55 mixed-case checksum form,
//! and always displayed with the EIP-55 checksum.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct EvmAddress(pub [u8; 20]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressParseError {
    #[error("address {0:?} is not 0x followed by 40 hexadecimal digits")]
    Malformed(String),
    #[error("address {0:?} has mixed case but fails its EIP-55 checksum; check for a typo")]
    BadChecksum(String),
}

fn keccak256(bytes: &[u8]) -> [u8; 32] {
    use tiny_keccak::Hasher;
    let mut hasher = tiny_keccak::Keccak::v256();
    hasher.update(bytes);
    let mut output = [0u8; 32];
    hasher.finalize(&mut output);
    output
}

impl EvmAddress {
    /// The EIP-55 form: hex digit i is uppercase when nibble i of keccak256(lowercase hex) >= 8.
    pub fn to_checksummed(&self) -> String {
        let lower: String = self.0.iter().map(|b| format!("{b:02x}")).collect();
        let hash = keccak256(lower.as_bytes());
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, c) in lower.chars().enumerate() {
            let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
            out.push(if nibble >= 8 { c.to_ascii_uppercase() } else { c });
        }
        out
    }
}

/// Serialized as the checksummed string; read back in any case (a checksum that fails is refused).
impl serde::Serialize for EvmAddress {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_checksummed())
    }
}

impl<'de> serde::Deserialize<'de> for EvmAddress {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for EvmAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksummed())
    }
}

impl EvmAddress {
    /// Parses `0x` and 40 hex digits in any case without checking an EIP-55 checksum: for
    /// addresses the node stored itself after a checked parse, where the checksum would only cost
    /// a hash per row.
    pub fn from_stored(text: &str) -> Option<EvmAddress> {
        let hex = text.strip_prefix("0x")?.as_bytes();
        if hex.len() != 40 {
            return None;
        }
        let digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
        let mut bytes = [0u8; 20];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = digit(hex[2 * i])? << 4 | digit(hex[2 * i + 1])?;
        }
        Some(EvmAddress(bytes))
    }
}

impl FromStr for EvmAddress {
    type Err = AddressParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let malformed = || AddressParseError::Malformed(text.to_owned());
        let hex = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")).ok_or_else(malformed)?;
        if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed());
        }
        let mut bytes = [0u8; 20];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| malformed())?;
        }
        let address = EvmAddress(bytes);
        let mixed_case =
            hex.bytes().any(|b| b.is_ascii_lowercase()) && hex.bytes().any(|b| b.is_ascii_uppercase());
        if mixed_case && address.to_checksummed()[2..] != *hex {
            return Err(AddressParseError::BadChecksum(text.to_owned()));
        }
        Ok(address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Result<&str, ()>) {
        let parsed = text.parse::<EvmAddress>().map(|a| a.to_string()).map_err(|_| ());
        assert_eq!(parsed.as_deref(), expected.as_deref().map_err(|_| &()), "{text}");
    }

    #[test]
    fn accepts_checksummed_or_single_case() {
        // Vectors from EIP-55.
        let good = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        check(good, Ok(good));
        check(&good.to_lowercase(), Ok(good));
        check(&format!("0x{}", good[2..].to_uppercase()), Ok(good));
        check("0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359", Ok("0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"));
        check("0x70997970c51812dc3a010c7d01b50e0d17dc79c8", Ok("0x70997970C51812dc3A010C7d01b50e0d17dc79C8"));
        check("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD", Err(()));
        check("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beae", Err(()));
        check("5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", Err(()));
        check("0xzzaeb6053f3e94c9b9a09f33669435e7ef1beaed", Err(()));
    }

    #[test]
    fn stored_addresses_parse_to_the_same_bytes() {
        let good: EvmAddress = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".parse().expect("valid");
        assert_eq!(EvmAddress::from_stored(&good.to_string()), Some(good));
        assert_eq!(EvmAddress::from_stored("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"), Some(good));
        assert_eq!(EvmAddress::from_stored("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beae"), None);
        assert_eq!(EvmAddress::from_stored("0xzzaeb6053f3e94c9b9a09f33669435e7ef1beaed"), None);
    }
}
