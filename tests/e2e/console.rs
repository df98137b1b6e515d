//! The console in a real browser: Debian's Chromium driven over WebDriver
//! (chromedriver, `fantoccini`), against the real `sothebais` binary and a real
//! renderer. Accounts are made with `sothebais user add`, as an operator would.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use sothebais_testkit::Backend;
use sothebais_testkit::process::{Process, binary, gateway, token};

const START: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(30);
const PASSWORD: &str = "a long console password";

fn repo(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// `sothebais user …` in the server's folder; its standard output.
fn user_command(dir: &Path, env: &BTreeMap<String, String>, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(binary("sothebais"))
        .arg("user")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sothebais user");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write the password");
    let output = child.wait_with_output().expect("wait");
    assert!(output.status.success(), "sothebais user {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Chromium under chromedriver, headless.
struct Browser {
    client: Client,
    _driver: Process,
}

async fn browser(dir: &Path) -> Browser {
    let port = free_port();
    let home = BTreeMap::from([("HOME".to_owned(), dir.display().to_string())]);
    let driver = Process::start(Path::new("/usr/bin/chromedriver"), &[&format!("--port={port}")], dir, &home)
        .expect("start chromedriver (Debian package chromium-driver)");
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"],
        }),
    );
    let deadline = Instant::now() + WAIT;
    let client = loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => break client,
            Err(error) => {
                assert!(Instant::now() < deadline, "chromedriver did not start a browser: {error}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    };
    Browser { client, _driver: driver }
}

/// Waits until `probe` gives a value, or fails naming `what`.
async fn until<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn text_of(client: &Client, css: &str) -> String {
    match client.find(Locator::Css(css)).await {
        Ok(element) => element.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

async fn sign_in(client: &Client, base: &str, name: &str) {
    client.goto(&format!("{base}/")).await.expect("open the console");
    let form =
        client.wait().at_most(WAIT).for_element(Locator::Css("#login-form")).await.expect("the sign-in page");
    form.find(Locator::Css("input[name=username]"))
        .await
        .expect("name field")
        .send_keys(name)
        .await
        .expect("type");
    form.find(Locator::Css("input[name=password]"))
        .await
        .expect("password field")
        .send_keys(PASSWORD)
        .await
        .expect("type");
    form.find(Locator::Css("button[type=submit]")).await.expect("button").click().await.expect("submit");
    until("signed in", async || text_of(client, "header .who").await.contains(name).then_some(())).await;
}

async fn api(http: &reqwest::Client, url: &str) -> Value {
    http.get(url).send().await.expect("request").json().await.expect("json")
}

/// Presses the button of `row_css` whose text is `label`, finding it again when the
/// section was redrawn under it (htmx swaps sections when the show changes).
async fn press(client: &Client, row_css: &str, label: &str) {
    until(&format!("a {label:?} button in {row_css} pressed"), async || {
        for button in client.find_all(Locator::Css(&format!("{row_css} button"))).await.ok()? {
            if button.text().await.ok()?.trim() == label {
                return button.click().await.ok();
            }
        }
        None
    })
    .await;
}

#[tokio::test]
async fn an_operator_runs_the_show_from_the_browser_and_a_viewer_only_watches() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (api_port, ws_port) = (free_port(), free_port());
    let mut env = Backend::Embedded.process_settings().await;
    env.insert("STREAM_MANAGER_URL".into(), format!("http://127.0.0.1:{api_port}"));
    env.insert("STREAM_MANAGER_WS_URL".into(), format!("ws://127.0.0.1:{ws_port}"));

    // Accounts, made as an operator would.
    user_command(dir.path(), &env, &["add", "ada", "--role", "operator"], &format!("{PASSWORD}\n"));
    user_command(dir.path(), &env, &["add", "vic", "--role", "viewer"], &format!("{PASSWORD}\n"));
    let listed = user_command(dir.path(), &env, &["list"], "");
    assert!(listed.contains("ada") && listed.contains("operator") && listed.contains("vic"), "{listed}");

    let mut server = Process::start(&binary("sothebais"), &["serve"], dir.path(), &env).expect("start");
    let base = gateway(&server.wait_for_listeners(20, START).expect("listening"));
    let operator = token(dir.path(), &env, "operator").expect("token");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");

    // The renderer, small and slow enough for a machine without a GPU.
    let scenes = dir.path().join("scenes");
    copy_dir(&repo("scenes"), &scenes);
    let assets = dir.path().join("assets");
    copy_dir(&repo("assets"), &assets);
    let recording = dir.path().join("console.mkv");
    let mut renderer_env = BTreeMap::new();
    renderer_env.insert("SOTHEBAIS_DATA_DIR".to_owned(), dir.path().join("data").display().to_string());
    let (api_port_text, ws_port_text) = (api_port.to_string(), ws_port.to_string());
    let args = [
        "--output",
        recording.to_str().expect("path"),
        "--width",
        "640",
        "--height",
        "360",
        "--fps",
        "10",
        "--backend",
        &base,
        "--scenes",
        scenes.to_str().expect("path"),
        "--assets",
        assets.to_str().expect("path"),
        "--port",
        &api_port_text,
        "--ws-port",
        &ws_port_text,
        "--metrics-port",
        "0",
        "--health-port",
        "0",
    ];
    let mut renderer =
        Process::start(&binary("sothebais-renderer"), &args, dir.path(), &renderer_env).expect("renderer");
    renderer.wait_for_listeners(4, START).expect("renderer listening");

    let browser = browser(dir.path()).await;
    let client = &browser.client;

    // Sign in; the console shows the services as they report themselves.
    sign_in(client, &base, "ada").await;
    until("the services' health on the Live page", async || {
        let tiles = text_of(client, "#services").await;
        (tiles.contains("social") && tiles.contains("idle")).then_some(())
    })
    .await;

    // Create an auction through the form, then start it.
    client.goto(&format!("{base}/auctions")).await.expect("auctions page");
    let form = client.wait().at_most(WAIT).for_element(Locator::Css("#new-auction")).await.expect("the form");
    form.find(Locator::Css("input[name=title]"))
        .await
        .expect("title")
        .send_keys("Browser lot")
        .await
        .expect("type");
    form.find(Locator::Css("input[name=starting_price]"))
        .await
        .expect("price")
        .send_keys("2")
        .await
        .expect("type");
    form.find(Locator::Css("input[name=duration_secs]"))
        .await
        .expect("duration")
        .send_keys("600")
        .await
        .expect("type");
    form.find(Locator::Css("button[type=submit]")).await.expect("submit").click().await.expect("click");
    let auction_id = until("the new auction in the list", async || {
        let row = client.find(Locator::Css("tr[data-auction-row]")).await.ok()?;
        row.text().await.ok()?.contains("Browser lot").then_some(())?;
        row.attr("data-auction-row").await.ok()?
    })
    .await;
    press(client, &format!("tr[data-auction-row=\"{auction_id}\"]"), "Start now").await;
    until("the auction open", async || {
        let auction = api(&http, &format!("{base}/api/auction/auctions/{auction_id}")).await;
        (auction["data"]["state"] == "open").then_some(())
    })
    .await;

    // On the Live page a bid made through the API appears without a reload, and
    // the renderer's picture arrives over the WebSocket.
    client.goto(&format!("{base}/")).await.expect("live page");
    client.wait().at_most(WAIT).for_element(Locator::Css("#bid-feed")).await.expect("the bid feed");
    until("the preview picture", async || {
        let src = client.find(Locator::Css("#preview")).await.ok()?.attr("src").await.ok()??;
        src.starts_with("data:image/jpeg;base64,").then_some(())
    })
    .await;
    client.execute("window.notReloaded = true; return true;", vec![]).await.expect("mark the page");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bid = http
        .post(format!("{base}/api/auction/bid"))
        .bearer_auth(&operator)
        .json(&json!({ "auction_id": auction_id, "amount": "2.5", "bidder": { "id": "web:curie", "handle": "@curie" } }))
        .send()
        .await
        .expect("bid");
    assert_eq!(bid.status(), 200);
    until("the bid on the page", async || {
        text_of(client, "#bid-feed").await.contains("@curie bid 2.5 ETH").then_some(())
    })
    .await;
    until("the high bid on the page", async || {
        text_of(client, "#on-air").await.contains("2.5 ETH by @curie").then_some(())
    })
    .await;
    let same_page = client.execute("return window.notReloaded === true;", vec![]).await.expect("script");
    assert_eq!(same_page, json!(true), "the page was not reloaded");

    // The renderer's own OpenAPI document, bare, and merged behind the gateway.
    let stream_doc = api(&http, &format!("http://127.0.0.1:{api_port}/api/stream/openapi.json")).await;
    assert_eq!(stream_doc["openapi"], "3.1.0", "{stream_doc}");
    let merged = api(&http, &format!("{base}/api/openapi.json")).await;
    assert!(merged.get("info").and_then(|info| info.get("x-unavailable")).is_none(), "{}", merged["info"]);
    for (path, method) in
        [("/api/stream/status", "get"), ("/api/stream/layers/{id}", "post"), ("/api/auction/bid", "post")]
    {
        assert!(merged["paths"][path][method].is_object(), "{path} {method} in the merged document");
    }
    assert_eq!(
        merged["paths"]["/api/stream/status"]["get"], stream_doc["paths"]["/api/stream/status"]["get"],
        "the gateway lists the renderer's operation as the renderer documents it"
    );
    assert!(
        merged["paths"]["/api/stream/layers/{id}"]["post"]["requestBody"].is_object(),
        "the layer patch's schema comes from the renderer's wire type"
    );

    // Pin a scene on the running renderer and see the preview change to it.
    client.goto(&format!("{base}/stream")).await.expect("stream page");
    client.wait().at_most(WAIT).for_element(Locator::Css("li[data-scene=sold]")).await.expect("the scenes");
    until("a preview frame", async || {
        client.find(Locator::Css("#preview")).await.ok()?.attr("data-frame").await.ok()?
    })
    .await;
    press(client, "li[data-scene=sold]", "Pin").await;
    until("the pinned scene on air", async || {
        let status = api(&http, &format!("http://127.0.0.1:{api_port}/api/stream/status")).await;
        (status["data"]["scene"] == "sold").then_some(())
    })
    .await;
    let pinned_at: u64 = api(&http, &format!("http://127.0.0.1:{api_port}/api/stream/status")).await["data"]
        ["frames_rendered"]
        .as_u64()
        .expect("frames");
    until("the page saying the scene is on air", async || {
        text_of(client, "#scene-on-air").await.contains("sold").then_some(())
    })
    .await;
    until("a preview frame drawn after the pin", async || {
        let frame: u64 =
            client.find(Locator::Css("#preview")).await.ok()?.attr("data-frame").await.ok()??.parse().ok()?;
        (frame > pinned_at).then_some(())
    })
    .await;

    // Retry a dead letter: a valid event the store consumer once failed.
    let database = dir.path().join("data/sothebais.db");
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", database.display())).await.expect("open SQLite");
    let event_id = uuid::Uuid::now_v7();
    let payload = json!({
        "id": event_id, "type": "agent:mood", "source": "agent-service", "version": "1.0",
        "timestamp": chrono::Utc::now().timestamp_millis(),
        "data": { "mood": "happy", "intensity": 0.5, "expression": "happy.png" },
    });
    sqlx::query("INSERT INTO dead_letters (id, consumer, event_id, event_type, payload, error, attempts, failed_at_ms) VALUES (?, 'event-store', ?, 'agent:mood', ?, 'the database was down', 5, ?)")
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(event_id.to_string())
        .bind(payload.to_string())
        .bind(chrono::Utc::now().timestamp_millis())
        .execute(&pool)
        .await
        .expect("insert a dead letter");
    client.goto(&format!("{base}/events")).await.expect("events page");
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("tr[data-dead-letter]"))
        .await
        .expect("the dead letter");
    press(client, "tr[data-dead-letter]", "Retry").await;
    until("the dead letter delivered", async || {
        let letters = http
            .get(format!("{base}/api/events/dead-letters"))
            .bearer_auth(&operator)
            .send()
            .await
            .ok()?
            .json::<Value>()
            .await
            .ok()?;
        letters["data"]["events"].as_array()?.is_empty().then_some(())
    })
    .await;
    until("the page without it", async || {
        client.find(Locator::Css("tr[data-dead-letter]")).await.is_err().then_some(())
    })
    .await;

    // Cancel by the rules (a reason is asked for): after a bid only an admin may,
    // and the page says so; a lot without bids the operator cancels.
    let spare: Value = http
        .post(format!("{base}/api/auction/auctions"))
        .bearer_auth(&operator)
        .json(&json!({ "title": "Spare lot", "starting_price": "1" }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let spare_id = spare["data"]["id"].as_str().expect("id").to_owned();
    client.goto(&format!("{base}/auctions")).await.expect("auctions page");
    let open_row = format!("tr[data-auction-row=\"{auction_id}\"]");
    client.wait().at_most(WAIT).for_element(Locator::Css(&open_row)).await.expect("the row");
    press(client, &open_row, "Cancel").await;
    client.send_alert_text("withdrawn by the consignor").await.expect("give the reason");
    client.accept_alert().await.expect("confirm");
    until("the refusal on the page", async || {
        text_of(client, "#toast").await.contains("only an admin may cancel").then_some(())
    })
    .await;
    let auction = api(&http, &format!("{base}/api/auction/auctions/{auction_id}")).await;
    assert_eq!(auction["data"]["state"], "open", "the rules kept the lot open");
    let spare_row = format!("tr[data-auction-row=\"{spare_id}\"]");
    client.wait().at_most(WAIT).for_element(Locator::Css(&spare_row)).await.expect("the spare lot's row");
    press(client, &spare_row, "Cancel").await;
    client.send_alert_text("not ready").await.expect("give the reason");
    client.accept_alert().await.expect("confirm");
    until("the spare lot cancelled", async || {
        let auction = api(&http, &format!("{base}/api/auction/auctions/{spare_id}")).await;
        (auction["data"]["state"] == "cancelled").then_some(())
    })
    .await;
    until("the page showing it cancelled", async || {
        text_of(client, "#auction-list").await.contains("cancelled (1)").then_some(())
    })
    .await;

    // Every write above is in the audit trail under the account.
    let admin = token(dir.path(), &env, "admin").expect("token");
    let audit: Value = http
        .get(format!("{base}/api/admin/audit"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    let entries = audit["data"]["entries"].as_array().expect("entries");
    for path in [
        "/api/auction/auctions",
        "/api/stream/scenes/active",
        &format!("/api/auction/auctions/{auction_id}/cancel"),
    ] {
        assert!(
            entries
                .iter()
                .any(|entry| entry["path"] == path && entry["account"] == "ada" && entry["via"] == "session"),
            "{path}: {audit}"
        );
    }

    // Sign out: the console asks to sign in again.
    client
        .find(Locator::Css("button[data-logout]"))
        .await
        .expect("sign-out button")
        .click()
        .await
        .expect("click");
    until("the sign-in page", async || client.find(Locator::Css("#login-form")).await.ok().map(drop)).await;
    client.goto(&format!("{base}/system")).await.expect("system page");
    client.wait().at_most(WAIT).for_element(Locator::Css("#login-form")).await.expect("signed out");

    // A viewer sees the pages and is offered no action on the show (only their own
    // password); a forged write is refused.
    sign_in(client, &base, "vic").await;
    for page in
        ["/", "/auctions", &format!("/auctions/{auction_id}"), "/stream", "/host", "/events", "/system"]
    {
        client.goto(&format!("{base}{page}")).await.expect("page");
        client.wait().at_most(WAIT).for_element(Locator::Css("main")).await.expect("the page");
        let actions = client
            .find_all(Locator::Css(
                "main button[data-api], main form[data-api]:not(#own-password), main form[data-upload]",
            ))
            .await
            .expect("find");
        assert!(actions.is_empty(), "{page} offers a viewer {} actions", actions.len());
    }
    let status = client
        .execute(
            "const csrf = document.querySelector('meta[name=csrf-token]').content;\
             return fetch('/api/auction/auctions', { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },\
             body: JSON.stringify({ title: 'forged', starting_price: '1' }) }).then((response) => response.status);",
            vec![],
        )
        .await
        .expect("forged write");
    assert_eq!(status, json!(403), "a viewer's write is refused");

    browser.client.clone().close().await.expect("close the browser");
    renderer.terminate(Duration::from_secs(20)).expect("renderer stops");
    server.terminate(Duration::from_secs(20)).expect("server stops");
}

/// A browser wallet for the page: an EIP-1193 provider injected as `window.ethereum`
/// that holds no key. It answers `eth_requestAccounts` with the test's address and
/// parks each `personal_sign` until the test, which holds the key, signs the
/// message in Rust and hands the signature back.
const TEST_WALLET: &str = r#"
window.ethereum = {
  request: ({ method, params }) => {
    if (method === 'eth_requestAccounts') return Promise.resolve([arguments_address]);
    if (method === 'personal_sign') {
      return new Promise((resolve) => { window.pendingSign = { hex: params[0], address: params[1], resolve }; });
    }
    return Promise.reject(new Error('unsupported ' + method));
  },
};
return true;
"#;

#[tokio::test]
async fn a_bidder_links_a_wallet_from_the_browser_by_signing_the_message_of_the_link_page() {
    use alloy::signers::SignerSync as _;

    let dir = tempfile::tempdir().expect("temp dir");
    let env = Backend::Embedded.process_settings().await;
    let mut server = Process::start(&binary("sothebais"), &["serve"], dir.path(), &env).expect("start");
    let base = gateway(&server.wait_for_listeners(20, START).expect("listening"));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let wallet = alloy::signers::local::PrivateKeySigner::random();
    let browser = browser(dir.path()).await;
    let client = &browser.client;

    // Without a wallet, the page says so.
    client.goto(&format!("{base}/link")).await.expect("link page");
    let form =
        client.wait().at_most(WAIT).for_element(Locator::Css("form[data-wallet-link]")).await.expect("form");
    form.find(Locator::Css("input[name=handle]"))
        .await
        .expect("handle")
        .send_keys("@Curie")
        .await
        .expect("type");
    form.find(Locator::Css("button[type=submit]")).await.expect("button").click().await.expect("click");
    until("the no-wallet message", async || {
        text_of(client, "[data-status]").await.contains("No browser wallet found").then_some(())
    })
    .await;

    // With one: the page asks for the account, fetches the message, asks to sign.
    let script = TEST_WALLET.replace("arguments_address", &format!("'{}'", wallet.address()));
    client.execute(&script, vec![]).await.expect("inject the wallet");
    form.find(Locator::Css("button[type=submit]")).await.expect("button").click().await.expect("click");
    let hex = until("the page asking to sign", async || {
        let pending = client
            .execute("return window.pendingSign ? window.pendingSign.hex : null;", vec![])
            .await
            .ok()?;
        pending.as_str().map(str::to_owned)
    })
    .await;
    let bytes = alloy::hex::decode(&hex).expect("hex message");
    let message = String::from_utf8(bytes).expect("utf-8 message");
    let domain = base.trim_start_matches("http://");
    assert!(
        message.starts_with(&format!("{domain} wants you to sign in with your Ethereum account:")),
        "{message}"
    );
    assert!(message.contains("Link the X account @curie"), "{message}");
    let signature = wallet.sign_message_sync(message.as_bytes()).expect("sign").to_string();
    client
        .execute("window.pendingSign.resolve(arguments[0]); return true;", vec![json!(signature)])
        .await
        .expect("hand the signature back");

    let linked = until("the page saying it linked", async || {
        let status = text_of(client, "[data-status]").await;
        status.contains("Linked").then_some(status)
    })
    .await;
    assert!(linked.contains("@curie") && linked.contains(&wallet.address().to_checksum(None)), "{linked}");
    let shown: Value = http
        .get(format!("{base}/api/chain/links/curie"))
        .send()
        .await
        .expect("link")
        .json()
        .await
        .expect("json");
    assert_eq!(shown["data"]["address"], wallet.address().to_checksum(None), "{shown}");

    server.terminate(Duration::from_secs(20)).expect("server stops");
}
