//! Exact ETH amounts.
//!
//! An [`Amount`] is an integer number of wei. It is read from and written as a
//! decimal ETH string with at most 18 decimals (`"1.5"`, `"0.000000000000000001"`),
//! so no float ever touches money.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Wei per ether.
pub const WEI_PER_ETH: u128 = 1_000_000_000_000_000_000;
/// Decimals of ether.
pub const ETH_DECIMALS: usize = 18;

/// An amount of ETH, held as wei.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(u128);

/// Why a string is not an [`Amount`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount is empty")]
    Empty,
    #[error("amount must be a plain decimal number such as \"1.25\"")]
    NotANumber,
    #[error("amount has more than 18 decimals")]
    TooManyDecimals,
    #[error("amount is too large")]
    Overflow,
}

impl Amount {
    /// Zero wei.
    pub const ZERO: Amount = Amount(0);

    /// An amount of `wei`.
    pub const fn from_wei(wei: u128) -> Self {
        Amount(wei)
    }

    /// A whole number of ether.
    pub const fn from_eth(eth: u64) -> Self {
        Amount(eth as u128 * WEI_PER_ETH)
    }

    /// The amount in wei.
    pub const fn wei(self) -> u128 {
        self.0
    }

    /// True when the amount is zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    /// `self - other`, or `None` when `other` is larger.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// `percent` % of this amount, rounded up to the next wei so that a minimum
    /// raise is never below the stated percentage.
    pub fn percent_ceil(self, percent: u32) -> Option<Amount> {
        let scaled = self.0.checked_mul(u128::from(percent))?;
        Some(Amount(scaled.div_ceil(100)))
    }
}

impl FromStr for Amount {
    type Err = AmountError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err(AmountError::Empty);
        }
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (text, None),
        };
        let all_digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
        // "1." and ".5" are accepted as people write them; "." alone is not a number.
        if !all_digits(whole) || whole.is_empty() && fraction.is_none_or(str::is_empty) {
            return Err(AmountError::NotANumber);
        }
        let fraction = fraction.unwrap_or("");
        if !all_digits(fraction) {
            return Err(AmountError::NotANumber);
        }
        if fraction.len() > ETH_DECIMALS {
            return Err(AmountError::TooManyDecimals);
        }
        let mut wei: u128 = 0;
        for byte in whole.bytes() {
            wei = wei
                .checked_mul(10)
                .and_then(|value| value.checked_add(u128::from(byte - b'0')))
                .ok_or(AmountError::Overflow)?;
        }
        wei = wei.checked_mul(WEI_PER_ETH).ok_or(AmountError::Overflow)?;
        let mut fraction_wei: u128 = 0;
        for byte in fraction.bytes() {
            fraction_wei = fraction_wei * 10 + u128::from(byte - b'0');
        }
        let padding = ETH_DECIMALS - fraction.len();
        fraction_wei *= 10u128.pow(padding as u32);
        wei.checked_add(fraction_wei).map(Amount).ok_or(AmountError::Overflow)
    }
}

impl fmt::Display for Amount {
    /// The shortest exact decimal: `1`, `1.5`, `0.000000000000000001`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / WEI_PER_ETH;
        let fraction = self.0 % WEI_PER_ETH;
        if fraction == 0 {
            return write!(formatter, "{whole}");
        }
        let digits = format!("{fraction:018}");
        write!(formatter, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Amount {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Amount".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "An amount of ETH as an exact decimal string with at most 18 decimals.",
            "pattern": "^[0-9]*\\.?[0-9]{0,18}$",
            "examples": ["1.25"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_prints_exact_decimals() {
        for (text, wei, printed) in [
            ("1", WEI_PER_ETH, "1"),
            ("1.5", WEI_PER_ETH + WEI_PER_ETH / 2, "1.5"),
            ("0.000000000000000001", 1, "0.000000000000000001"),
            ("1.250", 1_250_000_000_000_000_000, "1.25"),
            (".5", WEI_PER_ETH / 2, "0.5"),
            ("2.", 2 * WEI_PER_ETH, "2"),
            ("0", 0, "0"),
        ] {
            let amount: Amount = text.parse().expect(text);
            assert_eq!(amount.wei(), wei, "{text}");
            assert_eq!(amount.to_string(), printed, "{text}");
        }
    }

    #[test]
    fn rejects_what_is_not_an_exact_amount() {
        for (text, error) in [
            ("", AmountError::Empty),
            (".", AmountError::NotANumber),
            ("-1", AmountError::NotANumber),
            ("1e3", AmountError::NotANumber),
            ("1,500", AmountError::NotANumber),
            (" 1", AmountError::NotANumber),
            ("1.2.3", AmountError::NotANumber),
            ("0.0000000000000000001", AmountError::TooManyDecimals),
            ("999999999999999999999999999999999", AmountError::Overflow),
        ] {
            assert_eq!(text.parse::<Amount>(), Err(error), "{text:?}");
        }
    }

    #[test]
    fn serializes_as_a_string_never_a_number() {
        let amount: Amount = "1.05".parse().expect("valid");
        assert_eq!(serde_json::to_string(&amount).expect("serialize"), "\"1.05\"");
        let back: Amount = serde_json::from_str("\"1.05\"").expect("deserialize");
        assert_eq!(back, amount);
        assert!(serde_json::from_str::<Amount>("1.05").is_err());
    }

    #[test]
    fn percent_rounds_up_to_the_next_wei() {
        assert_eq!(Amount::from_wei(101).percent_ceil(5), Some(Amount::from_wei(6)));
        assert_eq!(Amount::from_eth(1).percent_ceil(5), "0.05".parse().ok());
    }

    proptest! {
        #[test]
        fn display_then_parse_is_identity(wei in any::<u128>()) {
            let amount = Amount::from_wei(wei);
            prop_assert_eq!(amount.to_string().parse::<Amount>(), Ok(amount));
        }
    }
}
