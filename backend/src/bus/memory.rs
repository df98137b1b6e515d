//! The in-process bus: consumer groups over bounded in-memory streams, with the same
//! semantics as Redis Streams (pending entries, acknowledgement, claiming).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Notify;

use super::{BusError, Delivery, EventBus, GroupStart, SubscribeOptions, Subscription, Tail};

/// An in-process bus; clones share the same streams.
#[derive(Debug, Clone)]
pub struct MemoryBus {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    published: Notify,
    max_len: usize,
}

#[derive(Debug, Default)]
struct State {
    streams: HashMap<String, Stream>,
}

#[derive(Debug, Default)]
struct Stream {
    last_id: u64,
    entries: VecDeque<(u64, Arc<str>)>,
    groups: HashMap<String, Group>,
}

#[derive(Debug)]
struct Group {
    last_delivered: u64,
    pending: BTreeMap<u64, Pending>,
}

/// An entry delivered to a consumer and not yet acknowledged.
#[derive(Debug)]
struct Pending {
    delivered_at: Instant,
}

impl Stream {
    fn payload(&self, id: u64) -> Option<&Arc<str>> {
        // Entries are in id order; ids are dense until trimmed from the front.
        let first = self.entries.front()?.0;
        let index = usize::try_from(id.checked_sub(first)?).ok()?;
        self.entries.get(index).filter(|(entry_id, _)| *entry_id == id).map(|(_, payload)| payload)
    }
}

impl MemoryBus {
    /// A bus whose streams keep at most `max_len` entries each.
    pub fn new(max_len: usize) -> MemoryBus {
        MemoryBus {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                published: Notify::new(),
                max_len,
            }),
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, BusError> {
        self.shared.state.lock().map_err(|_| BusError::Other("in-process bus poisoned".into()))
    }
}

fn entry_id(id: u64) -> String {
    format!("{id}-0")
}

fn parse_entry_id(text: &str) -> Option<u64> {
    text.strip_suffix("-0")?.parse().ok()
}

#[async_trait]
impl EventBus for MemoryBus {
    /// None: this bus is gone after a restart, while the outbox publishes again what
    /// a crash left unconfirmed, so handled ids must outlive it (in the database).
    fn handled_ids(&self) -> Option<Arc<dyn super::HandledIds>> {
        None
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> Result<(), BusError> {
        self.lock().map(drop)
    }

    async fn publish_raw(&self, stream: &str, payload: &str) -> Result<String, BusError> {
        let payload: Arc<str> = payload.into();
        let id = {
            let mut state = self.lock()?;
            let stream = state.streams.entry(stream.to_owned()).or_default();
            stream.last_id += 1;
            let id = stream.last_id;
            stream.entries.push_back((id, payload));
            while stream.entries.len() > self.shared.max_len {
                stream.entries.pop_front();
            }
            id
        };
        self.shared.published.notify_waiters();
        Ok(entry_id(id))
    }

    async fn subscribe(&self, options: SubscribeOptions) -> Result<Box<dyn Subscription>, BusError> {
        let mut state = self.lock()?;
        for name in &options.streams {
            let stream = state.streams.entry(name.clone()).or_default();
            let start = match options.start {
                GroupStart::Latest => stream.last_id,
                GroupStart::Beginning => 0,
            };
            stream
                .groups
                .entry(options.group.clone())
                .or_insert_with(|| Group { last_delivered: start, pending: BTreeMap::new() });
        }
        Ok(Box::new(MemorySubscription { bus: self.clone(), options }))
    }

    async fn stream_len(&self, stream: &str) -> Result<u64, BusError> {
        Ok(self.lock()?.streams.get(stream).map_or(0, |stream| stream.entries.len() as u64))
    }

    async fn pending(&self, stream: &str, group: &str) -> Result<u64, BusError> {
        let state = self.lock()?;
        Ok(state
            .streams
            .get(stream)
            .and_then(|stream| stream.groups.get(group))
            .map_or(0, |group| group.pending.len() as u64))
    }

    async fn backlog(&self, stream: &str, group: &str) -> Result<u64, BusError> {
        let state = self.lock()?;
        let Some(stream) = state.streams.get(stream) else { return Ok(0) };
        let Some(group) = stream.groups.get(group) else { return Ok(0) };
        // Entries trimmed before delivery are gone: count only those still kept.
        let first_kept = stream.entries.front().map_or(stream.last_id + 1, |(id, _)| *id);
        let undelivered =
            stream.last_id.saturating_sub(group.last_delivered.max(first_kept.saturating_sub(1)));
        Ok(undelivered + group.pending.len() as u64)
    }

    async fn tail(&self, streams: Vec<String>) -> Result<Box<dyn Tail>, BusError> {
        let mut state = self.lock()?;
        let positions = streams
            .into_iter()
            .map(|name| {
                let last = state.streams.entry(name.clone()).or_default().last_id;
                (name, last)
            })
            .collect();
        Ok(Box::new(MemoryTail { bus: self.clone(), positions }))
    }
}

/// A group-less reader of the in-process bus.
#[derive(Debug)]
struct MemoryTail {
    bus: MemoryBus,
    positions: Vec<(String, u64)>,
}

#[async_trait]
impl Tail for MemoryTail {
    async fn next(&mut self, max: usize, block: Duration) -> Result<Vec<Delivery>, BusError> {
        let deadline = tokio::time::Instant::now() + block;
        loop {
            let published = self.bus.shared.published.notified();
            tokio::pin!(published);
            published.as_mut().enable();
            let mut deliveries = Vec::new();
            {
                let state = self.bus.lock()?;
                for (name, position) in &mut self.positions {
                    let Some(stream) = state.streams.get(name) else { continue };
                    let after = *position;
                    for (id, payload) in stream.entries.iter().filter(|(id, _)| *id > after) {
                        if deliveries.len() >= max {
                            break;
                        }
                        *position = *id;
                        deliveries.push(Delivery {
                            stream: name.clone(),
                            entry_id: entry_id(*id),
                            payload: payload.to_string(),
                        });
                    }
                }
            }
            if !deliveries.is_empty() {
                return Ok(deliveries);
            }
            if tokio::time::timeout_at(deadline, published).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }
}

/// A consumer of the in-process bus.
#[derive(Debug)]
struct MemorySubscription {
    bus: MemoryBus,
    options: SubscribeOptions,
}

impl MemorySubscription {
    fn take_new(&self, max: usize) -> Result<Vec<Delivery>, BusError> {
        let mut state = self.bus.lock()?;
        let mut deliveries = Vec::new();
        for name in &self.options.streams {
            let Some(stream) = state.streams.get_mut(name) else { continue };
            let Some(group) = stream.groups.get_mut(&self.options.group) else { continue };
            let after = group.last_delivered;
            for (id, payload) in stream.entries.iter().filter(|(id, _)| *id > after) {
                if deliveries.len() >= max {
                    break;
                }
                group.last_delivered = *id;
                group.pending.insert(*id, Pending { delivered_at: Instant::now() });
                deliveries.push(Delivery {
                    stream: name.clone(),
                    entry_id: entry_id(*id),
                    payload: payload.to_string(),
                });
            }
        }
        Ok(deliveries)
    }
}

#[async_trait]
impl Subscription for MemorySubscription {
    async fn read(&mut self, max: usize, block: Duration) -> Result<Vec<Delivery>, BusError> {
        let deadline = tokio::time::Instant::now() + block;
        loop {
            // Register for the wake-up before looking, so a publish in between is not missed.
            let published = self.bus.shared.published.notified();
            tokio::pin!(published);
            published.as_mut().enable();
            let deliveries = self.take_new(max)?;
            if !deliveries.is_empty() {
                return Ok(deliveries);
            }
            if tokio::time::timeout_at(deadline, published).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn claim_stalled(&mut self, min_idle: Duration, max: usize) -> Result<Vec<Delivery>, BusError> {
        let mut state = self.bus.lock()?;
        let mut deliveries = Vec::new();
        for name in &self.options.streams {
            let Some(stream) = state.streams.get_mut(name) else { continue };
            let Some(mut group) = stream.groups.remove(&self.options.group) else { continue };
            let stalled: Vec<u64> = group
                .pending
                .iter()
                .filter(|(_, pending)| pending.delivered_at.elapsed() >= min_idle)
                .map(|(id, _)| *id)
                .collect();
            for id in stalled {
                if deliveries.len() >= max {
                    break;
                }
                match stream.payload(id) {
                    Some(payload) => {
                        group.pending.insert(id, Pending { delivered_at: Instant::now() });
                        deliveries.push(Delivery {
                            stream: name.clone(),
                            entry_id: entry_id(id),
                            payload: payload.to_string(),
                        });
                    }
                    // Trimmed away while pending: nothing left to deliver, as XAUTOCLAIM does.
                    None => {
                        group.pending.remove(&id);
                    }
                }
            }
            stream.groups.insert(self.options.group.clone(), group);
        }
        Ok(deliveries)
    }

    async fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        let id = parse_entry_id(&delivery.entry_id)
            .ok_or_else(|| BusError::Other(format!("not an entry id: {}", delivery.entry_id)))?;
        let mut state = self.bus.lock()?;
        if let Some(group) = state
            .streams
            .get_mut(&delivery.stream)
            .and_then(|stream| stream.groups.get_mut(&self.options.group))
        {
            group.pending.remove(&id);
        }
        Ok(())
    }
}
