//! Ethereum against a real local chain (anvil): the committed contract artifacts, the
//! settlement contract's two legs in one transaction, wallet links signed with
//! Sign-In with Ethereum, and the `rpc` health check.

use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::signers::SignerSync as _;
use alloy::signers::local::PrivateKeySigner;
use serde_json::{Value, json};
use sothebais_backend::chain::contracts::{SothebaisSettlement, auction_key};
use sothebais_backend::chain::{CacheAt, Chain, ChainError};
use sothebais_backend::config::ChainConfig;

use crate::helpers::chain::{ChainFixture, eth};
use crate::helpers::{Backend, Role, TestApp, both_backends, json as read_json};

#[test]
fn the_committed_contract_artifacts_are_what_solc_makes_of_the_sources() {
    let contracts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts");
    let output = std::process::Command::new("node")
        .arg("compile.mjs")
        .arg("--check")
        .current_dir(&contracts)
        .output()
        .expect("node runs (npm ci --prefix contracts installs solc)");
    assert!(
        output.status.success(),
        "contracts/out is stale; run `node contracts/compile.mjs`:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_settlement_moves_the_nft_and_the_weth_in_one_transaction_and_an_auction_settles_once() {
    let chain = ChainFixture::start().await;
    let consignor = chain.anvil.account(10).await;
    let winner = chain.anvil.account(10).await;
    chain.mint(&consignor, 7, true).await;
    chain.fund(&winner, eth(2.0), eth(1.5)).await;
    let settlement = SothebaisSettlement::new(chain.deployed.settlement, chain.anvil.wallet(&chain.operator));
    let auction = auction_key(uuid::Uuid::now_v7());

    let receipt = settlement
        .settle(auction, chain.nft(), U256::from(7), consignor.address(), winner.address(), eth(1.5))
        .send()
        .await
        .expect("settle")
        .get_receipt()
        .await
        .expect("mined");
    assert!(receipt.status(), "the settlement succeeded");
    // One transaction: the WETH transfer, the NFT transfer and the Settled event.
    let emitters: Vec<Address> = receipt.inner.logs().iter().map(|log| log.address()).collect();
    assert!(emitters.contains(&chain.deployed.weth) && emitters.contains(&chain.nft()), "{emitters:?}");
    assert!(emitters.contains(&chain.deployed.settlement), "{emitters:?}");
    assert_eq!(chain.owner_of(7).await, winner.address());
    assert_eq!(chain.weth_balance(consignor.address()).await, eth(1.5));
    assert_eq!(chain.weth_balance(winner.address()).await, eth(0.5));
    assert!(settlement.settled(auction).call().await.expect("settled"));

    // The same auction id again: refused, and nothing moves.
    chain.mint(&consignor, 8, true).await;
    chain.fund(&winner, U256::ZERO, eth(0.5)).await;
    let again = settlement
        .settle(auction, chain.nft(), U256::from(8), consignor.address(), winner.address(), eth(0.5))
        .send()
        .await;
    let error = again.expect_err("a second settlement of one auction is refused").to_string();
    assert!(error.contains("revert"), "{error}");
    assert_eq!(chain.owner_of(8).await, consignor.address());
    assert_eq!(chain.weth_balance(winner.address()).await, eth(0.5));

    // Only the operator settles.
    let stranger = SothebaisSettlement::new(chain.deployed.settlement, chain.anvil.wallet(&winner));
    let error = stranger
        .settle(
            auction_key(uuid::Uuid::now_v7()),
            chain.nft(),
            U256::from(8),
            consignor.address(),
            winner.address(),
            eth(0.5),
        )
        .send()
        .await
        .expect_err("not the operator")
        .to_string();
    assert!(error.contains("revert"), "{error}");
    assert_eq!(chain.owner_of(8).await, consignor.address());
}

#[tokio::test]
async fn a_settlement_without_the_winners_allowance_moves_nothing() {
    let chain = ChainFixture::start().await;
    let consignor = chain.anvil.account(10).await;
    let winner = chain.anvil.account(10).await;
    chain.mint(&consignor, 1, true).await;
    chain.fund(&winner, eth(1.0), eth(0.2)).await;
    let settlement = SothebaisSettlement::new(chain.deployed.settlement, chain.anvil.wallet(&chain.operator));
    let refused = settlement
        .settle(
            auction_key(uuid::Uuid::now_v7()),
            chain.nft(),
            U256::from(1),
            consignor.address(),
            winner.address(),
            eth(1.0),
        )
        .send()
        .await;
    assert!(refused.is_err(), "an allowance below the price reverts the whole settlement");
    assert_eq!(chain.owner_of(1).await, consignor.address(), "the NFT did not move either");
    assert_eq!(chain.weth_balance(winner.address()).await, eth(1.0));
}

#[tokio::test]
async fn the_client_refuses_an_endpoint_on_another_chain_and_falls_back_when_the_primary_is_down() {
    let mut chain = ChainFixture::start().await;
    let wrong = ChainConfig { chain_id: 1, ..chain.config.clone() };
    let error = Chain::connect(&wrong, &CacheAt::default()).await.expect_err("chain 31337 is not mainnet");
    assert!(matches!(error, ChainError::WrongChain { expected: 1, found: 31337, .. }), "{error}");

    // The primary points at a closed port: reads go to the fallback.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let config = ChainConfig {
        rpc_url: Some(dead.clone().into()),
        rpc_fallback_url: Some(chain.anvil.url().into()),
        ..chain.config.clone()
    };
    let client = Chain::connect(&config, &CacheAt::default()).await.expect("connects").expect("configured");
    let holder = chain.anvil.account(1).await;
    chain.fund(&holder, eth(0.3), eth(0.2)).await;
    let funds = client.funds(holder.address(), None).await.expect("read through the fallback");
    assert_eq!((funds.balance, funds.allowance), (eth(0.3), eth(0.2)));

    // Both down: an error that names the method, never a hang past the timeouts.
    chain.anvil.stop();
    let started = std::time::Instant::now();
    let error = client.read_funds(holder.address()).await.expect_err("no endpoint answers");
    assert!(matches!(error, ChainError::Unavailable { .. }), "{error}");
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("port")
        .port()
}

async fn spawn_with_chain(backend: Backend, chain: &ChainFixture) -> TestApp {
    spawn_with_chain_and(backend, chain, &[]).await
}

async fn spawn_with_chain_and(backend: Backend, chain: &ChainFixture, extra: &[(&str, &str)]) -> TestApp {
    let mut settings: Vec<(String, String)> = chain.settings();
    settings.push(("SOTHEBAIS_DOMAIN".into(), "show.example".into()));
    settings.extend(extra.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())));
    let pairs: Vec<(&str, &str)> =
        settings.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
    TestApp::spawn_with(backend, &pairs).await
}

/// The message to sign for `handle` and `signer`.
async fn challenge(app: &TestApp, handle: &str, signer: &PrivateKeySigner) -> String {
    let path = format!("/api/chain/link/nonce?handle={handle}&address={}", signer.address());
    let (status, body) = app.get(&path).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["message"].as_str().expect("message").to_owned()
}

async fn link(
    app: &TestApp,
    handle: &str,
    signer: &PrivateKeySigner,
    message: &str,
    signature: &str,
) -> (u16, Value) {
    let body = json!({ "handle": handle, "address": signer.address().to_checksum(None), "message": message, "signature": signature });
    read_json(app.client.post(app.gateway("/api/chain/link")).json(&body).send().await.expect("send")).await
}

fn sign(signer: &PrivateKeySigner, message: &str) -> String {
    signer.sign_message_sync(message.as_bytes()).expect("sign").to_string()
}

/// The auction role's count of funds read from the cache.
async fn cache_hits(app: &TestApp) -> u64 {
    let metrics = app.metrics(sothebais_backend::ServiceRole::Auction).await;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("chain_cache_total{outcome=\"hit\"} "))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

both_backends! {
    async fn a_wallet_links_to_a_handle_once_per_nonce_and_each_bad_link_names_its_reason(backend: Backend) {
        let chain = ChainFixture::start().await;
        let app = spawn_with_chain(backend, &chain).await;
        let wallet = PrivateKeySigner::random();

        let message = challenge(&app, "@Curie", &wallet).await;
        assert!(message.starts_with("show.example wants you to sign in with your Ethereum account:\n"), "{message}");
        assert!(message.contains("@curie") && message.contains("Chain ID: 31337"), "{message}");
        let signature = sign(&wallet, &message);
        let (status, body) = link(&app, "curie", &wallet, &message, &signature).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["address"], wallet.address().to_checksum(None));
        let (status, shown) = app.get("/api/chain/links/@curie").await;
        assert_eq!((status, &shown["data"]["handle"]), (200, &json!("@curie")), "{shown}");

        // The same signed message again: its nonce is spent.
        let (status, body) = link(&app, "curie", &wallet, &message, &signature).await;
        assert_eq!((status, code(&body)), (422, "NONCE_USED"), "{body}");

        // A message edited to another domain or chain, signed by the right key.
        let fresh = challenge(&app, "curie", &wallet).await;
        let other_domain = fresh.replacen("show.example", "evil.example", 1);
        let (status, body) = link(&app, "curie", &wallet, &other_domain, &sign(&wallet, &other_domain)).await;
        assert_eq!((status, code(&body)), (422, "WRONG_DOMAIN"), "{body}");
        let other_chain = fresh.replace("Chain ID: 31337", "Chain ID: 1");
        let (status, body) = link(&app, "curie", &wallet, &other_chain, &sign(&wallet, &other_chain)).await;
        assert_eq!((status, code(&body)), (422, "WRONG_CHAIN"), "{body}");

        // Signed by another key, or not a signature at all.
        let forged = sign(&PrivateKeySigner::random(), &fresh);
        let (status, body) = link(&app, "curie", &wallet, &fresh, &forged).await;
        assert_eq!((status, code(&body)), (422, "INVALID_SIGNATURE"), "{body}");
        assert!(body["error"]["message"].as_str().unwrap_or("").contains("not by"), "{body}");
        let (status, body) = link(&app, "curie", &wallet, &fresh, "0xdeadbeef").await;
        assert_eq!((status, code(&body)), (422, "INVALID_SIGNATURE"), "{body}");

        // The refused tries did not spend the fresh nonce.
        let (status, body) = link(&app, "curie", &wallet, &fresh, &sign(&wallet, &fresh)).await;
        assert_eq!(status, 200, "{body}");

        // Another wallet cannot take over a live link, even with a good signature.
        let other = PrivateKeySigner::random();
        let takeover = challenge(&app, "curie", &other).await;
        let (status, body) = link(&app, "curie", &other, &takeover, &sign(&other, &takeover)).await;
        assert_eq!((status, code(&body)), (409, "CONFLICT"), "{body}");

        // Revoked by an operator; the events say both.
        let revoke = app
            .client
            .delete(app.gateway("/api/chain/link?handle=curie"))
            .bearer_auth(crate::helpers::token(Role::Operator))
            .send()
            .await
            .expect("send");
        assert_eq!(revoke.status(), 200);
        let (_, shown) = app.get("/api/chain/links/curie").await;
        assert!(shown["data"]["revoked_at"].is_string(), "{shown}");
        let (_, linked) = app.get_as("/api/events/chain:wallet:linked/history", Role::Operator).await;
        let (_, revoked) = app.get_as("/api/events/chain:wallet:revoked/history", Role::Operator).await;
        assert_eq!(linked["data"]["events"].as_array().map(Vec::len), Some(2), "{linked}");
        assert_eq!(revoked["data"]["events"][0]["data"]["handle"], "@curie", "{revoked}");
    }

    async fn a_lot_is_refused_at_creation_unless_its_consignor_owns_it_and_approved_the_settlement(backend: Backend) {
        let chain = ChainFixture::start().await;
        let app = spawn_with_chain(backend, &chain).await;
        let consignor = chain.anvil.account(1).await;
        let other = chain.anvil.account(1).await;
        chain.mint(&consignor, 1, true).await;
        chain.mint(&consignor, 2, false).await;
        chain.mint(&other, 3, true).await;
        let lot = |token: u64| json!({ "chain_id": 31337, "contract": chain.nft().to_checksum(None), "token_id": token.to_string() });
        let create = |token: u64, consignor: String| {
            json!({ "title": "Checked lot", "starting_price": "1", "duration_secs": 60, "lot": lot(token), "consignor": consignor })
        };
        let seller = consignor.address().to_checksum(None);

        let (status, body) = app.post("/api/auction/auctions", Role::Operator, &create(1, seller.clone())).await;
        assert_eq!(status, 201, "owned and approved: {body}");

        let (status, body) = app.post("/api/auction/auctions", Role::Operator, &create(2, seller.clone())).await;
        assert_eq!((status, code(&body)), (422, "LOT_CHECK_FAILED"), "{body}");
        assert_eq!(body["error"]["details"]["check"], "approval", "{body}");

        let (status, body) = app.post("/api/auction/auctions", Role::Operator, &create(3, seller.clone())).await;
        assert_eq!(body["error"]["details"]["check"], "ownerOf", "{status} {body}");
        assert!(body["error"]["message"].as_str().unwrap_or("").contains(&other.address().to_checksum(None)), "{body}");

        // A handle without a linked wallet cannot consign a checked lot; once linked, it can.
        let (status, body) = app.post("/api/auction/auctions", Role::Operator, &create(1, "@seller".into())).await;
        assert_eq!((status, body["error"]["details"]["check"].as_str()), (422, Some("consignor")), "{body}");
        let message = challenge(&app, "seller", &consignor).await;
        let (status, body) = link(&app, "seller", &consignor, &message, &sign(&consignor, &message)).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = app.post("/api/auction/auctions", Role::Operator, &create(1, "@seller".into())).await;
        assert_eq!(status, 201, "the linked wallet owns it: {body}");
    }

    async fn bids_are_checked_for_a_linked_wallet_and_for_funds_that_cover_them(backend: Backend) {
        let chain = ChainFixture::start().await;
        let app = spawn_with_chain_and(backend, &chain, &[("ETH_CACHE_TTL_MS", "60000")]).await;
        let rich = chain.anvil.account(5).await;
        let stingy = chain.anvil.account(5).await;
        chain.fund(&rich, eth(3.0), eth(3.0)).await;
        chain.fund(&stingy, eth(3.0), U256::ZERO).await;
        for (handle, wallet) in [("rich", &rich), ("stingy", &stingy)] {
            let message = challenge(&app, handle, wallet).await;
            let (status, body) = link(&app, handle, wallet, &message, &sign(wallet, &message)).await;
            assert_eq!(status, 200, "{body}");
        }

        let wallet_only = app.create_auction(json!({ "verification": "wallet" })).await;
        let (status, body) = app.bid(&wallet_only, "@unlinked", "1", None).await;
        assert_eq!((status, code(&body)), (422, "BIDDER_NOT_VERIFIED"), "{body}");
        let (status, body) = app.bid(&wallet_only, "@stingy", "1", None).await;
        assert_eq!(status, 200, "a linked wallet is enough here: {body}");

        // A bidder token speaks for its subject: naming another's handle in the body
        // does not borrow their wallet.
        let mallory = sothebais_kit::access::issue_token(
            &secrecy::SecretString::from(crate::helpers::JWT_SECRET.to_owned()),
            "mallory",
            Role::Bidder,
            Duration::from_secs(60),
        )
        .expect("token");
        let borrowed = json!({ "auction_id": wallet_only, "amount": "2", "bidder": { "id": "mallory", "handle": "@stingy" } });
        let (status, body) = read_json(
            app.client.post(app.gateway("/api/auction/bid")).bearer_auth(&mallory).json(&borrowed).send().await.expect("send"),
        )
        .await;
        assert_eq!((status, code(&body)), (422, "BIDDER_NOT_VERIFIED"), "{body}");

        let funds = app.create_auction(json!({ "verification": "funds" })).await;
        let hits_before = cache_hits(&app).await;
        let (status, body) = app.bid(&funds, "@stingy", "1", None).await;
        assert_eq!((status, code(&body)), (422, "INSUFFICIENT_FUNDS"), "no allowance: {body}");
        let (status, body) = app.bid(&funds, "@rich", "2", None).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = app.bid(&funds, "@rich", "3.5", None).await;
        assert_eq!((status, code(&body)), (422, "INSUFFICIENT_FUNDS"), "more than the balance: {body}");
        let (status, body) = app.bid(&funds, "@unlinked", "2.5", None).await;
        assert_eq!((status, code(&body)), (422, "BIDDER_NOT_VERIFIED"), "{body}");

        // @rich's second bid read the funds from the cache: Redis in production.
        assert!(cache_hits(&app).await > hits_before, "a cache hit was counted");
        if backend == Backend::Production {
            use secrecy::ExposeSecret as _;
            let config = &app.state.config;
            let url = config.redis_url.as_ref().expect("production has Redis").expose_secret().to_owned();
            let mut redis = redis::Client::open(url).expect("url").get_multiplexed_async_connection().await.expect("redis");
            let key = format!("{}chain:funds:{}", config.redis_key_prefix, rich.address().to_checksum(None));
            let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut redis).await.expect("PTTL");
            assert!(ttl > 0, "{key} is cached in Redis with a TTL ({ttl} ms)");
        }

        // Funds checks need a chain that knows WETH and the settlement contract.
        let plain = TestApp::spawn(backend).await;
        let new = json!({ "title": "x", "starting_price": "1", "verification": "funds" });
        let (status, body) = plain.post("/api/auction/auctions", Role::Operator, &new).await;
        assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("verification")), "{body}");
    }

    async fn a_funds_check_that_misses_its_deadline_follows_the_policy_and_stalls_no_other_bid(backend: Backend) {
        // An endpoint that takes connections and never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let silent_url = format!("http://{}", silent.local_addr().expect("addr"));
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                open.push(socket);
            }
        });
        let settings = [
            ("ETH_RPC_URL", silent_url.as_str()),
            ("ETH_CHAIN_ID", "31337"),
            ("ETH_RPC_TIMEOUT_MS", "5000"),
            ("ETH_CHECK_DEADLINE_MS", "300"),
            ("ETH_WETH_ADDRESS", "0x00000000000000000000000000000000000000aa"),
            ("ETH_SETTLEMENT_ADDRESS", "0x00000000000000000000000000000000000000bb"),
            ("SOTHEBAIS_DOMAIN", "show.example"),
        ];
        let app = TestApp::spawn_with(backend, &settings).await;
        let wallet = PrivateKeySigner::random();
        let message = challenge(&app, "curie", &wallet).await;
        let (status, body) = link(&app, "curie", &wallet, &message, &sign(&wallet, &message)).await;
        assert_eq!(status, 200, "links need no RPC: {body}");

        let strict = app.create_auction(json!({ "verification": "funds" })).await;
        let lenient = app.create_auction(json!({ "verification": "funds", "unverifiable": "accept" })).await;
        let plain = app.create_auction(json!({})).await;

        // The checked bid waits out its deadline; a bid on another auction, sent
        // after it, is decided first.
        let checked = async {
            let answer = app.bid(&strict, "@curie", "1", None).await;
            (answer, std::time::Instant::now())
        };
        let other = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let answer = app.bid(&plain, "@hopper", "1", None).await;
            (answer, std::time::Instant::now())
        };
        let (((status, body), checked_at), ((other_status, other_body), other_at)) = tokio::join!(checked, other);
        assert_eq!((status, code(&body)), (422, "INSUFFICIENT_FUNDS"), "unverifiable: reject: {body}");
        assert_eq!(other_status, 200, "{other_body}");
        assert!(other_at < checked_at, "the bid on another auction did not wait for the check");

        let (status, body) = app.bid(&lenient, "@curie", "1", None).await;
        assert_eq!(status, 200, "unverifiable: accept takes the bid provisionally: {body}");
        held.abort();
    }

    async fn the_auction_roles_health_reports_the_rpc_it_checked(backend: Backend) {
        let mut chain = ChainFixture::start().await;
        let app = spawn_with_chain(backend, &chain).await;
        let url = app.url(sothebais_backend::ServiceRole::Auction, sothebais_backend::app::ListenerKind::Health, "/health");
        let (status, body) = read_json(app.client.get(&url).send().await.expect("health")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["checks"]["rpc"], "ok", "{body}");
        chain.anvil.stop();
        let (_, body) = read_json(app.client.get(&url).send().await.expect("health")).await;
        assert_ne!(body["checks"]["rpc"], "ok", "a stopped node fails the check: {body}");
        assert_ne!(body["status"], "ok", "{body}");
    }
}
