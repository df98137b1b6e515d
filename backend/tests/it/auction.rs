//! The auction API against both backends: bids, rules through HTTP, idempotency,
//! concurrency, timers, restarts, two writers, events on the bus.

use std::time::Duration;

use crate::helpers::Role;
use serde_json::{Value, json};
use sothebais_backend::ServiceRole;
use sothebais_backend::app::ListenerKind;
use sothebais_backend::bus::{GroupStart, SubscribeOptions};
use sothebais_shared::events::Category;

use crate::helpers::both_backends;
use crate::helpers::{Backend, TestApp, assert_error, json, token};

async fn open_auction(app: &TestApp, extra: Value) -> String {
    app.create_auction(extra).await
}

async fn bid(app: &TestApp, auction: &str, bidder: &str, amount: &str, key: Option<&str>) -> (u16, Value) {
    app.bid(auction, bidder, amount, key).await
}

async fn history(app: &TestApp, id: &str) -> Vec<Value> {
    app.history(id).await
}

/// Waits, up to `limit`, until `check` holds on the auction: for what the scheduler
/// does on its own once the clock has moved.
async fn wait_for(app: &TestApp, id: &str, limit: Duration, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let current = app.auction(id).await;
        if check(&current) {
            return current;
        }
        assert!(tokio::time::Instant::now() < deadline, "condition not reached: {current}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

both_backends! {
    async fn accepted_bid_answers_200_and_rejected_bid_422_with_its_reason(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let id = open_auction(&app, json!({})).await;
        let (status, accepted) = bid(&app, &id, "alice", "1.5", None).await;
        assert_eq!(status, 200, "{accepted}");
        assert_eq!(accepted["data"]["bid"]["status"], "accepted");
        assert_eq!(accepted["data"]["auction"]["high_bid"]["amount"], "1.5");
        assert_eq!(accepted["data"]["auction"]["min_next_bid"], "1.575");

        let (status, rejected) = bid(&app, &id, "bob", "1.55", None).await;
        assert_eq!(status, 422);
        assert_error(&rejected, "BELOW_MIN_INCREMENT");
        assert_eq!(rejected["error"]["details"]["min_bid"], "1.575");
        assert_eq!(rejected["error"]["message"], "bid must be at least 1.575 ETH");

        let (status, invalid) = bid(&app, &id, "bob", "1,5", None).await;
        assert_eq!(status, 422);
        assert_error(&invalid, "INVALID_AMOUNT");

        let log = history(&app, &id).await;
        let summary: Vec<(u64, &str)> =
            log.iter().map(|bid| (bid["seq"].as_u64().unwrap_or(0), bid["status"].as_str().unwrap_or(""))).collect();
        assert_eq!(summary, vec![(1, "accepted"), (2, "rejected"), (3, "rejected")], "rejected bids are recorded too");
        let (_, verified) = json(app.client.get(app.gateway(&format!("/api/auction/auctions/{id}/verify"))).send().await.expect("send")).await;
        assert_eq!(verified["data"]["chain_valid"], true, "{verified}");
        assert_eq!(verified["data"]["outcome_from_log"]["winner"]["id"], "alice");
    }

    async fn unknown_auction_is_404_auction_not_found(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let (status, body) = bid(&app, "01a2144e-eace-7338-95c3-4990bac58395", "alice", "1", None).await;
        assert_eq!(status, 404);
        assert_error(&body, "AUCTION_NOT_FOUND");
        // Made-up ids cost nothing that lasts: no writer stays behind for any of them.
        for _ in 0..20 {
            let (status, _) = bid(&app, &uuid::Uuid::now_v7().to_string(), "mallory", "1", None).await;
            assert_eq!(status, 404);
        }
        assert_eq!(app.state.engine.writers(), 0, "a writer per made-up id would let anyone exhaust memory");
    }

    async fn the_same_idempotency_key_twice_returns_the_first_decision_and_stores_one_bid(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let id = open_auction(&app, json!({})).await;
        let (first_status, first) = bid(&app, &id, "alice", "2", Some("key-1")).await;
        let (again_status, again) = bid(&app, &id, "alice", "3", Some("key-1")).await;
        assert_eq!((first_status, again_status), (200, 200));
        assert_eq!(again["data"]["duplicate"], true);
        assert_eq!(again["data"]["bid"], first["data"]["bid"], "the first decision, not a new one");
        assert_eq!(history(&app, &id).await.len(), 1);

        let (status, rejected) = bid(&app, &id, "bob", "0.1", Some("key-2")).await;
        assert_eq!(status, 422);
        let (status, repeated) = bid(&app, &id, "bob", "9", Some("key-2")).await;
        assert_eq!(status, 422, "a rejected decision repeats as rejected");
        assert_eq!(repeated["error"]["details"]["duplicate"], true);
        assert_eq!(repeated["error"]["details"]["bid"], rejected["error"]["details"]["bid"]);
        assert_eq!(history(&app, &id).await.len(), 2);
    }

    async fn many_clients_bidding_the_same_amount_at_once_get_exactly_one_acceptance(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let id = open_auction(&app, json!({})).await;
        let mut tasks = Vec::new();
        for index in 0..48 {
            let client = app.client.clone();
            let url = app.gateway("/api/auction/bid");
            let body = json!({ "auction_id": id, "amount": "5", "bidder": { "id": format!("bidder-{index}") } });
            tasks.push(tokio::spawn(async move {
                client.post(url).bearer_auth(token(Role::Operator)).json(&body).send().await.expect("send").status().as_u16()
            }));
        }
        let mut statuses = Vec::new();
        for task in tasks {
            statuses.push(task.await.expect("task"));
        }
        assert_eq!(statuses.iter().filter(|status| **status == 200).count(), 1, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|status| **status == 422).count(), 47, "{statuses:?}");
        let log = history(&app, &id).await;
        let seqs: Vec<u64> = log.iter().filter_map(|bid| bid["seq"].as_u64()).collect();
        assert_eq!(seqs, (1..=48).collect::<Vec<_>>(), "gapless sequence");
    }

    async fn the_timer_closes_the_auction_after_the_grace_with_the_winner(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let id = open_auction(&app, json!({ "duration_secs": 60, "late_grace_secs": 1, "anti_snipe": null })).await;
        let (status, _) = bid(&app, &id, "alice", "1", None).await;
        assert_eq!(status, 200);
        app.clock.advance(Duration::from_secs(60));
        app.clock.advance(Duration::from_secs(2));
        // The scheduler wakes when the clock passes the deadline, not a minute later.
        let closed = wait_for(&app, &id, Duration::from_secs(5), |auction| auction["state"] == "closed").await;
        assert_eq!(closed["outcome"]["result"], "sold", "{closed}");
        assert_eq!(closed["outcome"]["winner"]["id"], "alice");
        let (status, late) = bid(&app, &id, "bob", "9", None).await;
        assert_eq!(status, 422);
        assert_error(&late, "AUCTION_CLOSED");
        let url = app.gateway("/api/events/auction:winner/history");
        let (_, winners) = json(app.client.get(url).send().await.expect("send")).await;
        assert_eq!(winners["data"]["events"][0]["data"]["auction_id"], id.as_str(), "{winners}");
    }

    async fn a_scheduled_auction_opens_on_its_own_at_its_start(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let start = app.clock.now() + chrono::Duration::hours(1);
        let id = open_auction(&app, json!({ "starts_at": start.to_rfc3339() })).await;
        let (status, early) = bid(&app, &id, "alice", "1", None).await;
        assert_eq!(status, 422);
        assert_error(&early, "AUCTION_NOT_OPEN");
        app.clock.advance(Duration::from_secs(3600));
        wait_for(&app, &id, Duration::from_secs(5), |auction| auction["state"] == "open").await;
        let (status, _) = bid(&app, &id, "alice", "1", None).await;
        assert_eq!(status, 200);
    }

    async fn an_auction_whose_end_passed_while_down_is_closed_at_start_up(backend: Backend) {
        let first = TestApp::spawn(backend).await;
        let id = open_auction(&first, json!({ "duration_secs": 1, "late_grace_secs": 0, "anti_snipe": null })).await;
        let (status, _) = bid(&first, &id, "alice", "1.2", None).await;
        assert_eq!(status, 200);
        let (settings, data_dir, clock) = (first.settings.clone(), first.data_dir(), first.clock.clone());
        first.stop().await.expect("clean stop");
        clock.advance(Duration::from_secs(2)); // the end passes while nothing runs
        let second = TestApp::restart(settings, data_dir, clock).await;
        let closed = wait_for(&second, &id, Duration::from_secs(5), |auction| auction["state"] == "closed").await;
        assert_eq!(closed["outcome"]["winner"]["id"], "alice", "{closed}");
        assert_eq!(closed["outcome"]["amount"], "1.2");
    }

    async fn two_engine_processes_never_write_one_auction_at_once(backend: Backend) {
        let one = TestApp::spawn(backend).await;
        let two = one.sibling().await;
        let id = open_auction(&one, json!({ "increment_table": [], "increment_percent": 0 })).await;
        let mut tasks = Vec::new();
        for index in 0..60u32 {
            let app_url = if index % 2 == 0 { one.gateway("/api/auction/bid") } else { two.gateway("/api/auction/bid") };
            let client = one.client.clone();
            // Amounts rise with the index, so many are valid in some order.
            let body = json!({ "auction_id": id, "amount": format!("{}", 1 + index), "bidder": { "id": format!("b{index}") } });
            tasks.push(tokio::spawn(async move {
                client.post(app_url).bearer_auth(token(Role::Operator)).json(&body).send().await.expect("send").status().as_u16()
            }));
        }
        for task in tasks {
            let status = task.await.expect("task");
            assert!(status == 200 || status == 422, "status {status}");
        }
        let log = history(&one, &id).await;
        let seqs: Vec<u64> = log.iter().filter_map(|bid| bid["seq"].as_u64()).collect();
        assert_eq!(seqs, (1..=60).collect::<Vec<_>>(), "gapless: every bid decided once, by one writer at a time");
        let accepted: Vec<f64> = log
            .iter()
            .filter(|bid| bid["status"] == "accepted")
            .filter_map(|bid| bid["amount"].as_str().and_then(|amount| amount.parse().ok()))
            .collect();
        assert!(accepted.windows(2).all(|pair| pair[1] > pair[0]), "no double acceptance: {accepted:?}");
        let (_, verified) = json(one.client.get(one.gateway(&format!("/api/auction/auctions/{id}/verify"))).send().await.expect("send")).await;
        assert_eq!(verified["data"]["chain_valid"], true, "{verified}");
    }

    async fn bids_on_many_auctions_at_once_commit_together_and_each_stays_exact(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let mut auctions = Vec::new();
        for _ in 0..12 {
            auctions.push(open_auction(&app, json!({})).await);
        }
        let mut tasks = Vec::new();
        for round in 0..3u32 {
            for (index, id) in auctions.iter().enumerate() {
                let client = app.client.clone();
                let url = app.gateway("/api/auction/bid");
                let body = json!({ "auction_id": id, "amount": format!("{}", 1 + round * 10), "bidder": { "id": format!("b{index}-{round}") }, "idempotency_key": format!("{index}-{round}") });
                tasks.push(tokio::spawn(async move {
                    client.post(url).bearer_auth(token(Role::Operator)).json(&body).send().await.expect("send").status().as_u16()
                }));
            }
        }
        for task in tasks {
            let status = task.await.expect("task");
            assert!(status == 200 || status == 422, "{status}");
        }
        for id in &auctions {
            let log = history(&app, id).await;
            let seqs: Vec<u64> = log.iter().filter_map(|bid| bid["seq"].as_u64()).collect();
            assert_eq!(seqs, vec![1, 2, 3], "{id}");
            let (_, verified) = json(app.client.get(app.gateway(&format!("/api/auction/auctions/{id}/verify"))).send().await.expect("send")).await;
            assert_eq!(verified["data"]["chain_valid"], true, "{verified}");
            let current = app.auction(id).await;
            assert_eq!(current["high_bid"]["amount"], verified["data"]["outcome_from_log"]["amount"], "{current}");
        }
    }

    async fn decisions_are_published_on_the_bus_through_the_outbox(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let mut subscription = app
            .state
            .bus
            .subscribe(SubscribeOptions::new("test-listener", "one", &[Category::Auction], GroupStart::Latest))
            .await
            .expect("subscribe");
        let id = open_auction(&app, json!({})).await;
        let (status, _) = bid(&app, &id, "alice", "1", None).await;
        assert_eq!(status, 200);
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !seen.contains(&"auction:bid:accepted".to_owned()) && tokio::time::Instant::now() < deadline {
            for delivery in subscription.read(100, Duration::from_millis(200)).await.expect("read") {
                let event = delivery.envelope().expect("valid envelope");
                assert_eq!(event.data.get("bid").and_then(|bid| bid.get("auction_id")).map_or(id.as_str(), |v| v.as_str().unwrap_or("")), id.as_str());
                seen.push(event.event_type.as_str().to_owned());
            }
        }
        assert!(seen.contains(&"auction:start".to_owned()), "{seen:?}");
        assert!(seen.contains(&"auction:bid:placed".to_owned()), "{seen:?}");
        assert!(seen.contains(&"auction:bid:accepted".to_owned()), "{seen:?}");
    }

    async fn operators_cancel_before_bids_and_only_admins_after(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let cancel = |id: &str, role: Role, reason: Option<&str>| {
            let request = app
                .client
                .post(app.gateway(&format!("/api/auction/auctions/{id}/cancel")))
                .bearer_auth(token(role))
                .json(&json!({ "reason": reason }));
            async move { json(request.send().await.expect("send")).await }
        };
        let quiet = open_auction(&app, json!({})).await;
        let (status, cancelled) = cancel(&quiet, Role::Operator, None).await;
        assert_eq!(status, 200, "{cancelled}");
        assert_eq!(cancelled["data"]["state"], "cancelled");

        let busy = open_auction(&app, json!({})).await;
        bid(&app, &busy, "alice", "1", None).await;
        assert_eq!(cancel(&busy, Role::Operator, Some("changed my mind")).await.0, 403);
        assert_eq!(cancel(&busy, Role::Admin, None).await.0, 400, "admins must say why");
        let (status, body) = cancel(&busy, Role::Admin, Some("the consignor withdrew the lot")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(cancel(&busy, Role::Admin, Some("again")).await.0, 409);
        let (status, late) = bid(&app, &busy, "bob", "5", None).await;
        assert_eq!(status, 422);
        assert_error(&late, "AUCTION_CLOSED");
    }

    async fn a_bid_naming_no_lot_goes_to_the_only_open_one_and_is_ambiguous_with_several(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let first = open_auction(&app, json!({})).await;
        let request = |body: Value| {
            let request = app.client.post(app.gateway("/api/auction/bid")).bearer_auth(token(Role::Operator)).json(&body);
            async move { json(request.send().await.expect("send")).await }
        };
        let (status, body) = request(json!({ "amount": "1", "bidder": { "id": "alice" } })).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["bid"]["auction_id"], first.as_str());
        open_auction(&app, json!({})).await;
        let (status, body) = request(json!({ "amount": "2", "bidder": { "id": "alice" } })).await;
        assert_eq!(status, 422);
        assert_error(&body, "AMBIGUOUS_LOT");
    }
}

#[tokio::test]
async fn a_bidder_token_bids_as_its_own_subject_only() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let id = open_auction(&app, json!({})).await;
    let bidder_token = sothebais_kit::access::issue_token(
        &secrecy::SecretString::from(crate::helpers::JWT_SECRET.to_owned()),
        "x-user-77",
        Role::Bidder,
        Duration::from_secs(60),
    )
    .expect("sign");
    let post = |body: Value, bearer: String| {
        let request = app.client.post(app.gateway("/api/auction/bid")).bearer_auth(bearer).json(&body);
        async move { json(request.send().await.expect("send")).await }
    };
    let (status, own) = post(
        json!({ "auction_id": id, "amount": "1", "bidder": { "id": "x-user-77", "handle": "sam" } }),
        bidder_token.clone(),
    )
    .await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["data"]["bid"]["bidder"]["id"], "x-user-77");
    assert_eq!(own["data"]["bid"]["source"], "http");
    let (status, _) =
        post(json!({ "auction_id": id, "amount": "2", "bidder": { "id": "someone-else" } }), bidder_token)
            .await;
    assert_eq!(status, 403);
    let (status, _) = post(json!({ "auction_id": id, "amount": "3" }), token(Role::Viewer)).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_blocked_bidder_is_refused() {
    let app = TestApp::spawn_with(Backend::Embedded, &[("BLOCKED_BIDDERS", "spammer, @troll")]).await;
    let id = open_auction(&app, json!({})).await;
    let (status, body) = bid(&app, &id, "spammer", "1", None).await;
    assert_eq!(status, 422);
    assert_error(&body, "BIDDER_BLOCKED");
    let (status, body) = bid(&app, &id, "troll", "1", None).await;
    assert_error(&body, "BIDDER_BLOCKED");
    assert_eq!(status, 422);
}

#[tokio::test]
async fn amounts_must_be_strings_never_numbers() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let id = open_auction(&app, json!({})).await;
    let request = app
        .client
        .post(app.gateway("/api/auction/bid"))
        .bearer_auth(token(Role::Operator))
        .json(&json!({ "auction_id": id, "amount": 1.5, "bidder": { "id": "a" } }));
    let (status, body) = json(request.send().await.expect("send")).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["details"]["field"], "amount", "{body}");
}

#[tokio::test]
async fn a_campaign_lays_out_its_lots_on_its_wall_clock() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let body = json!({
        "name": "Spring sale",
        "timezone": "America/New_York",
        "starts_at": "2036-03-09T01:59:00",
        "gap_secs": 30,
        "lots": [
            { "title": "First", "starting_price": "1", "duration_secs": 30 },
            { "title": "Second", "starting_price": "2", "duration_secs": 60 },
        ],
    });
    let request =
        app.client.post(app.gateway("/api/auction/campaigns")).bearer_auth(token(Role::Operator)).json(&body);
    let (status, created) = json(request.send().await.expect("send")).await;
    assert_eq!(status, 201, "{created}");
    let lots = created["data"]["lots"].as_array().cloned().unwrap_or_default();
    assert_eq!(lots.len(), 2);
    assert_eq!(lots[0]["starts_at_local"], "2036-03-09T01:59:00-05:00");
    // 01:59 + 30 s + 30 s gap = 02:00, skipped by the spring-forward change: 03:00 EDT.
    assert_eq!(lots[1]["starts_at_local"], "2036-03-09T03:00:00-04:00");
    let campaign_id = created["data"]["id"].as_str().expect("id");
    let url = app.gateway(&format!("/api/auction/auctions?campaign_id={campaign_id}&state=scheduled"));
    let (_, listed) = json(app.client.get(url).send().await.expect("send")).await;
    assert_eq!(listed["data"]["auctions"].as_array().map(Vec::len), Some(2), "{listed}");
}

#[tokio::test]
async fn a_campaign_start_may_carry_any_offset_and_a_bad_one_names_the_field_and_the_forms() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let campaign = |starts_at: &str| {
        json!({
            "name": "Evening sale",
            "timezone": "America/New_York",
            "starts_at": starts_at,
            "lots": [{ "title": "Only", "starting_price": "1", "duration_secs": 30 }],
        })
    };
    // 20:00 at UTC-5 is 20:00 on New York's wall clock, however it is written.
    for start in ["2036-12-02T20:00:00-05:00", "2036-12-03T01:00:00Z", "2036-12-02T20:00:00"] {
        let (status, created) = app.post("/api/auction/campaigns", Role::Operator, &campaign(start)).await;
        assert_eq!(status, 201, "{start}: {created}");
        assert_eq!(
            created["data"]["lots"][0]["starts_at_local"], "2036-12-02T20:00:00-05:00",
            "{start}: {created}"
        );
    }
    let (status, refused) =
        app.post("/api/auction/campaigns", Role::Operator, &campaign("tomorrow at eight")).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["details"]["field"], "starts_at", "{refused}");
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("wall-clock time") && message.contains("RFC 3339"), "{refused}");
}

#[tokio::test]
async fn extreme_dates_are_refused_as_bad_requests_not_internal_errors() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let campaign = json!({
        "name": "Ancient sale",
        "starts_at": "0001-01-01T00:00:00",
        "lots": [{ "title": "Only", "starting_price": "1" }],
    });
    let (status, body) = app.post("/api/auction/campaigns", Role::Operator, &campaign).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("starts_at")), "{body}");
    let auction = json!({ "title": "Far lot", "starting_price": "1", "starts_at": "0001-01-01T00:00:00Z" });
    let (status, body) = app.post("/api/auction/auctions", Role::Operator, &auction).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("starts_at")), "{body}");
}

/// PostgreSQL refusing connections (as during a restart): bids get 503 and are not
/// acknowledged; once it is back, bidding resumes and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bids_get_503_while_the_database_is_down_and_nothing_acknowledged_is_lost() {
    if Backend::Production.skipped() {
        return;
    }
    use sqlx::Connection as _;
    let app = TestApp::spawn(Backend::Production).await;
    let id = open_auction(&app, json!({ "increment_table": [], "increment_percent": 0 })).await;
    let (status, first) = bid(&app, &id, "alice", "1", None).await;
    assert_eq!(status, 200, "{first}");

    let url = app.settings.get("DATABASE_URL").cloned().expect("production database");
    let name = url.rsplit('/').next().unwrap_or_default().to_owned();
    let admin_url = url.replace(&format!("/{name}"), "/test");
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.expect("admin connection");
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .execute(&mut admin)
        .await
        .expect("close");
    sqlx::query(&format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
        .execute(&mut admin)
        .await
        .expect("terminate");

    let (status, down) = bid(&app, &id, "bob", "2", None).await;
    assert_eq!(status, 503, "{down}");
    assert_error(&down, "UNAVAILABLE");
    let health = app
        .client
        .get(app.url(ServiceRole::Auction, ListenerKind::Health, "/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 503);
    let health: Value = health.json().await.expect("health JSON");
    assert_eq!(health["checks"]["database"], sothebais_kit::health::FAILING, "{health}");
    assert!(!health.to_string().contains(&name), "the database's own error text stays in the log: {health}");
    let (_, status) = app.get("/api/admin/status").await;
    assert_eq!(status["data"]["checks"]["database"], sothebais_kit::health::FAILING, "{status}");

    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .execute(&mut admin)
        .await
        .expect("reopen");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (status, resumed) = loop {
        let answer = bid(&app, &id, "carol", "3", None).await;
        if answer.0 != 503 || tokio::time::Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, 200, "{resumed}");
    let log = history(&app, &id).await;
    let bidders: Vec<&str> = log.iter().filter_map(|bid| bid["bidder"]["id"].as_str()).collect();
    assert_eq!(
        bidders,
        vec!["alice", "carol"],
        "the refused bid was never recorded; the acknowledged ones were"
    );
}

/// Starts a private Redis on `port`, for tests that stop and restart it.
async fn start_redis(port: u16) -> tokio::process::Child {
    let child = tokio::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server is installed");
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("url");
    for _ in 0..100 {
        if let Ok(mut connection) = client.get_multiplexed_async_connection().await
            && redis::cmd("PING").query_async::<String>(&mut connection).await.is_ok()
        {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("redis-server did not start on port {port}");
}

/// Redis restarting (and losing everything, as it keeps nothing on disk) neither stops
/// bidding nor loses events: decisions are stored with their events, and the outbox
/// publishes them once Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bids_go_on_through_a_redis_restart_and_their_events_are_published_after() {
    if Backend::Production.skipped() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port();
    let mut redis_server = start_redis(port).await;
    let redis_url = format!("redis://127.0.0.1:{port}");
    let app = TestApp::spawn_with(Backend::Production, &[("REDIS_URL", &redis_url)]).await;
    let id = open_auction(&app, json!({})).await;
    let (status, _) = bid(&app, &id, "alice", "1", None).await;
    assert_eq!(status, 200);

    redis_server.kill().await.expect("stop redis");
    let (status, during) = bid(&app, &id, "bob", "2", None).await;
    assert_eq!(status, 200, "decisions do not need Redis: {during}");
    let bid_id = during["data"]["bid"]["id"].as_str().expect("bid id").to_owned();

    let _restarted = start_redis(port).await;
    let prefix = app.settings.get("REDIS_KEY_PREFIX").cloned().unwrap_or_default();
    let client = redis::Client::open(redis_url.as_str()).expect("url");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut connection = client.get_multiplexed_async_connection().await.expect("connect");
        let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(format!("{prefix}events:auction"))
            .arg("-")
            .arg("+")
            .query_async(&mut connection)
            .await
            .expect("xrange");
        let published = entries.ids.iter().any(|entry| {
            entry
                .get::<String>("event")
                .is_some_and(|event| event.contains(&bid_id) && event.contains("auction:bid:accepted"))
        });
        if published {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the event of the bid decided while Redis was down never arrived"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

both_backends! {
    async fn stopping_waits_for_bids_in_flight_and_loses_none_that_were_answered(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let id = open_auction(&app, json!({ "increment_table": [], "increment_percent": 0 })).await;
        let (settings, data_dir, clock) = (app.settings.clone(), app.data_dir(), app.clock.clone());
        let mut tasks = Vec::new();
        for index in 0..80u32 {
            let client = app.client.clone();
            let url = app.gateway("/api/auction/bid");
            let body = json!({ "auction_id": id, "amount": format!("{}", 1 + index), "bidder": { "id": format!("b{index}") } });
            tasks.push(tokio::spawn(async move {
                let response = client.post(url).bearer_auth(token(Role::Operator)).json(&body).send().await.ok()?;
                let status = response.status().as_u16();
                let body: Value = response.json().await.ok()?;
                Some((status, body))
            }));
        }
        // Stop once the storm is under way: some bids decided, others in flight.
        wait_for_bids(&app, &id, 1).await;
        app.stop().await.expect("every stage stops cleanly");
        let mut answered = Vec::new();
        for task in tasks {
            if let Some((status, body)) = task.await.expect("task") {
                if status == 200 {
                    answered.push(body["data"]["bid"]["id"].as_str().expect("bid id").to_owned());
                } else if status == 422 {
                    // Rejected bids are recorded too; their id is in the details when given.
                    answered.extend(body["error"]["details"]["bid"]["id"].as_str().map(str::to_owned));
                } else {
                    assert_eq!(status, 503, "refused while stopping, nothing acknowledged: {body}");
                }
            }
        }
        assert!(!answered.is_empty());
        let after = TestApp::restart(settings, data_dir, clock).await;
        let log = after.history(&id).await;
        let stored: Vec<&str> = log.iter().filter_map(|bid| bid["id"].as_str()).collect();
        for bid in &answered {
            assert!(stored.contains(&bid.as_str()), "answered bid {bid} was lost on shutdown");
        }
        let seqs: Vec<u64> = log.iter().filter_map(|bid| bid["seq"].as_u64()).collect();
        assert_eq!(seqs, (1..=log.len() as u64).collect::<Vec<_>>(), "gapless");
    }
}

/// Waits until the auction's log holds at least `count` bids.
async fn wait_for_bids(app: &TestApp, id: &str, count: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.history(id).await.len() < count {
        assert!(tokio::time::Instant::now() < deadline, "no bid decided within 10 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_repeated_verify_is_answered_from_the_last_one_until_the_log_grows() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let id = app.create_auction(serde_json::json!({})).await;
    let verify = || async {
        let url = app.gateway(&format!("/api/auction/auctions/{id}/verify"));
        json(app.client.get(url).send().await.expect("send")).await.1["data"].clone()
    };
    let (status, _) = app.bid(&id, "alice", "1", None).await;
    assert_eq!(status, 200);
    let first = verify().await;
    let again = verify().await;
    assert_eq!(first, again);
    let (status, _) = app.bid(&id, "bob", "2", None).await;
    assert_eq!(status, 200);
    let grown = verify().await;
    assert_eq!(grown["bids"], 2, "a new bid is verified again: {grown}");
    let metrics = app.metrics(ServiceRole::Auction).await;
    let count = |cached: &str| {
        metrics
            .lines()
            .find(|line| {
                line.starts_with("auction_verify_total") && line.contains(&format!("cached=\"{cached}\""))
            })
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse::<u64>().ok())
    };
    assert_eq!(count("true"), Some(1), "{metrics}");
    assert_eq!(count("false"), Some(2), "{metrics}");
    app.stop().await.expect("stops");
}
