//! The event stream WebSocket on both backends: replay after `since`, then live, no
//! gap, no duplicate; private types need a token.

use std::time::Duration;

use crate::helpers::Role;
use serde_json::json;
use sothebais_backend::ServiceRole;
use sothebais_backend::app::ListenerKind;

use crate::helpers::both_backends;
use crate::helpers::{Backend, TestApp, json, next_json, token};

async fn say(app: &TestApp, text: &str) -> String {
    let (status, body) = json(
        app.client
            .post(app.gateway("/api/events/agent:message"))
            .bearer_auth(token(Role::Operator))
            .json(&json!({ "text": text, "channel": "stream", "mood": "happy" }))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["data"]["id"].as_str().expect("id").to_owned()
}

both_backends! {
    async fn since_replays_the_missed_events_in_order_then_continues_live(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let first = say(&app, "one").await;
        say(&app, "two").await;
        say(&app, "three").await;
        let url = app
            .url(ServiceRole::Events, ListenerKind::Ws, &format!("/?types=agent:message&since={first}"))
            .replace("http://", "ws://");
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
        assert_eq!(next_json(&mut socket).await["data"]["text"], "two");
        assert_eq!(next_json(&mut socket).await["data"]["text"], "three");
        say(&app, "four").await;
        assert_eq!(next_json(&mut socket).await["data"]["text"], "four");
        // Nothing is sent twice: the next message is the next event.
        say(&app, "five").await;
        assert_eq!(next_json(&mut socket).await["data"]["text"], "five");
    }
}

#[tokio::test]
async fn the_gateway_serves_the_stream_and_private_types_need_an_operator() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let private = app.gateway("/api/events/stream?types=system:*");
    let response = app.client.get(&private).send().await.expect("send");
    assert_eq!(response.status(), 401);
    let public = app.gateway("/api/events/stream?types=agent:message").replace("http://", "ws://");
    let (mut socket, _) = tokio_tungstenite::connect_async(public).await.expect("connect");
    say(&app, "hello").await;
    assert_eq!(next_json(&mut socket).await["data"]["text"], "hello");
    let with_token = format!("{private}&access_token={}", token(Role::Operator)).replace("http://", "ws://");
    assert!(
        tokio_tungstenite::connect_async(with_token).await.is_ok(),
        "an operator token opens private types"
    );
}

/// A client of the event stream that stops reading is disconnected once it falls
/// behind; the attentive client gets every event up to the last.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_client_that_stops_reading_is_dropped_without_slowing_the_others() {
    use futures::StreamExt as _;
    use sothebais_shared::events::{AgentMessage, Channel, Envelope, EventType, Mood, Source};
    use tokio_tungstenite::tungstenite::Message;

    let app = TestApp::spawn(Backend::Embedded).await;
    let url =
        app.url(ServiceRole::Events, ListenerKind::Ws, "/?types=agent:message").replace("http://", "ws://");
    // The slow client: a tiny receive buffer, and it never reads.
    let mut slow = crate::helpers::connect_slow_client(&url).await;
    let (mut attentive, _) = tokio_tungstenite::connect_async(url.as_str()).await.expect("connect");

    const EVENTS: usize = 4000;
    let message = |in_reply_to: &str, text: &str| {
        let data = AgentMessage {
            text: text.to_owned(),
            channel: Channel::Stream,
            in_reply_to: Some(in_reply_to.to_owned()),
            mood: Mood::Happy,
            speech: None,
        };
        Envelope::new(EventType::AgentMessage, Source::AgentService, &data).expect("valid")
    };
    // The handshake can complete before the server follows the live feed: wait until
    // the attentive client receives something, so it is following from here on.
    loop {
        app.state.bus.publish(&message("ready", "ready")).await.expect("publish");
        if let Ok(Some(Ok(Message::Text(_)))) =
            tokio::time::timeout(Duration::from_millis(200), attentive.next()).await
        {
            break;
        }
    }
    let reader = tokio::spawn(async move {
        let mut seen = 0;
        while let Ok(Some(Ok(message))) =
            tokio::time::timeout(Duration::from_secs(20), attentive.next()).await
        {
            if let Message::Text(text) = message {
                let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
                if value["data"]["in_reply_to"] == "ready" {
                    continue;
                }
                seen += 1;
                if value["data"]["in_reply_to"] == "last" {
                    return seen;
                }
            }
        }
        seen
    });
    // Big messages, so the slow client's buffers fill whatever the pace.
    let text = "la ".repeat(1500);
    for n in 0..EVENTS {
        let tag = if n + 1 == EVENTS { "last".to_owned() } else { n.to_string() };
        app.state.bus.publish(&message(&tag, &text)).await.expect("publish");
        if n % 256 == 0 {
            // Let the feed and the attentive client keep pace, as a live show would.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(reader.await.expect("reader"), EVENTS, "the attentive client got every event");

    let (received, closed) = crate::helpers::read_until_closed(&mut slow).await;
    assert!(closed, "the slow client was disconnected (after {received} messages)");
    assert!(received < EVENTS, "it did not get the whole stream: {received} messages");
}
