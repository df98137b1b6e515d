//! What the host says: the moment and the state it speaks about (`Situation`), the
//! facts a line may repeat, and the template speaker, which needs no model. It
//! builds lines from the character's own line templates (`templates.<moment>`), its
//! catchphrases and examples, and built-in sentences, picks one at random, and never
//! repeats the previous line.

use rand::Rng;
use sothebais_shared::amount::Amount;
use sothebais_shared::events::Channel;
use uuid::Uuid;

use super::character::{Character, Moment};
use super::ground::{self, Facts, Policy};

/// A lot as the host sees it when it speaks.
#[derive(Debug, Clone, PartialEq)]
pub struct LotView {
    pub id: Uuid,
    pub title: String,
    pub number: Option<u32>,
    pub starting: Amount,
    pub high: Option<Amount>,
    /// The high bidder, as the show names them (`@handle` or the bidder id).
    pub leader: Option<String>,
    pub min_next: Amount,
    pub secs_left: Option<i64>,
    pub bids: u64,
}

impl LotView {
    /// `Lot 3, "Title"`, or `"Title"` outside a campaign.
    pub fn name(&self) -> String {
        match self.number {
            Some(number) => format!("Lot {number}, \"{}\"", self.title),
            None => format!("\"{}\"", self.title),
        }
    }
}

/// What the host is about to speak of.
#[derive(Debug, Clone, PartialEq)]
pub struct Situation {
    pub moment: Moment,
    pub channel: Channel,
    pub lot: Option<LotView>,
    /// The bidder or viewer concerned (`@handle` or id).
    pub who: Option<String>,
    /// The bid's or the sale's amount.
    pub amount: Option<Amount>,
    /// What a viewer said to the host.
    pub said: Option<String>,
}

impl Situation {
    /// Everything a line about this situation may state.
    pub fn facts(&self) -> Facts {
        let mut facts = Facts::default();
        if let Some(who) = &self.who {
            facts.handle(who);
        }
        if let Some(amount) = self.amount {
            facts.amount(amount);
        }
        if let Some(lot) = &self.lot {
            facts.titles.push(lot.title.to_lowercase());
            facts.amount(lot.starting);
            facts.amount(lot.min_next);
            facts.amounts.extend(lot.high);
            if let Some(leader) = &lot.leader {
                facts.handle(leader);
            }
            if let Some(secs) = lot.secs_left {
                facts.seconds(secs);
            }
            facts.numbers.extend(lot.number.map(i64::from));
            facts.numbers.push(i64::try_from(lot.bids).unwrap_or(i64::MAX));
        }
        facts
    }

    /// A placeholder's value, if the situation has it.
    fn value(&self, name: &str) -> Option<String> {
        let lot = self.lot.as_ref();
        Some(match name {
            "who" => self.who.clone()?,
            "amount" => self.amount.or_else(|| lot?.high)?.to_string(),
            "lot" => lot?.name(),
            "title" => lot?.title.clone(),
            "high" => lot?.high?.to_string(),
            "leader" => lot?.leader.clone()?,
            "min_next" => lot?.min_next.to_string(),
            "starting" => lot?.starting.to_string(),
            "secs" => lot?.secs_left?.max(0).to_string(),
            "bids" => lot?.bids.to_string(),
            _ => return None,
        })
    }

    /// Fills `{name}` placeholders; `None` when one has no value here.
    pub fn fill(&self, template: &str) -> Option<String> {
        let mut out = String::with_capacity(template.len() + 16);
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let close = rest[open..].find('}')? + open;
            out.push_str(&rest[..open]);
            out.push_str(&self.value(&rest[open + 1..close])?);
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        Some(out)
    }
}

/// The built-in sentences of each moment.
fn built_in(situation: &Situation) -> &'static [&'static str] {
    let has_bids = situation.lot.as_ref().is_some_and(|lot| lot.high.is_some());
    match situation.moment {
        Moment::LotOpen => &[
            "{lot} is open! Bidding starts at {starting} ETH.",
            "Now on the block: {lot}. Who will open at {starting} ETH?",
            "Eyes up, collectors: {lot}, opening at {starting} ETH.",
        ],
        Moment::FirstBid => &[
            "{who} opens the bidding at {amount} ETH!",
            "We have a first bid: {amount} ETH from {who}.",
            "And we're off: {who} at {amount} ETH.",
        ],
        Moment::Bid => &[
            "{who} leads at {amount} ETH. Do I hear {min_next}?",
            "{amount} ETH from {who}! Next bid {min_next} ETH.",
            "The bid is {amount} ETH, {who} in front.",
            "{who} takes the lead with {amount} ETH.",
        ],
        Moment::Extended => &[
            "A late bid! The clock is extended: {secs} seconds to go.",
            "Not so fast: {who} bids late and buys us time. {secs} seconds!",
            "Extended! {leader} leads at {high} ETH, {secs} seconds left.",
        ],
        Moment::LastCall if has_bids => &[
            "Last call at {high} ETH, {leader} in front!",
            "Going once, going twice... {high} ETH to {leader}!",
            "{secs} seconds! {leader} holds it at {high} ETH.",
        ],
        Moment::LastCall => &[
            "Last seconds for {lot} at {starting} ETH. Anyone?",
            "{secs} seconds left and no bid yet on {lot}!",
            "Final moments: {lot} opens at {starting} ETH.",
        ],
        Moment::Sold => &[
            "Sold! {lot} to {who} for {amount} ETH!",
            "The hammer falls: {who} wins {lot} at {amount} ETH.",
            "Congratulations {who}: {lot} is yours for {amount} ETH.",
        ],
        Moment::ReserveNotMet => &[
            "{lot} closes at {high} ETH, below its reserve. It stays with the seller.",
            "So close: {high} ETH was not enough for the reserve of {lot}.",
            "The reserve holds: {lot} goes back to its owner.",
        ],
        Moment::NoBids => &[
            "No bids on {lot} this time.",
            "{lot} passes without a bid. Its day will come.",
            "Quiet room for {lot}: it passes unsold.",
        ],
        Moment::Cancelled => &[
            "{lot} has been withdrawn from the sale.",
            "A change of plans: {lot} is withdrawn.",
            "{lot} leaves the block: the sale of it is cancelled.",
        ],
        Moment::Idle if situation.lot.is_some() => &[
            "Take a good look at {lot}. {min_next} ETH takes the lead.",
            "{lot} is waiting for you: the next bid is {min_next} ETH.",
            "Still time to bid on {lot}: {secs} seconds left.",
            "Post your bid on X to bid on {lot}. It is {min_next} ETH to lead.",
        ],
        Moment::Idle => &[
            "The next lot is on its way. Stay close!",
            "While we wait: every bid here is decided by exact rules and logged for all to verify.",
            "Get your bids ready: post \"bid\" and an amount to join in.",
        ],
        Moment::Question if situation.lot.is_some() && has_bids => &[
            "{who} good question! {lot} stands at {high} ETH, {min_next} ETH to lead.",
            "{who} {leader} leads {lot} at {high} ETH; {min_next} ETH takes it.",
            "{who} thanks for asking: {lot} is at {high} ETH, {secs} seconds left.",
        ],
        Moment::Question if situation.lot.is_some() => &[
            "{who} good question! {lot} opens at {starting} ETH and has no bid yet.",
            "{who} {lot} is open at {starting} ETH. Be the first!",
            "{who} thanks for asking: {lot} is waiting for a first bid of {starting} ETH.",
        ],
        Moment::Question => &[
            "{who} no lot is open right now; the next one starts soon.",
            "{who} thanks for asking! Stay tuned for the next lot.",
            "{who} nothing on the block at this moment. Soon!",
        ],
    }
}

/// The template speaker.
#[derive(Debug, Clone)]
pub struct TemplateSpeaker {
    pub policy: Policy,
}

impl TemplateSpeaker {
    /// Every line the speaker could say now, each fit for the channel and grounded.
    pub fn candidates(&self, character: &Character, situation: &Situation) -> Vec<String> {
        let max = ground::max_chars(situation.channel, &self.policy);
        let facts = situation.facts();
        let key = situation.moment.to_string();
        let mut sentences: Vec<String> = character
            .templates
            .get(&key)
            .into_iter()
            .flat_map(|template| template.split('|'))
            .chain(built_in(situation).iter().copied())
            .filter_map(|template| situation.fill(template.trim()))
            .collect();
        if situation.moment == Moment::Idle {
            // The character's own words make the banter, when they state nothing.
            let examples = character.post_examples.iter().chain(
                character
                    .message_examples
                    .iter()
                    .flatten()
                    .filter(|line| line.speaker == character.name)
                    .map(|line| &line.text),
            );
            sentences.extend(examples.filter(|text| !text.contains("{{")).cloned());
        }
        let phrases = character.catchphrases(situation.moment);
        let mut lines = Vec::new();
        for sentence in &sentences {
            lines.push(sentence.clone());
            for phrase in phrases {
                // "Sold! Sold! …" says it twice.
                let phrase = phrase.trim();
                if !sentence.to_lowercase().starts_with(&phrase.to_lowercase()) {
                    lines.push(format!("{phrase} {sentence}"));
                }
            }
        }
        if sentences.is_empty() {
            lines.extend(phrases.iter().cloned());
        }
        lines.retain(|line| {
            line.chars().count() <= max && ground::check(line, &facts, &self.policy, None).is_ok()
        });
        lines
    }

    /// A line for the situation, never the previous one (when there is a choice).
    pub fn line(
        &self,
        character: &Character,
        situation: &Situation,
        previous: Option<&str>,
        rng: &mut impl Rng,
    ) -> String {
        let lines = self.candidates(character, situation);
        let fresh: Vec<&String> = lines
            .iter()
            .filter(|line| previous.is_none_or(|previous| !previous.eq_ignore_ascii_case(line)))
            .collect();
        match fresh.len() {
            0 => lines.first().cloned().unwrap_or_else(|| format!("{}!", character.name)),
            count => fresh[rng.random_range(0..count)].clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;
    use rand::rngs::StdRng;

    use super::*;

    fn character() -> Character {
        Character::parse(
            "test.json",
            "test",
            r#"{"name":"Rex","postExamples":["What a room tonight.","Lot 99 is a steal at 5 ETH"],
            "templates":{"sold":"Hammer down for {who}, {amount} ETH!"},
            "settings":{"sothebais":{"catchphrases":{"sold":["Magnificent!"]}}}}"#,
        )
        .expect("character")
    }

    fn situation(moment: Moment) -> Situation {
        Situation {
            moment,
            channel: Channel::Stream,
            lot: Some(LotView {
                id: Uuid::nil(),
                title: "Dawn".into(),
                number: Some(2),
                starting: "1".parse().expect("amount"),
                high: Some("1.5".parse().expect("amount")),
                leader: Some("@curie".into()),
                min_next: "1.6".parse().expect("amount"),
                secs_left: Some(8),
                bids: 4,
            }),
            who: Some("@curie".into()),
            amount: Some("1.5".parse().expect("amount")),
            said: None,
        }
    }

    fn policy() -> Policy {
        Policy { allow_links: false, blocklist: Vec::new(), caption_max_chars: 160 }
    }

    #[test]
    fn the_characters_templates_and_catchphrases_are_among_the_lines() {
        let speaker = TemplateSpeaker { policy: policy() };
        let lines = speaker.candidates(&character(), &situation(Moment::Sold));
        assert!(lines.contains(&"Hammer down for @curie, 1.5 ETH!".to_owned()), "{lines:?}");
        assert!(lines.iter().any(|line| line.starts_with("Magnificent! ")), "{lines:?}");
    }

    #[test]
    fn idle_banter_uses_only_examples_that_state_nothing_false() {
        let speaker = TemplateSpeaker { policy: policy() };
        let lines = speaker.candidates(&character(), &situation(Moment::Idle));
        assert!(lines.contains(&"What a room tonight.".to_owned()));
        assert!(!lines.iter().any(|line| line.contains("Lot 99")), "{lines:?}");
    }

    #[test]
    fn the_same_line_never_comes_twice_in_a_row() {
        let speaker = TemplateSpeaker { policy: policy() };
        let mut rng = StdRng::seed_from_u64(7);
        let character = character();
        let mut previous: Option<String> = None;
        for moment in [Moment::Bid, Moment::FirstBid, Moment::LastCall, Moment::Question, Moment::Idle] {
            for _ in 0..50 {
                let line = speaker.line(&character, &situation(moment), previous.as_deref(), &mut rng);
                assert_ne!(Some(&line), previous.as_ref());
                previous = Some(line);
            }
        }
    }

    #[test]
    fn a_placeholder_without_a_value_drops_the_template() {
        let mut bare = situation(Moment::Bid);
        bare.who = None;
        assert_eq!(bare.fill("{who} bids"), None);
        assert_eq!(bare.fill("{lot} at {high}"), Some("Lot 2, \"Dawn\" at 1.5".into()));
    }
}
