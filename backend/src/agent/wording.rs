//! The social role's words in the host's voice: when the agent runs in the same
//! process, replies on X open with the active character's catchphrase for the moment
//! (when it fits X's 280 characters), and the facts stay the built-in templates'
//! exact wording. Questions are answered by the host itself (`agent:message` on the
//! `x` channel, posted by the social role).

use chrono::{DateTime, Utc};
use rand::Rng as _;
use sothebais_shared::amount::Amount;
use sothebais_shared::auction::{Auction, OutcomeResult};

use super::character::Moment;
use super::host::AgentHandle;
use crate::social::words::{LotName, Refusal, Standings, Templates, Wording};

#[derive(Debug, Clone)]
pub struct AgentWording {
    pub agent: AgentHandle,
}

impl AgentWording {
    fn voiced(&self, moment: Moment, text: String) -> String {
        let character = self.agent.character();
        // A phrase that is the text's first word ("Sold!" before "SOLD: …") is not said twice.
        let word = |text: &str| {
            text.split_whitespace()
                .next()
                .unwrap_or_default()
                .trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        };
        let first = word(&text);
        let phrases: Vec<&String> =
            character.catchphrases(moment).iter().filter(|phrase| word(phrase) != first).collect();
        if phrases.is_empty() {
            return text;
        }
        let phrase = phrases[rand::rng().random_range(0..phrases.len())];
        let voiced = format!("{} {text}", phrase.trim());
        if voiced.chars().count() <= 280 { voiced } else { text }
    }
}

impl Wording for AgentWording {
    fn announcement(&self, lot: &LotName<'_>, auction: &Auction, handle: &str) -> String {
        self.voiced(Moment::LotOpen, Templates.announcement(lot, auction, handle))
    }

    fn accepted(&self, bidder: &str, lot: &LotName<'_>, auction: &Auction, now: DateTime<Utc>) -> String {
        self.voiced(Moment::Bid, Templates.accepted(bidder, lot, auction, now))
    }

    fn rejected(
        &self,
        bidder: &str,
        lot: Option<&LotName<'_>>,
        amount: Option<Amount>,
        why: &Refusal,
    ) -> String {
        Templates.rejected(bidder, lot, amount, why)
    }

    fn outbid(&self, bidder: &str, lot: &LotName<'_>, auction: &Auction) -> String {
        Templates.outbid(bidder, lot, auction)
    }

    fn result(&self, lot: &LotName<'_>, auction: &Auction) -> String {
        let moment = match auction.outcome.as_ref().map(|outcome| outcome.result) {
            Some(OutcomeResult::Sold) => Moment::Sold,
            Some(OutcomeResult::ReserveNotMet) => Moment::ReserveNotMet,
            _ => Moment::NoBids,
        };
        self.voiced(moment, Templates.result(lot, auction))
    }

    fn cancelled(&self, lot: &LotName<'_>) -> String {
        self.voiced(Moment::Cancelled, Templates.cancelled(lot))
    }

    fn standings(&self, standings: &Standings<'_>, now: DateTime<Utc>) -> String {
        Templates.standings(standings, now)
    }
}
