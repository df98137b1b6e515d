//! The app's side of the Tokio channels: what the follower and the API send in
//! ([`Inbox`], applied in [`Stage::Ingest`]) and the `stream:*` events the app
//! publishes (in [`Stage::Report`]).

use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use bevy::diagnostic::FrameCount;
use bevy::prelude::*;
use sothebais_shared::auction::OutcomeResult;
use sothebais_shared::events::{
    AuctionSnapshot, AuctionWinner, Envelope, EventType, Source as EventSource, StreamAssetLoaded,
    StreamErrorData, StreamSceneUpdate,
};

use crate::api::Command;
use crate::follow::Feed;
use crate::report::Timing;
use crate::scene::draw::{News, Overrides, SceneNews};
use crate::scene::library::{Change, Library};
use crate::show::Show;
use crate::sound::{self, Sounds};
use crate::stage::Stage;

/// The channels from the Tokio side: the follower's feed and the API's commands.
#[derive(Resource)]
pub struct Inbox {
    pub feed: Mutex<Receiver<Feed>>,
    pub commands: Mutex<Receiver<Command>>,
    /// Events the renderer publishes (`stream:*`).
    pub outbox: Option<tokio::sync::mpsc::UnboundedSender<Envelope>>,
    pub stop: Arc<AtomicBool>,
    /// Where a sold lot's hammer is marked for its clip (`None`: no clips).
    pub clips: Option<Arc<crate::clips::Clips>>,
}

/// The show's state, the inbox applied first each frame, the scene's news published
/// last. The [`Inbox`] comes from the caller, which made its channels.
#[derive(Debug)]
pub struct BridgePlugin;

impl Plugin for BridgePlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Show>()
            .add_systems(Update, (take_inbox.in_set(Stage::Ingest), report_news.in_set(Stage::Report)));
    }
}

pub fn send_event<T: serde::Serialize>(
    outbox: &tokio::sync::mpsc::UnboundedSender<Envelope>,
    event_type: EventType,
    data: &T,
) {
    if let Ok(event) = Envelope::new_typed(event_type, EventSource::StreamManager, data) {
        let _ = outbox.send(event);
    }
}

/// Applies what the follower and the API sent since the last frame.
pub fn take_inbox(
    inbox: Res<Inbox>,
    mut show: ResMut<Show>,
    mut library: ResMut<Library>,
    mut overrides: ResMut<Overrides>,
    mut timing: ResMut<Timing>,
    count: Res<FrameCount>,
    sounds: Res<Sounds>,
) {
    let now = chrono::Utc::now();
    if let Ok(feed) = inbox.feed.lock() {
        while let Ok(item) = feed.try_recv() {
            match item {
                Feed::Snapshot(snapshot, taken) => show.apply_snapshot(snapshot, taken),
                Feed::Event(event, arrival) => {
                    if show.apply(&event, now) {
                        metrics::counter!("stream_events_applied_total").increment(1);
                        timing.unseen.push((arrival, count.0));
                        if let Some(clips) = &inbox.clips
                            && let Some(auction_id) = sold_now(&event)
                        {
                            clips.sold(auction_id);
                        }
                    }
                }
                Feed::Speech { event, arrival, clip, levels, secs } => {
                    // The caption and the voice start together.
                    if show.apply(&event, now) {
                        metrics::counter!("stream_events_applied_total").increment(1);
                        timing.unseen.push((arrival, count.0));
                        show.speaking(levels, secs);
                        let _ = sounds
                            .sender
                            .send(sound::Play::Voice { clip, published_ms: Some(event.timestamp) });
                    }
                }
                Feed::Connected(connected) => timing.following = connected,
                Feed::Image { url, path } => show.image_ready(url, path),
            }
        }
    }
    if let Ok(commands) = inbox.commands.lock() {
        while let Ok(command) = commands.try_recv() {
            match command {
                Command::Pin(name) => match library.pin(name.clone()) {
                    Ok(()) => info!("scene pinned by the operator: {}", name.as_deref().unwrap_or("(rules)")),
                    Err(error) => warn!("{error}"),
                },
                Command::Patch(id, patch) => {
                    info!("layer {id} patched by the operator");
                    overrides.0.insert(id, patch);
                }
            }
        }
    }
}

/// The lot an event says was sold: `auction:end` with a sold outcome, or
/// `auction:winner` (whichever comes first; the clips take each lot once).
pub fn sold_now(event: &Envelope) -> Option<uuid::Uuid> {
    let (auction_id, outcome) = match event.event_type {
        EventType::AuctionWinner => {
            let winner = event.decode::<AuctionWinner>().ok()?;
            (winner.auction_id, winner.outcome)
        }
        EventType::AuctionEnd => {
            let auction = event.decode::<AuctionSnapshot>().ok()?.auction;
            (auction.id, auction.outcome?)
        }
        _ => return None,
    };
    (outcome.result == OutcomeResult::Sold).then_some(auction_id)
}

/// Logs what the scene systems did and publishes it as `stream:*` events.
pub fn report_news(mut news: ResMut<News>, inbox: Res<Inbox>) {
    for item in news.0.drain(..) {
        let Some(outbox) = &inbox.outbox else { continue };
        match item {
            SceneNews::OnAir(scene) => {
                send_event(outbox, EventType::StreamSceneUpdate, &StreamSceneUpdate { scene, layer: None });
            }
            SceneNews::Changed(Change::Invalid(error) | Change::MissingAsset(error)) => send_event(
                outbox,
                EventType::StreamError,
                &StreamErrorData {
                    kind: "scene".to_owned(),
                    message: error.message.clone(),
                    file: Some(error.file.clone()),
                    line: Some(error.line),
                    column: Some(error.column),
                },
            ),
            SceneNews::Changed(_) => {}
            SceneNews::AssetLoaded(path) => {
                let kind = if crate::files::is_font(&path) { "font" } else { "image" };
                send_event(
                    outbox,
                    EventType::StreamAssetLoaded,
                    &StreamAssetLoaded { path, kind: kind.to_owned() },
                );
            }
        }
    }
}
