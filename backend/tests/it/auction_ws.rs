//! The auction WebSocket on both backends.

use std::time::Duration;

use crate::helpers::Role;
use futures::StreamExt as _;
use serde_json::{Value, json};
use sothebais_backend::ServiceRole;
use sothebais_backend::app::ListenerKind;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::both_backends;
use crate::helpers::{Backend, TestApp, json, next_json, token};

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

/// A client that stops reading is disconnected once it falls behind; bidding and the
/// other clients carry on at their pace.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_stops_reading_is_dropped_without_slowing_bids_or_others() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let (_, created) = json(
        app.client
            .post(app.gateway("/api/auction/auctions"))
            .bearer_auth(token(Role::Operator))
            .json(&json!({
                // A long title makes every state message big, so socket buffers fill fast.
                "title": "Busy lot ".repeat(500), "starting_price": "0.000000000000000001",
                "starts_at": chrono::Utc::now().to_rfc3339(), "duration_secs": 3600,
                "increment_table": [], "increment_percent": 0,
            }))
            .send()
            .await
            .expect("send"),
    )
    .await;
    let id = created["data"]["id"].as_str().expect("id").to_owned();
    let url = app
        .url(ServiceRole::Auction, ListenerKind::Ws, &format!("/?auction_id={id}"))
        .replace("http://", "ws://");

    // The slow client: a tiny receive buffer, and it never reads.
    let mut slow = crate::helpers::connect_slow_client(&url).await;
    let (mut attentive, _) = tokio_tungstenite::connect_async(url.as_str()).await.expect("connect");

    // The attentive client keeps up and sees the last bid (4000 wei, the highest).
    let reader = tokio::spawn(async move {
        while let Ok(Some(Ok(message))) =
            tokio::time::timeout(Duration::from_secs(20), attentive.next()).await
        {
            if let Message::Text(text) = message {
                let value: Value = serde_json::from_str(&text).expect("JSON");
                if value["type"] == "auction:bid" && value["data"]["amount"] == "0.000000000000004" {
                    return true;
                }
            }
        }
        false
    });

    let mut tasks = Vec::new();
    for worker in 0..16u64 {
        let client = app.client.clone();
        let bid_url = app.gateway("/api/auction/bid");
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..250u64 {
                let n = round * 16 + worker + 1;
                let body = json!({ "auction_id": id, "amount": format!("0.{n:018}"), "bidder": { "id": format!("b{n}") } });
                let status = client.post(&bid_url).bearer_auth(token(Role::Operator)).json(&body).send().await.expect("bid").status();
                assert!(status == 200 || status == 422, "{status}");
            }
        }));
    }
    for task in tasks {
        task.await.expect("bids go on whatever the slow client does");
    }
    assert!(reader.await.expect("reader"), "the attentive client saw every bid up to the last");

    // Now read what the slow client got: a part of the stream, then the end.
    let (received, closed) = crate::helpers::read_until_closed(&mut slow).await;
    assert!(closed, "the slow client was disconnected (after {received} messages)");
    assert!(received < 8000, "it did not get the whole stream: {received} messages");
}

both_backends! {
    async fn clients_hear_closing_when_the_end_passes_and_the_result_after_the_grace(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let id = app.create_auction(json!({ "duration_secs": 30, "late_grace_secs": 10, "anti_snipe": null })).await;
        let url = app.url(ServiceRole::Auction, ListenerKind::Ws, &format!("/?auction_id={id}")).replace("http://", "ws://");
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
        assert_eq!(next_json(&mut socket).await["data"]["state"], "open");
        app.clock.advance(Duration::from_secs(31));
        // The opening committed by the scheduler may come first; then `closing`.
        let closing = loop {
            let message = next_json(&mut socket).await;
            if message["type"] == "auction:state" && message["data"]["state"] != "open" {
                break message;
            }
        };
        assert_eq!(closing["data"]["state"], "closing", "{closing}");
        app.clock.advance(Duration::from_secs(10));
        app.settle(&id).await;
        let mut states = Vec::new();
        while states.last() != Some(&json!("closed")) {
            let message = next_json(&mut socket).await;
            if message["type"] == "auction:state" {
                states.push(message["data"]["state"].clone());
            }
        }
        socket.close(None).await.expect("close");
    }
}
