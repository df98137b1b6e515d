//! The event envelope and every event type of `spec/events.md`, each with a typed
//! `data` struct (in `data.rs`) and a JSON Schema generated from it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::Utc;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

mod data;
pub use data::*;

/// Schema version of `data` written by this build, for every type.
pub const CURRENT_VERSION: &str = "1.0";

/// One event, as stored, streamed and sent over WebSockets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Envelope {
    /// UUID v7, so ids sort by creation time.
    pub id: Uuid,
    /// Unix time in milliseconds.
    pub timestamp: i64,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub source: Source,
    /// Schema version of `data` for this type.
    pub version: String,
    /// The id of the request or post that started the chain.
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// The id of the event that caused this one.
    #[serde(default)]
    pub causation_id: Option<Uuid>,
    pub data: serde_json::Value,
}

/// Why an envelope could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("data of {event_type} does not match its schema: {source}")]
    Data { event_type: EventType, source: serde_json::Error },
    #[error("data of {event_type} could not be encoded: {source}")]
    Encode { event_type: EventType, source: serde_json::Error },
}

/// Refuses a major version this build does not read.
fn check_version(event_type: EventType, version: &str) -> Result<(), InvalidEvent> {
    match version.split('.').next().map(str::parse::<u32>) {
        Some(Ok(1)) => Ok(()),
        Some(Ok(major)) if major > 1 => {
            Err(InvalidEvent::NewerVersion { event_type, version: version.to_owned() })
        }
        _ => Err(InvalidEvent::Envelope(format!("version {version:?} is not 1.x"))),
    }
}

/// Why a received event was refused: the reason a dead letter records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEvent {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not an event envelope: {0}")]
    Envelope(String),
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("data of {event_type} does not match its schema: {message}")]
    Data { event_type: EventType, message: String },
    #[error("{event_type} version {version} is newer than this build reads (1.x)")]
    NewerVersion { event_type: EventType, version: String },
}

impl InvalidEvent {
    /// A short stable name of the reason, for metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            InvalidEvent::NotJson(_) => "not_json",
            InvalidEvent::Envelope(_) => "envelope",
            InvalidEvent::UnknownType(_) => "unknown_type",
            InvalidEvent::Data { .. } => "data",
            InvalidEvent::NewerVersion { .. } => "version",
        }
    }
}

impl Envelope {
    /// An auction decision (`auction:*`) that does not come from the auction engine.
    /// Decisions are made only by the engine and published only from its outbox, so
    /// such an event is forged: consumers and followers never apply it.
    pub fn is_forged_decision(&self) -> bool {
        self.event_type.category() == Category::Auction && self.source != Source::AuctionEngine
    }

    /// Reads and validates an envelope received from elsewhere: JSON, the envelope's
    /// fields, a known type, a major `version` this build reads, and `data` against
    /// the type's data struct (the struct its JSON Schema is generated from).
    pub fn parse_checked(payload: &str) -> Result<Envelope, InvalidEvent> {
        // The common case in one pass; a payload that does not read as an envelope is
        // read again step by step, to say exactly what is wrong with it.
        if let Ok(envelope) = serde_json::from_str::<Envelope>(payload) {
            return envelope.checked();
        }
        let value: serde_json::Value =
            serde_json::from_str(payload).map_err(|error| InvalidEvent::NotJson(error.to_string()))?;
        Envelope::from_value_checked(value)
    }

    /// The checks left once the envelope's fields have been read: version and data.
    fn checked(self) -> Result<Envelope, InvalidEvent> {
        let event_type = self.event_type;
        check_version(event_type, &self.version)?;
        event_type.check_data(&self.data).map_err(|error| {
            let message = match error {
                EventError::Data { source, .. } | EventError::Encode { source, .. } => source.to_string(),
            };
            InvalidEvent::Data { event_type, message }
        })?;
        Ok(self)
    }

    /// [`Envelope::parse_checked`] for an already parsed JSON value.
    pub fn from_value_checked(value: serde_json::Value) -> Result<Envelope, InvalidEvent> {
        let Some(object) = value.as_object() else {
            return Err(InvalidEvent::Envelope("expected a JSON object".into()));
        };
        let name = object
            .get("type")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| InvalidEvent::Envelope("missing field `type`".into()))?;
        let event_type: EventType = name.parse().map_err(|_| InvalidEvent::UnknownType(name.to_owned()))?;
        let version = object
            .get("version")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| InvalidEvent::Envelope("missing field `version`".into()))?;
        // Before the other fields: a newer major version may have changed them.
        check_version(event_type, version)?;
        let envelope: Envelope =
            serde_json::from_value(value).map_err(|error| InvalidEvent::Envelope(error.to_string()))?;
        debug_assert_eq!(envelope.event_type, event_type);
        envelope.checked()
    }

    /// A new event of `event_type` from `source`, stamped now, with `data` checked
    /// against the type's data struct.
    pub fn new<T: Serialize>(
        event_type: EventType,
        source: Source,
        data: &T,
    ) -> Result<Envelope, EventError> {
        let data = serde_json::to_value(data).map_err(|source| EventError::Encode { event_type, source })?;
        event_type.check_data(&data)?;
        Ok(Envelope::stamped(event_type, source, data))
    }

    /// A new event whose `data` is already the type's own data struct (the engine's
    /// events): the schema check is left to debug builds and tests, off the hot path.
    pub fn new_typed<T: Serialize>(
        event_type: EventType,
        source: Source,
        data: &T,
    ) -> Result<Envelope, EventError> {
        let data = serde_json::to_value(data).map_err(|source| EventError::Encode { event_type, source })?;
        debug_assert!(event_type.check_data(&data).is_ok(), "{event_type} data does not match its schema");
        Ok(Envelope::stamped(event_type, source, data))
    }

    fn stamped(event_type: EventType, source: Source, data: serde_json::Value) -> Envelope {
        Envelope {
            id: Uuid::now_v7(),
            timestamp: Utc::now().timestamp_millis(),
            event_type,
            source,
            version: CURRENT_VERSION.to_owned(),
            correlation_id: None,
            causation_id: None,
            data,
        }
    }

    /// The same event, tagged as part of the chain started by `correlation_id`.
    pub fn correlated(mut self, correlation_id: impl Into<String>) -> Envelope {
        self.correlation_id = Some(correlation_id.into());
        self
    }

    /// The typed `data`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, EventError> {
        serde_json::from_value(self.data.clone())
            .map_err(|source| EventError::Data { event_type: self.event_type, source })
    }

    /// The Redis stream (and in-process topic) the event travels on.
    pub fn stream(&self) -> String {
        self.event_type.category().stream_name()
    }
}

/// An event whose `data` is JSON text: as the engine wrote it from its typed data, or
/// as it was stored. Serializing it writes that text as it is, without building
/// `data`'s tree: the engine stores its events this way and the outbox relay
/// publishes them this way. The JSON means the same as the [`Envelope`] parsed from
/// it; only the order of `data`'s keys may differ.
#[derive(Debug, Clone, Serialize)]
pub struct RawEnvelope {
    pub id: Uuid,
    pub timestamp: i64,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub source: Source,
    pub version: String,
    pub correlation_id: Option<String>,
    pub causation_id: Option<Uuid>,
    pub data: Box<serde_json::value::RawValue>,
}

impl RawEnvelope {
    /// A new event whose `data` is written straight from the type's own data struct
    /// (the engine's events), without building a `Value` tree: fields in the struct's
    /// order. The schema check is left to debug builds and tests, off the hot path.
    pub fn new_typed<T: Serialize>(
        event_type: EventType,
        source: Source,
        data: &T,
    ) -> Result<RawEnvelope, EventError> {
        let data = serde_json::value::to_raw_value(data)
            .map_err(|source| EventError::Encode { event_type, source })?;
        debug_assert!(
            serde_json::from_str(data.get()).is_ok_and(|value| event_type.check_data(&value).is_ok()),
            "{event_type} data does not match its schema"
        );
        Ok(RawEnvelope {
            id: Uuid::now_v7(),
            timestamp: Utc::now().timestamp_millis(),
            event_type,
            source,
            version: CURRENT_VERSION.to_owned(),
            correlation_id: None,
            causation_id: None,
            data,
        })
    }

    /// The same event, caused by `cause` and sharing its correlation.
    pub fn caused_by(mut self, cause: &RawEnvelope) -> RawEnvelope {
        self.causation_id = Some(cause.id);
        self.correlation_id = cause.correlation_id.clone().or_else(|| Some(cause.id.to_string()));
        self
    }

    /// The envelope with `data` read.
    pub fn parse(self) -> Result<Envelope, serde_json::Error> {
        Ok(Envelope {
            data: serde_json::from_str(self.data.get())?,
            id: self.id,
            timestamp: self.timestamp,
            event_type: self.event_type,
            source: self.source,
            version: self.version,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
        })
    }

    /// The stream it travels on, as [`Envelope::stream`].
    pub fn stream(&self) -> String {
        self.event_type.category().stream_name()
    }
}

/// Who published an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    AuctionEngine,
    StreamManager,
    AgentService,
    EventHandler,
    AdminFrontend,
    Social,
    Chain,
}

impl Source {
    /// Every source.
    pub const ALL: [Source; 7] = [
        Source::AuctionEngine,
        Source::StreamManager,
        Source::AgentService,
        Source::EventHandler,
        Source::AdminFrontend,
        Source::Social,
        Source::Chain,
    ];

    /// The name as written in envelopes (`auction-engine`).
    pub fn as_str(self) -> &'static str {
        match self {
            Source::AuctionEngine => "auction-engine",
            Source::StreamManager => "stream-manager",
            Source::AgentService => "agent-service",
            Source::EventHandler => "event-handler",
            Source::AdminFrontend => "admin-frontend",
            Source::Social => "social",
            Source::Chain => "chain",
        }
    }
}

impl FromStr for Source {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Source::ALL
            .into_iter()
            .find(|source| source.as_str() == name)
            .ok_or_else(|| format!("unknown source {name:?}"))
    }
}

/// The namespace of an event type; each has its own stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Auction,
    Stream,
    Agent,
    User,
    System,
    Chain,
    Social,
}

impl Category {
    /// Every category, in stream order.
    pub const ALL: [Category; 7] = [
        Category::Auction,
        Category::Stream,
        Category::Agent,
        Category::User,
        Category::System,
        Category::Chain,
        Category::Social,
    ];

    /// The category's name, the part of a type before the first `:`.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Auction => "auction",
            Category::Stream => "stream",
            Category::Agent => "agent",
            Category::User => "user",
            Category::System => "system",
            Category::Chain => "chain",
            Category::Social => "social",
        }
    }

    /// The stream name, `events:<category>`.
    pub fn stream_name(self) -> String {
        format!("events:{}", self.as_str())
    }
}

/// Declares the event types: the enum, their names, their data structs.
macro_rules! event_types {
    ($($variant:ident = $name:literal => $category:ident, $data:ty;)+) => {
        /// Every event type the platform knows.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $($variant,)+
        }

        impl EventType {
            /// Every known type.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)+];

            /// The type's name, such as `auction:bid:accepted`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name,)+
                }
            }

            /// The namespace the type belongs to.
            pub fn category(self) -> Category {
                match self {
                    $(EventType::$variant => Category::$category,)+
                }
            }

            /// Checks `data` against the type's data struct.
            pub fn check_data(self, data: &serde_json::Value) -> Result<(), EventError> {
                let result = match self {
                    $(EventType::$variant => <$data as Deserialize>::deserialize(data).map(drop),)+
                };
                result.map_err(|source| EventError::Data { event_type: self, source })
            }

            /// The JSON Schema of the type's `data`.
            pub fn data_schema(self) -> schemars::Schema {
                match self {
                    $(EventType::$variant => schemars::schema_for!($data),)+
                }
            }
        }

        impl FromStr for EventType {
            type Err = UnknownEventType;

            fn from_str(name: &str) -> Result<Self, Self::Err> {
                match name {
                    $($name => Ok(EventType::$variant),)+
                    other => Err(UnknownEventType(other.to_owned())),
                }
            }
        }
    };
}

event_types! {
    AuctionStart = "auction:start" => Auction, AuctionSnapshot;
    AuctionEnd = "auction:end" => Auction, AuctionSnapshot;
    AuctionBidPlaced = "auction:bid:placed" => Auction, BidEvent;
    AuctionBidAccepted = "auction:bid:accepted" => Auction, BidEvent;
    AuctionBidRejected = "auction:bid:rejected" => Auction, BidEvent;
    AuctionWinner = "auction:winner" => Auction, AuctionWinner;
    AuctionExtended = "auction:extended" => Auction, AuctionExtended;
    AuctionCancelled = "auction:cancelled" => Auction, AuctionCancelled;
    StreamStart = "stream:start" => Stream, StreamStarted;
    StreamEnd = "stream:end" => Stream, StreamEnded;
    StreamError = "stream:error" => Stream, StreamErrorData;
    StreamQuality = "stream:quality" => Stream, StreamQuality;
    StreamSceneUpdate = "stream:scene:update" => Stream, StreamSceneUpdate;
    StreamAssetLoaded = "stream:asset:loaded" => Stream, StreamAssetLoaded;
    StreamClip = "stream:clip" => Stream, StreamClip;
    AgentMessage = "agent:message" => Agent, AgentMessage;
    AgentMood = "agent:mood" => Agent, AgentMood;
    AgentInteraction = "agent:interaction" => Agent, AgentInteraction;
    AgentAssetRequest = "agent:asset:request" => Agent, AgentAssetRequest;
    AgentMemoryUpdate = "agent:memory:update" => Agent, AgentMemoryUpdate;
    UserConnect = "user:connect" => User, UserConnect;
    UserDisconnect = "user:disconnect" => User, UserDisconnect;
    UserAction = "user:action" => User, UserAction;
    UserPreference = "user:preference" => User, UserPreference;
    SystemHealth = "system:health" => System, SystemHealth;
    SystemMetric = "system:metric" => System, SystemMetric;
    SystemError = "system:error" => System, SystemErrorData;
    SystemConfig = "system:config" => System, SystemConfig;
    ChainWalletLinked = "chain:wallet:linked" => Chain, ChainWallet;
    ChainWalletRevoked = "chain:wallet:revoked" => Chain, ChainWallet;
    ChainPaymentConfirmed = "chain:payment:confirmed" => Chain, ChainPaymentConfirmed;
    SocialPostReceived = "social:post:received" => Social, SocialPostReceived;
    SocialAnnounced = "social:announced" => Social, SocialAnnounced;
    SocialReplySent = "social:reply:sent" => Social, SocialReply;
    SocialReplyFailed = "social:reply:failed" => Social, SocialReply;
    SocialRateLimited = "social:rate_limited" => Social, SocialRateLimited;
}

impl EventType {
    /// Whether a viewer could see this type on the stream, so its history needs no token.
    pub fn is_public(self) -> bool {
        matches!(self.category(), Category::Auction | Category::Stream)
            || matches!(
                self,
                EventType::AgentMessage
                    | EventType::AgentMood
                    | EventType::SocialAnnounced
                    | EventType::SocialReplySent
            )
    }

    /// The JSON Schema of every type's `data`, by type name.
    pub fn all_schemas() -> BTreeMap<&'static str, schemars::Schema> {
        EventType::ALL.iter().map(|kind| (kind.as_str(), kind.data_schema())).collect()
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for EventType {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EventType".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = EventType::ALL.iter().map(|kind| kind.as_str()).collect();
        schemars::json_schema!({ "type": "string", "enum": names })
    }
}

/// A type name that is not in the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {0:?}")]
pub struct UnknownEventType(pub String);

/// A type pattern such as `auction:*`, `auction:bid:*` or `agent:mood`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TypePattern(String);

impl TypePattern {
    /// Whether `event_type` matches: exact name, `*` for everything, or a prefix
    /// ending in `:*`.
    pub fn matches(&self, event_type: EventType) -> bool {
        let name = event_type.as_str();
        match self.0.strip_suffix('*') {
            Some("") => true,
            Some(prefix) => name.starts_with(prefix),
            None => name == self.0,
        }
    }

    /// `*`: every type.
    pub fn everything() -> TypePattern {
        TypePattern("*".to_owned())
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TypePattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let valid = text == "*"
            || text.strip_suffix(":*").is_some_and(|prefix| {
                EventType::ALL.iter().any(|kind| kind.as_str().starts_with(&format!("{prefix}:")))
            })
            || text.parse::<EventType>().is_ok();
        if valid {
            Ok(TypePattern(text.to_owned()))
        } else {
            Err(format!("{text:?} is not an event type or pattern (such as auction:* or agent:mood)"))
        }
    }
}

impl TryFrom<String> for TypePattern {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<TypePattern> for String {
    fn from(pattern: TypePattern) -> String {
        pattern.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auction::Outcome;

    #[test]
    fn only_the_engine_makes_auction_decisions() {
        let data = AuctionWinner {
            auction_id: Uuid::nil(),
            outcome: Outcome { result: crate::auction::OutcomeResult::NoBids, winner: None, amount: None },
            seq: 0,
        };
        let from = |source| Envelope::new(EventType::AuctionWinner, source, &data).expect("valid");
        assert!(!from(Source::AuctionEngine).is_forged_decision());
        assert!(from(Source::AdminFrontend).is_forged_decision());
        assert!(from(Source::StreamManager).is_forged_decision());
        let mood = Envelope::new(
            EventType::AgentMood,
            Source::AdminFrontend,
            &AgentMood { mood: Mood::Happy, intensity: 1.0, expression: "smile".into() },
        )
        .expect("valid");
        assert!(!mood.is_forged_decision(), "other categories come from anywhere an operator allows");
    }

    /// An `agent:mood` event, correlated with `post-1`.
    fn mood(mood: Mood, expression: &str) -> Envelope {
        Envelope::new(
            EventType::AgentMood,
            Source::AgentService,
            &AgentMood { mood, intensity: 0.5, expression: expression.into() },
        )
        .expect("valid")
        .correlated("post-1")
    }

    fn mood_event() -> serde_json::Value {
        serde_json::to_value(mood(Mood::Happy, "smile")).expect("serialize")
    }

    fn refusal(value: &serde_json::Value) -> InvalidEvent {
        Envelope::parse_checked(&value.to_string()).expect_err("refused")
    }

    #[test]
    fn a_valid_envelope_passes_the_check_unchanged() {
        let value = mood_event();
        let event = Envelope::parse_checked(&value.to_string()).expect("valid");
        assert_eq!(serde_json::to_value(event).expect("serialize"), value);
    }

    #[test]
    fn each_kind_of_invalid_event_is_named() {
        assert_eq!(Envelope::parse_checked("{oops").map_err(|error| error.kind()), Err("not_json"));
        assert_eq!(refusal(&serde_json::json!([1, 2])).kind(), "envelope");

        let mut unknown = mood_event();
        unknown["type"] = "agent:dance".into();
        assert_eq!(refusal(&unknown), InvalidEvent::UnknownType("agent:dance".into()));

        let mut missing_id = mood_event();
        missing_id.as_object_mut().expect("object").remove("id");
        let error = refusal(&missing_id);
        assert_eq!(error.kind(), "envelope");
        assert!(error.to_string().contains("id"), "{error}");

        let mut bad_data = mood_event();
        bad_data["data"]["intensity"] = "very".into();
        let error = refusal(&bad_data);
        assert_eq!(error.kind(), "data");
        assert!(error.to_string().contains("agent:mood"), "{error}");

        let mut newer = mood_event();
        newer["version"] = "2.0".into();
        assert_eq!(refusal(&newer).kind(), "version");
        newer.as_object_mut().expect("object").remove("source");
        assert_eq!(refusal(&newer).kind(), "version", "a newer version is named before its fields are read");
        let mut minor = mood_event();
        minor["version"] = "1.7".into();
        assert!(Envelope::parse_checked(&minor.to_string()).is_ok(), "a newer minor version is read");
    }

    #[test]
    fn an_event_written_as_text_from_typed_data_reads_back_as_that_data() {
        let mood = AgentMood { mood: Mood::Happy, intensity: 0.5, expression: "a \"quoted\" smile\n".into() };
        let cause = RawEnvelope::new_typed(EventType::AgentMood, Source::AgentService, &mood).expect("valid");
        let event = RawEnvelope::new_typed(EventType::AgentMood, Source::AgentService, &mood)
            .expect("valid")
            .caused_by(&cause);
        assert_eq!(event.causation_id, Some(cause.id));
        assert_eq!(event.correlation_id, Some(cause.id.to_string()), "a cause without a chain starts one");
        let parsed = event.clone().parse().expect("parse");
        assert!(EventType::AgentMood.check_data(&parsed.data).is_ok());
        assert_eq!(parsed.decode::<AgentMood>().expect("typed"), mood);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&serde_json::to_string(&event).expect("raw"))
                .expect("json"),
            serde_json::to_value(&parsed).expect("envelope"),
            "the same JSON as the envelope parsed from it"
        );
    }

    #[test]
    fn a_raw_envelope_serializes_as_the_envelope_it_was_stored_from() {
        let event = mood(Mood::Happy, "a \"quoted\" smile\n");
        let raw = RawEnvelope {
            id: event.id,
            timestamp: event.timestamp,
            event_type: event.event_type,
            source: event.source,
            version: event.version.clone(),
            correlation_id: event.correlation_id.clone(),
            causation_id: Some(Uuid::now_v7()),
            data: serde_json::value::RawValue::from_string(event.data.to_string()).expect("json"),
        };
        let event = Envelope { causation_id: raw.causation_id, ..event };
        assert_eq!(
            serde_json::to_string(&raw).expect("raw"),
            serde_json::to_string(&event).expect("envelope")
        );
        assert_eq!(raw.stream(), event.stream());
        assert_eq!(raw.clone().parse().expect("parse"), event);

        let uncorrelated = RawEnvelope { correlation_id: None, causation_id: None, ..raw };
        let event = Envelope { correlation_id: None, causation_id: None, ..event };
        assert_eq!(
            serde_json::to_string(&uncorrelated).expect("raw"),
            serde_json::to_string(&event).expect("envelope"),
            "absent ids are written as null by both"
        );
    }

    #[test]
    fn source_names_match_their_serialized_form() {
        for source in Source::ALL {
            assert_eq!(serde_json::to_value(source).expect("serialize"), source.as_str());
            assert_eq!(source.as_str().parse::<Source>(), Ok(source));
        }
    }

    #[test]
    fn every_type_name_round_trips_and_has_its_category_prefix() {
        for kind in EventType::ALL {
            assert_eq!(kind.as_str().parse::<EventType>(), Ok(*kind));
            assert!(kind.as_str().starts_with(&format!("{}:", kind.category().as_str())));
        }
    }

    #[test]
    fn the_catalogue_of_the_spec_is_complete() {
        for name in [
            "auction:start",
            "auction:end",
            "auction:bid:placed",
            "auction:bid:accepted",
            "auction:bid:rejected",
            "auction:winner",
            "stream:start",
            "stream:end",
            "stream:error",
            "stream:quality",
            "stream:scene:update",
            "stream:asset:loaded",
            "agent:message",
            "agent:mood",
            "agent:interaction",
            "agent:asset:request",
            "agent:memory:update",
            "user:connect",
            "user:disconnect",
            "user:action",
            "user:preference",
            "system:health",
            "system:metric",
            "system:error",
            "system:config",
        ] {
            assert!(name.parse::<EventType>().is_ok(), "{name} missing");
        }
    }

    #[test]
    fn envelope_serializes_with_the_spec_field_names() {
        let event = mood(Mood::Excited, "excited.png");
        let json = serde_json::to_value(&event).expect("serialize");
        assert_eq!(json["type"], "agent:mood");
        assert_eq!(json["source"], "agent-service");
        assert_eq!(json["version"], "1.0");
        assert_eq!(json["correlation_id"], "post-1");
        assert_eq!(json["data"]["mood"], "excited");
        let back: Envelope = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, event);
    }

    #[test]
    fn data_that_does_not_match_its_type_is_refused() {
        let error =
            EventType::AgentMood.check_data(&serde_json::json!({ "mood": "furious" })).expect_err("bad mood");
        assert!(error.to_string().contains("agent:mood"), "{error}");
    }

    #[test]
    fn unknown_type_is_refused_by_name() {
        assert_eq!("auction:teleport".parse::<EventType>(), Err(UnknownEventType("auction:teleport".into())));
    }

    #[test]
    fn patterns_match_exact_names_prefixes_and_everything() {
        let pattern = |text: &str| text.parse::<TypePattern>().expect(text);
        assert!(pattern("auction:*").matches(EventType::AuctionBidAccepted));
        assert!(pattern("auction:bid:*").matches(EventType::AuctionBidRejected));
        assert!(!pattern("auction:bid:*").matches(EventType::AuctionStart));
        assert!(pattern("agent:mood").matches(EventType::AgentMood));
        assert!(!pattern("agent:mood").matches(EventType::AgentMessage));
        assert!(pattern("*").matches(EventType::SystemError));
        assert!("nonsense:*".parse::<TypePattern>().is_err());
        assert!("auction:bid".parse::<TypePattern>().is_err());
    }

    #[test]
    fn public_types_are_what_a_viewer_sees_on_the_stream() {
        assert!(EventType::AuctionBidAccepted.is_public());
        assert!(EventType::StreamQuality.is_public());
        assert!(EventType::AgentMessage.is_public());
        assert!(!EventType::AgentMemoryUpdate.is_public());
        assert!(!EventType::SystemConfig.is_public());
    }

    #[test]
    fn every_type_has_a_json_schema_for_its_data() {
        let schemas = EventType::all_schemas();
        assert_eq!(schemas.len(), EventType::ALL.len());
        let bid = serde_json::to_value(&schemas["auction:bid:accepted"]).expect("schema");
        assert!(bid["properties"]["bid"].is_object(), "{bid}");
    }
}
