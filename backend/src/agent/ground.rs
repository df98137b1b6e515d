//! What a line may say (pure): every amount, handle, number and quoted lot name in
//! it must come from the auction's state; no links unless allowed; nothing from the
//! block list; a length that fits its channel. Mood tags (`[excited]`) are read off
//! a model's line here too.

use sothebais_shared::amount::Amount;
use sothebais_shared::events::{Channel, Mood};

/// What the state says, which a line may repeat.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub amounts: Vec<Amount>,
    /// Without `@`, lower case.
    pub handles: Vec<String>,
    /// Seconds left, lot numbers, bid counts, durations…
    pub numbers: Vec<i64>,
    /// Lot titles, lower case.
    pub titles: Vec<String>,
}

impl Facts {
    pub fn amount(&mut self, amount: Amount) {
        self.amounts.push(amount);
    }

    pub fn handle(&mut self, handle: &str) {
        self.handles.push(handle.trim_start_matches('@').to_lowercase());
    }

    /// A time in seconds: the nearby seconds count as well (a line is spoken a
    /// moment after it was written), and whole minutes.
    pub fn seconds(&mut self, secs: i64) {
        self.numbers.extend((secs - 2).max(0)..=secs + 1);
        if secs >= 60 {
            self.numbers.extend([secs / 60, (secs + 59) / 60]);
        }
    }
}

/// Why a line may not be said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unfit {
    #[error("states the amount {0}, which the auction does not")]
    Amount(String),
    #[error("names @{0}, who is not in the auction")]
    Handle(String),
    #[error("states the number {0}, which the auction does not")]
    Number(String),
    #[error("names the lot {0:?}, which is not on sale")]
    Title(String),
    #[error("carries a link")]
    Link,
    #[error("contains the blocked {0:?}")]
    Blocked(String),
    #[error("is empty")]
    Empty,
    #[error("repeats the previous line")]
    Repeat,
}

/// The rules a line is held to.
#[derive(Debug, Clone)]
pub struct Policy {
    pub allow_links: bool,
    /// Lower case words and phrases.
    pub blocklist: Vec<String>,
    pub caption_max_chars: usize,
}

/// Words and phrases no line of the show may contain, whatever the configuration:
/// wallet scams and financial promises, and the coarsest words.
pub const BUILT_IN_BLOCKLIST: &[&str] = &[
    "seed phrase",
    "private key",
    "recovery phrase",
    "send eth to",
    "guaranteed return",
    "guaranteed profit",
    "financial advice",
    "investment advice",
    "airdrop claim",
    "fuck",
    "shit",
    "cunt",
];

/// The longest line for a channel: X's 280, the caption's setting.
pub fn max_chars(channel: Channel, policy: &Policy) -> usize {
    match channel {
        Channel::X => 280,
        Channel::Stream => policy.caption_max_chars,
    }
}

/// Reads the mood tags out of a model's line: the first known one is the mood, all
/// `[word]` tags are removed.
pub fn take_tags(text: &str) -> (Option<Mood>, String) {
    let mut mood = None;
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']') else { break };
        let tag = &rest[open + 1..open + close];
        if tag.len() <= 16 && tag.chars().all(|c| c.is_ascii_alphabetic() || c == '_') {
            out.push_str(&rest[..open]);
            if mood.is_none() {
                mood = tag_mood(&tag.to_ascii_lowercase());
            }
        } else {
            out.push_str(&rest[..open + close + 1]);
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    let cleaned = out.split_whitespace().collect::<Vec<_>>().join(" ");
    (mood, cleaned)
}

/// Our moods, and the tags other hosts' models are used to (aituber-kit, Open-LLM-VTuber).
fn tag_mood(tag: &str) -> Option<Mood> {
    Some(match tag {
        "neutral" | "relaxed" | "calm" => Mood::Neutral,
        "happy" | "joy" | "smile" => Mood::Happy,
        "excited" | "excitement" => Mood::Excited,
        "tense" | "nervous" | "angry" | "fear" => Mood::Tense,
        "surprised" | "surprise" => Mood::Surprised,
        "disappointed" | "sad" | "sadness" => Mood::Disappointed,
        "celebrating" | "celebrate" | "party" => Mood::Celebrating,
        _ => return None,
    })
}

/// Cuts a line to `max` characters: at the last sentence end that fits, else at a
/// word, with an ellipsis.
pub fn fit(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max).collect();
    if let Some(end) = cut.rfind(['.', '!', '?'])
        && end + 1 >= max / 3
    {
        return cut[..=end].to_owned();
    }
    let words: String = text.chars().take(max.saturating_sub(1)).collect();
    let at = words.rfind(' ').unwrap_or(words.len());
    format!("{}…", words[..at].trim_end_matches([',', ';', ':', ' ', '-']))
}

/// Whether a line may be said, given the facts and the previous line.
pub fn check(line: &str, facts: &Facts, policy: &Policy, previous: Option<&str>) -> Result<(), Unfit> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Err(Unfit::Empty);
    }
    if previous.is_some_and(|previous| previous.trim().eq_ignore_ascii_case(trimmed)) {
        return Err(Unfit::Repeat);
    }
    let lower = trimmed.to_lowercase();
    for word in BUILT_IN_BLOCKLIST.iter().copied().chain(policy.blocklist.iter().map(String::as_str)) {
        if contains_word(&lower, word) {
            return Err(Unfit::Blocked(word.to_owned()));
        }
    }
    if !policy.allow_links && has_link(&lower) {
        return Err(Unfit::Link);
    }
    check_handles(trimmed, facts)?;
    check_numbers(trimmed, facts)?;
    check_titles(trimmed, facts)
}

fn contains_word(text: &str, word: &str) -> bool {
    let mut from = 0;
    while let Some(found) = text[from..].find(word) {
        let start = from + found;
        let end = start + word.len();
        let before = text[..start].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
        let after = text[end..].chars().next().is_none_or(|c| !c.is_alphanumeric());
        if before && after {
            return true;
        }
        from = end;
    }
    false
}

fn has_link(lower: &str) -> bool {
    if lower.contains("http://") || lower.contains("https://") || lower.contains("www.") {
        return true;
    }
    const ENDINGS: &[&str] =
        &[".com", ".io", ".xyz", ".net", ".org", ".gg", ".app", ".co", ".art", ".eth", ".ly"];
    lower.split_whitespace().any(|word| {
        let word = word.trim_end_matches(['.', ',', '!', '?', ')', '"', '\'']);
        ENDINGS.iter().any(|ending| {
            word.len() > ending.len() + 1
                && (word.ends_with(ending) || word.contains(&format!("{ending}/")))
                && word.chars().next().is_some_and(char::is_alphanumeric)
        })
    })
}

fn check_handles(line: &str, facts: &Facts) -> Result<(), Unfit> {
    let bytes = line.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'@' {
            let start = index + 1;
            let mut end = start;
            while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
                end += 1;
            }
            if end > start {
                let handle = line[start..end].to_lowercase();
                if !facts.handles.contains(&handle) {
                    return Err(Unfit::Handle(handle));
                }
            }
            index = end.max(index + 1);
        } else {
            index += 1;
        }
    }
    Ok(())
}

/// Every number in the line: one with a decimal point or next to `ETH`/`Ξ` is an
/// amount and must equal one of the state's; any other above 3 must be one of its
/// numbers.
fn check_numbers(line: &str, facts: &Facts) -> Result<(), Unfit> {
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut index = 0;
    while index < chars.len() {
        let (start, c) = chars[index];
        let previous = index.checked_sub(1).map(|at| chars[at].1);
        if !c.is_ascii_digit()
            || previous.is_some_and(|p| (p.is_alphanumeric() && p != 'Ξ') || p == '_' || p == '@')
        {
            index += 1;
            continue;
        }
        let mut end_index = index;
        while end_index + 1 < chars.len() {
            let next = chars[end_index + 1].1;
            let after = chars.get(end_index + 2).map(|(_, c)| *c);
            if next.is_ascii_digit()
                || ((next == '.' || next == ',') && after.is_some_and(|a| a.is_ascii_digit()))
            {
                end_index += 1;
            } else {
                break;
            }
        }
        let end = chars.get(end_index + 1).map_or(line.len(), |(at, _)| *at);
        let number = &line[start..end];
        let tail = line[end..].trim_start().to_lowercase();
        let head = line[..start].trim_end();
        let is_amount = number.contains('.')
            || tail.starts_with("eth")
            || tail.starts_with('ξ')
            || head.ends_with('Ξ')
            || head.to_lowercase().ends_with("eth");
        if is_amount {
            let amount: Option<Amount> = number.replace(',', "").parse().ok();
            if !amount.is_some_and(|amount| facts.amounts.contains(&amount)) {
                return Err(Unfit::Amount(number.to_owned()));
            }
        } else {
            let value: Option<i64> = number.replace(',', "").parse().ok();
            if !value.is_some_and(|value| value <= 3 || facts.numbers.contains(&value)) {
                return Err(Unfit::Number(number.to_owned()));
            }
        }
        index = end_index + 1;
    }
    Ok(())
}

/// A quoted name of three words or fewer that is not a lot on sale: the model made
/// up a lot. (Longer quotes are speech, which the host may quote.)
fn check_titles(line: &str, facts: &Facts) -> Result<(), Unfit> {
    let mut parts = line.split(['"', '“', '”']);
    parts.next();
    while let Some(quoted) = parts.next() {
        let name = quoted.trim().to_lowercase();
        let short = name.split_whitespace().count() <= 3;
        if short && !name.is_empty() && !facts.titles.contains(&name) {
            return Err(Unfit::Title(quoted.trim().to_owned()));
        }
        parts.next();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        let mut facts = Facts::default();
        facts.amount("1.5".parse().expect("amount"));
        facts.amount("1.6".parse().expect("amount"));
        facts.handle("@curie");
        facts.seconds(42);
        facts.numbers.push(7);
        facts.titles.push("dawn over tokyo".into());
        facts
    }

    fn policy() -> Policy {
        Policy { allow_links: false, blocklist: vec!["rugpull".into()], caption_max_chars: 120 }
    }

    #[test]
    fn lines_that_only_repeat_the_state_pass() {
        for line in [
            "What a bid! @curie leads at 1.5 ETH, next bid 1.6 ETH.",
            "Lot 7, \"Dawn over Tokyo\", 42 s left. Who will give me 1.6?",
            "Ξ1.5 from @Curie, forty seconds to go!",
            "Two bidders, one painting.",
        ] {
            assert_eq!(check(line, &facts(), &policy(), None), Ok(()), "{line}");
        }
    }

    #[test]
    fn invented_amounts_handles_numbers_titles_and_links_are_refused() {
        let cases = [
            ("@curie leads at 2.5 ETH!", Unfit::Amount("2.5".into())),
            ("I hear 3 ETH!", Unfit::Amount("3".into())),
            ("Over to @satoshi!", Unfit::Handle("satoshi".into())),
            ("Ξ9.9 from @curie", Unfit::Amount("9.9".into())),
            ("Only 90 seconds left", Unfit::Number("90".into())),
            ("Next up, \"Moon Cat\"!", Unfit::Title("Moon Cat".into())),
            ("See sothebais.com/lots", Unfit::Link),
            ("More at https://example.org", Unfit::Link),
            ("No rugpull here", Unfit::Blocked("rugpull".into())),
            ("Never share your seed phrase, friends", Unfit::Blocked("seed phrase".into())),
            ("   ", Unfit::Empty),
        ];
        for (line, why) in cases {
            assert_eq!(check(line, &facts(), &policy(), None), Err(why), "{line}");
        }
        assert_eq!(check("Same words.", &facts(), &policy(), Some("same words.")), Err(Unfit::Repeat));
    }

    #[test]
    fn tags_are_read_and_removed() {
        assert_eq!(take_tags("[excited] What a bid!"), (Some(Mood::Excited), "What a bid!".into()));
        assert_eq!(take_tags("[joy]Lovely [wink] work"), (Some(Mood::Happy), "Lovely work".into()));
        assert_eq!(take_tags("No tag [1.5 ETH]"), (None, "No tag [1.5 ETH]".into()));
        assert_eq!(take_tags("[unknown] hm"), (None, "hm".into()));
    }

    #[test]
    fn long_lines_are_cut_at_a_sentence_or_a_word() {
        let line = "First sentence here. Second sentence is much longer than the limit allows.";
        assert_eq!(fit(line, 40), "First sentence here.");
        let words = "one two three four five six seven eight nine ten eleven";
        let cut = fit(words, 20);
        assert!(cut.chars().count() <= 20 && cut.ends_with('…'), "{cut}");
        assert_eq!(fit("short", 20), "short");
    }
}
