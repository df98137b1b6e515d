//! The voice's queue: stream lines wait here, best first, and the voice task speaks
//! them one after the other, each published with its speech once synthesised, the
//! next only after the last one's audio has played; stale lines are dropped.

use super::*;
use crate::config::TtsChoice;

/// A stream line waiting for the voice (lines are spoken one at a time).
#[derive(Debug)]
pub(super) struct Job {
    message: AgentMessage,
    /// Results first (0), then bids and the clock (1), openings (2), banter (3).
    priority: u8,
    order: u64,
    queued_at: std::time::Instant,
    /// A bid line is stale once its lot has more bids than this.
    lot_bids: Option<(Uuid, u64)>,
}

/// A line waiting longer than this is dropped, unless it is a result.
const STALE_AFTER: Duration = Duration::from_secs(20);

fn priority(moment: Moment) -> u8 {
    match moment {
        Moment::Sold | Moment::ReserveNotMet | Moment::NoBids | Moment::Cancelled => 0,
        Moment::FirstBid | Moment::Bid | Moment::Extended | Moment::LastCall => 1,
        Moment::LotOpen | Moment::Question => 2,
        Moment::Idle => 3,
    }
}

impl AgentHandle {
    pub(super) fn queue(&self) -> std::sync::MutexGuard<'_, (Vec<Job>, u64)> {
        self.inner.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A spoken line's WAV, while it is kept.
    pub fn speech(&self, id: &str) -> Option<bytes::Bytes> {
        self.inner.voice.as_ref()?.store.get(id)
    }

    /// The voice task: speaks the queued stream lines one after the other, best
    /// first, each published with its speech once synthesised, the next only after
    /// the last one's audio has played; stale lines are dropped. Without a voice
    /// there is no queue (lines are published as they are composed).
    pub async fn run_voice(self, stop: CancellationToken) -> anyhow::Result<()> {
        let Some(voice) = self.inner.voice.clone() else {
            // No voice: nothing to do until the end (a task ending early is a failure).
            stop.cancelled().await;
            return Ok(());
        };
        tokio::select! {
            () = voice.warm() => {}
            () = stop.cancelled() => return Ok(()),
        }
        loop {
            let job = loop {
                if let Some(job) = self.next_job() {
                    break job;
                }
                tokio::select! {
                    () = self.inner.queued.notified() => {}
                    () = stop.cancelled() => return Ok(()),
                }
            };
            if self.stale(&job) {
                metrics::counter!("agent_speech_stale_total").increment(1);
                tracing::debug!(line = %job.message.text, "stale line dropped");
                continue;
            }
            let mut settings = self.character().show.voice.clone().unwrap_or_default();
            // A provider chosen while running (`TTS_PROVIDER` through the console)
            // comes before the character's.
            let spoken = match self.inner.runtime.tts_override() {
                Some(TtsChoice::None) => None,
                Some(choice) => {
                    settings.provider = choice.provider_name().map(str::to_owned).or(settings.provider);
                    voice.speak(&job.message.text, &settings).await
                }
                None => voice.speak(&job.message.text, &settings).await,
            };
            let mut message = job.message;
            message.speech = spoken.as_ref().map(|spoken| spoken.speech.clone());
            self.host().last_message = Some(message.clone());
            self.event(EventType::AgentMessage, &message).await;
            self.lined();
            if let Some(spoken) = spoken {
                self.inner.speaking.store(true, std::sync::atomic::Ordering::Relaxed);
                let length = Duration::from_millis(spoken.speech.duration_ms);
                tokio::select! {
                    () = tokio::time::sleep(length) => {}
                    () = stop.cancelled() => return Ok(()),
                }
                self.inner.speaking.store(false, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    fn next_job(&self) -> Option<Job> {
        let mut queue = self.queue();
        let best =
            queue.0.iter().enumerate().min_by_key(|(_, job)| (job.priority, job.order)).map(|(at, _)| at)?;
        let job = queue.0.remove(best);
        metrics::gauge!("agent_speech_queue").set(queue.0.len() as f64);
        Some(job)
    }

    /// A bid line whose lot has had another bid since, or any line but a result
    /// waiting too long, is not worth saying any more.
    fn stale(&self, job: &Job) -> bool {
        if job.priority > 0 && job.queued_at.elapsed() > STALE_AFTER {
            return true;
        }
        let Some((lot, bids)) = job.lot_bids else { return false };
        self.host().lots.get(&lot).is_some_and(|track| track.auction.bid_count > bids)
    }

    pub(super) fn enqueue(&self, message: AgentMessage, situation: &Situation) {
        let lot_bids = match situation.moment {
            Moment::FirstBid | Moment::Bid => situation.lot.as_ref().map(|lot| (lot.id, lot.bids)),
            _ => None,
        };
        let mut queue = self.queue();
        queue.1 += 1;
        let order = queue.1;
        queue.0.push(Job {
            message,
            priority: priority(situation.moment),
            order,
            queued_at: std::time::Instant::now(),
            lot_bids,
        });
        metrics::gauge!("agent_speech_queue").set(queue.0.len() as f64);
        drop(queue);
        self.inner.queued.notify_one();
    }
}
