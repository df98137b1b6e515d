//! Redis Streams: one stream per category, consumer groups (`XREADGROUP`, `XACK`,
//! `XAUTOCLAIM`), streams capped with `MAXLEN ~`.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use redis::{AsyncConnectionConfig, Client, RedisError};
use uuid::Uuid;

use super::{
    BusError, Delivery, EventBus, GroupStart, HANDLED_IDS_KEPT, HandledIds, SubscribeOptions, Subscription,
    Tail,
};

/// The field of each stream entry that holds the JSON envelope.
const FIELD: &str = "event";
/// Longest a blocking read waits; the connection's response timeout sits above it.
const MAX_BLOCK: Duration = Duration::from_secs(10);

impl From<RedisError> for BusError {
    fn from(error: RedisError) -> Self {
        if error.is_io_error()
            || error.is_timeout()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
        {
            BusError::Unavailable(error.to_string())
        } else {
            BusError::Other(error.to_string())
        }
    }
}

/// Redis Streams as the event bus.
#[derive(Clone)]
pub struct RedisBus {
    client: Client,
    commands: ConnectionManager,
    prefix: String,
    max_len: usize,
}

impl fmt::Debug for RedisBus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The client's connection info may hold a password.
        formatter
            .debug_struct("RedisBus")
            .field("prefix", &self.prefix)
            .field("max_len", &self.max_len)
            .finish()
    }
}

impl RedisBus {
    /// Connects to `url`; every key gets `prefix` in front.
    pub async fn connect(url: &str, prefix: &str, max_len: usize) -> Result<RedisBus, BusError> {
        let client = Client::open(url).map_err(|error| BusError::Other(format!("bad REDIS_URL: {error}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(5))
            .set_number_of_retries(2);
        let commands = ConnectionManager::new_with_config(client.clone(), config).await?;
        Ok(RedisBus { client, commands, prefix: prefix.to_owned(), max_len })
    }

    fn key(&self, stream: &str) -> String {
        format!("{}{stream}", self.prefix)
    }

    /// A connection of its own for blocking reads, so they never hold up anyone
    /// else's commands; its response timeout sits above the longest block.
    async fn blocking_connection(&self) -> Result<MultiplexedConnection, BusError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(MAX_BLOCK + Duration::from_secs(5));
        Ok(self.client.get_multiplexed_async_connection_with_config(&config).await?)
    }

    /// `XADD <stream> MAXLEN ~ <max> * event <payload>`.
    fn xadd_raw(&self, stream: &str, payload: String) -> redis::Cmd {
        let mut command = redis::cmd("XADD");
        command
            .arg(self.key(stream))
            .arg("MAXLEN")
            .arg("~")
            .arg(self.max_len)
            .arg("*")
            .arg(FIELD)
            .arg(payload);
        command
    }
}

#[async_trait]
impl EventBus for RedisBus {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> Result<(), BusError> {
        let mut connection = self.commands.clone();
        redis::cmd("PING").query_async::<String>(&mut connection).await?;
        Ok(())
    }

    async fn publish_raw(&self, stream: &str, payload: &str) -> Result<String, BusError> {
        let mut connection = self.commands.clone();
        Ok(self.xadd_raw(stream, payload.to_owned()).query_async::<String>(&mut connection).await?)
    }

    async fn publish_raw_many(&self, entries: &[(String, String)]) -> Result<(), BusError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut pipeline = redis::pipe();
        for (stream, payload) in entries {
            pipeline.add_command(self.xadd_raw(stream, payload.clone()));
        }
        let mut connection = self.commands.clone();
        pipeline.query_async::<Vec<String>>(&mut connection).await?;
        Ok(())
    }

    async fn subscribe(&self, options: SubscribeOptions) -> Result<Box<dyn Subscription>, BusError> {
        let mut connection = self.commands.clone();
        let start = match options.start {
            GroupStart::Latest => "$",
            GroupStart::Beginning => "0",
        };
        for stream in &options.streams {
            let created = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(self.key(stream))
                .arg(&options.group)
                .arg(start)
                .arg("MKSTREAM")
                .query_async::<()>(&mut connection)
                .await;
            match created {
                Ok(()) => {}
                Err(error) if error.code() == Some("BUSYGROUP") => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(Box::new(RedisSubscription { bus: self.clone(), options, connection: None }))
    }

    async fn stream_len(&self, stream: &str) -> Result<u64, BusError> {
        let mut connection = self.commands.clone();
        Ok(redis::cmd("XLEN").arg(self.key(stream)).query_async::<u64>(&mut connection).await?)
    }

    async fn pending(&self, stream: &str, group: &str) -> Result<u64, BusError> {
        let mut connection = self.commands.clone();
        // The summary form: [count, smallest id, greatest id, [[consumer, count]…]].
        let reply = redis::cmd("XPENDING")
            .arg(self.key(stream))
            .arg(group)
            .query_async::<redis::Value>(&mut connection)
            .await;
        match reply {
            Ok(redis::Value::Array(items)) => match items.first() {
                Some(redis::Value::Int(count)) => Ok(u64::try_from(*count).unwrap_or(0)),
                _ => Ok(0),
            },
            Ok(_) => Ok(0),
            Err(error) if error.code() == Some("NOGROUP") => Ok(0),
            Err(error) => Err(error.into()),
        }
    }

    async fn backlog(&self, stream: &str, group: &str) -> Result<u64, BusError> {
        let mut connection = self.commands.clone();
        let key = self.key(stream);
        let reply =
            redis::cmd("XINFO").arg("GROUPS").arg(&key).query_async::<redis::Value>(&mut connection).await;
        let groups = match reply {
            Ok(redis::Value::Array(groups)) => groups,
            Ok(_) => return Ok(0),
            // No stream yet: nothing to do.
            Err(error) if error.to_string().contains("no such key") => return Ok(0),
            Err(error) => return Err(error.into()),
        };
        for info in groups {
            let fields = info_fields(info);
            if fields.get("name").and_then(value_text).as_deref() != Some(group) {
                continue;
            }
            let pending = fields.get("pending").and_then(value_int).unwrap_or(0);
            let lag = match fields.get("lag").and_then(value_int) {
                Some(lag) => lag,
                // Unknown lag (entries deleted or trimmed): caught up only if the group
                // has seen the newest entry.
                None => {
                    let newest = newest_id(&mut connection, &key).await?;
                    let last_delivered = fields.get("last-delivered-id").and_then(value_text);
                    u64::from(newest.is_some() && newest != last_delivered)
                }
            };
            return Ok(pending + lag);
        }
        Ok(0)
    }

    async fn tail(&self, streams: Vec<String>) -> Result<Box<dyn Tail>, BusError> {
        let mut connection = self.commands.clone();
        let mut positions = Vec::new();
        for stream in streams {
            // Start after the newest entry, so nothing added from now on is missed.
            let last =
                newest_id(&mut connection, &self.key(&stream)).await?.unwrap_or_else(|| "0-0".to_owned());
            positions.push((stream, last));
        }
        Ok(Box::new(RedisTail { bus: self.clone(), positions, connection: None }))
    }

    fn handled_ids(&self) -> Option<Arc<dyn HandledIds>> {
        Some(Arc::new(RedisHandledIds { bus: self.clone() }))
    }
}

/// Handled ids in Redis: one set per group and period of [`HANDLED_IDS_KEPT`]
/// (`<prefix>handled:<group>:<period>`, the ids' 16 bytes as members), each expiring
/// once the period after it has passed. A lookup asks the current and the previous
/// period's sets, so an id is remembered for one to two periods. One round trip per
/// batch each way; Redis keeps them as durably as the stream entries they guard.
#[derive(Debug)]
struct RedisHandledIds {
    bus: RedisBus,
}

impl RedisHandledIds {
    fn period_now() -> u64 {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
        now / HANDLED_IDS_KEPT.as_secs()
    }

    fn key(&self, group: &str, period: u64) -> String {
        self.bus.key(&format!("handled:{group}:{period}"))
    }
}

#[async_trait]
impl HandledIds for RedisHandledIds {
    async fn among(&self, group: &str, ids: &[Uuid]) -> Result<Vec<Uuid>, BusError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let period = RedisHandledIds::period_now();
        let mut pipeline = redis::pipe();
        for key in [self.key(group, period), self.key(group, period.saturating_sub(1))] {
            let command = pipeline.cmd("SMISMEMBER").arg(key);
            for id in ids {
                command.arg(id.as_bytes().as_slice());
            }
        }
        let mut connection = self.bus.commands.clone();
        let (current, previous): (Vec<bool>, Vec<bool>) = pipeline.query_async(&mut connection).await?;
        Ok(ids
            .iter()
            .zip(current.iter().zip(&previous))
            .filter(|(_, (now, before))| **now || **before)
            .map(|(id, _)| *id)
            .collect())
    }

    async fn remember(&self, group: &str, ids: &[Uuid]) -> Result<(), BusError> {
        if ids.is_empty() {
            return Ok(());
        }
        let period = RedisHandledIds::period_now();
        let key = self.key(group, period);
        let mut pipeline = redis::pipe();
        let add = pipeline.cmd("SADD").arg(&key);
        for id in ids {
            add.arg(id.as_bytes().as_slice());
        }
        add.ignore();
        // Gone once the next period is over too.
        pipeline.cmd("EXPIREAT").arg(&key).arg((period + 2) * HANDLED_IDS_KEPT.as_secs()).ignore();
        let mut connection = self.bus.commands.clone();
        pipeline.query_async::<()>(&mut connection).await?;
        Ok(())
    }
}

/// A group-less reader of Redis Streams (`XREAD`), on its own connection.
struct RedisTail {
    bus: RedisBus,
    positions: Vec<(String, String)>,
    connection: Option<MultiplexedConnection>,
}

impl fmt::Debug for RedisTail {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("RedisTail").field("positions", &self.positions).finish()
    }
}

#[async_trait]
impl Tail for RedisTail {
    async fn next(&mut self, max: usize, block: Duration) -> Result<Vec<Delivery>, BusError> {
        if self.connection.is_none() {
            self.connection = Some(self.bus.blocking_connection().await?);
        }
        let Some(connection) = self.connection.as_mut() else { return Ok(Vec::new()) };
        let mut command = redis::cmd("XREAD");
        command.arg("COUNT").arg(max.max(1));
        let block = block.min(MAX_BLOCK);
        if !block.is_zero() {
            command.arg("BLOCK").arg(block.as_millis().max(1) as u64);
        }
        command.arg("STREAMS");
        for (stream, _) in &self.positions {
            command.arg(self.bus.key(stream));
        }
        for (_, position) in &self.positions {
            command.arg(position);
        }
        let reply: Option<StreamReadReply> = match command.query_async(connection).await {
            Ok(reply) => reply,
            Err(error) => {
                self.connection = None;
                return Err(error.into());
            }
        };
        let mut deliveries = Vec::new();
        for key in reply.map(|reply| reply.keys).unwrap_or_default() {
            let stream = key.key.strip_prefix(&self.bus.prefix).unwrap_or(&key.key).to_owned();
            for entry in &key.ids {
                if let Some((_, position)) = self.positions.iter_mut().find(|(name, _)| *name == stream) {
                    position.clone_from(&entry.id);
                }
                let payload = entry.get::<String>(FIELD).unwrap_or_default();
                deliveries.push(Delivery { stream: stream.clone(), entry_id: entry.id.clone(), payload });
            }
        }
        Ok(deliveries)
    }
}

/// A consumer with its own connection, so its blocking reads never hold up anyone
/// else's commands. The connection is re-opened after a failure.
struct RedisSubscription {
    bus: RedisBus,
    options: SubscribeOptions,
    connection: Option<MultiplexedConnection>,
}

impl fmt::Debug for RedisSubscription {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("RedisSubscription").field("options", &self.options).finish()
    }
}

impl RedisSubscription {
    async fn connection(&mut self) -> Result<MultiplexedConnection, BusError> {
        if let Some(connection) = &self.connection {
            return Ok(connection.clone());
        }
        let connection = self.bus.blocking_connection().await?;
        self.connection = Some(connection.clone());
        Ok(connection)
    }

    /// Runs a command, dropping the connection when it failed so the next call reconnects.
    async fn run<T: redis::FromRedisValue>(&mut self, command: &redis::Cmd) -> Result<T, BusError> {
        let mut connection = self.connection().await?;
        let result = command.query_async::<T>(&mut connection).await;
        if let Err(error) = &result
            && !matches!(error.kind(), redis::ErrorKind::ResponseError | redis::ErrorKind::ExtensionError)
        {
            self.connection = None;
        }
        Ok(result?)
    }

    fn stream_name(&self, key: &str) -> String {
        key.strip_prefix(&self.bus.prefix).unwrap_or(key).to_owned()
    }

    fn delivery(&self, stream: &str, entry: &StreamId) -> Delivery {
        let payload = entry.get::<String>(FIELD).unwrap_or_default();
        Delivery { stream: stream.to_owned(), entry_id: entry.id.clone(), payload }
    }
}

#[async_trait]
impl Subscription for RedisSubscription {
    async fn read(&mut self, max: usize, block: Duration) -> Result<Vec<Delivery>, BusError> {
        let mut command = redis::cmd("XREADGROUP");
        command
            .arg("GROUP")
            .arg(&self.options.group)
            .arg(&self.options.consumer)
            .arg("COUNT")
            .arg(max.max(1));
        let block = block.min(MAX_BLOCK);
        if !block.is_zero() {
            command.arg("BLOCK").arg(block.as_millis().max(1) as u64);
        }
        command.arg("STREAMS");
        for stream in &self.options.streams {
            command.arg(self.bus.key(stream));
        }
        for _ in &self.options.streams {
            command.arg(">");
        }
        let reply: Option<StreamReadReply> = self.run(&command).await?;
        let mut deliveries = Vec::new();
        for key in reply.map(|reply| reply.keys).unwrap_or_default() {
            let stream = self.stream_name(&key.key);
            deliveries.extend(key.ids.iter().map(|entry| self.delivery(&stream, entry)));
        }
        Ok(deliveries)
    }

    async fn claim_stalled(&mut self, min_idle: Duration, max: usize) -> Result<Vec<Delivery>, BusError> {
        let mut deliveries = Vec::new();
        for stream in self.options.streams.clone() {
            if deliveries.len() >= max {
                break;
            }
            let mut command = redis::cmd("XAUTOCLAIM");
            command
                .arg(self.bus.key(&stream))
                .arg(&self.options.group)
                .arg(&self.options.consumer)
                .arg(min_idle.as_millis() as u64)
                .arg("0-0")
                .arg("COUNT")
                .arg(max - deliveries.len());
            let reply: StreamAutoClaimReply = self.run(&command).await?;
            deliveries.extend(reply.claimed.iter().map(|entry| self.delivery(&stream, entry)));
        }
        Ok(deliveries)
    }

    async fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        self.ack_many(std::slice::from_ref(delivery)).await
    }

    async fn ack_many(&mut self, deliveries: &[Delivery]) -> Result<(), BusError> {
        // One XACK per stream, with every entry id of that stream.
        let mut streams: Vec<&str> = deliveries.iter().map(|delivery| delivery.stream.as_str()).collect();
        streams.sort_unstable();
        streams.dedup();
        for stream in streams {
            let mut command = redis::cmd("XACK");
            command.arg(self.bus.key(stream)).arg(&self.options.group);
            for delivery in deliveries.iter().filter(|delivery| delivery.stream == stream) {
                command.arg(&delivery.entry_id);
            }
            self.run::<u64>(&command).await?;
        }
        Ok(())
    }
}

/// The fields of one `XINFO GROUPS` entry, by name (RESP2 flat pairs or RESP3 map).
fn info_fields(info: redis::Value) -> std::collections::HashMap<String, redis::Value> {
    let pairs: Vec<(redis::Value, redis::Value)> = match info {
        redis::Value::Map(pairs) => pairs,
        redis::Value::Array(items) => {
            let mut items = items.into_iter();
            std::iter::from_fn(|| Some((items.next()?, items.next()?))).collect()
        }
        _ => Vec::new(),
    };
    pairs.into_iter().filter_map(|(key, value)| Some((value_text(&key)?, value))).collect()
}

fn value_text(value: &redis::Value) -> Option<String> {
    match value {
        redis::Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        redis::Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}

fn value_int(value: &redis::Value) -> Option<u64> {
    match value {
        redis::Value::Int(number) => u64::try_from(*number).ok(),
        _ => None,
    }
}

/// The id of the newest entry of the stream at `key`, if it has any.
async fn newest_id(connection: &mut ConnectionManager, key: &str) -> Result<Option<String>, BusError> {
    let newest: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(key)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(connection)
        .await?;
    Ok(newest.ids.into_iter().next().map(|entry| entry.id))
}
