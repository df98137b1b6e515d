//! The host's mood, decided by pure rules from what happens in the auction (time is
//! passed in). One change at a time: a new mood waits out the minimum dwell of the
//! last one (the newest wish wins), and every mood fades back to neutral.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sothebais_shared::amount::Amount;
use sothebais_shared::auction::OutcomeResult;
use sothebais_shared::events::Mood;

/// The numbers behind the rules; a character may override any of them
/// (`settings.sothebais.mood_rules`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MoodRules {
    /// The least time a mood is shown before another replaces it.
    pub dwell_ms: u64,
    /// How long a mood takes to fade to neutral.
    pub decay_secs: u64,
    /// This many bids within `war_window_secs` is a bidding war.
    pub war_bids: usize,
    pub war_window_secs: u64,
    /// A bid this many minimum raises above the high bid is a surprise.
    pub jump_increments: u32,
    /// The last stretch of a lot, in seconds.
    pub last_seconds: u64,
}

impl Default for MoodRules {
    fn default() -> MoodRules {
        MoodRules {
            dwell_ms: 4000,
            decay_secs: 40,
            war_bids: 3,
            war_window_secs: 10,
            jump_increments: 2,
            last_seconds: 10,
        }
    }
}

/// What the mood reacts to.
#[derive(Debug, Clone, PartialEq)]
pub enum Stimulus {
    /// An accepted bid: its amount, the high bid before it and the minimum raise then.
    Bid {
        amount: Amount,
        previous_high: Option<Amount>,
        min_raise: Amount,
    },
    /// The lot is in its last seconds.
    LastSeconds {
        has_bids: bool,
    },
    Closed(OutcomeResult),
    Cancelled,
    /// The model opened a line with a mood tag.
    Tag(Mood),
}

/// A change to announce (`agent:mood`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MoodChange {
    pub mood: Mood,
    pub intensity: f32,
}

#[derive(Debug, Clone)]
pub struct MoodMachine {
    rules: MoodRules,
    mood: Mood,
    /// The intensity when last set or refreshed, fading from `refreshed_at`.
    peak: f32,
    refreshed_at: DateTime<Utc>,
    /// When the mood shown last changed (the dwell counts from here).
    changed_at: DateTime<Utc>,
    /// Accepted bids within the war window.
    bids: VecDeque<DateTime<Utc>>,
    pending: Option<MoodChange>,
}

impl MoodMachine {
    pub fn new(rules: MoodRules, now: DateTime<Utc>) -> MoodMachine {
        MoodMachine {
            rules,
            mood: Mood::Neutral,
            peak: 0.0,
            refreshed_at: now,
            changed_at: now - Duration::days(1),
            bids: VecDeque::new(),
            pending: None,
        }
    }

    /// New rules (another character), keeping the mood shown.
    pub fn set_rules(&mut self, rules: MoodRules) {
        self.rules = rules;
    }

    pub fn mood(&self) -> Mood {
        self.mood
    }

    /// The intensity now: the peak, fading linearly over `decay_secs`.
    pub fn intensity(&self, now: DateTime<Utc>) -> f32 {
        if self.mood == Mood::Neutral {
            return self.peak;
        }
        let elapsed = (now - self.refreshed_at).num_milliseconds().max(0) as f32;
        let decay = (self.rules.decay_secs.max(1) * 1000) as f32;
        (self.peak * (1.0 - elapsed / decay)).clamp(0.0, 1.0)
    }

    fn wish(&mut self, stimulus: &Stimulus, now: DateTime<Utc>) -> Option<MoodChange> {
        let change = |mood, intensity| Some(MoodChange { mood, intensity });
        match stimulus {
            Stimulus::Bid { amount, previous_high, min_raise } => {
                let window = Duration::seconds(self.rules.war_window_secs as i64);
                self.bids.push_back(now);
                while self.bids.front().is_some_and(|at| now - *at > window) {
                    self.bids.pop_front();
                }
                let Some(previous) = previous_high else { return change(Mood::Happy, 0.6) };
                let jump = min_raise.wei().saturating_mul(u128::from(self.rules.jump_increments));
                let raise = amount.checked_sub(*previous).map_or(0, Amount::wei);
                if jump > 0 && raise >= jump {
                    return change(Mood::Surprised, 0.8);
                }
                let count = self.bids.len();
                if count >= self.rules.war_bids.max(2) {
                    let extra = (count - self.rules.war_bids.max(2)) as f32 * 0.1;
                    return change(Mood::Excited, (0.6 + extra).min(1.0));
                }
                match self.mood {
                    Mood::Neutral | Mood::Disappointed => change(Mood::Happy, 0.4),
                    mood => change(mood, self.intensity(now).max(0.5)),
                }
            }
            Stimulus::LastSeconds { has_bids: true } => change(Mood::Tense, 0.7),
            Stimulus::LastSeconds { has_bids: false } => None,
            Stimulus::Closed(OutcomeResult::Sold) => change(Mood::Celebrating, 1.0),
            Stimulus::Closed(OutcomeResult::ReserveNotMet | OutcomeResult::NoBids) => {
                change(Mood::Disappointed, 0.7)
            }
            Stimulus::Cancelled => change(Mood::Disappointed, 0.5),
            Stimulus::Tag(mood) => change(*mood, 0.6),
        }
    }

    /// Applies what happened; a change to announce now, if any (a change within the
    /// dwell waits for [`tick`](MoodMachine::tick)).
    pub fn apply(&mut self, stimulus: &Stimulus, now: DateTime<Utc>) -> Option<MoodChange> {
        let wish = self.wish(stimulus, now)?;
        if wish.mood == self.mood {
            self.peak = self.intensity(now).max(wish.intensity);
            self.refreshed_at = now;
            self.pending = None;
            return None;
        }
        if matches!(stimulus, Stimulus::Closed(_) | Stimulus::Cancelled) {
            // The lot is over: the face shows its result at once, whatever came just before.
            self.pending = None;
            return Some(self.show(wish, now));
        }
        self.pending = Some(wish);
        self.tick(now)
    }

    fn show(&mut self, change: MoodChange, now: DateTime<Utc>) -> MoodChange {
        // Fading to neutral is no new expression to dwell on: the next wish may follow at once.
        if change.mood != Mood::Neutral {
            self.changed_at = now;
        }
        self.mood = change.mood;
        self.peak = change.intensity;
        self.refreshed_at = now;
        change
    }

    /// Time passed: a waiting change once the dwell is over, or the fade to neutral.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Option<MoodChange> {
        let dwelt = now - self.changed_at >= Duration::milliseconds(self.rules.dwell_ms as i64);
        if !dwelt {
            return None;
        }
        let next = match self.pending.take() {
            Some(next) => next,
            None if self.mood != Mood::Neutral && self.intensity(now) <= 0.0 => {
                MoodChange { mood: Mood::Neutral, intensity: 0.0 }
            }
            None => return None,
        };
        Some(self.show(next, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(text: &str) -> Amount {
        text.parse().expect("amount")
    }

    fn at(millis: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + millis).expect("time")
    }

    fn bid(amount: &str, previous: Option<&str>) -> Stimulus {
        Stimulus::Bid { amount: eth(amount), previous_high: previous.map(eth), min_raise: eth("0.1") }
    }

    #[test]
    fn a_scripted_auction_drives_the_moods_in_order() {
        let mut machine = MoodMachine::new(MoodRules::default(), at(0));
        let mut seen = Vec::new();
        let mut record = |change: Option<MoodChange>| {
            if let Some(change) = change {
                seen.push(change.mood);
            }
        };
        record(machine.apply(&bid("1.0", None), at(1_000)));
        // A bid two raises above the high bid, after the dwell.
        record(machine.apply(&bid("1.3", Some("1.0")), at(6_000)));
        // Three bids within ten seconds: a war.
        record(machine.apply(&bid("1.4", Some("1.3")), at(11_000)));
        record(machine.apply(&bid("1.5", Some("1.4")), at(12_000)));
        record(machine.tick(at(16_000)));
        record(machine.apply(&Stimulus::LastSeconds { has_bids: true }, at(21_000)));
        record(machine.apply(&Stimulus::Closed(OutcomeResult::Sold), at(31_000)));
        // Faded to neutral.
        record(machine.tick(at(31_000 + 41_000)));
        assert_eq!(
            seen,
            [Mood::Happy, Mood::Surprised, Mood::Excited, Mood::Tense, Mood::Celebrating, Mood::Neutral]
        );
        let mut unsold = MoodMachine::new(MoodRules::default(), at(0));
        assert_eq!(
            unsold.apply(&Stimulus::Closed(OutcomeResult::NoBids), at(0)).map(|change| change.mood),
            Some(Mood::Disappointed)
        );
        assert_eq!(unsold.apply(&Stimulus::LastSeconds { has_bids: false }, at(5_000)), None);
    }

    #[test]
    fn a_burst_of_bids_does_not_make_the_mood_flap() {
        let rules = MoodRules::default();
        let mut machine = MoodMachine::new(rules.clone(), at(0));
        let mut changes = Vec::new();
        let mut high: Option<Amount> = None;
        // Fifty bids in five seconds, some of them jumps, with ticks between.
        for step in 0..50_i64 {
            let now = at(step * 100);
            let raise = if step % 7 == 3 { "0.5" } else { "0.1" };
            let amount = high.map_or(eth("1"), |high| high.checked_add(eth(raise)).expect("sum"));
            let stimulus = Stimulus::Bid { amount, previous_high: high, min_raise: eth("0.1") };
            changes.extend(machine.apply(&stimulus, now).map(|change| (now, change.mood)));
            changes.extend(machine.tick(now + Duration::milliseconds(50)).map(|change| (now, change.mood)));
            high = Some(amount);
        }
        assert!(changes.len() <= 3, "{changes:?}");
        for pair in changes.windows(2) {
            assert!(pair[1].0 - pair[0].0 >= Duration::milliseconds(rules.dwell_ms as i64), "{changes:?}");
            assert_ne!(pair[0].1, pair[1].1);
        }
    }

    #[test]
    fn a_result_shows_at_once_and_a_fade_to_neutral_holds_nothing_back() {
        let mut machine = MoodMachine::new(MoodRules::default(), at(0));
        machine.apply(&Stimulus::LastSeconds { has_bids: true }, at(0)).expect("tense");
        let sold = machine.apply(&Stimulus::Closed(OutcomeResult::Sold), at(500)).expect("within the dwell");
        assert_eq!(sold.mood, Mood::Celebrating);
        assert_eq!(machine.tick(at(41_000)).map(|change| change.mood), Some(Mood::Neutral));
        let happy = machine.apply(&bid("1", None), at(41_100)).expect("no dwell after a fade");
        assert_eq!(happy.mood, Mood::Happy);
    }

    #[test]
    fn intensity_fades_and_a_same_mood_refresh_announces_nothing() {
        let mut machine = MoodMachine::new(MoodRules::default(), at(0));
        let first = machine.apply(&Stimulus::Tag(Mood::Happy), at(0)).expect("change");
        assert!((first.intensity - 0.6).abs() < 1e-6);
        assert!((machine.intensity(at(20_000)) - 0.3).abs() < 1e-3);
        assert_eq!(machine.apply(&Stimulus::Tag(Mood::Happy), at(20_000)), None);
        assert!((machine.intensity(at(20_000)) - 0.6).abs() < 1e-3);
        assert_eq!(machine.tick(at(59_000)), None);
        assert_eq!(machine.tick(at(61_000)).map(|change| change.mood), Some(Mood::Neutral));
    }
}
