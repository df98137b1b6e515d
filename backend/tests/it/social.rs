//! The social role against the X simulator (`sothebais_backend::xsim`, real HTTP on
//! a free port) and a real application, on both backends: bids from posts, replies,
//! the reply rule, rate limits, late posts, token refresh and spend.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sothebais_backend::app::{ListenerKind, ServiceRole};
use sothebais_testkit::x::SimServer;
use sothebais_testkit::{Backend, TestApp, both_backends, eventually};

const WAIT: Duration = Duration::from_secs(15);

async fn show(backend: Backend, sim: &SimServer, extra: &[(&str, &str)]) -> TestApp {
    let mut settings: Vec<(String, String)> = sim.settings().into_iter().collect();
    settings.extend(extra.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())));
    let borrowed: Vec<(&str, &str)> =
        settings.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
    TestApp::spawn_with(backend, &borrowed).await
}

/// The lot's announcement on X, once the show has posted it.
async fn announcement(sim: &SimServer, title: &str) -> String {
    eventually(WAIT, "the lot is announced on X", async || sim.sim.announcement_of(title))
        .await
        .unwrap_or_else(|error| panic!("{error}"))
}

/// The show's one reply to `post`, once it is there.
async fn reply_to(sim: &SimServer, post: &str) -> String {
    eventually(WAIT, "the show replies to the post", async || {
        sim.replies_to(post).first().map(|reply| reply.text.clone())
    })
    .await
    .unwrap_or_else(|error| panic!("{error}"))
}

/// The bid decided for `post`, once the engine has it.
async fn bid_for(app: &TestApp, auction: &str, post: &str) -> Value {
    eventually(WAIT, "the post's bid is decided", async || {
        app.history(auction).await.into_iter().find(|bid| bid["source_ref"] == post)
    })
    .await
    .unwrap_or_else(|error| panic!("{error}"))
}

both_backends! {
    async fn a_mention_becomes_a_bid_with_its_post_id_and_one_reply(backend: Backend) {
        let sim = SimServer::start().await;
        let app = show(backend, &sim, &[]).await;
        let auction = app.create_auction(json!({ "title": "Blue Hour" })).await;
        announcement(&sim, "Blue Hour").await;

        let post = sim.post("curie", "@SothebAIs bid 1.5", json!({})).await;
        let bid = bid_for(&app, &auction, &post).await;
        assert_eq!(bid["status"], "accepted", "{bid}");
        assert_eq!(bid["source"], "x");
        assert_eq!(bid["amount"], "1.5");
        assert_eq!(bid["bidder"]["handle"], "@curie");
        let text = reply_to(&sim, &post).await;
        assert!(text.contains("@curie") && text.contains("high bid"), "{text}");

        // Too low: the reply names the minimum.
        let low = sim.post("noether", "@SothebAIs bid 1.2", json!({})).await;
        let bid = bid_for(&app, &auction, &low).await;
        assert_eq!(bid["reason"], "BELOW_MIN_INCREMENT", "{bid}");
        let text = reply_to(&sim, &low).await;
        assert!(text.contains("min bid is 1.575 ETH"), "{text}");

        // Ambiguous: decided AMBIGUOUS_AMOUNT, and the reply asks for a dot.
        let ambiguous = sim.post("hopper", "@SothebAIs bid 1,500", json!({})).await;
        let bid = bid_for(&app, &auction, &ambiguous).await;
        assert_eq!(bid["reason"], "AMBIGUOUS_AMOUNT", "{bid}");
        let text = reply_to(&sim, &ambiguous).await;
        assert!(text.contains("with a dot"), "{text}");

        // Chatter and retweets get nothing.
        let chatter = sim.post("lovelace", "@SothebAIs love this piece", json!({})).await;
        sim.post("turing", "@SothebAIs bid 9", json!({ "retweet_of": post })).await;
        let last = sim.post("franklin", "@SothebAIs bid 2", json!({})).await;
        reply_to(&sim, &last).await;
        assert!(sim.replies_to(&chatter).is_empty());
        let bids = app.history(&auction).await;
        assert!(bids.iter().all(|bid| bid["amount"] != "9"), "a retweet was read as a bid");
        let answers = sim.replies_to(&post).into_iter().filter(|reply| !reply.text.contains("outbid")).count();
        assert_eq!(answers, 1, "exactly one reply to the bid");
        // The first bidder was outbid and told so, in the thread of their bid.
        let outbid = eventually(WAIT, "an outbid notice", async || {
            sim.replies_to(&post).into_iter().find(|reply| reply.text.contains("outbid"))
        })
        .await
        .expect("outbid notice");
        assert!(outbid.text.contains("@curie"), "{}", outbid.text);
        app.stop().await.expect("stops cleanly");
    }

    async fn the_same_post_read_again_and_after_a_restart_is_one_bid_and_one_reply(backend: Backend) {
        let sim = SimServer::start().await;
        let app = show(backend, &sim, &[]).await;
        let auction = app.create_auction(json!({ "title": "Twice" })).await;
        announcement(&sim, "Twice").await;
        let post = sim.post("curie", "@SothebAIs bid 1", json!({})).await;
        bid_for(&app, &auction, &post).await;
        reply_to(&sim, &post).await;

        // Forget the cursor, as if X delivered every mention again, and restart.
        app.state.storage.set_social_value("mentions_since_id", "1").await.expect("reset the cursor");
        let (settings, data_dir, clock) = (app.settings.clone(), app.data_dir(), app.clock.clone());
        app.stop().await.expect("stops");
        let app = TestApp::restart(settings, data_dir, clock).await;
        let later = sim.post("noether", "@SothebAIs bid 2", json!({})).await;
        reply_to(&sim, &later).await;
        let bids: Vec<Value> =
            app.history(&auction).await.into_iter().filter(|bid| bid["source_ref"] == post).collect();
        assert_eq!(bids.len(), 1, "one bid for the post: {bids:?}");
        let answers = sim.replies_to(&post).into_iter().filter(|reply| !reply.text.contains("outbid")).count();
        assert_eq!(answers, 1, "one reply for the post");
        app.stop().await.expect("stops");
    }

    async fn the_same_bid_posted_twice_gets_two_replies_though_x_refuses_repeated_text(backend: Backend) {
        let sim = SimServer::start().await;
        let app = show(backend, &sim, &[]).await;
        let auction = app.create_auction(json!({ "title": "Echo" })).await;
        announcement(&sim, "Echo").await;
        // Under the starting price twice: the same refusal, word for word.
        let first = sim.post("curie", "@SothebAIs bid 0.5", json!({})).await;
        let first_reply = reply_to(&sim, &first).await;
        let second = sim.post("curie", "@SothebAIs bid 0.5", json!({})).await;
        let second_reply = reply_to(&sim, &second).await;
        assert_eq!(bid_for(&app, &auction, &second).await["status"], "rejected");
        assert_eq!(second_reply, format!("{first_reply} (2)"), "told apart from the first");
        assert_eq!(sim.replies_to(&first).len(), 1);
        assert_eq!(sim.replies_to(&second).len(), 1);
        app.stop().await.expect("stops");
    }

    async fn a_bid_in_the_lots_thread_without_a_mention_is_decided_and_named_in_standings(backend: Backend) {
        let sim = SimServer::start().await;
        let app = show(backend, &sim, &[]).await;
        let auction = app.create_auction(json!({ "title": "Quiet Thread", "duration_secs": 120 })).await;
        let thread = announcement(&sim, "Quiet Thread").await;

        let post = sim.post("noether", "bid 2", json!({ "in_reply_to": thread })).await;
        let bid = bid_for(&app, &auction, &post).await;
        assert_eq!(bid["status"], "accepted", "{bid}");
        // X refuses the direct reply (the author did not summon the show) ...
        eventually(WAIT, "X refused the reply", async || {
            let billing = sim.control(Method::GET, "/sim/billing", None).await;
            (billing["refused"]["reply_not_allowed"].as_u64() >= Some(1)).then_some(())
        })
        .await
        .expect("refused");
        assert!(sim.replies_to(&post).is_empty());
        // ... so the bidder is named in the next standings post, in the lot's thread.
        app.clock.advance(Duration::from_secs(21));
        let standings = eventually(WAIT, "a standings post", async || {
            sim.replies_to(&thread).into_iter().find(|reply| reply.text.contains("standings"))
        })
        .await
        .expect("standings post");
        assert!(standings.text.contains("@noether"), "{}", standings.text);
        assert!(standings.text.contains("2 ETH"), "{}", standings.text);
        app.stop().await.expect("stops");
    }

    async fn a_thread_bid_still_owed_when_its_lot_closes_is_named_in_a_last_standings_post(backend: Backend) {
        let sim = SimServer::start().await;
        let app = show(backend, &sim, &[]).await;
        let auction = app
            .create_auction(json!({ "title": "Short Thread", "duration_secs": 10, "late_grace_secs": 0, "anti_snipe": null }))
            .await;
        let thread = announcement(&sim, "Short Thread").await;
        let post = sim.post("meitner", "bid 1", json!({ "in_reply_to": thread })).await;
        assert_eq!(bid_for(&app, &auction, &post).await["status"], "accepted");
        eventually(WAIT, "X refused the reply", async || {
            let billing = sim.control(Method::GET, "/sim/billing", None).await;
            (billing["refused"]["reply_not_allowed"].as_u64() >= Some(1)).then_some(())
        })
        .await
        .expect("refused");
        // The lot closes well within 20 s of its announcement: the bidder is named
        // after the end, not never.
        app.clock.advance(Duration::from_secs(11));
        app.settle(&auction).await;
        let standings = eventually(WAIT, "a last standings post", async || {
            sim.replies_to(&thread).into_iter().find(|reply| reply.text.contains("standings"))
        })
        .await
        .expect("standings post");
        assert!(standings.text.contains("@meitner"), "{}", standings.text);
        assert!(standings.text.contains("bidding closed"), "{}", standings.text);
        // Acknowledged once: no second standings post follows.
        app.clock.advance(Duration::from_secs(21));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let posts = sim.replies_to(&thread).into_iter().filter(|reply| reply.text.contains("standings")).count();
        assert_eq!(posts, 1);
        app.stop().await.expect("stops");
    }

    async fn reads_are_spaced_so_a_window_lasts_until_its_reset(backend: Backend) {
        // 10 reads per 20 s, polled every 100 ms: unpaced, the window would be spent
        // in a second and the next 19 s would read nothing.
        let sim = SimServer::start().await;
        sim.control(Method::PUT, "/sim/limits", Some(json!({ "endpoint": "mentions", "limit": 10, "window_secs": 20 }))).await;
        let app = show(backend, &sim, &[]).await;
        let auction = app.create_auction(json!({ "title": "Paced" })).await;
        announcement(&sim, "Paced").await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        let billing = sim.control(Method::GET, "/sim/billing", None).await;
        let reads = billing["requests"]["mentions"].as_u64().unwrap_or(0);
        assert!((1..=4).contains(&reads), "about one read per 2 s: {reads} in 4 s ({billing})");
        assert_eq!(billing["refused"]["mentions"].as_u64().unwrap_or(0), 0, "never refused: {billing}");
        // And reading goes on: a bid posted now is decided.
        let post = sim.post("curie", "@SothebAIs bid 1", json!({})).await;
        assert_eq!(bid_for(&app, &auction, &post).await["status"], "accepted");
        app.stop().await.expect("stops");
    }

    async fn a_tight_rate_limit_is_waited_out_and_every_bid_is_decided(backend: Backend) {
        let sim = SimServer::start().await;
        sim.control(Method::PUT, "/sim/limits", Some(json!({ "endpoint": "mentions", "limit": 3, "window_secs": 2 }))).await;
        let app = show(backend, &sim, &[]).await;
        let auction = app.create_auction(json!({ "title": "Busy", "increment_table": [], "increment_percent": 0 })).await;
        announcement(&sim, "Busy").await;
        let started = std::time::Instant::now();
        let mut posts = Vec::new();
        for (index, name) in ["a1", "a2", "a3", "a4", "a5", "a6"].iter().enumerate() {
            posts.push(sim.post(name, &format!("@SothebAIs bid {}", 1 + index), json!({})).await);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        for post in &posts {
            bid_for(&app, &auction, post).await;
        }
        let windows = started.elapsed().as_secs() / 2 + 2;
        let billing = sim.control(Method::GET, "/sim/billing", None).await;
        let refused = billing["refused"]["mentions"].as_u64().unwrap_or(0);
        assert!(refused <= windows, "at most one 429 per window: {refused} in {windows} windows");
        let (_, status) = app.get("/api/social/status").await;
        assert!(status["data"]["rate_limits"]["mentions"]["reset_at"].is_string(), "{status}");
        app.stop().await.expect("stops");
    }

    async fn a_late_post_counts_by_its_creation_time_within_the_grace_only(backend: Backend) {
        let sim = SimServer::start().await;
        let app = show(backend, &sim, &[]).await;
        let auction = app
            .create_auction(json!({ "title": "Last Call", "duration_secs": 30, "late_grace_secs": 15, "anti_snipe": null }))
            .await;
        announcement(&sim, "Last Call").await;
        let ends_at: chrono::DateTime<chrono::Utc> =
            app.auction(&auction).await["ends_at"].as_str().expect("ends_at").parse().expect("time");
        let created_in_time = (ends_at - chrono::Duration::seconds(1)).to_rfc3339();
        // Past the end, within the grace: decided by when it was posted.
        app.clock.advance(Duration::from_secs(35));
        let in_grace = sim.post("curie", "@SothebAIs bid 1", json!({ "created_at": created_in_time })).await;
        assert_eq!(bid_for(&app, &auction, &in_grace).await["status"], "accepted");
        let posted_late = sim
            .post("noether", "@SothebAIs bid 3", json!({ "created_at": (ends_at + chrono::Duration::seconds(2)).to_rfc3339() }))
            .await;
        assert_eq!(bid_for(&app, &auction, &posted_late).await["reason"], "AUCTION_CLOSED");
        // Delivered after the grace: too late, whenever it was written.
        app.clock.advance(Duration::from_secs(15));
        app.settle(&auction).await;
        let after_grace = sim.post("hopper", "@SothebAIs bid 5", json!({ "created_at": created_in_time })).await;
        assert_eq!(bid_for(&app, &auction, &after_grace).await["reason"], "AUCTION_CLOSED");
        let result = eventually(WAIT, "the result is posted", async || {
            sim.show_posts().into_iter().find(|post| post.text.contains("SOLD"))
        })
        .await
        .expect("result");
        assert!(result.text.contains("@curie") && result.text.contains("1 ETH"), "{}", result.text);
        app.stop().await.expect("stops");
    }

    async fn an_expired_token_is_refreshed_once_and_the_new_pair_is_stored(backend: Backend) {
        let sim = SimServer::start().await;
        let app = show(backend, &sim, &[]).await;
        let auction = app.create_auction(json!({ "title": "Fresh Token" })).await;
        announcement(&sim, "Fresh Token").await;
        sim.control(Method::POST, "/sim/tokens/expire", None).await;
        let post = sim.post("curie", "@SothebAIs bid 1", json!({})).await;
        bid_for(&app, &auction, &post).await;
        reply_to(&sim, &post).await;
        let tokens = sim.control(Method::GET, "/sim/tokens", None).await;
        let valid: Vec<&str> = tokens["refresh_tokens"].as_array().expect("list").iter().filter_map(Value::as_str).collect();
        assert_eq!(valid.len(), 1, "one refresh, one live refresh token: {tokens}");
        let stored: Value = serde_json::from_slice(
            &std::fs::read(app.data_dir().path().join("x-tokens.json")).expect("token file"),
        )
        .expect("json");
        assert_eq!(stored["refresh_token"], valid[0], "the rotated refresh token is the one stored");
        let billing = sim.control(Method::GET, "/sim/billing", None).await;
        assert_eq!(billing["requests"]["token"], 1, "refreshed exactly once: {billing}");
        app.stop().await.expect("stops");
    }

    async fn the_status_spend_is_what_x_billed(backend: Backend) {
        let sim = SimServer::start().await;
        let app = show(backend, &sim, &[]).await;
        let auction = app.create_auction(json!({ "title": "Ledger" })).await;
        let thread = announcement(&sim, "Ledger").await;
        let first = sim.post("curie", "@SothebAIs bid 1", json!({})).await;
        let second = sim.post("noether", "bid 1.5", json!({ "in_reply_to": thread })).await;
        bid_for(&app, &auction, &first).await;
        bid_for(&app, &auction, &second).await;
        reply_to(&sim, &first).await;
        // Quiet now: let a few more polls pass so both sides have counted the same calls.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let billing = sim.control(Method::GET, "/sim/billing", None).await;
        let (_, status) = app.get("/api/social/status").await;
        let spend = status["data"]["spend_usd"]["show"].as_f64().expect("spend");
        let billed = billing["usd"].as_f64().expect("usd");
        assert!((spend - billed).abs() < 1e-9, "status says {spend}, X billed {billed}: {status} {billing}");
        assert!(billed > 0.0);
        assert_eq!(status["data"]["connected"], true);
        assert_eq!(status["data"]["handle"], "SothebAIs");
        app.stop().await.expect("stops");
    }
}

#[tokio::test]
async fn without_credentials_the_social_role_idles_and_says_so() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let (status, body) = app.get("/api/social/status").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["configured"], false);
    assert_eq!(body["data"]["connected"], false);
    app.stop().await.expect("stops");
}

both_backends! {
    async fn an_edit_counts_as_its_first_version(backend: Backend) {
        let sim = SimServer::start().await;
        let app = show(backend, &sim, &[]).await;
        let auction = app.create_auction(json!({ "title": "Second Thoughts" })).await;
        announcement(&sim, "Second Thoughts").await;
        let post = sim.post("curie", "@SothebAIs bid 1.5", json!({})).await;
        bid_for(&app, &auction, &post).await;
        sim.control(Method::POST, &format!("/sim/posts/{post}/edit"), Some(json!({ "text": "@SothebAIs bid 9" }))).await;
        let later = sim.post("noether", "@SothebAIs bid 2", json!({})).await;
        bid_for(&app, &auction, &later).await;
        let bids = app.history(&auction).await;
        assert_eq!(bids.len(), 2, "the edit made no bid: {bids:?}");
        assert!(bids.iter().all(|bid| bid["amount"] != "9"));
        app.stop().await.expect("stops");
    }

    async fn server_errors_and_partial_answers_lose_no_bid(backend: Backend) {
        let sim = SimServer::start().await;
        let app = show(backend, &sim, &[]).await;
        let auction = app.create_auction(json!({ "title": "Bumpy" })).await;
        announcement(&sim, "Bumpy").await;
        sim.control(Method::POST, "/sim/faults", Some(json!({ "endpoint": "mentions", "kind": "server_error", "count": 2 }))).await;
        sim.control(Method::POST, "/sim/faults", Some(json!({ "endpoint": "mentions", "kind": "partial", "count": 3 }))).await;
        sim.control(Method::POST, "/sim/faults", Some(json!({ "endpoint": "post", "kind": "server_error", "count": 1 }))).await;
        let post = sim.post("curie", "@SothebAIs bid 1", json!({})).await;
        assert_eq!(bid_for(&app, &auction, &post).await["status"], "accepted");
        reply_to(&sim, &post).await;
        app.stop().await.expect("stops");
    }

    async fn credentials_x_refuses_after_a_refresh_fail_the_x_api_check(backend: Backend) {
        let sim = SimServer::start().await;
        let app = show(backend, &sim, &[]).await;
        let health = app.url(ServiceRole::Social, ListenerKind::Health, "/health");
        eventually(WAIT, "x_api is ok", async || {
            let body: Value = app.client.get(&health).send().await.ok()?.json().await.ok()?;
            (body["checks"]["x_api"] == "ok").then_some(())
        })
        .await
        .expect("healthy first");
        sim.control(Method::POST, "/sim/faults", Some(json!({ "endpoint": "mentions", "kind": "unauthorized", "count": 1000 }))).await;
        let body = eventually(WAIT, "x_api fails", async || {
            let response = app.client.get(&health).send().await.ok()?;
            let status = response.status().as_u16();
            let body: Value = response.json().await.ok()?;
            (status == 503 && body["checks"]["x_api"] != "ok").then_some(body)
        })
        .await
        .expect("failing");
        assert!(body["checks"]["x_api"].as_str().unwrap_or_default().contains("credentials"), "{body}");
        let billing = sim.control(Method::GET, "/sim/billing", None).await;
        assert!(billing["requests"]["token"].as_u64() >= Some(1), "refreshed before giving up: {billing}");
        app.stop().await.expect("stops");
    }

    async fn a_dry_run_decides_bids_and_posts_nothing(backend: Backend) {
        let sim = SimServer::start().await;
        let app = show(backend, &sim, &[("X_DRY_RUN", "true")]).await;
        let auction = app.create_auction(json!({ "title": "Rehearsal" })).await;
        let post = sim.post("curie", "@SothebAIs bid 1", json!({})).await;
        assert_eq!(bid_for(&app, &auction, &post).await["status"], "accepted");
        let status = eventually(WAIT, "the writes are settled", async || {
            let (_, status) = app.get("/api/social/status").await;
            (status["data"]["writes"]["accepted"]["sent"] == 1 && status["data"]["writes"]["announcement"]["sent"] == 1)
                .then_some(status)
        })
        .await
        .expect("settled");
        assert_eq!(status["data"]["dry_run"], true);
        assert!(sim.show_posts().is_empty(), "nothing was posted: {:?}", sim.show_posts());
        app.stop().await.expect("stops");
    }
}

#[tokio::test]
async fn x_login_exchanges_the_code_and_stores_the_tokens() {
    let sim = SimServer::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = sim.settings();
    settings.insert("SOTHEBAIS_DATA_DIR".into(), dir.path().display().to_string());
    let env = move |key: &str| settings.get(key).cloned();
    let config = sothebais_backend::Config::load(&Default::default(), None, &env).expect("config");
    let (sender, receiver) = tokio::sync::oneshot::channel::<String>();
    let browser = tokio::spawn(async move {
        let url = receiver.await.expect("the URL to open");
        // The "browser": X approves and redirects to the local callback.
        reqwest::get(url).await.expect("authorize").text().await.expect("page")
    });
    let tokens = sothebais_backend::social::login::login(&config, 0, move |url| {
        let _ = sender.send(url.to_owned());
    })
    .await
    .expect("login");
    assert!(browser.await.expect("browser").contains("close this tab"));
    let stored: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("x-tokens.json")).expect("token file"))
            .expect("json");
    assert_eq!(stored["access_token"], tokens.access_token);
    let live = sim.control(Method::GET, "/sim/tokens", None).await;
    assert!(
        live["access_tokens"].as_array().expect("list").iter().any(|token| token == &stored["access_token"])
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode =
            std::fs::metadata(dir.path().join("x-tokens.json")).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

both_backends! {
    async fn short_of_budget_rejections_are_batched_and_the_budget_is_kept(backend: Backend) {
        let sim = SimServer::start().await;
        let app = show(backend, &sim, &[("X_REPLY_BUDGET_PER_15MIN", "3")]).await;
        let auction = app.create_auction(json!({ "title": "Thrifty" })).await;
        announcement(&sim, "Thrifty").await;
        let accepted = sim.post("curie", "@SothebAIs bid 1", json!({})).await;
        let mut low = Vec::new();
        for name in ["l1", "l2", "l3", "l4"] {
            low.push(sim.post(name, "@SothebAIs bid 0.5", json!({})).await);
        }
        for post in low.iter().chain([&accepted]) {
            bid_for(&app, &auction, post).await;
        }
        let status = eventually(WAIT, "every rejection is sent or batched", async || {
            let (_, status) = app.get("/api/social/status").await;
            let rejected = &status["data"]["writes"]["rejected"];
            let settled = rejected["sent"].as_u64().unwrap_or(0) + rejected["batched"].as_u64().unwrap_or(0);
            (settled == 4).then_some(status)
        })
        .await
        .expect("settled");
        assert!(status["data"]["writes"]["rejected"]["batched"].as_u64() >= Some(2), "{status}");
        let answered = eventually(WAIT, "the accepted bid is answered", async || {
            (sim.replies_to(&accepted).len() == 1).then_some(())
        })
        .await;
        assert!(answered.is_ok(), "a quarter of the budget is kept for accepted bids: {:?}", sim.show_posts());
        assert!(sim.show_posts().len() <= 3, "the budget of 3 posts is kept: {:?}", sim.show_posts());
        app.stop().await.expect("stops");
    }

    async fn in_the_budgets_last_eighth_accepted_bids_are_named_in_standings_not_left_waiting(backend: Backend) {
        let sim = SimServer::start().await;
        // Eight posts per 15 min, the last one kept for announcements, results and
        // standings; seven bidders each outbid the last.
        let app = show(backend, &sim, &[("X_REPLY_BUDGET_PER_15MIN", "8")]).await;
        let auction = app.create_auction(json!({ "title": "Last Eighth", "duration_secs": 120 })).await;
        let thread = announcement(&sim, "Last Eighth").await;
        let mut posts = Vec::new();
        for (index, name) in ["b1", "b2", "b3", "b4", "b5", "b6", "b7"].iter().enumerate() {
            let post = sim.post(name, &format!("@SothebAIs bid {}", index + 1), json!({})).await;
            assert_eq!(bid_for(&app, &auction, &post).await["status"], "accepted");
            posts.push((*name, post));
        }
        eventually(WAIT, "every reply is sent or batched", async || {
            let (_, status) = app.get("/api/social/status").await;
            let accepted = &status["data"]["writes"]["accepted"];
            let settled = accepted["sent"].as_u64().unwrap_or(0) + accepted["batched"].as_u64().unwrap_or(0);
            (settled == 7).then_some(())
        })
        .await
        .expect("settled");
        app.clock.advance(Duration::from_secs(21));
        let standings = eventually(WAIT, "a standings post", async || {
            sim.replies_to(&thread).into_iter().find(|reply| reply.text.contains("standings"))
        })
        .await
        .expect("standings post");
        assert!(standings.text.contains("Accepted: @"), "{}", standings.text);
        assert!(sim.show_posts().len() <= 8, "the budget of 8 is kept: {:?}", sim.show_posts());
        // Once the window frees, whoever is still owed is named in the next one.
        app.clock.advance(Duration::from_secs(15 * 60 + 21));
        eventually(WAIT, "every bidder heard", async || {
            let standings: String = sim
                .replies_to(&thread)
                .into_iter()
                .filter(|reply| reply.text.contains("standings"))
                .map(|reply| reply.text)
                .collect();
            posts
                .iter()
                .all(|(name, post)| {
                    sim.replies_to(post).iter().any(|reply| !reply.text.contains("outbid"))
                        || standings.contains(&format!("@{name}"))
                })
                .then_some(())
        })
        .await
        .unwrap_or_else(|error| panic!("{error}: {:?}", sim.show_posts()));
        app.stop().await.expect("stops");
    }

    async fn past_the_spend_limit_bids_are_still_read_and_only_results_posted(backend: Backend) {
        let sim = SimServer::start().await;
        // users/me ($0.010) and the announcement ($0.015) already pass $0.02.
        let app = show(backend, &sim, &[("X_SPEND_LIMIT_USD", "0.02")]).await;
        let auction = app.create_auction(json!({ "title": "Budget Lot", "duration_secs": 20, "anti_snipe": null })).await;
        announcement(&sim, "Budget Lot").await;
        let post = sim.post("curie", "@SothebAIs bid 1", json!({})).await;
        assert_eq!(bid_for(&app, &auction, &post).await["status"], "accepted", "reads are never cut");
        eventually(WAIT, "the reply is dropped", async || {
            let (_, status) = app.get("/api/social/status").await;
            (status["data"]["writes"]["accepted"]["dropped"] == 1).then_some(())
        })
        .await
        .expect("dropped");
        assert!(sim.replies_to(&post).is_empty());
        app.clock.advance(Duration::from_secs(40));
        app.settle(&auction).await;
        eventually(WAIT, "the result is still posted", async || {
            sim.show_posts().into_iter().find(|post| post.text.contains("SOLD"))
        })
        .await
        .expect("result");
        app.stop().await.expect("stops");
    }
}
