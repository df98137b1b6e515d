//! The event stream WebSocket on both backends: replay after `since`, then live, no
//! gap, no duplicate; private types need a token.

use serde_json::json;
use sothebais_backend::ServiceRole;
use sothebais_backend::app::ListenerKind;
use sothebais_backend::auth::Role;

use crate::both_backends;
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
