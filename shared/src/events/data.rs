//! The typed `data` of each event type, one struct per type (and the enums they
//! use), grouped by category. `super::event_types!` names each type's struct.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::amount::Amount;
use crate::auction::{Auction, Bid, Bidder, Outcome};

// ---- data of auction events ----

/// `auction:start`, `auction:end`: the auction as it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuctionSnapshot {
    pub auction: Auction,
}

/// `auction:bid:*`: the bid and the auction's sequence number after it; the decided
/// events (`accepted`, `rejected`) also carry the auction as it stands after the bid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BidEvent {
    pub bid: Bid,
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auction: Option<Auction>,
}

/// `auction:winner`: the outcome of a closed auction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuctionWinner {
    pub auction_id: Uuid,
    pub outcome: Outcome,
    pub seq: u64,
}

/// `auction:extended`: anti-snipe moved the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuctionExtended {
    pub auction_id: Uuid,
    pub bid_id: Uuid,
    pub previous_ends_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub seq: u64,
}

/// `auction:cancelled`: who cancelled and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuctionCancelled {
    pub auction: Auction,
    pub reason: Option<String>,
}

// ---- data of stream events ----

/// `stream:start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StreamStarted {
    /// Output URLs with their keys masked.
    pub outputs: Vec<String>,
    pub resolution: String,
    pub fps: u32,
    pub encoder: String,
}

/// `stream:end`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StreamEnded {
    pub reason: String,
    pub frames_rendered: u64,
}

/// `stream:error`: an output, encoder or scene problem; scene errors say where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StreamErrorData {
    pub kind: String,
    pub message: String,
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub line: Option<u32>,
    #[serde(default)]
    pub column: Option<u32>,
}

/// `stream:quality`: periodic output figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StreamQuality {
    pub fps: f64,
    pub frame_time_ms_p50: f64,
    pub frame_time_ms_p99: f64,
    pub frames_dropped: u64,
    pub bitrate_kbps: f64,
}

/// `stream:scene:update`: the active scene or a layer changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StreamSceneUpdate {
    pub scene: String,
    #[serde(default)]
    pub layer: Option<String>,
}

/// `stream:asset:loaded`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StreamAssetLoaded {
    pub path: String,
    pub kind: String,
}

/// `stream:clip`: a sold lot's winning-moment clip was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StreamClip {
    pub auction_id: Uuid,
    /// The clip file on the renderer's machine (`<data dir>/clips/<auction id>.mp4`).
    pub path: String,
    pub duration_ms: u64,
}

// ---- data of agent events ----

/// The host's moods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mood {
    Neutral,
    Happy,
    Excited,
    Tense,
    Surprised,
    Disappointed,
    Celebrating,
}

impl Mood {
    /// Every mood, in the order of `agent.md`.
    pub const ALL: [Mood; 7] = [
        Mood::Neutral,
        Mood::Happy,
        Mood::Excited,
        Mood::Tense,
        Mood::Surprised,
        Mood::Disappointed,
        Mood::Celebrating,
    ];

    /// The name as files and events write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mood::Neutral => "neutral",
            Mood::Happy => "happy",
            Mood::Excited => "excited",
            Mood::Tense => "tense",
            Mood::Surprised => "surprised",
            Mood::Disappointed => "disappointed",
            Mood::Celebrating => "celebrating",
        }
    }
}

/// Where a line of the host goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Stream,
    X,
}

/// `agent:message`: a caption on the stream or a reply on X.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentMessage {
    pub text: String,
    pub channel: Channel,
    #[serde(default)]
    pub in_reply_to: Option<String>,
    pub mood: Mood,
    /// The line spoken, when the voice synthesised it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speech: Option<Speech>,
}

/// A spoken line's audio: a mono 16-bit WAV served at `url` while it is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Speech {
    pub id: String,
    /// `/api/agent/speech/<id>.wav`, on the agent's API and the gateway.
    pub url: String,
    pub duration_ms: u64,
}

/// `social:post:received`: a post read from X that is addressed to the show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SocialPostReceived {
    pub post_id: String,
    pub author_id: String,
    /// `@handle`, when X sent it.
    pub author: Option<String>,
    pub text: String,
    pub created_at: DateTime<Utc>,
    /// Whether it parsed as a bid.
    pub is_bid: bool,
}

/// `social:announced`: a lot's announcement post, which becomes its conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SocialAnnounced {
    pub auction_id: Uuid,
    pub post_id: String,
}

/// `social:reply:sent` / `social:reply:failed`: a post of the show in answer to
/// another (a bid's reply, an outbid notice, a result, a standings post).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SocialReply {
    /// The post answered (the announcement, for results and standings posts).
    pub in_reply_to: Option<String>,
    /// The reply's id, once sent.
    pub reply_id: Option<String>,
    pub auction_id: Option<Uuid>,
    /// `accepted`, `rejected`, `outbid`, `result`, `standings`.
    pub kind: String,
    pub text: String,
    pub standings: bool,
    /// Why it failed (`not_repliable`: X refused a reply to a post that did not summon the show).
    pub error: Option<String>,
}

/// `social:rate_limited`: an X endpoint's limit was reached until `reset_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SocialRateLimited {
    pub endpoint: String,
    pub reset_at: DateTime<Utc>,
}

/// `agent:mood`: the mood changed; `expression` is the image to show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentMood {
    pub mood: Mood,
    /// 0 to 1.
    pub intensity: f32,
    pub expression: String,
}

/// `agent:interaction`: someone spoke to the host and what it answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentInteraction {
    pub user: Bidder,
    pub text: String,
    pub reply: String,
}

/// `agent:asset:request`: the host wants an expression or overlay shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentAssetRequest {
    pub asset: String,
    #[serde(default)]
    pub duration_ms: Option<u64>,
}

/// `agent:memory:update`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentMemoryUpdate {
    /// `user:<handle>`, `lot:<auction id>` or `campaign:<id>`.
    pub subject: String,
    pub summary: String,
}

// ---- data of user events ----

/// `user:connect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserConnect {
    pub user_id: String,
    #[serde(default)]
    pub handle: Option<String>,
    pub client: String,
}

/// `user:disconnect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserDisconnect {
    pub user_id: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `user:action`: something a user did in the dashboard or on X.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserAction {
    pub user_id: String,
    pub action: String,
    #[serde(default)]
    pub details: serde_json::Value,
}

/// `user:preference`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserPreference {
    pub user_id: String,
    pub key: String,
    pub value: serde_json::Value,
}

// ---- data of system events ----

/// `system:health`: a role's health changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SystemHealth {
    pub role: String,
    /// `ok`, `degraded` or `down`.
    pub status: String,
    pub checks: BTreeMap<String, String>,
}

/// `system:metric`: a figure worth an event (not money: amounts are never floats).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SystemMetric {
    pub name: String,
    pub value: f64,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `system:error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SystemErrorData {
    pub role: String,
    pub message: String,
    #[serde(default)]
    pub code: Option<String>,
}

/// `system:config`: a setting changed (secrets are never carried).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SystemConfig {
    pub key: String,
    #[serde(default)]
    pub value: Option<serde_json::Value>,
}

// ---- data of chain events ----

/// `chain:wallet:linked` / `chain:wallet:revoked`: an X handle's wallet, proven by a
/// signed EIP-4361 message, or its link revoked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChainWallet {
    /// `@name`, lower case.
    pub handle: String,
    /// EIP-55 checksum form.
    pub address: String,
}

/// `chain:payment:confirmed`: the winner paid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChainPaymentConfirmed {
    pub auction_id: Uuid,
    pub tx_hash: String,
    pub amount: Amount,
    pub from: String,
}
