//! The auction WebSocket on both backends.

use std::time::Duration;

use futures::StreamExt as _;
use serde_json::{Value, json};
use sothebais_backend::ServiceRole;
use sothebais_backend::app::ListenerKind;
use sothebais_backend::auth::Role;
use tokio_tungstenite::tungstenite::Message;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, json, token};

async fn next_json<S>(socket: &mut S) -> Value
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a message within 5 s")
            .expect("stream open")
            .expect("valid frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).expect("JSON message");
        }
    }
}

both_backends! {
    async fn clients_get_a_snapshot_then_every_accepted_bid_and_state(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let (status, created) = json(
            app.client
                .post(app.gateway("/api/auction/auctions"))
                .bearer_auth(token(Role::Operator))
                .json(&json!({ "title": "Live lot", "starting_price": "1", "starts_at": chrono::Utc::now().to_rfc3339() }))
                .send()
                .await
                .expect("send"),
        )
        .await;
        assert_eq!(status, 201);
        let id = created["data"]["id"].as_str().expect("id").to_owned();
        let url = app.url(ServiceRole::Auction, ListenerKind::Ws, &format!("/?auction_id={id}")).replace("http://", "ws://");
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
        let snapshot = next_json(&mut socket).await;
        assert_eq!(snapshot["type"], "auction:state", "{snapshot}");
        assert_eq!(snapshot["data"]["id"], id.as_str());

        let (status, _) = json(
            app.client
                .post(app.gateway("/api/auction/bid"))
                .bearer_auth(token(Role::Operator))
                .json(&json!({ "auction_id": id, "amount": "1.5", "bidder": { "id": "alice", "handle": "alice" } }))
                .send()
                .await
                .expect("send"),
        )
        .await;
        assert_eq!(status, 200);
        let mut bid = None;
        let mut state = None;
        while bid.is_none() || state.is_none() {
            let message = next_json(&mut socket).await;
            match message["type"].as_str() {
                Some("auction:bid") => bid = Some(message),
                Some("auction:state") if message["data"]["high_bid"].is_object() => state = Some(message),
                _ => {}
            }
        }
        assert_eq!(bid.as_ref().map(|bid| bid["data"]["amount"].clone()), Some(json!("1.5")));
        assert_eq!(state.as_ref().map(|state| state["data"]["high_bid"]["bidder"]["handle"].clone()), Some(json!("alice")));
        socket.close(None).await.expect("close");
    }
}
