//! The engine around the rules: one writer task per auction in this process, which
//! takes the commands queued for its auction in batches, decides them in order with
//! the pure rules, and commits the new state, the bid records and their events in one
//! transaction (group commit) before answering anyone. The commit is conditional on
//! the auction's stored version, so two processes can never both write an auction:
//! the loser reloads and decides again.
//!
//! Time comes from the injected [`Clock`](sothebais_kit::clock::Clock). On
//! [`Engine::stop`] the writers decide what is queued and end, then the committer
//! commits the last batches and ends: nothing acknowledged is lost, nothing queued is
//! dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sothebais_kit::clock::SharedClock;
use sothebais_shared::amount::Amount;
use sothebais_shared::auction::{Auction, Bid, BidStatus, Campaign, NewAuction, NewCampaign};
use sothebais_shared::events::{
    AuctionCancelled, AuctionExtended, AuctionSnapshot, AuctionWinner, BidEvent, EventType, RawEnvelope,
    Source,
};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::rules::{AuctionCore, BidInput, BidderStanding, CommandError, SettingsError, Transition, millis};
use crate::storage::{AuctionCommit, AuctionRecord, CommitOutcome, Storage, StorageError};

/// Most commands one commit decides.
const MAX_BATCH: usize = 512;
/// A writer with nothing to do for this long stops; the next command starts a new one.
const IDLE: Duration = Duration::from_secs(30);
/// How often a batch is decided again after losing a race to another writer.
const MAX_ATTEMPTS: usize = 8;

/// Why an engine command failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("auction not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the auction is busy; try again")]
    Contended,
    #[error("the auction engine is stopping")]
    Stopping,
}

impl From<SettingsError> for EngineError {
    fn from(error: SettingsError) -> Self {
        EngineError::Invalid { field: error.field, message: error.message }
    }
}

impl From<CommandError> for EngineError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Conflict(message) => EngineError::Conflict(message),
            CommandError::Forbidden(message) => EngineError::Forbidden(message),
            CommandError::Invalid(message) => EngineError::Invalid { field: "reason", message },
        }
    }
}

/// The answer to a bid.
#[derive(Debug, Clone)]
pub struct BidOutcome {
    pub bid: Bid,
    pub auction: Auction,
    /// The same post or idempotency key was decided before: this is that decision.
    pub duplicate: bool,
}

enum Command {
    Bid {
        input: BidInput,
        standing: BidderStanding,
        reply: oneshot::Sender<Result<BidOutcome, EngineError>>,
    },
    Start {
        reply: oneshot::Sender<Result<Auction, EngineError>>,
    },
    Cancel {
        by: String,
        admin: bool,
        reason: Option<String>,
        reply: oneshot::Sender<Result<Auction, EngineError>>,
    },
    /// Lets time act; `reply` (when someone waits) gets the auction once committed.
    Tick {
        reply: Option<oneshot::Sender<Result<Auction, EngineError>>>,
    },
}

/// A deadline change an auction writer reports to the scheduler.
pub type DeadlineUpdate = (Uuid, Option<DateTime<Utc>>);

/// The auction engine of this process. Clones share it.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Arc<dyn Storage>,
    clock: SharedClock,
    /// The sanity cap (`MAX_BID_ETH`) of auctions this engine creates.
    max_bid: Amount,
    writers: Mutex<HashMap<Uuid, mpsc::Sender<Command>>>,
    /// Woken after every commit that stored events, so the relay publishes them at once.
    outbox: Arc<Notify>,
    deadlines: mpsc::UnboundedSender<DeadlineUpdate>,
    /// The process's committer: writers hand it their batches, it commits many
    /// auctions' batches in one transaction.
    commits: mpsc::Sender<CommitJob>,
    /// Fires when the engine stops: writers decide what is queued and end.
    stopping: CancellationToken,
    /// How many writers run; each holds a [`RunningWriter`] that counts it.
    writers_running: watch::Sender<usize>,
    /// Fires once every writer has ended: the committer commits what is left and ends.
    committer_stop: CancellationToken,
    committer: Mutex<Option<JoinHandle<()>>>,
    /// The bid checks of `verification`, run before a bid reaches its writer.
    checks: std::sync::OnceLock<Arc<crate::chain::checks::BidChecks>>,
}

/// Counts a running writer for as long as it lives.
struct RunningWriter(watch::Sender<usize>);

impl RunningWriter {
    fn new(running: &watch::Sender<usize>) -> RunningWriter {
        running.send_modify(|count| *count += 1);
        RunningWriter(running.clone())
    }
}

impl Drop for RunningWriter {
    fn drop(&mut self) {
        self.0.send_modify(|count| *count = count.saturating_sub(1));
    }
}

/// A writer's decided batch, owned, on its way to the committer and back.
struct OwnedCommit {
    core: AuctionCore,
    expected_version: i64,
    bids: Vec<Bid>,
    events: Vec<RawEnvelope>,
}

struct CommitJob {
    commit: OwnedCommit,
    reply: oneshot::Sender<(OwnedCommit, Result<CommitOutcome, StorageError>)>,
}

/// Most auctions' batches one transaction commits.
const MAX_GROUP: usize = 256;

/// Commits whatever writers have handed over, many at a time: while one transaction
/// is flushing, the next group gathers (group commit across auctions). After `stop`
/// it commits what is still queued, then ends.
async fn committer(storage: Arc<dyn Storage>, mut jobs: mpsc::Receiver<CommitJob>, stop: CancellationToken) {
    loop {
        let first = tokio::select! {
            biased;
            job = jobs.recv() => match job {
                Some(job) => job,
                None => return,
            },
            () = stop.cancelled() => match jobs.try_recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let commits: Vec<AuctionCommit<'_>> = group
            .iter()
            .map(|job| AuctionCommit {
                core: &job.commit.core,
                expected_version: job.commit.expected_version,
                bids: &job.commit.bids,
                events: &job.commit.events,
            })
            .collect();
        let started = std::time::Instant::now();
        let mut outcomes = storage.commit_auctions(&commits).await.into_iter();
        metrics::histogram!("auction_commit_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("auction_commit_group_size").record(group.len() as f64);
        for job in group {
            let outcome =
                outcomes.next().unwrap_or_else(|| Err(StorageError::Database("missing outcome".into())));
            let _ = job.reply.send((job.commit, outcome));
        }
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over `storage`. Deadline changes go to the returned receiver (the
    /// scheduler's input).
    pub fn new(
        storage: Arc<dyn Storage>,
        outbox: Arc<Notify>,
        clock: SharedClock,
        max_bid: Amount,
    ) -> (Engine, mpsc::UnboundedReceiver<DeadlineUpdate>) {
        let (deadlines, receiver) = mpsc::unbounded_channel();
        let (commits, jobs) = mpsc::channel(4096);
        let committer_stop = CancellationToken::new();
        let committer = tokio::spawn(committer(storage.clone(), jobs, committer_stop.clone()));
        let inner = Inner {
            storage,
            clock,
            max_bid,
            writers: Mutex::new(HashMap::new()),
            outbox,
            deadlines,
            commits,
            stopping: CancellationToken::new(),
            writers_running: watch::channel(0).0,
            committer_stop,
            committer: Mutex::new(Some(committer)),
            checks: std::sync::OnceLock::new(),
        };
        (Engine { inner: Arc::new(inner) }, receiver)
    }

    /// How many auction writers run in this process (each holds one auction).
    pub fn writers(&self) -> usize {
        self.inner.writers.lock().map_or(0, |writers| writers.len())
    }

    /// The time the engine decides at.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Stops the engine: new commands are refused (`Stopping`), every writer decides
    /// and commits what is queued and ends, then the committer commits the last
    /// groups and ends. Each step is logged; a committer that panicked is an error.
    pub async fn stop(&self) -> anyhow::Result<()> {
        self.inner.stopping.cancel();
        let mut running = self.inner.writers_running.subscribe();
        let writers = *running.borrow();
        tracing::info!(writers, "auction writers: deciding what is queued");
        let _ = running.wait_for(|count| *count == 0).await;
        self.inner.committer_stop.cancel();
        let committer = self.inner.committer.lock().ok().and_then(|mut handle| handle.take());
        if let Some(committer) = committer {
            committer.await.map_err(|error| anyhow::anyhow!("the auction committer failed: {error}"))?;
        }
        tracing::info!("auction engine stopped: every decision is committed");
        Ok(())
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.inner.storage
    }

    /// Creates an auction (scheduled, or waiting for an operator's start).
    pub async fn create_auction(&self, new: &NewAuction) -> Result<Auction, EngineError> {
        if new.campaign_id.is_some() {
            return Err(EngineError::Invalid {
                field: "campaign_id",
                message: "lots join a campaign when the campaign is created".into(),
            });
        }
        let core = AuctionCore::create(Uuid::now_v7(), new, self.inner.max_bid)?;
        self.inner.storage.insert_auction(&core, &[]).await?;
        let _ = self.inner.deadlines.send((core.id, core.next_deadline()));
        tracing::info!(auction_id = %core.id, title = %core.title, starts_at = ?core.starts_at, "auction created");
        Ok(core.snapshot(millis(self.now())))
    }

    /// Creates a campaign: its lots get their times from the campaign's wall clock.
    pub async fn create_campaign(
        &self,
        new: &NewCampaign,
        default_zone: chrono_tz::Tz,
    ) -> Result<Campaign, EngineError> {
        let (campaign, cores) =
            super::campaign::plan(new, default_zone, Uuid::now_v7(), self.now(), self.inner.max_bid)?;
        self.inner.storage.insert_campaign(&campaign, &cores, &[]).await?;
        for core in &cores {
            let _ = self.inner.deadlines.send((core.id, core.next_deadline()));
        }
        tracing::info!(campaign_id = %campaign.id, lots = campaign.lots.len(), "campaign created");
        Ok(campaign)
    }

    /// Sets the bid checks of `verification` (once; later calls change nothing).
    pub fn set_checks(&self, checks: Arc<crate::chain::checks::BidChecks>) {
        let _ = self.inner.checks.set(checks);
    }

    /// Decides a bid; answers only once the decision is durable. The auction's
    /// `verification` checks run first, in the caller's task, within their deadline.
    pub async fn place_bid(
        &self,
        auction_id: Uuid,
        input: BidInput,
        standing: BidderStanding,
    ) -> Result<BidOutcome, EngineError> {
        let standing = match self.inner.checks.get() {
            Some(checks) => checks.standing(auction_id, &input, standing).await,
            None => standing,
        };
        let (reply, answer) = oneshot::channel();
        self.send(auction_id, Command::Bid { input, standing, reply }).await?;
        answer.await.unwrap_or(Err(EngineError::Contended))
    }

    /// Opens a scheduled auction now.
    pub async fn start(&self, auction_id: Uuid) -> Result<Auction, EngineError> {
        let (reply, answer) = oneshot::channel();
        self.send(auction_id, Command::Start { reply }).await?;
        answer.await.unwrap_or(Err(EngineError::Contended))
    }

    /// Cancels an auction (see the rules for who may, when).
    pub async fn cancel(
        &self,
        auction_id: Uuid,
        by: &str,
        admin: bool,
        reason: Option<String>,
    ) -> Result<Auction, EngineError> {
        let (reply, answer) = oneshot::channel();
        self.send(auction_id, Command::Cancel { by: by.to_owned(), admin, reason, reply }).await?;
        answer.await.unwrap_or(Err(EngineError::Contended))
    }

    /// Lets time act on an auction (open or close it when due).
    pub async fn tick(&self, auction_id: Uuid) {
        // A tick refused while stopping is taken again by the next start's scheduler.
        let _ = self.send(auction_id, Command::Tick { reply: None }).await;
    }

    /// Lets time act on an auction now and answers with it once what changed (an
    /// opening, a close) is committed. Tests use it to settle an auction after moving
    /// their clock; the scheduler uses the fire-and-forget [`tick`](Engine::tick).
    pub async fn advance(&self, auction_id: Uuid) -> Result<Auction, EngineError> {
        let (reply, answer) = oneshot::channel();
        self.send(auction_id, Command::Tick { reply: Some(reply) }).await?;
        answer.await.unwrap_or(Err(EngineError::Contended))
    }

    async fn send(&self, auction_id: Uuid, mut command: Command) -> Result<(), EngineError> {
        for _ in 0..3 {
            let Some(sender) = self.writer(auction_id) else { return Err(EngineError::Stopping) };
            match sender.send(command).await {
                Ok(()) => return Ok(()),
                // The writer retired between lookup and send: start a fresh one.
                Err(mpsc::error::SendError(returned)) => {
                    command = returned;
                    if let Ok(mut writers) = self.inner.writers.lock()
                        && writers.get(&auction_id).is_some_and(|current| current.same_channel(&sender))
                    {
                        writers.remove(&auction_id);
                    }
                }
            }
        }
        tracing::error!(%auction_id, "no writer could take the command");
        Err(EngineError::Contended)
    }

    /// The writer of `auction_id`, started when there is none; `None` once stopping.
    fn writer(&self, auction_id: Uuid) -> Option<mpsc::Sender<Command>> {
        let mut writers = match self.inner.writers.lock() {
            Ok(writers) => writers,
            Err(poisoned) => poisoned.into_inner(),
        };
        if self.inner.stopping.is_cancelled() {
            return None;
        }
        if let Some(sender) = writers.get(&auction_id).filter(|sender| !sender.is_closed()) {
            return Some(sender.clone());
        }
        let (sender, receiver) = mpsc::channel(4096);
        writers.insert(auction_id, sender.clone());
        let running = RunningWriter::new(&self.inner.writers_running);
        let writer = Writer {
            id: auction_id,
            engine: self.clone(),
            record: None,
            receiver,
            clock: None,
            _running: running,
        };
        tokio::spawn(writer.run());
        Some(sender)
    }
}

/// The single writer of one auction in this process.
struct Writer {
    id: Uuid,
    engine: Engine,
    record: Option<AuctionRecord>,
    receiver: mpsc::Receiver<Command>,
    /// The latest time decided at; decision times never go backwards.
    clock: Option<DateTime<Utc>>,
    _running: RunningWriter,
}

impl Writer {
    async fn run(mut self) {
        let stopping = self.engine.inner.stopping.clone();
        loop {
            let first = tokio::select! {
                biased;
                command = self.receiver.recv() => match command {
                    Some(command) => command,
                    None => return,
                },
                // Take nothing new; what is queued is still received, then `None`.
                () = stopping.cancelled(), if !self.receiver.is_closed() => {
                    self.receiver.close();
                    continue;
                }
                () = tokio::time::sleep(IDLE) => {
                    if self.retire() {
                        return;
                    }
                    continue;
                }
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match self.receiver.try_recv() {
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
            self.process(batch).await;
        }
    }

    /// Leaves the registry at once and takes no new commands (those queued are still
    /// decided).
    fn leave(&mut self) {
        let mut writers = match self.engine.inner.writers.lock() {
            Ok(writers) => writers,
            Err(poisoned) => poisoned.into_inner(),
        };
        // The entry is this writer's: another starts only once this one's channel closed.
        writers.remove(&self.id);
        self.receiver.close();
    }

    /// Leaves the registry when idle; refuses while commands are still queued.
    fn retire(&mut self) -> bool {
        let Ok(mut writers) = self.engine.inner.writers.lock() else { return false };
        if !self.receiver.is_empty() {
            return false;
        }
        writers.remove(&self.id);
        self.receiver.close();
        true
    }

    fn next_time(&mut self, at: DateTime<Utc>) -> DateTime<Utc> {
        let at = millis(at);
        let at = self.clock.map_or(at, |clock| clock.max(at));
        self.clock = Some(at);
        at
    }

    /// The stored auction, loaded (with its rate memory rebuilt from the log) unless
    /// this writer already holds it. The writer owns it until the batch is decided.
    async fn take_record(&mut self) -> Result<Option<AuctionRecord>, StorageError> {
        if let Some(record) = self.record.take() {
            return Ok(Some(record));
        }
        let storage = &self.engine.inner.storage;
        let Some(mut record) = storage.auction(self.id).await? else { return Ok(None) };
        let now = millis(self.engine.now());
        let recent = storage.recent_accepted(self.id, now - record.core.rate_window()).await?;
        record.core.restore_rate_memory(recent, now);
        Ok(Some(record))
    }

    async fn process(&mut self, batch: Vec<Command>) {
        let storage = self.engine.inner.storage.clone();
        let clock_before = self.clock;
        for _ in 0..MAX_ATTEMPTS {
            self.clock = clock_before;
            let record = match self.take_record().await {
                Ok(Some(record)) => record,
                Ok(None) => {
                    // No such auction: leave the registry before answering, so a bid
                    // for a made-up id leaves no writer behind.
                    self.leave();
                    return answer_all(batch, || EngineError::NotFound);
                }
                Err(error) => return answer_all(batch, || EngineError::Storage(error.clone())),
            };
            let refs: Vec<String> = batch
                .iter()
                .filter_map(|command| match command {
                    Command::Bid { input, .. } => input.source_ref.clone(),
                    _ => None,
                })
                .collect();
            let earlier = match storage.bids_by_source_ref(self.id, &refs).await {
                Ok(bids) => bids,
                Err(error) => return answer_all(batch, || EngineError::Storage(error.clone())),
            };
            let version = record.version;
            let decided = self.decide(record.core, &batch, earlier);
            // Everything that changes an auction leaves a bid or an event.
            if decided.bids.is_empty() && decided.events.is_empty() {
                self.reply(batch, decided.answers, &decided.core);
                self.record = Some(AuctionRecord { core: decided.core, version });
                return;
            }
            let Decided { core, bids, events, answers } = decided;
            let job = OwnedCommit { core, expected_version: version, bids, events };
            let (reply, answer) = oneshot::channel();
            if self.engine.inner.commits.send(CommitJob { commit: job, reply }).await.is_err() {
                return answer_all(batch, || EngineError::Contended);
            }
            let Ok((job, outcome)) = answer.await else {
                return answer_all(batch, || EngineError::Contended);
            };
            match outcome {
                Ok(CommitOutcome::Committed) => {
                    if !job.events.is_empty() {
                        self.engine.inner.outbox.notify_one();
                    }
                    let _ = self.engine.inner.deadlines.send((self.id, job.core.next_deadline()));
                    metrics::counter!("auction_commits_total").increment(1);
                    metrics::histogram!("auction_commit_batch_size").record(batch.len() as f64);
                    self.reply(batch, answers, &job.core);
                    self.record = Some(AuctionRecord { core: job.core, version: version + 1 });
                    return;
                }
                Ok(CommitOutcome::Conflict) => {
                    metrics::counter!("auction_commit_conflicts_total").increment(1);
                    tracing::debug!(auction_id = %self.id, "lost a commit race; reloading");
                    self.record = None;
                }
                Err(error) => {
                    tracing::warn!(auction_id = %self.id, %error, "commit failed; nothing was acknowledged");
                    self.record = None;
                    return answer_all(batch, || EngineError::Storage(error.clone()));
                }
            }
        }
        tracing::warn!(auction_id = %self.id, "gave up after repeated commit races");
        answer_all(batch, || EngineError::Contended);
    }

    /// Decides a batch on the state. Pure apart from reading the engine's clock.
    fn decide(&mut self, mut core: AuctionCore, batch: &[Command], earlier: Vec<Bid>) -> Decided {
        let mut events = Vec::new();
        let mut bids: Vec<Bid> = Vec::new();
        let mut answers = Vec::with_capacity(batch.len());
        let mut known: HashMap<String, Bid> =
            earlier.into_iter().filter_map(|bid| bid.source_ref.clone().map(|key| (key, bid))).collect();
        for command in batch {
            match command {
                Command::Bid { input, standing, .. } => {
                    if let Some(first) = input.source_ref.as_ref().and_then(|key| known.get(key)) {
                        answers.push(Ok(Some((first.clone(), true))));
                        continue;
                    }
                    let at = self.next_time(input.received_at);
                    transitions(&mut core, at, &mut events);
                    let input = BidInput { received_at: at, ..input.clone() };
                    let previous_end = core.ends_at;
                    let bid = core.decide(&input, *standing);
                    bid_events(&core, &bid, previous_end, at, &mut events);
                    if let Some(key) = &bid.source_ref {
                        known.insert(key.clone(), bid.clone());
                    }
                    metrics::counter!("auction_bids_total", "status" => bid.status.as_str(), "reason" => bid.reason.map_or("", |reason| reason.code()))
                    .increment(1);
                    answers.push(Ok(Some((bid.clone(), false))));
                    bids.push(bid);
                }
                Command::Start { .. } => {
                    let at = self.next_time(self.engine.now());
                    transitions(&mut core, at, &mut events);
                    let result = core.start(at).map_err(EngineError::from);
                    if result.is_ok() {
                        events.extend(event(
                            EventType::AuctionStart,
                            &AuctionSnapshot { auction: core.snapshot(at) },
                            None,
                        ));
                    }
                    answers.push(result.map(|()| None));
                }
                Command::Cancel { by, admin, reason, .. } => {
                    let at = self.next_time(self.engine.now());
                    transitions(&mut core, at, &mut events);
                    let result = core.cancel(at, by, *admin, reason.clone()).map_err(EngineError::from);
                    if result.is_ok() {
                        let data = AuctionCancelled { auction: core.snapshot(at), reason: reason.clone() };
                        events.extend(event(EventType::AuctionCancelled, &data, None));
                    }
                    answers.push(result.map(|()| None));
                }
                Command::Tick { .. } => {
                    let at = self.next_time(self.engine.now());
                    transitions(&mut core, at, &mut events);
                    answers.push(Ok(None));
                }
            }
        }
        let at = self.next_time(self.engine.now());
        transitions(&mut core, at, &mut events);
        Decided { core, bids, events, answers }
    }

    fn reply(
        &self,
        batch: Vec<Command>,
        answers: Vec<Result<Option<(Bid, bool)>, EngineError>>,
        core: &AuctionCore,
    ) {
        let now = millis(self.engine.now());
        let snapshot = core.snapshot(now);
        for (command, answer) in batch.into_iter().zip(answers) {
            match command {
                Command::Bid { reply, .. } => {
                    let outcome = answer.and_then(|decided| decided.ok_or(EngineError::Contended));
                    let _ = reply.send(outcome.map(|(bid, duplicate)| BidOutcome {
                        bid,
                        auction: snapshot.clone(),
                        duplicate,
                    }));
                }
                Command::Start { reply }
                | Command::Cancel { reply, .. }
                | Command::Tick { reply: Some(reply) } => {
                    let _ = reply.send(answer.map(|_| snapshot.clone()));
                }
                Command::Tick { reply: None } => {}
            }
        }
    }
}

struct Decided {
    core: AuctionCore,
    bids: Vec<Bid>,
    events: Vec<RawEnvelope>,
    /// Per command: the bid decided (and whether it is an earlier decision), or nothing.
    answers: Vec<Result<Option<(Bid, bool)>, EngineError>>,
}

fn answer_all(batch: Vec<Command>, error: impl Fn() -> EngineError) {
    for command in batch {
        match command {
            Command::Bid { reply, .. } => {
                let _ = reply.send(Err(error()));
            }
            Command::Start { reply }
            | Command::Cancel { reply, .. }
            | Command::Tick { reply: Some(reply) } => {
                let _ = reply.send(Err(error()));
            }
            Command::Tick { reply: None } => {}
        }
    }
}

/// An engine event, its data written straight to JSON text.
fn event<T: serde::Serialize>(kind: EventType, data: &T, correlation: Option<String>) -> Option<RawEnvelope> {
    match RawEnvelope::new_typed(kind, Source::AuctionEngine, data) {
        Ok(envelope) => Some(RawEnvelope { correlation_id: correlation, ..envelope }),
        Err(error) => {
            tracing::error!(%error, "an engine event could not be written");
            None
        }
    }
}

/// Applies what time changes at `at` and records the events.
fn transitions(core: &mut AuctionCore, at: DateTime<Utc>, events: &mut Vec<RawEnvelope>) {
    for transition in core.advance(at) {
        match transition {
            Transition::Opened => {
                events.extend(event(
                    EventType::AuctionStart,
                    &AuctionSnapshot { auction: core.snapshot(at) },
                    None,
                ));
                tracing::info!(auction_id = %core.id, "auction opened");
            }
            Transition::Closed(outcome) => {
                events.extend(event(
                    EventType::AuctionEnd,
                    &AuctionSnapshot { auction: core.snapshot(at) },
                    None,
                ));
                let winner = AuctionWinner { auction_id: core.id, outcome: outcome.clone(), seq: core.seq };
                events.extend(event(EventType::AuctionWinner, &winner, None));
                tracing::info!(auction_id = %core.id, result = ?outcome.result, amount = ?outcome.amount.map(|a| a.to_string()), "auction closed");
            }
        }
    }
}

fn bid_events(
    core: &AuctionCore,
    bid: &Bid,
    previous_end: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
    events: &mut Vec<RawEnvelope>,
) {
    let correlation = Some(bid.source_ref.clone().unwrap_or_else(|| bid.id.to_string()));
    let auction = core.snapshot(at);
    let placed = event(
        EventType::AuctionBidPlaced,
        &BidEvent { bid: bid.clone(), seq: core.seq, auction: None },
        correlation.clone(),
    );
    let kind = match bid.status {
        BidStatus::Accepted => EventType::AuctionBidAccepted,
        BidStatus::Rejected => EventType::AuctionBidRejected,
    };
    let decided = event(
        kind,
        &BidEvent { bid: bid.clone(), seq: core.seq, auction: Some(auction) },
        correlation.clone(),
    );
    let decided = match (&placed, decided) {
        (Some(placed), Some(decided)) => Some(decided.caused_by(placed)),
        (_, decided) => decided,
    };
    if let (Some(ends_at), Some(previous), Some(_)) = (bid.extended_to, previous_end, &decided) {
        let data = AuctionExtended {
            auction_id: core.id,
            bid_id: bid.id,
            previous_ends_at: previous,
            ends_at,
            seq: core.seq,
        };
        let extended = event(EventType::AuctionExtended, &data, correlation);
        events.extend(placed);
        events.extend(decided);
        events.extend(extended);
    } else {
        events.extend(placed);
        events.extend(decided);
    }
}
