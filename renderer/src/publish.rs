//! Publishing the renderer's own events (`stream:*`) to the backend's bus: `XADD`
//! on Redis when `REDIS_URL` is set, else `POST /api/events/{type}` through the
//! gateway. The app queues them (`bridge::send_event`); this task hands them over.

use std::time::Duration;

use bevy::log::warn;
use sothebais_shared::events::Envelope;

use crate::follow::Source;

/// Publishes the renderer's own events (`stream:*`): `XADD` to `events:stream`
/// with Redis, else `POST /api/events/{type}` with an operator token signed with
/// the backend's secret. An event that cannot be delivered is logged and dropped:
/// these events report, they decide nothing. Once `stop` fires it takes no new
/// event and ends when the queued ones are handed over.
pub async fn run(
    backend: String,
    source: Source,
    secret: Option<secrecy::SecretString>,
    mut events: tokio::sync::mpsc::UnboundedReceiver<Envelope>,
    stop: tokio_util::sync::CancellationToken,
) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().ok();
    let backend = backend.trim_end_matches('/').to_owned();
    let mut redis_connection = None;
    let mut warned = false;
    let mut stopping = false;
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            () = stop.cancelled(), if !stopping => {
                // Take nothing new; what is queued (`stream:end` among it) still goes.
                stopping = true;
                events.close();
                continue;
            }
        };
        let Some(event) = event else { break };
        let Ok(payload) = serde_json::to_string(&event) else { continue };
        let result: anyhow::Result<()> = async {
            match &source {
                Source::Redis { url, prefix } => {
                    if redis_connection.is_none() {
                        let client = redis::Client::open(url.as_str())?;
                        redis_connection = Some(client.get_multiplexed_async_connection().await?);
                    }
                    let Some(connection) = redis_connection.as_mut() else { return Ok(()) };
                    let sent: redis::RedisResult<String> = redis::cmd("XADD")
                        .arg(format!("{prefix}{}", event.stream()))
                        .arg("MAXLEN")
                        .arg("~")
                        .arg(100_000)
                        .arg("*")
                        .arg("event")
                        .arg(&payload)
                        .query_async(connection)
                        .await;
                    if let Err(error) = sent {
                        redis_connection = None;
                        return Err(error.into());
                    }
                    Ok(())
                }
                Source::WebSocket => {
                    let (Some(http), Some(secret)) = (&http, &secret) else {
                        anyhow::bail!(
                            "no token secret to publish stream events with (JWT_SECRET or the data dir)"
                        )
                    };
                    // A short-lived operator token for the renderer's own requests.
                    let token = sothebais_kit::access::issue_token(
                        secret,
                        "stream-manager",
                        sothebais_kit::access::Role::Operator,
                        Duration::from_secs(300),
                    )?;
                    let url = format!("{backend}/api/events/{}", event.event_type.as_str());
                    let response = http
                        .post(&url)
                        .bearer_auth(token)
                        .header("content-type", "application/json")
                        .body(payload.clone())
                        .send()
                        .await?;
                    if !response.status().is_success() {
                        anyhow::bail!("POST {url}: {}", response.status());
                    }
                    Ok(())
                }
            }
        }
        .await;
        match result {
            Ok(()) => warned = false,
            Err(error) if !warned => {
                warn!("publishing {}: {error:#}", event.event_type.as_str());
                warned = true;
            }
            Err(_) => {}
        }
    }
}
