//! `sothebais demo`: the whole show on one machine. The backend runs every role as
//! configured (embedded by default: SQLite in the data dir, the in-process bus), the
//! X simulator runs in the same process with a simulated audience watching the
//! auction API, a campaign of short lots is scheduled, and the renderer (when it is
//! built next to this binary) follows the show and records it under
//! `<data dir>/recordings`. Ctrl-C stops the renderer first (its recording is
//! finalised), then the backend.

use std::time::Duration;

use anyhow::Context as _;
use secrecy::SecretString;
use sothebais_kit::clock::SystemClock;
use sothebais_shared::amount::Amount;
use sothebais_shared::auction::{AntiSnipe, NewAuction, NewCampaign};
use tokio_util::sync::CancellationToken;

use std::collections::HashMap;

use sothebais_shared::auction::{Bidder, Campaign, Outcome, OutcomeResult};
use sothebais_shared::events::{
    AuctionExtended, AuctionSnapshot, BidEvent, Envelope, EventType, SocialReply,
};
use uuid::Uuid;

use crate::app::{AppState, Application, ListenerKind, ServiceRole};
use crate::cli::DemoArgs;
use crate::config::Config;
use crate::xsim::{SimOptions, XSim};

const TITLES: [&str; 8] = [
    "Blue Hour",
    "Quiet Harbour",
    "Night Garden",
    "Salt Road",
    "Paper Moon",
    "Last Light",
    "Glass Orchard",
    "Iron Tide",
];

/// The rules a demo lot is run by, in turn, so one campaign shows each of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    /// A visible reserve at the starting price: the first bid meets it.
    ReserveMet,
    /// A hidden reserve far above what the audience bids: the lot goes unsold.
    ReserveNotMet,
    /// No anti-snipe: the lot closes at its scheduled end whatever comes late.
    SuddenDeath,
    /// A low start and a wide anti-snipe window: the snipers' late bids extend it.
    Hot,
}

impl Rules {
    pub const CYCLE: [Rules; 4] = [Rules::ReserveMet, Rules::ReserveNotMet, Rules::SuddenDeath, Rules::Hot];

    pub fn of_lot(index: u32) -> Rules {
        Rules::CYCLE[index as usize % Rules::CYCLE.len()]
    }

    pub fn describe(self) -> &'static str {
        match self {
            Rules::ReserveMet => "reserve at the start price",
            Rules::ReserveNotMet => "hidden reserve",
            Rules::SuddenDeath => "sudden death",
            Rules::Hot => "hot lot, anti-snipe",
        }
    }
}

/// The campaign the demo schedules: `lots` lots of `lot_secs`, each run by the next
/// of [`Rules::CYCLE`], far enough apart that an extended lot, with its grace, never
/// overlaps the next.
pub fn campaign(args: &DemoArgs, now: chrono::DateTime<chrono::Utc>, round: u32) -> NewCampaign {
    let extension = args.lot_secs / 3;
    let snipe = |window: u32| AntiSnipe {
        window_secs: window.max(1),
        reset_secs: window.max(1),
        max_extension_secs: extension,
    };
    let lots = (0..args.lots)
        .map(|index| {
            let rules = Rules::of_lot(index);
            let start = Amount::from_wei(500_000_000_000_000_000u128 << (index % 4));
            let base = NewAuction {
                title: TITLES[(index + round * args.lots) as usize % TITLES.len()].to_owned(),
                starting_price: start,
                duration_secs: Some(args.lot_secs),
                late_grace_secs: Some(args.grace_secs),
                anti_snipe: Some(Some(snipe(args.lot_secs / 6))),
                ..NewAuction::default()
            };
            match rules {
                Rules::ReserveMet => {
                    NewAuction { reserve_price: Some(start), reserve_visible: Some(true), ..base }
                }
                Rules::ReserveNotMet => NewAuction {
                    reserve_price: Some(Amount::from_wei(start.wei().saturating_mul(100))),
                    reserve_visible: Some(false),
                    ..base
                },
                Rules::SuddenDeath => NewAuction { anti_snipe: Some(None), ..base },
                Rules::Hot => NewAuction {
                    starting_price: Amount::from_wei(100_000_000_000_000_000),
                    anti_snipe: Some(Some(snipe(extension))),
                    ..base
                },
            }
        })
        .collect();
    let name = if round == 0 { "Demo show".to_owned() } else { format!("Demo show, round {}", round + 1) };
    NewCampaign {
        name,
        timezone: None,
        starts_at: sothebais_shared::time::CampaignStart::At(
            (now + chrono::Duration::seconds(i64::from(args.lead_secs))).fixed_offset(),
        ),
        gap_secs: Some(extension + args.grace_secs + 5),
        character: None,
        concurrent: false,
        lots,
    }
}

/// What the demo has seen of one lot.
#[derive(Debug, Clone, Default, PartialEq)]
struct Tally {
    accepted: u32,
    refused: u32,
    extensions: u32,
    replies: u32,
    /// Replies X refused under its reply rule (the post did not summon the show):
    /// such bidders hear of their bid in the lot's standings posts instead.
    not_repliable: u32,
    reply_failures: u32,
}

/// Follows the show's events and says, for the campaign's lots, one line as each
/// opens, is extended and closes (pure: the caller prints the lines).
#[derive(Debug, Default)]
pub struct Narrator {
    /// The campaign's lots in order: (auction id, title).
    lots: Vec<(Uuid, String)>,
    tallies: HashMap<Uuid, Tally>,
    closed: usize,
}

impl Narrator {
    pub fn follow(&mut self, campaign: &Campaign) {
        self.lots = campaign.lots.iter().map(|lot| (lot.auction_id, lot.title.clone())).collect();
        self.tallies.clear();
        self.closed = 0;
    }

    /// Whether every lot of the campaign has closed.
    pub fn done(&self) -> bool {
        !self.lots.is_empty() && self.closed == self.lots.len()
    }

    fn lot(&self, id: Uuid) -> Option<(usize, &str)> {
        self.lots.iter().position(|(lot, _)| *lot == id).map(|index| (index, self.lots[index].1.as_str()))
    }

    /// The line `event` is worth, if any; `spend_usd` is what X cost for the lot so far.
    pub fn line(&mut self, event: &Envelope, spend_usd: impl Fn(Uuid) -> f64) -> Option<String> {
        let total = self.lots.len();
        let time = |at: chrono::DateTime<chrono::Utc>| at.format("%H:%M:%S").to_string();
        match event.event_type {
            EventType::AuctionStart => {
                let auction = event.decode::<AuctionSnapshot>().ok()?.auction;
                let (index, title) = self.lot(auction.id)?;
                Some(format!(
                    "lot {}/{total} open: {title} ({}) from {} ETH, ends {}",
                    index + 1,
                    Rules::of_lot(index as u32).describe(),
                    auction.starting_price,
                    auction.ends_at.map(time).unwrap_or_default(),
                ))
            }
            EventType::AuctionBidAccepted | EventType::AuctionBidRejected => {
                let bid = event.decode::<BidEvent>().ok()?.bid;
                self.lot(bid.auction_id)?;
                let tally = self.tallies.entry(bid.auction_id).or_default();
                if event.event_type == EventType::AuctionBidAccepted {
                    tally.accepted += 1;
                } else {
                    tally.refused += 1;
                }
                None
            }
            EventType::AuctionExtended => {
                let extended = event.decode::<AuctionExtended>().ok()?;
                let (index, title) = self.lot(extended.auction_id)?;
                // Anti-snipe resets the end to `reset_secs` after the bid, so a bid
                // late in the window may add well under a second: say by how much.
                let added = (extended.ends_at - extended.previous_ends_at).num_milliseconds();
                let line = format!(
                    "lot {}/{total} extended: {title} now ends {}.{} (+{:.1} s)",
                    index + 1,
                    extended.ends_at.format("%H:%M:%S"),
                    extended.ends_at.timestamp_subsec_millis() / 100,
                    added as f64 / 1000.0,
                );
                self.tallies.entry(extended.auction_id).or_default().extensions += 1;
                Some(line)
            }
            EventType::SocialReplySent | EventType::SocialReplyFailed => {
                let reply = event.decode::<SocialReply>().ok()?;
                let id = reply.auction_id?;
                self.lot(id)?;
                let tally = self.tallies.entry(id).or_default();
                if event.event_type == EventType::SocialReplySent {
                    tally.replies += 1;
                } else if reply.error.as_deref() == Some("not_repliable") {
                    tally.not_repliable += 1;
                } else {
                    tally.reply_failures += 1;
                }
                None
            }
            EventType::AuctionEnd => {
                let auction = event.decode::<AuctionSnapshot>().ok()?.auction;
                let (index, title) = self.lot(auction.id)?;
                let title = title.to_owned();
                let result = match &auction.outcome {
                    Some(Outcome { result: OutcomeResult::Sold, winner, amount }) => format!(
                        "SOLD to {} for {} ETH",
                        winner.as_ref().map_or_else(|| "?".to_owned(), who),
                        amount.map(|amount| amount.to_string()).unwrap_or_default()
                    ),
                    Some(Outcome { result: OutcomeResult::ReserveNotMet, .. }) => {
                        "unsold, reserve not met".to_owned()
                    }
                    Some(Outcome { result: OutcomeResult::NoBids, .. }) => "unsold, no bids".to_owned(),
                    None => format!("{:?}", auction.state).to_lowercase(),
                };
                let tally = self.tallies.get(&auction.id).cloned().unwrap_or_default();
                self.closed += 1;
                Some(format!(
                    "lot {}/{total} closed: {title} {result} · {} bids accepted, {} refused · {} extensions · {} X replies{}{} · ${:.3} X spend",
                    index + 1,
                    tally.accepted,
                    tally.refused,
                    tally.extensions,
                    tally.replies,
                    aside(tally.not_repliable, "answered in standings: X's reply rule"),
                    aside(tally.reply_failures, "failed"),
                    spend_usd(auction.id),
                ))
            }
            _ => None,
        }
    }
}

/// ` (3 failed)`, or nothing for none.
fn aside(count: u32, what: &str) -> String {
    if count > 0 { format!(" ({count} {what})") } else { String::new() }
}

/// `@handle`, or the bidder's id without one.
fn who(bidder: &Bidder) -> String {
    // (Handles read from X keep their `@`; those given through the API may not.)
    bidder
        .handle
        .as_ref()
        .map_or_else(|| bidder.id.clone(), |handle| format!("@{}", handle.trim_start_matches('@')))
}

pub async fn run(args: DemoArgs, mut config: Config) -> anyhow::Result<()> {
    if args.lots == 0 || args.lot_secs < 5 {
        anyhow::bail!("--lots must be at least 1 and --lot-secs at least 5");
    }
    // The simulator first: the backend's social role reads it.
    let options = SimOptions::default();
    let sim = XSim::new(options.clone());
    let listener = tokio::net::TcpListener::bind((config.bind, args.x_port))
        .await
        .with_context(|| format!("binding the X simulator on {}:{}", config.bind, args.x_port))?;
    let sim_url = format!("http://{}", listener.local_addr()?);
    let stop_sim = CancellationToken::new();
    let (serving, stopped) = (sim.clone(), stop_sim.clone());
    tokio::spawn(async move { serving.serve(listener, stopped.cancelled_owned()).await });
    config.x.api_base_url = sim_url.clone();
    config.x.bearer_token = Some(SecretString::from(options.bearer_token.clone()));
    config.x.user_access_token = Some(SecretString::from(options.user_token.clone()));
    config.x.user_refresh_token = Some(SecretString::from(options.refresh_token.clone()));
    config.x.client_id = Some("sothebais-demo".into());

    let data_dir = config.data_dir.clone();
    let timezone = config.timezone;
    let application = Application::build(config, &ServiceRole::ALL, SystemClock::shared()).await?;
    let gateway = application.address(ServiceRole::Admin, ListenerKind::Api).context("the gateway")?;
    let auction_api =
        application.address(ServiceRole::Auction, ListenerKind::Api).context("the auction API")?;
    // Listening before the campaign exists: no lot's first event is missed.
    let events = application.state().feed.subscribe();
    let campaign = application
        .state()
        .engine
        .create_campaign(&campaign(&args, chrono::Utc::now(), 0), timezone)
        .await
        .map_err(|error| anyhow::anyhow!("scheduling the demo campaign: {error}"))?;
    tokio::spawn(narrate(application.state().clone(), args.clone(), campaign.clone(), events));
    tokio::spawn(crate::xsim::audience::run(
        sim.clone(),
        format!("http://{auction_api}"),
        args.audience,
        args.seed,
        stop_sim.clone(),
    ));

    let mut renderer = None;
    let renderer_binary = std::env::current_exe()?.with_file_name("sothebais-renderer");
    if !args.no_renderer && renderer_binary.exists() {
        let recordings = data_dir.join("recordings");
        std::fs::create_dir_all(&recordings)?;
        let output = recordings.join(format!("demo-{}.mkv", chrono::Utc::now().format("%Y%m%dT%H%M%SZ")));
        let child = tokio::process::Command::new(&renderer_binary)
            .env("SOTHEBAIS_BACKEND_URL", format!("http://{gateway}"))
            .env("SOTHEBAIS_DATA_DIR", &data_dir)
            .args(["--output", &output.display().to_string()])
            .args(args.output.iter().flat_map(|output| ["--output", output.as_str()]))
            // Its own process group: Ctrl-C reaches the demo only, which stops the
            // renderer with one SIGTERM (a second signal would leave the recording
            // unfinalised).
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", renderer_binary.display()))?;
        tracing::info!(recording = %output.display(), "renderer started");
        renderer = Some(child);
    } else if !args.no_renderer {
        tracing::info!(
            "no renderer next to this binary (build it with `cargo build --release -p sothebais-renderer`): the show runs without one"
        );
    }
    let first = campaign.lots.first().map(|lot| lot.starts_at.to_rfc3339()).unwrap_or_default();
    tracing::info!(
        dashboard = %format!("http://{gateway}"),
        x_posts = %format!("{sim_url}/sim/posts"),
        lots = campaign.lots.len(),
        first_lot = %first,
        audience = args.audience,
        "demo ready"
    );

    let (signal, signals) = sothebais_kit::shutdown::channel_signals();
    let running = tokio::spawn(application.run(signals));
    let mut os_signals = sothebais_kit::shutdown::signals().context("listening for SIGINT and SIGTERM")?;
    {
        use futures::StreamExt as _;
        let _ = os_signals.next().await;
    }
    tracing::info!("stopping the demo");
    if let Some(mut child) = renderer {
        if let Some(pid) = child.id() {
            let _ = tokio::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
    }
    let _ = signal.send("SIGTERM");
    stop_sim.cancel();
    running.await.context("the backend panicked")?
}

/// Says each lot's opening, extensions and result as they happen, and with
/// `--loop` schedules the next campaign once the last lot has closed.
async fn narrate(
    state: AppState,
    args: DemoArgs,
    mut campaign: Campaign,
    mut events: tokio::sync::broadcast::Receiver<std::sync::Arc<Envelope>>,
) {
    let mut narrator = Narrator::default();
    narrator.follow(&campaign);
    let mut round = 0;
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "the demo's narrator fell behind the show's events");
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let spend = |id: Uuid| state.social.view().by_lot.get(&id).copied().unwrap_or(0.0);
        if let Some(line) = narrator.line(&event, spend) {
            tracing::info!("{line}");
        }
        if !narrator.done() {
            continue;
        }
        if !args.r#loop {
            tracing::info!(campaign = %campaign.name, "every lot has closed; Ctrl-C stops the demo (--loop runs another round)");
            return;
        }
        round += 1;
        let next = self::campaign(&args, chrono::Utc::now(), round);
        match state.engine.create_campaign(&next, state.config.timezone).await {
            Ok(scheduled) => {
                let first = scheduled.lots.first().map(|lot| lot.starts_at.to_rfc3339()).unwrap_or_default();
                tracing::info!(campaign = %scheduled.name, first_lot = %first, "next round scheduled");
                campaign = scheduled;
                narrator.follow(&campaign);
            }
            Err(error) => {
                tracing::error!(%error, "the next round could not be scheduled");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use sothebais_shared::events::Source;

    use super::*;

    #[test]
    fn the_demo_lots_never_overlap_even_when_extended() {
        let args = DemoArgs {
            audience: 1,
            seed: 1,
            lots: 3,
            lot_secs: 45,
            lead_secs: 20,
            grace_secs: 15,
            x_port: 0,
            no_renderer: true,
            output: Vec::new(),
            r#loop: false,
        };
        let plan = campaign(&args, chrono::Utc::now(), 0);
        let snipe = plan.lots[0].anti_snipe.flatten().expect("anti-snipe");
        let grace = plan.lots[0].late_grace_secs.unwrap_or(0);
        assert!(snipe.max_extension_secs + grace < plan.gap_secs.unwrap_or(0), "{snipe:?} {plan:?}");
        assert_eq!(plan.lots.len(), 3);
        assert!(plan.lots[1].starting_price > plan.lots[0].starting_price);
    }

    #[test]
    fn a_campaign_shows_each_rule_in_turn() {
        let args = DemoArgs {
            audience: 1,
            seed: 1,
            lots: 5,
            lot_secs: 30,
            lead_secs: 5,
            grace_secs: 5,
            x_port: 0,
            no_renderer: true,
            output: Vec::new(),
            r#loop: true,
        };
        let plan = campaign(&args, chrono::Utc::now(), 0);
        let lots = &plan.lots;
        assert_eq!(lots[0].reserve_price, Some(lots[0].starting_price), "met by the first bid");
        assert_eq!(lots[0].reserve_visible, Some(true));
        assert!(
            lots[1].reserve_price.is_some_and(|reserve| reserve.wei() >= lots[1].starting_price.wei() * 100)
        );
        assert_eq!(lots[1].reserve_visible, Some(false));
        assert_eq!(lots[2].anti_snipe, Some(None), "sudden death");
        let hot = lots[3].anti_snipe.flatten().expect("anti-snipe");
        assert_eq!(hot.window_secs, 10, "a third of the lot: the snipers' last seconds extend it");
        assert!(lots[3].starting_price < lots[0].starting_price);
        assert_eq!(lots[4].reserve_price, Some(lots[4].starting_price), "the cycle starts over");
        // A later round gets other titles.
        let next = campaign(&args, chrono::Utc::now(), 1);
        assert_ne!(next.lots[0].title, lots[0].title);
        assert!(next.name.contains("round 2"), "{}", next.name);
    }

    #[test]
    fn an_extension_says_to_the_tenth_how_much_it_added() {
        let id = Uuid::now_v7();
        let mut narrator = Narrator { lots: vec![(id, "Iron Tide".into())], ..Narrator::default() };
        let before = chrono::DateTime::parse_from_rfc3339("2026-12-03T13:21:42.100Z").expect("time").to_utc();
        let extended = AuctionExtended {
            auction_id: id,
            bid_id: Uuid::now_v7(),
            previous_ends_at: before,
            ends_at: before + chrono::Duration::milliseconds(500),
            seq: 7,
        };
        let event =
            Envelope::new(EventType::AuctionExtended, Source::AuctionEngine, &extended).expect("event");
        let line = narrator.line(&event, |_| 0.0).expect("a line");
        assert_eq!(line, "lot 1/1 extended: Iron Tide now ends 13:21:42.6 (+0.5 s)");
    }

    #[test]
    fn replies_refused_by_the_reply_rule_are_not_called_failures() {
        let id = Uuid::now_v7();
        let mut narrator = Narrator { lots: vec![(id, "Salt Road".into())], ..Narrator::default() };
        let reply = |error: Option<&str>| SocialReply {
            in_reply_to: Some("1".into()),
            reply_id: None,
            auction_id: Some(id),
            kind: "accepted".into(),
            text: "Bid accepted".into(),
            standings: false,
            error: error.map(str::to_owned),
        };
        for error in ["not_repliable", "not_repliable", "http_503"] {
            let event = Envelope::new(EventType::SocialReplyFailed, Source::Social, &reply(Some(error)))
                .expect("event");
            assert_eq!(narrator.line(&event, |_| 0.0), None);
        }
        let tally = &narrator.tallies[&id];
        assert_eq!((tally.not_repliable, tally.reply_failures), (2, 1));
    }

    #[test]
    fn a_winner_is_named_with_one_at_sign() {
        let named =
            |handle: Option<&str>| who(&Bidder { id: "x:1".into(), handle: handle.map(str::to_owned) });
        assert_eq!(named(Some("@turing")), "@turing");
        assert_eq!(named(Some("alice")), "@alice");
        assert_eq!(named(None), "x:1");
    }
}
