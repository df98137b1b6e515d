//! The show's state as the renderer knows it, and the pure functions that turn it
//! into what is drawn: no Bevy, no I/O, time passed in.

use std::collections::VecDeque;

use bevy::prelude::Resource;
use chrono::{DateTime, Utc};

/// Accepted bids the ticker shows.
pub const TICKER_LEN: usize = 5;

/// One accepted bid as the ticker shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickerBid {
    pub handle: String,
    pub amount: String,
}

/// Where the lot on air stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    #[default]
    Waiting,
    Open,
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "set by auction:end once the renderer follows the backend's events")
    )]
    Closed,
}

/// Everything the scene draws, fed by events.
#[derive(Debug, Clone, Resource, Default)]
pub struct Show {
    pub title: String,
    pub phase: Phase,
    pub ends_at: Option<DateTime<Utc>>,
    pub extended: bool,
    pub high_bid: Option<TickerBid>,
    pub ticker: VecDeque<TickerBid>,
    pub winner: Option<TickerBid>,
    pub caption: Option<String>,
}

impl Show {
    /// A newly accepted bid: the current bid and the head of the ticker.
    pub fn accept(&mut self, bid: TickerBid) {
        self.high_bid = Some(bid.clone());
        self.ticker.push_front(bid);
        self.ticker.truncate(TICKER_LEN);
    }

    /// The countdown line at `now`.
    pub fn countdown(&self, now: DateTime<Utc>) -> String {
        match (self.phase, self.ends_at) {
            (Phase::Waiting, _) => "STARTING SOON".to_owned(),
            (Phase::Closed, _) => match &self.winner {
                Some(winner) => format!("SOLD to @{} for {} ETH", winner.handle, winner.amount),
                None => "NO BIDS".to_owned(),
            },
            (Phase::Open, None) => "OPEN".to_owned(),
            (Phase::Open, Some(ends_at)) => {
                let left = (ends_at - now).num_milliseconds();
                if left <= 0 {
                    return "CLOSING".to_owned();
                }
                // Rounded up: the clock shows 0:01 until the last second has passed.
                let secs = (left + 999) / 1000;
                let clock = format!("{}:{:02}", secs / 60, secs % 60);
                if self.extended { format!("{clock}  EXTENDED") } else { clock }
            }
        }
    }

    /// True in the last ten seconds, when the countdown changes style.
    pub fn final_seconds(&self, now: DateTime<Utc>) -> bool {
        self.phase == Phase::Open
            && self.ends_at.is_some_and(|ends_at| (ends_at - now).num_milliseconds() <= 10_000)
    }

    /// The current-bid line.
    pub fn current_bid(&self) -> String {
        match &self.high_bid {
            Some(bid) => format!("{} ETH  @{}", bid.amount, bid.handle),
            None => "No bids yet".to_owned(),
        }
    }

    /// The ticker lines, newest first.
    pub fn ticker_lines(&self) -> Vec<String> {
        self.ticker.iter().map(|bid| format!("@{}  {} ETH", bid.handle, bid.amount)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("time")
    }

    fn open_until(secs: i64) -> Show {
        Show { phase: Phase::Open, ends_at: Some(at(secs)), ..Show::default() }
    }

    #[test]
    fn countdown_counts_down_to_ends_at_rounding_up() {
        let show = open_until(125);
        assert_eq!(show.countdown(at(0)), "2:05");
        assert_eq!(show.countdown(at(124) + chrono::TimeDelta::milliseconds(1)), "0:01");
        assert_eq!(show.countdown(at(125)), "CLOSING");
    }

    #[test]
    fn countdown_says_extended_and_then_the_result() {
        let mut show = open_until(30);
        show.extended = true;
        assert_eq!(show.countdown(at(0)), "0:30  EXTENDED");
        show.phase = Phase::Closed;
        assert_eq!(show.countdown(at(40)), "NO BIDS");
        show.winner = Some(TickerBid { handle: "alice".into(), amount: "1.5".into() });
        assert_eq!(show.countdown(at(40)), "SOLD to @alice for 1.5 ETH");
    }

    #[test]
    fn the_last_ten_seconds_are_flagged() {
        let show = open_until(30);
        assert!(!show.final_seconds(at(19)));
        assert!(show.final_seconds(at(20)));
    }

    #[test]
    fn the_ticker_keeps_the_newest_bids_first() {
        let mut show = Show::default();
        for n in 1..=7 {
            show.accept(TickerBid { handle: format!("b{n}"), amount: format!("{n}") });
        }
        let lines = show.ticker_lines();
        assert_eq!(lines.len(), TICKER_LEN);
        assert_eq!(lines[0], "@b7  7 ETH");
        assert_eq!(show.current_bid(), "7 ETH  @b7");
    }
}
