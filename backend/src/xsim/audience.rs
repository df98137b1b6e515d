//! The simulated audience of `sothebais xsim --audience N --seed S`: N viewers who
//! watch the show's open lots (through the auction API, as the stream shows them) and
//! post on the simulator with different habits. The same seed gives the same viewers,
//! habits and choices for the same show.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use sothebais_shared::amount::Amount;
use sothebais_shared::auction::{Auction, AuctionState};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Draft, XSim};

/// How a viewer bids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Habit {
    /// Bids the minimum early in the lot.
    Early,
    /// Waits for the last seconds.
    Sniper,
    /// Raises by half again.
    Jumper,
    /// Writes amounts that cannot be read one way (`1,500`) or not at all.
    Mistyper,
    /// Posts just before the end, delivered after it (X's delay).
    Late,
    /// Posts the same bid twice.
    Duplicator,
    /// Talks, never bids.
    Chatter,
    /// Replies in the lot's thread without mentioning the show.
    Threader,
}

const HABITS: [Habit; 8] = [
    Habit::Early,
    Habit::Sniper,
    Habit::Jumper,
    Habit::Mistyper,
    Habit::Late,
    Habit::Duplicator,
    Habit::Chatter,
    Habit::Threader,
];

const NAMES: [&str; 16] = [
    "curie",
    "noether",
    "hopper",
    "lovelace",
    "turing",
    "franklin",
    "meitner",
    "ramanujan",
    "goodall",
    "hypatia",
    "kahlo",
    "okeeffe",
    "basquiat",
    "hokusai",
    "vermeer",
    "morisot",
];

const CHATTER: [&str; 5] =
    ["love this piece", "who made this?", "I'm 12 lol", "the colours on this one!", "gm from Lisbon"];

#[derive(Debug)]
struct Viewer {
    name: String,
    habit: Habit,
}

/// What a viewer has done on one lot.
#[derive(Debug, Default, Clone, Copy)]
struct Done {
    posts: u32,
    sniped: bool,
}

/// The viewers of a seed, and the random source their later choices come from.
fn viewers(size: u32, seed: u64) -> (Vec<Viewer>, StdRng) {
    let mut rng = StdRng::seed_from_u64(seed);
    let viewers = (0..size)
        .map(|index| {
            let base = NAMES[index as usize % NAMES.len()];
            let name = if index as usize >= NAMES.len() {
                format!("{base}{}", index / NAMES.len() as u32)
            } else {
                base.to_owned()
            };
            Viewer { name, habit: HABITS[rng.random_range(0..HABITS.len())] }
        })
        .collect();
    (viewers, rng)
}

/// Runs `size` viewers against the show at `show_url` (the auction API) until `stop`.
pub async fn run(sim: XSim, show_url: String, size: u32, seed: u64, stop: CancellationToken) {
    let (viewers, mut rng) = viewers(size, seed);
    tracing::info!(viewers = size, seed, show = %show_url, "simulated audience watching");
    let http = reqwest::Client::new();
    let handle = sim.show_handle();
    let mut done: HashMap<(Uuid, usize), Done> = HashMap::new();
    let tick = Duration::from_millis(500);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(tick) => {}
        }
        let lots = match open_lots(&http, &show_url).await {
            Ok(lots) => lots,
            Err(error) => {
                tracing::debug!(%error, "audience cannot read the show yet");
                continue;
            }
        };
        for lot in &lots {
            let (Some(starts), Some(ends)) = (lot.starts_at, lot.ends_at) else { continue };
            let now = Utc::now();
            let length = (ends - starts).num_milliseconds().max(1_000) as f64;
            let left = (ends - now).num_milliseconds() as f64;
            let progress = 1.0 - left / length;
            let ticks_in_lot = (length / tick.as_millis() as f64).max(1.0);
            let thread = sim.announcement_of(&lot.title);
            for (index, viewer) in viewers.iter().enumerate() {
                let state = done.entry((lot.id, index)).or_default();
                let chance = rng.random::<f64>();
                let min = lot.min_next_bid;
                let mention = format!("@{handle} ");
                let draft = match viewer.habit {
                    Habit::Early if progress < 0.4 && state.posts < 2 && chance < 3.0 / ticks_in_lot => {
                        Some(bid_draft(&mention, min, &thread))
                    }
                    Habit::Sniper if left < 4_000.0 && left > 500.0 && !state.sniped => {
                        state.sniped = true;
                        Some(bid_draft(&mention, round_up(min.wei() + min.wei() / 10), &thread))
                    }
                    Habit::Jumper if state.posts < 2 && chance < 2.0 / ticks_in_lot => {
                        Some(bid_draft(&mention, round_up(min.wei() + min.wei() / 2), &thread))
                    }
                    Habit::Mistyper if state.posts < 1 && chance < 1.5 / ticks_in_lot => {
                        let whole = min.wei() / 1_000_000_000_000_000_000 + 1;
                        let text = match rng.random_range(0..3) {
                            0 => format!("{mention}bid {whole},500"),
                            1 => format!("{mention}bid {whole}.5.0"),
                            _ => format!("{mention}bid {whole}.0000000000000000001"),
                        };
                        Some(Draft { text, in_reply_to: thread.clone(), ..Draft::default() })
                    }
                    Habit::Late if left < 2_000.0 && left > 0.0 && state.posts == 0 => Some(Draft {
                        delay_ms: Some(rng.random_range(1_000..30_000)),
                        ..bid_draft(&mention, min, &thread)
                    }),
                    Habit::Duplicator if state.posts < 2 && chance < 1.5 / ticks_in_lot => {
                        let draft = bid_draft(&mention, min, &thread);
                        sim.post_as(&viewer.name, draft.clone());
                        state.posts += 1;
                        Some(draft)
                    }
                    Habit::Chatter if state.posts < 2 && chance < 2.0 / ticks_in_lot => Some(Draft {
                        text: format!("{mention}{}", CHATTER[rng.random_range(0..CHATTER.len())]),
                        in_reply_to: thread.clone(),
                        ..Draft::default()
                    }),
                    Habit::Threader if thread.is_some() && state.posts < 2 && chance < 2.0 / ticks_in_lot => {
                        Some(bid_draft("", round_up(min.wei()), &thread))
                    }
                    _ => None,
                };
                if let Some(draft) = draft {
                    state.posts += 1;
                    let post = sim.post_as(&viewer.name, draft);
                    tracing::debug!(viewer = %viewer.name, habit = ?viewer.habit, text = %post.text, "audience posted");
                }
            }
        }
    }
}

fn bid_draft(mention: &str, amount: Amount, thread: &Option<String>) -> Draft {
    Draft { text: format!("{mention}bid {amount}"), in_reply_to: thread.clone(), ..Draft::default() }
}

/// Rounds wei up to a thousandth of an ETH, as people write amounts.
fn round_up(wei: u128) -> Amount {
    let step = 1_000_000_000_000_000u128;
    Amount::from_wei(wei.div_ceil(step) * step)
}

async fn open_lots(http: &reqwest::Client, show_url: &str) -> anyhow::Result<Vec<Auction>> {
    #[derive(serde::Deserialize)]
    struct Page {
        auctions: Vec<Auction>,
    }
    #[derive(serde::Deserialize)]
    struct Envelope {
        data: Option<Page>,
    }
    let url = format!("{show_url}/api/auction/auctions?state=open");
    let envelope: Envelope = http.get(url).timeout(Duration::from_secs(2)).send().await?.json().await?;
    Ok(envelope
        .data
        .map(|page| page.auctions)
        .unwrap_or_default()
        .into_iter()
        .filter(|auction| auction.state == AuctionState::Open)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn habits(size: u32, seed: u64) -> Vec<(String, Habit)> {
        let (viewers, mut rng) = viewers(size, seed);
        let mut seen: Vec<(String, Habit)> =
            viewers.into_iter().map(|viewer| (viewer.name, viewer.habit)).collect();
        // The choices that follow come from the same sequence too.
        seen.push((format!("{}", rng.random::<u64>()), Habit::Chatter));
        seen
    }

    #[test]
    fn the_same_seed_gives_the_same_audience_and_choices() {
        assert_eq!(habits(20, 7), habits(20, 7));
        assert_ne!(habits(20, 7), habits(20, 8));
        let names: Vec<String> = habits(20, 7).into_iter().map(|(name, _)| name).take(20).collect();
        assert_eq!(names.iter().collect::<std::collections::BTreeSet<_>>().len(), 20, "names are distinct");
    }

    #[test]
    fn amounts_are_rounded_up_to_a_thousandth() {
        assert_eq!(round_up(1_050_000_000_000_000_001).to_string(), "1.051");
        assert_eq!(round_up(1_000_000_000_000_000_000).to_string(), "1");
    }
}
