//! Reading a bid out of a post: a pure function of the text (see `x.md`, "Parsing a
//! bid"). One pass over the words, each word read once, so the time is linear in the
//! length of the post whatever it holds.
//!
//! A post is a bid when it holds `bid` followed by an amount (`bid 1.5`, `bid: .5`,
//! `bid Ξ2`), or an amount with an explicit unit anywhere (`1.5 ETH`, `1.5eth`, `Ξ1.5`).
//! A dot is the decimal point; a lone comma followed by anything but three digits is a
//! decimal comma (`1,5`); a number that can be read two ways (`1,500`, `1.500,5`,
//! `1,000.5`) is [`Reading::Ambiguous`]. Bare numbers, other currencies, zero and
//! negative amounts are not bids.

use sothebais_shared::amount::{Amount, AmountError};

/// What a post says, as far as bidding goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Chatter, a bare number, another currency, zero or a negative amount.
    NotABid,
    Bid {
        amount: Reading,
        /// The lot the post names (`#lot3`, `lot 3`), 1-based.
        lot: Option<u32>,
    },
}

/// The amount of a bid, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    Exact(Amount),
    /// The number can be read two ways (`1,500`); the text as written.
    Ambiguous(String),
    /// Not a valid ETH amount: more than 18 decimals, or above the sanity cap.
    Invalid(String),
}

impl Parsed {
    pub fn is_bid(&self) -> bool {
        matches!(self, Parsed::Bid { .. })
    }
}

/// Reads `text` as a bid. `max_bid` is the sanity cap (`MAX_BID_ETH`).
pub fn parse(text: &str, max_bid: Amount) -> Parsed {
    let lowered = text.to_lowercase();
    let words: Vec<&str> = lowered.split_whitespace().map(trim_punctuation).collect();
    let mut found = None;
    for (index, &word) in words.iter().enumerate() {
        let next = words.get(index + 1).copied();
        let candidate = match after_bid_keyword(word) {
            Some(Some(glued)) => glued,
            Some(None) => match next {
                Some(next) => next,
                None => continue,
            },
            // `Ξ 1.5`: the sign, then the number.
            None if word == "ξ" => match next {
                Some(next) => next,
                None => continue,
            },
            // Without `bid`, only an amount with its unit counts: `1.5eth`, `Ξ1.5`, `1.5 eth`.
            None if has_unit(word) || next.is_some_and(is_eth_unit) => word,
            None => continue,
        };
        match read_amount(candidate) {
            Some(Token::Amount(reading)) => {
                found = Some(reading);
                break;
            }
            Some(Token::Refused) => return Parsed::NotABid,
            None => {}
        }
    }
    let lot = named_lot(&words);
    match found {
        None => Parsed::NotABid,
        Some(Reading::Exact(amount)) if amount.is_zero() => Parsed::NotABid,
        Some(Reading::Exact(amount)) if amount > max_bid => {
            Parsed::Bid { amount: Reading::Invalid(format!("above the cap of {max_bid} ETH")), lot }
        }
        Some(amount) => Parsed::Bid { amount, lot },
    }
}

/// What a word holds when it looks like an amount.
enum Token {
    Amount(Reading),
    /// A negative amount or another currency: the post is not a bid.
    Refused,
}

/// The lower-case ether sign (the text is read lower-cased, and `Ξ` lowers to `ξ`).
const XI: char = 'ξ';
const OTHER_CURRENCIES: [&str; 9] = ["$", "€", "£", "¥", "usd", "eur", "usdc", "usdt", "dollars"];

/// `bid` or `bid:` (`Some(None)`: the amount is the next word), or `bid:1.5` /
/// `bid1.5` (the amount glued on). `bids`, `bidding` and `bidder` are not the keyword.
fn after_bid_keyword(word: &str) -> Option<Option<&str>> {
    let rest = word.strip_prefix("bid")?;
    let rest = rest.strip_prefix(':').unwrap_or(rest);
    if rest.is_empty() {
        Some(None)
    } else if rest.starts_with(|c: char| c.is_ascii_digit() || c == '.' || c == XI) {
        Some(Some(rest))
    } else {
        None
    }
}

fn is_eth_unit(word: &str) -> bool {
    matches!(word, "eth" | "ether") || word == "ξ"
}

fn has_unit(word: &str) -> bool {
    word.starts_with(XI) || word.ends_with(XI) || word.ends_with("eth") || word.ends_with("ether")
}

/// Strips what people put around words: quotes, brackets, `!`, `?`, and a full stop
/// or comma that ends a sentence (`bid 1.5.` is 1.5).
fn trim_punctuation(word: &str) -> &str {
    let word = word.trim_matches(|c: char| {
        matches!(c, '"' | '\'' | '(' | ')' | '[' | ']' | '!' | '?' | ';' | '“' | '”' | '‘' | '’')
    });
    word.strip_suffix(['.', ','])
        .filter(|rest| rest.ends_with(|c: char| c.is_ascii_digit() || c.is_alphabetic()))
        .unwrap_or(word)
}

/// Reads a word as an amount: `1.5`, `.5`, `1,5`, `Ξ1.5`, `1.5eth`, `1.5ξ`.
fn read_amount(word: &str) -> Option<Token> {
    let unsigned = word.strip_prefix(['-', '−']);
    if unsigned.is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit() || c == '.' || c == XI)) {
        return Some(Token::Refused);
    }
    if word.contains(|c: char| c.is_ascii_digit())
        && OTHER_CURRENCIES.iter().any(|currency| word.starts_with(currency) || word.ends_with(currency))
    {
        return Some(Token::Refused);
    }
    let number = word.strip_prefix(XI).unwrap_or(word);
    let number = ["ether", "eth"]
        .iter()
        .find_map(|unit| number.strip_suffix(unit))
        .or_else(|| number.strip_suffix(XI))
        .unwrap_or(number);
    let digits_only = number.bytes().all(|byte| byte.is_ascii_digit() || byte == b'.' || byte == b',');
    if !digits_only || !number.bytes().any(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some(Token::Amount(read_number(number)))
}

/// Reads digits with at most one decimal separator; grouping separators make it
/// ambiguous.
fn read_number(number: &str) -> Reading {
    let dots = number.bytes().filter(|&byte| byte == b'.').count();
    let commas = number.bytes().filter(|&byte| byte == b',').count();
    let decimal = match (dots, commas) {
        (0, 0) | (1, 0) => number.to_owned(),
        (0, 1) => {
            let (whole, fraction) = number.split_once(',').unwrap_or((number, ""));
            if fraction.len() == 3 && !whole.is_empty() {
                return Reading::Ambiguous(number.to_owned());
            }
            format!("{whole}.{fraction}")
        }
        _ => return Reading::Ambiguous(number.to_owned()),
    };
    match decimal.parse::<Amount>() {
        Ok(amount) => Reading::Exact(amount),
        Err(AmountError::TooManyDecimals) => Reading::Invalid("more than 18 decimals".into()),
        Err(AmountError::Overflow) => Reading::Invalid("too large".into()),
        Err(_) => Reading::Invalid("not a number".into()),
    }
}

/// The lot a post names: `#lot3`, `lot 3`, `lot #3`, `lot3`.
fn named_lot(words: &[&str]) -> Option<u32> {
    for (index, word) in words.iter().enumerate() {
        let Some(rest) = word.strip_prefix("#lot").or_else(|| word.strip_prefix("lot")) else {
            continue;
        };
        let digits = if rest.is_empty() { words.get(index + 1).copied().unwrap_or("") } else { rest };
        let digits = digits.strip_prefix('#').unwrap_or(digits);
        if !digits.is_empty()
            && digits.len() <= 9
            && digits.bytes().all(|byte| byte.is_ascii_digit())
            && let Ok(number) = digits.parse::<u32>()
            && number > 0
        {
            return Some(number);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const CAP: Amount = Amount::from_eth(10_000);

    fn eth(text: &str) -> Amount {
        text.parse().expect("amount")
    }

    fn bid(text: &str) -> Parsed {
        parse(text, CAP)
    }

    #[test]
    fn every_accepted_form_reads_its_amount() {
        let cases = [
            ("@SothebAIs bid 1.5", "1.5"),
            ("bid 1.5 eth", "1.5"),
            ("BID 1.5 ETH", "1.5"),
            ("bid: 1.5", "1.5"),
            ("bid:1.5", "1.5"),
            ("1.5 ETH", "1.5"),
            ("1.5eth", "1.5"),
            ("1.5 ether please", "1.5"),
            ("Ξ1.5", "1.5"),
            ("Ξ 1.5", "1.5"),
            ("bid Ξ2", "2"),
            ("bid .5", "0.5"),
            ("bid 1,5", "1.5"),
            ("bid 0,25", "0.25"),
            ("bid 2", "2"),
            ("bid 1.500", "1.5"),
            ("ok ok BID 3!!", "3"),
            ("@SothebAIs I'll bid 1.5.", "1.5"),
            ("bid (2.25)", "2.25"),
            ("bid 0.000000000000000001", "0.000000000000000001"),
            ("bid 10000", "10000"),
            ("@curie @SothebAIs bid 1.2 #lot3", "1.2"),
        ];
        for (text, amount) in cases {
            match bid(text) {
                Parsed::Bid { amount: Reading::Exact(read), .. } => {
                    assert_eq!(read, eth(amount), "{text:?}");
                }
                other => panic!("{text:?} read as {other:?}"),
            }
        }
    }

    #[test]
    fn posts_that_are_not_bids() {
        let cases = [
            "I'm 12 lol",
            "@SothebAIs 1.5",
            "what a lot!",
            "bid $50",
            "$50 bid",
            "50 usd",
            "bid 50usd",
            "bid €20",
            "bid -1",
            "bid −1.5",
            "-1 eth",
            "bid 0",
            "bid 0.0 eth",
            "I bid you farewell",
            "bidding war incoming",
            "@eth123 hello",
            "",
            "bid",
            "bid .",
            "Ξ",
            "lot 3 looks great",
        ];
        for text in cases {
            assert_eq!(bid(text), Parsed::NotABid, "{text:?}");
        }
    }

    #[test]
    fn numbers_read_two_ways_are_ambiguous() {
        for (text, written) in [
            ("bid 1,500", "1,500"),
            ("bid 1.500,5", "1.500,5"),
            ("bid 1,000.5", "1,000.5"),
            ("1,500 eth", "1,500"),
            ("bid 1.2.3", "1.2.3"),
        ] {
            assert_eq!(
                bid(text),
                Parsed::Bid { amount: Reading::Ambiguous(written.into()), lot: None },
                "{text:?}"
            );
        }
    }

    #[test]
    fn too_many_decimals_or_above_the_cap_is_invalid() {
        assert!(matches!(
            bid("bid 0.0000000000000000001"),
            Parsed::Bid { amount: Reading::Invalid(reason), .. } if reason.contains("18 decimals")
        ));
        assert!(matches!(
            bid("bid 10000.000000000000000001"),
            Parsed::Bid { amount: Reading::Invalid(reason), .. } if reason.contains("cap")
        ));
        assert!(matches!(
            bid("bid 99999999999999999999999999999999999999"),
            Parsed::Bid { amount: Reading::Invalid(_), .. }
        ));
        assert_eq!(
            parse("bid 5", Amount::from_eth(4)),
            Parsed::Bid { amount: Reading::Invalid("above the cap of 4 ETH".into()), lot: None }
        );
    }

    #[test]
    fn a_post_may_name_its_lot() {
        for (text, lot) in [
            ("bid 2 #lot3", Some(3)),
            ("bid 2 lot 3", Some(3)),
            ("bid 2 lot #3", Some(3)),
            ("#LOT12 bid 2", Some(12)),
            ("bid 2 lot3.", Some(3)),
            ("bid 2 lot 0", None),
            ("bid 2 lottery", None),
            ("bid 2", None),
        ] {
            match bid(text) {
                Parsed::Bid { lot: named, .. } => assert_eq!(named, lot, "{text:?}"),
                other => panic!("{text:?} read as {other:?}"),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// A printed amount reads back to the same wei, in every accepted form.
        #[test]
        fn a_printed_amount_parses_back_to_the_same_wei(wei in 1u128..=10_000u128 * 10u128.pow(18), form in 0usize..4) {
            let amount = Amount::from_wei(wei);
            let text = match form {
                0 => format!("@SothebAIs bid {amount}"),
                1 => format!("{amount} ETH"),
                2 => format!("Ξ{amount}"),
                _ => format!("bid: {amount}eth #lot2"),
            };
            prop_assert_eq!(
                parse(&text, CAP),
                Parsed::Bid { amount: Reading::Exact(amount), lot: (form == 3).then_some(2) }
            );
        }

        /// Whatever the text, the parser answers without panicking.
        #[test]
        fn no_input_makes_the_parser_panic(text in "\\PC{0,200}") {
            let _ = parse(&text, CAP);
        }

        /// Text made of the parser's own vocabulary, the likeliest to trip it.
        #[test]
        fn bid_like_text_never_panics(parts in proptest::collection::vec(
            prop_oneof![
                Just("bid".to_owned()), Just("bid:".to_owned()), Just("eth".to_owned()),
                Just("Ξ".to_owned()), Just("#lot".to_owned()), Just("lot".to_owned()),
                Just("-".to_owned()), Just("$".to_owned()), Just(",".to_owned()), Just(".".to_owned()),
                "[0-9.,Ξ$-]{1,12}".prop_map(|text| text),
            ],
            0..30,
        )) {
            let _ = parse(&parts.join(" "), CAP);
            let _ = parse(&parts.concat(), CAP);
        }
    }
}
