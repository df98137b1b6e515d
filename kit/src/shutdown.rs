//! Ordered shutdown. Every long-running task of a process is spawned through a
//! [`Supervisor`] into a stage; on the first SIGINT or SIGTERM (or when a task ends
//! on its own, which is a failure) the stages stop one after another in the order
//! they were declared, each logged (`stopping stage=…`, `stopped stage=… millis=…`),
//! and the supervisor waits for every task of a stage before stopping the next. A
//! task that fails or panics is reported, never dropped. A second signal stops at once.
//!
//! The pattern is mini-redis's (each task holds what tells the server it finished)
//! and moonfire-nvr's ordered, logged shutdown.

use std::future::Future;
use std::time::Instant;

use futures::{Stream, StreamExt as _};
use tokio::sync::mpsc;
use tokio::task::JoinError;
use tokio_util::sync::CancellationToken;

/// What [`Supervisor::run`] returns when a second signal came while stopping: the
/// caller should exit at once (what was not stopped yet is cut short).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoppedAtOnce {
    pub signal: &'static str,
    pub stage: &'static str,
}

impl std::fmt::Display for StoppedAtOnce {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "stopped at once by a second {} while stopping {}", self.signal, self.stage)
    }
}

impl std::error::Error for StoppedAtOnce {}

/// A stage of a [`Supervisor`]; stages stop in the order they were made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage(usize);

#[derive(Debug)]
struct StageState {
    name: &'static str,
    stop: CancellationToken,
    running: usize,
}

#[derive(Debug)]
struct Ended {
    stage: usize,
    task: String,
    outcome: Result<anyhow::Result<()>, JoinError>,
}

/// The tasks of a process, by stage.
#[derive(Debug)]
pub struct Supervisor {
    stages: Vec<StageState>,
    ended_sender: mpsc::UnboundedSender<Ended>,
    ended: mpsc::UnboundedReceiver<Ended>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor::new()
    }
}

impl Supervisor {
    pub fn new() -> Supervisor {
        let (ended_sender, ended) = mpsc::unbounded_channel();
        Supervisor { stages: Vec::new(), ended_sender, ended }
    }

    /// Declares the next stage: it stops after every stage declared before it.
    pub fn stage(&mut self, name: &'static str) -> Stage {
        self.stages.push(StageState { name, stop: CancellationToken::new(), running: 0 });
        Stage(self.stages.len() - 1)
    }

    /// The token that fires when `stage` starts stopping.
    pub fn stop_token(&self, stage: Stage) -> CancellationToken {
        self.stages[stage.0].stop.clone()
    }

    /// Spawns `task` into `stage`; `make` gets the stage's stop token.
    pub fn spawn<F, Fut>(&mut self, stage: Stage, task: impl Into<String>, make: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let state = &mut self.stages[stage.0];
        state.running += 1;
        let handle = tokio::spawn(make(state.stop.clone()));
        let ended = self.ended_sender.clone();
        let task = task.into();
        // The watcher learns how the task ended, panics included.
        tokio::spawn(async move {
            let outcome = handle.await;
            let _ = ended.send(Ended { stage: stage.0, task, outcome });
        });
    }

    /// Runs until the first of `signals` (or a task ending on its own), then stops
    /// the stages in order. A second signal returns at once with an error. Returns an
    /// error naming every task that failed.
    pub async fn run(mut self, mut signals: impl Stream<Item = &'static str> + Unpin) -> anyhow::Result<()> {
        let mut failures = Vec::new();
        tokio::select! {
            signal = signals.next() => {
                tracing::info!(signal = signal.unwrap_or("end of signals"), "stopping gracefully");
            }
            Some(ended) = self.ended.recv() => {
                self.record(ended, true, &mut failures);
            }
        }
        for index in 0..self.stages.len() {
            let started = Instant::now();
            let name = self.stages[index].name;
            tracing::info!(stage = name, tasks = self.stages[index].running, "stopping");
            self.stages[index].stop.cancel();
            while self.stages[index].running > 0 {
                tokio::select! {
                    Some(ended) = self.ended.recv() => self.record(ended, false, &mut failures),
                    Some(signal) = signals.next() => {
                        tracing::warn!(signal, stage = name, "second signal: stopping at once");
                        return Err(StoppedAtOnce { signal, stage: name }.into());
                    }
                }
            }
            tracing::info!(stage = name, millis = started.elapsed().as_millis() as u64, "stopped");
        }
        if failures.is_empty() {
            tracing::info!("every task stopped");
            Ok(())
        } else {
            anyhow::bail!("{} task(s) failed: {}", failures.len(), failures.join("; "))
        }
    }

    fn record(&mut self, ended: Ended, unexpected: bool, failures: &mut Vec<String>) {
        let state = &mut self.stages[ended.stage];
        state.running = state.running.saturating_sub(1);
        let failure = match ended.outcome {
            Ok(Ok(())) if unexpected => Some("ended before shutdown".to_owned()),
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(format!("{error:#}")),
            Err(error) if error.is_panic() => Some("panicked".to_owned()),
            Err(error) => Some(error.to_string()),
        };
        match failure {
            None => tracing::debug!(stage = state.name, task = %ended.task, "task stopped"),
            Some(why) => {
                tracing::error!(stage = state.name, task = %ended.task, error = %why, "task failed");
                failures.push(format!("{} ({why})", ended.task));
            }
        }
    }
}

/// SIGINT and SIGTERM, as they come, by name.
pub fn signals() -> anyhow::Result<impl Stream<Item = &'static str> + Send + Unpin> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt())?;
        let terminate = signal(SignalKind::terminate())?;
        Ok(Box::pin(futures::stream::unfold(
            (interrupt, terminate),
            |(mut interrupt, mut terminate)| async move {
                let name = tokio::select! {
                    _ = interrupt.recv() => "SIGINT",
                    _ = terminate.recv() => "SIGTERM",
                };
                Some((name, (interrupt, terminate)))
            },
        )))
    }
    #[cfg(not(unix))]
    {
        Ok(Box::pin(futures::stream::unfold((), |()| async move {
            let _ = tokio::signal::ctrl_c().await;
            Some(("Ctrl-C", ()))
        })))
    }
}

/// Signals from a channel, for tests and for embedding: each `send` is one signal.
pub fn channel_signals()
-> (mpsc::UnboundedSender<&'static str>, impl Stream<Item = &'static str> + Send + Unpin) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        let signal = receiver.recv().await?;
        Some((signal, receiver))
    });
    (sender, Box::pin(stream))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;

    fn log_on_stop(
        log: &Arc<Mutex<Vec<&'static str>>>,
        name: &'static str,
    ) -> impl FnOnce(CancellationToken) -> futures::future::BoxFuture<'static, anyhow::Result<()>> {
        let log = log.clone();
        move |stop| {
            Box::pin(async move {
                stop.cancelled().await;
                tokio::time::sleep(Duration::from_millis(10)).await;
                log.lock().expect("log").push(name);
                Ok(())
            })
        }
    }

    #[tokio::test]
    async fn stages_stop_in_the_order_they_were_declared() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut supervisor = Supervisor::new();
        let first = supervisor.stage("listeners");
        let second = supervisor.stage("engine");
        let third = supervisor.stage("relay");
        supervisor.spawn(third, "relay", log_on_stop(&log, "relay"));
        supervisor.spawn(second, "engine", log_on_stop(&log, "engine"));
        supervisor.spawn(first, "api", log_on_stop(&log, "api"));
        supervisor.spawn(first, "ws", log_on_stop(&log, "ws"));
        let (signal, signals) = channel_signals();
        signal.send("SIGTERM").expect("send");
        supervisor.run(signals).await.expect("clean stop");
        let log = log.lock().expect("log").clone();
        assert_eq!(log.len(), 4);
        assert!(log[..2].contains(&"api") && log[..2].contains(&"ws"), "{log:?}");
        assert_eq!(&log[2..], ["engine", "relay"]);
    }

    #[tokio::test]
    async fn a_task_that_fails_stops_the_rest_and_is_reported() {
        let mut supervisor = Supervisor::new();
        let stage = supervisor.stage("work");
        supervisor.spawn(stage, "doomed", |_| async { anyhow::bail!("disk full") });
        supervisor.spawn(stage, "steady", |stop| async move {
            stop.cancelled().await;
            Ok(())
        });
        let (_signal, signals) = channel_signals();
        let error = supervisor.run(signals).await.expect_err("a task failed");
        assert!(error.to_string().contains("doomed (disk full)"), "{error}");
    }

    #[tokio::test]
    async fn a_panicking_task_is_reported() {
        let mut supervisor = Supervisor::new();
        let stage = supervisor.stage("work");
        supervisor.spawn(stage, "fragile", |stop| async move {
            stop.cancelled().await;
            panic!("boom");
        });
        let (signal, signals) = channel_signals();
        signal.send("SIGINT").expect("send");
        let error = supervisor.run(signals).await.expect_err("a task panicked");
        assert!(error.to_string().contains("fragile (panicked)"), "{error}");
    }

    #[tokio::test]
    async fn a_second_signal_stops_at_once() {
        let mut supervisor = Supervisor::new();
        let stage = supervisor.stage("stuck");
        supervisor.spawn(stage, "never", |_| std::future::pending());
        let (signal, signals) = channel_signals();
        signal.send("SIGINT").expect("send");
        signal.send("SIGINT").expect("send");
        let error = tokio::time::timeout(Duration::from_secs(5), supervisor.run(signals))
            .await
            .expect("returned at once")
            .expect_err("forced");
        assert!(error.to_string().contains("second SIGINT"), "{error}");
    }
}
