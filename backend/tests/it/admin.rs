//! The console's API (`admin.md`): accounts and sessions, CSRF, login limits, the
//! audit trail, runtime settings, the block list, redaction, maintenance and the
//! services' status, on both backends.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sothebais_kit::access::Role;

use crate::helpers::{Backend, TestApp, assert_error, both_backends, json as read_json, token};

const PASSWORD: &str = "correct horse battery";

/// A signed-in browser: the session cookie and the CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

async fn add_account(app: &TestApp, name: &str, role: Role) {
    app.state.accounts.add(name, role, PASSWORD).await.expect("add the account");
}

async fn login(app: &TestApp, name: &str, password: &str) -> (u16, Value, Option<String>) {
    let response = app
        .client
        .post(app.gateway("/api/admin/login"))
        .json(&json!({ "username": name, "password": password }))
        .send()
        .await
        .expect("send");
    let cookie = response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with("sothebais_session="))
        .map(str::to_owned);
    let (status, body) = read_json(response).await;
    (status, body, cookie)
}

async fn sign_in(app: &TestApp, name: &str) -> Browser {
    let (status, body, cookie) = login(app, name, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let cookie = cookie.expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    // No lifetime fixed at sign-in: the server ends the session when it goes idle.
    assert!(!cookie.contains("Max-Age") && !cookie.contains("Expires"), "{cookie}");
    let value = cookie.split(';').next().expect("pair").to_owned();
    Browser { cookie: value, csrf: body["data"]["csrf_token"].as_str().expect("csrf token").to_owned() }
}

async fn call(
    app: &TestApp,
    browser: &Browser,
    method: Method,
    path: &str,
    body: Option<Value>,
    csrf: bool,
) -> (u16, Value) {
    let mut request = app.client.request(method, app.gateway(path)).header("cookie", &browser.cookie);
    if csrf {
        request = request.header("x-csrf-token", &browser.csrf);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    read_json(request.send().await.expect("send")).await
}

fn new_auction() -> Value {
    json!({ "title": "Console lot", "starting_price": "1" })
}

both_backends! {
    async fn wrong_password_and_unknown_user_get_the_same_answer(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        add_account(&app, "ada", Role::Operator).await;
        let (wrong_status, wrong, cookie) = login(&app, "ada", "not the password").await;
        let (unknown_status, unknown, _) = login(&app, "nobody", PASSWORD).await;
        assert_eq!((wrong_status, unknown_status), (401, 401));
        assert!(cookie.is_none());
        assert_eq!(wrong["error"], unknown["error"], "the answer must not tell which was wrong");
        assert_error(&wrong, "UNAUTHENTICATED");
    }

    async fn the_login_limit_engages_after_repeated_failures(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        add_account(&app, "ada", Role::Operator).await;
        for _ in 0..5 {
            let (status, _, _) = login(&app, "ada", "guess").await;
            assert_eq!(status, 401);
        }
        // Even the right password now waits: the delay grows with each failure.
        let (status, body, cookie) = login(&app, "ada", PASSWORD).await;
        assert_eq!(status, 429, "{body}");
        assert_error(&body, "RATE_LIMITED");
        assert!(cookie.is_none());
        assert!(body["error"]["details"]["retry_after_secs"].as_u64().is_some_and(|secs| secs >= 1), "{body}");
    }

    async fn logins_sent_side_by_side_are_throttled_as_they_arrive(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        add_account(&app, "ada", Role::Operator).await;
        let attempts = (0..12).map(|_| login(&app, "ada", "guess"));
        let statuses: Vec<u16> = futures::future::join_all(attempts).await.into_iter().map(|(status, _, _)| status).collect();
        let refused = statuses.iter().filter(|status| **status == 401).count();
        let throttled = statuses.iter().filter(|status| **status == 429).count();
        assert_eq!((refused, throttled), (5, 7), "only the free attempts reach a password check: {statuses:?}");
    }

    async fn setting_a_password_keeps_this_session_and_ends_the_others(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        add_account(&app, "ada", Role::Operator).await;
        let laptop = sign_in(&app, "ada").await;
        let phone = sign_in(&app, "ada").await;
        let new_password = "a new long password";
        let (status, body) = call(&app, &laptop, Method::POST, "/api/admin/password", Some(json!({ "password": new_password })), true).await;
        assert_eq!(status, 200, "{body}");
        let (status, _) = call(&app, &laptop, Method::GET, "/api/admin/session", None, false).await;
        assert_eq!(status, 200, "the session that set it goes on");
        let (status, _) = call(&app, &phone, Method::GET, "/api/admin/session", None, false).await;
        assert_eq!(status, 401, "every other session ends");
        let (status, _, _) = login(&app, "ada", new_password).await;
        assert_eq!(status, 200);
    }

    async fn a_session_ends_after_its_idle_time_and_on_sign_out(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        add_account(&app, "ada", Role::Operator).await;
        let browser = sign_in(&app, "ada").await;
        let (status, body) = call(&app, &browser, Method::GET, "/api/admin/session", None, false).await;
        assert_eq!((status, body["data"]["username"].as_str()), (200, Some("ada")), "{body}");
        app.clock.advance(Duration::from_secs(12 * 3600 + 1));
        let (status, _) = call(&app, &browser, Method::GET, "/api/admin/session", None, false).await;
        assert_eq!(status, 401, "12 h idle ends the session");

        let browser = sign_in(&app, "ada").await;
        let (status, _) = call(&app, &browser, Method::POST, "/api/admin/logout", None, true).await;
        assert_eq!(status, 200);
        let (status, body) = call(&app, &browser, Method::POST, "/api/auction/auctions", Some(new_auction()), true).await;
        assert_eq!(status, 401, "a signed-out cookie signs nobody in: {body}");
    }

    async fn a_cookie_write_without_the_csrf_token_is_refused(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        add_account(&app, "ada", Role::Operator).await;
        let browser = sign_in(&app, "ada").await;
        let (status, body) = call(&app, &browser, Method::POST, "/api/auction/auctions", Some(new_auction()), false).await;
        assert_eq!(status, 403, "{body}");
        assert_error(&body, "FORBIDDEN");
        let forged = Browser { cookie: browser.cookie.clone(), csrf: "0".repeat(64) };
        let (status, _) = call(&app, &forged, Method::POST, "/api/auction/auctions", Some(new_auction()), true).await;
        assert_eq!(status, 403, "a wrong token is no token");
        let (status, body) = call(&app, &browser, Method::POST, "/api/auction/auctions", Some(new_auction()), true).await;
        assert_eq!(status, 201, "{body}");
    }

    async fn a_viewer_account_reads_but_its_writes_are_refused(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        add_account(&app, "vic", Role::Viewer).await;
        let browser = sign_in(&app, "vic").await;
        let (status, body) = call(&app, &browser, Method::POST, "/api/auction/auctions", Some(new_auction()), true).await;
        assert_eq!(status, 403, "{body}");
        let (status, _) = call(&app, &browser, Method::GET, "/api/admin/services/status", None, false).await;
        assert_eq!(status, 200);
        let (status, _) = call(&app, &browser, Method::GET, "/api/admin/config", None, false).await;
        assert_eq!(status, 403, "configuration is for admins");
    }

    async fn the_audit_trail_names_the_account_of_each_write(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        add_account(&app, "ada", Role::Admin).await;
        let browser = sign_in(&app, "ada").await;
        let (status, _) = call(&app, &browser, Method::POST, "/api/auction/auctions", Some(new_auction()), true).await;
        assert_eq!(status, 201);
        let (status, _) = app.post("/api/auction/auctions", Role::Operator, &new_auction()).await;
        assert_eq!(status, 201);
        let (status, _) = call(&app, &browser, Method::POST, "/api/auction/auctions", Some(json!({ "title": "" })), true).await;
        assert_eq!(status, 400);
        let (status, body) = call(&app, &browser, Method::GET, "/api/admin/audit", None, false).await;
        assert_eq!(status, 200, "{body}");
        let entries = body["data"]["entries"].as_array().expect("entries").clone();
        let creates: Vec<&Value> = entries.iter().filter(|entry| entry["path"] == "/api/auction/auctions").collect();
        assert_eq!(creates.len(), 3, "{entries:?}");
        assert!(creates.iter().any(|entry| entry["account"] == "ada" && entry["via"] == "session" && entry["status"] == 201 && entry["role"] == "admin"));
        assert!(creates.iter().any(|entry| entry["via"] == "token" && entry["role"] == "operator" && entry["status"] == 201));
        assert!(creates.iter().any(|entry| entry["account"] == "ada" && entry["status"] == 400));
        assert!(entries.iter().any(|entry| entry["path"] == "/api/admin/login" && entry["account"] == "ada"));
    }

    async fn config_changes_take_effect_and_are_audited(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        add_account(&app, "ada", Role::Admin).await;
        let browser = sign_in(&app, "ada").await;
        let change = json!({ "X_REPLY_BUDGET_PER_15MIN": 40, "BLOCKED_BIDDERS": "@mallory" });
        let (status, body) = call(&app, &browser, Method::POST, "/api/admin/config", Some(change), true).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(app.state.runtime.reply_budget_per_15min(), 40);

        let auction = app.create_auction(json!({})).await;
        let (status, body) = app.bid(&auction, "mallory", "1", None).await;
        assert_eq!(status, 422, "{body}");
        assert_error(&body, "BIDDER_BLOCKED");

        let (status, body) = call(&app, &browser, Method::GET, "/api/admin/config", None, false).await;
        assert_eq!(status, 200);
        let budget = &body["data"]["settings"]["x_reply_budget_per_15min"];
        assert_eq!((budget["value"].as_str(), budget["origin"].as_str(), budget["changed_by"].as_str()), (Some("40"), Some("runtime"), Some("ada")), "{budget}");

        let (status, body) = call(&app, &browser, Method::POST, "/api/admin/config", Some(json!({ "DATABASE_URL": "postgres://elsewhere" })), true).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"]["details"]["field"], "DATABASE_URL", "{body}");
        assert!(body["error"]["message"].as_str().expect("message").contains("cannot change while running"), "{body}");

        let (_, body) = call(&app, &browser, Method::GET, "/api/admin/audit", None, false).await;
        let entries = body["data"]["entries"].as_array().expect("entries");
        assert!(entries.iter().any(|entry| entry["path"] == "/api/admin/config" && entry["account"] == "ada"
            && entry["note"].as_str().is_some_and(|note| note.contains("X_REPLY_BUDGET_PER_15MIN=40"))), "{entries:?}");
    }

    async fn a_change_made_by_one_process_reaches_another(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let other = app.sibling().await;
        let (status, body) = app.post("/api/admin/config", Role::Admin, &json!({ "X_SPEND_LIMIT_USD": "3.5" })).await;
        assert_eq!(status, 200, "{body}");
        crate::helpers::eventually(Duration::from_secs(10), "the other process reads the change", async || {
            (other.state.runtime.spend_limit_usd() == Some(3.5)).then_some(())
        })
        .await
        .expect("followed");
    }

    async fn blocked_bidders_are_refused_until_unblocked(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let auction = app.create_auction(json!({})).await;
        let (status, body) = app.post("/api/admin/blocklist", Role::Operator, &json!({ "entry": "@Eve", "reason": "spam" })).await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = app.bid(&auction, "eve", "1", None).await;
        assert_eq!(status, 422);
        assert_error(&body, "BIDDER_BLOCKED");
        let response = app.client.delete(app.gateway("/api/admin/blocklist?entry=@eve")).bearer_auth(token(Role::Operator)).send().await.expect("send");
        assert_eq!(response.status(), 200);
        let (status, body) = app.bid(&auction, "eve", "1", None).await;
        assert_eq!(status, 200, "{body}");
    }

    async fn accounts_are_added_listed_and_removed_and_removal_ends_sessions(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let (status, body) = app.post("/api/admin/users", Role::Admin, &json!({ "username": "olga", "role": "operator" })).await;
        assert_eq!(status, 201, "{body}");
        let generated = body["data"]["password"].as_str().expect("a generated password").to_owned();
        let (status, _, cookie) = login(&app, "olga", &generated).await;
        assert_eq!(status, 200);
        let browser = Browser { cookie: cookie.expect("cookie").split(';').next().expect("pair").to_owned(), csrf: String::new() };
        let (status, body) = app.get_as("/api/admin/users", Role::Admin).await;
        assert_eq!(status, 200);
        assert!(body["data"]["users"].as_array().expect("users").iter().any(|user| user["username"] == "olga" && user["role"] == "operator"));
        let (status, _) = app.post("/api/admin/users", Role::Admin, &json!({ "username": "olga", "role": "viewer", "password": PASSWORD })).await;
        assert_eq!(status, 409, "the name is taken");
        let (status, body) = app.post("/api/admin/users", Role::Admin, &json!({ "username": "Bad Name", "role": "viewer" })).await;
        assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("username")));
        let response = app.client.delete(app.gateway("/api/admin/users?username=olga")).bearer_auth(token(Role::Admin)).send().await.expect("send");
        assert_eq!(response.status(), 200);
        let (status, _) = call(&app, &browser, Method::GET, "/api/admin/session", None, false).await;
        assert_eq!(status, 401, "a removed account's session ends");
    }

    async fn the_first_start_link_signs_in_once_and_sets_the_password(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let token = app.state.accounts.first_start_token().await.expect("read").expect("no admin yet");
        let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        let response = no_redirects.get(app.gateway(&format!("/api/admin/first-login?token={token}"))).send().await.expect("send");
        assert_eq!(response.status(), 303);
        let cookie = response.headers()[reqwest::header::SET_COOKIE].to_str().expect("cookie").split(';').next().expect("pair").to_owned();
        let again = no_redirects.get(app.gateway(&format!("/api/admin/first-login?token={token}"))).send().await.expect("send");
        assert_eq!(again.status(), 401, "the link works once");
        let csrf = app.client.get(app.gateway("/api/admin/session")).header("cookie", &cookie).send().await.expect("send");
        let (_, session) = read_json(csrf).await;
        let browser = Browser { cookie, csrf: session["data"]["csrf_token"].as_str().expect("csrf").to_owned() };
        let (status, body) = call(&app, &browser, Method::POST, "/api/admin/password", Some(json!({ "password": PASSWORD })), true).await;
        assert_eq!(status, 200, "{body}");
        let (status, body, _) = login(&app, "admin", PASSWORD).await;
        assert_eq!((status, body["data"]["role"].as_str()), (200, Some("admin")), "{body}");
        assert!(app.state.accounts.first_start_token().await.expect("read").is_none(), "an admin exists now");
    }

    async fn services_report_their_own_health_and_an_unconfigured_role_is_idle(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        for path in ["/api/admin/services/status", "/api/admin/services/metrics"] {
            let (status, body) = app.get(path).await;
            assert_eq!(status, 401, "{path} is for signed-in callers: {body}");
        }
        let (status, body) = app.get_as("/api/admin/services/status", Role::Viewer).await;
        assert_eq!(status, 200, "{body}");
        let services = body["data"]["services"].as_array().expect("services");
        let status_of = |name: &str| services.iter().find(|service| service["name"] == name).map(|service| service["status"].clone());
        for role in ["auction", "events", "agent", "admin"] {
            assert_eq!(status_of(role), Some(json!("ok")), "{role}: {body}");
        }
        assert_eq!(status_of("social"), Some(json!("idle")), "no X credentials: {body}");
        assert_eq!(status_of("stream"), Some(json!("unreachable")), "no renderer runs: {body}");
        // The same answer as the role's own health listener gives.
        let own = app.client.get(app.url(sothebais_backend::ServiceRole::Social, sothebais_backend::app::ListenerKind::Health, "/health")).send().await.expect("send");
        let own: Value = own.json().await.expect("json");
        assert_eq!(own["status"], "idle");
        let (status, digest) = app.get_as("/api/admin/services/metrics", Role::Viewer).await;
        assert_eq!(status, 200, "{digest}");
        assert!(digest["data"]["auction"]["bids_total"].is_number(), "{digest}");
        assert_eq!(digest["data"]["events"]["dead_letters"], 0, "{digest}");
    }

    async fn maintenance_backs_up_prunes_and_retries(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let (status, body) = app.post("/api/admin/maintenance", Role::Admin, &json!({ "action": "backup" })).await;
        assert_eq!(status, 200, "{body}");
        match backend {
            Backend::Embedded => {
                let file = body["data"]["file"].as_str().expect("a backup file");
                let bytes = std::fs::read(file).expect("the backup exists");
                assert!(bytes.starts_with(b"SQLite format 3"), "a SQLite database");
            }
            Backend::Production => assert!(body["data"]["file"].is_null() && body["data"]["message"].as_str().is_some_and(|text| text.contains("pg_dump")), "{body}"),
        }
        let (status, body) = app.post("/api/admin/maintenance", Role::Admin, &json!({ "action": "prune_events", "older_than_days": 1 })).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["data"]["pruned"].is_u64());
        let (status, body) = app.post("/api/admin/maintenance", Role::Admin, &json!({ "action": "retry_dead_letters" })).await;
        assert_eq!((status, body["data"]["retried"].as_u64()), (200, Some(0)), "{body}");
        let (status, body) = app.post("/api/admin/maintenance", Role::Admin, &json!({ "action": "defragment" })).await;
        assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("action")));
        let (status, _) = app.post("/api/admin/maintenance", Role::Operator, &json!({ "action": "backup" })).await;
        assert_eq!(status, 403, "maintenance is for admins");
    }
}

#[tokio::test]
async fn redaction_hides_every_configured_secret() {
    let secrets = [
        ("X_BEARER_TOKEN", "bearer-secret-0123456789"),
        ("X_USER_ACCESS_TOKEN", "user-access-secret-0123456789"),
        ("X_USER_REFRESH_TOKEN", "user-refresh-secret-0123456789"),
        ("X_CLIENT_SECRET", "client-secret-0123456789"),
        ("LLM_API_KEY", "llm-key-secret-0123456789"),
        ("TTS_API_KEY", "tts-key-secret-0123456789"),
    ];
    // X pointed nowhere: the social role tries and logs failures, which must not leak.
    let mut settings: Vec<(&str, &str)> = secrets.to_vec();
    settings.push(("X_API_BASE_URL", "http://127.0.0.1:9"));
    settings.push(("X_CLIENT_ID", "sothebais-test"));
    sothebais_kit::telemetry::init(sothebais_kit::telemetry::LogFormat::Pretty, "info");
    let app = TestApp::spawn_with(Backend::Embedded, &settings).await;
    tracing::warn!("a line that quotes bearer-secret-0123456789 by mistake");
    let mut answers = Vec::new();
    for path in [
        "/api/admin/config",
        "/api/admin/logs?limit=2000",
        "/api/admin/status",
        "/api/admin/services/status",
        "/api/social/status",
    ] {
        let (status, body) = app.get_as(path, Role::Admin).await;
        assert_eq!(status, 200, "{path}: {body}");
        answers.push(body.to_string());
    }
    let secret_in_settings = app.settings.get("JWT_SECRET").expect("the test secret").clone();
    for (name, secret) in secrets.iter().copied().chain([("JWT_SECRET", secret_in_settings.as_str())]) {
        for answer in &answers {
            assert!(!answer.contains(secret), "{name} leaked: {answer}");
        }
    }
    assert!(answers[0].contains("[redacted]"));
}

#[tokio::test]
async fn the_dashboard_asks_for_sign_in_then_serves_every_page_and_its_assets() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let no_redirects =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let response = no_redirects.get(app.gateway("/auctions")).send().await.expect("send");
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/login?next=/auctions");
    let login = app.client.get(app.gateway("/login")).send().await.expect("send");
    assert!(login.text().await.expect("page").contains("Sign in"));
    for (asset, kind) in
        [("htmx.min.js", "text/javascript"), ("app.js", "text/javascript"), ("style.css", "text/css")]
    {
        let response =
            app.client.get(app.gateway(&format!("/ui/assets/{asset}"))).send().await.expect("send");
        assert_eq!(response.status(), 200, "{asset}");
        assert!(response.headers()["content-type"].to_str().expect("type").starts_with(kind), "{asset}");
    }
    let (status, body) =
        read_json(app.client.get(app.gateway("/ui/assets/missing.js")).send().await.expect("send")).await;
    assert_eq!(status, 404);
    assert_error(&body, "NOT_FOUND");

    add_account(&app, "ada", Role::Operator).await;
    let browser = sign_in(&app, "ada").await;
    let auction = app.create_auction(json!({ "title": "Dashboard lot" })).await;
    for page in ["/", "/auctions", &format!("/auctions/{auction}"), "/stream", "/host", "/events", "/system"]
    {
        let response =
            app.client.get(app.gateway(page)).header("cookie", &browser.cookie).send().await.expect("send");
        assert_eq!(response.status(), 200, "{page}");
        let html = response.text().await.expect("page");
        assert!(
            html.contains(&format!("<meta name=\"csrf-token\" content=\"{}\">", browser.csrf)),
            "{page}: the CSRF token for app.js"
        );
        assert!(html.contains("/ui/assets/htmx.min.js") && html.contains("Sign out"), "{page}");
    }
    let fragment = app
        .client
        .get(app.gateway("/ui/fragment/auction-list"))
        .header("cookie", &browser.cookie)
        .send()
        .await
        .expect("send");
    let html = fragment.text().await.expect("fragment");
    assert!(
        html.contains("Dashboard lot") && !html.contains("Start now") && html.contains("Cancel"),
        "an open lot, cancellable: {html}"
    );
    let anonymous = app.client.get(app.gateway("/ui/fragment/auction-list")).send().await.expect("send");
    assert_eq!(anonymous.status(), 401);

    // A viewer sees every page without an error in place of a section, and no action.
    add_account(&app, "vic", Role::Viewer).await;
    let viewer = sign_in(&app, "vic").await;
    for page in ["/", "/auctions", &format!("/auctions/{auction}"), "/events", "/system"] {
        let response =
            app.client.get(app.gateway(page)).header("cookie", &viewer.cookie).send().await.expect("send");
        assert_eq!(response.status(), 200, "{page}");
        let html = response.text().await.expect("page");
        for refusal in ["this needs role", "not reachable", "without an answer"] {
            assert!(!html.contains(refusal), "{page} shows {refusal:?}: {html}");
        }
        // The one write a viewer is offered: their own password.
        let writes = html.matches("data-method=").count();
        let own_password = html.matches("data-api=\"/api/admin/password\"").count();
        assert_eq!(writes, own_password, "{page} offers a viewer a write");
    }
}

#[tokio::test]
async fn a_write_cut_off_by_the_request_timeout_is_audited_as_timed_out() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt as _;
    let app = TestApp::spawn(Backend::Embedded).await;
    let slow = axum::Router::new().route(
        "/api/slow",
        axum::routing::post(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "done"
        }),
    );
    let router = sothebais_backend::admin::audit::audited(slow, &app.state)
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(100),
        ))
        .with_state(app.state.clone());
    let request = Request::post("/api/slow").body(Body::empty()).expect("request");
    let response = router.oneshot(request).await.expect("answer");
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let entries = app.state.storage.audit(None, 10).await.expect("audit");
        if let Some(entry) = entries.iter().find(|entry| entry.path == "/api/slow") {
            assert_eq!((entry.status, entry.method.as_str()), (408, "POST"), "{entry:?}");
            assert!(entry.note.contains("may or may not"), "{entry:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the timed-out write was never audited: {entries:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
