//! The dashboard, served by the gateway: server-rendered pages (maud) that read the
//! same API as everyone else (the gateway calls itself, as the signed-in account),
//! htmx (vendored from its npm package, `scripts/vendor-htmx`) to refresh a section
//! in place, and a little plain JavaScript (`assets/app.js`) for the WebSockets
//! (the renderer's previews, the event stream) and for writes through the API with
//! the session's CSRF token. Everything is embedded in the binary: no build step,
//! no CDN. A viewer sees every page and is offered no action.

mod pages;

use std::time::Duration;

use axum::Router;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, html};
use serde_json::Value;
use sothebais_kit::access::{Role, Session};

use crate::app::{AppState, ListenerKind, ServiceRole};

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/app.js");
const HTMX: &str = include_str!("assets/htmx.min.js");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::live))
        .route("/auctions", get(pages::auctions))
        .route("/auctions/{id}", get(pages::lot))
        .route("/stream", get(pages::stream))
        .route("/host", get(pages::host))
        .route("/events", get(pages::events))
        .route("/system", get(pages::system))
        .route("/login", get(login_page))
        .route("/link", get(link_page))
        .route("/ui/fragment/{name}", get(pages::fragment))
        .route("/ui/assets/{file}", get(asset))
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "style.css" => (STYLE, "text/css; charset=utf-8"),
        "app.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "htmx.min.js" => (HTMX, "text/javascript; charset=utf-8"),
        _ => return sothebais_kit::http::Failure::not_found(format!("asset {file:?}")).into_response(),
    };
    // Asset URLs carry the version, so a browser may keep them for a day.
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "public, max-age=86400")], body).into_response()
}

/// The signed-in account of a page request.
pub struct Viewer {
    pub session: Session,
}

impl Viewer {
    pub fn name(&self) -> &str {
        &self.session.claims.sub
    }

    pub fn role(&self) -> Role {
        self.session.claims.role
    }

    /// Whether this account may do what needs `role`; buttons it may not use are
    /// not drawn.
    pub fn can(&self, role: Role) -> bool {
        self.role().satisfies(role)
    }
}

/// The page's viewer, or a redirect to the sign-in page.
pub async fn viewer(state: &AppState, headers: &HeaderMap, uri: &OriginalUri) -> Result<Viewer, Response> {
    match state.accounts.session_of(headers).await.ok().flatten() {
        Some(session) => Ok(Viewer { session }),
        None => {
            let next = uri.0.path_and_query().map_or("/", |value| value.as_str());
            let next: String = url_escape(next);
            Err(Redirect::to(&format!("/login?next={next}")).into_response())
        }
    }
}

fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Calls the gateway's own API as the viewer (a 60-second token for their account),
/// so every page shows exactly what the API says.
pub struct Api<'a> {
    state: &'a AppState,
    base: String,
    token: Option<String>,
}

impl<'a> Api<'a> {
    pub fn new(state: &'a AppState, viewer: &Viewer) -> Api<'a> {
        let token = sothebais_kit::access::issue_token(
            &state.secret,
            viewer.name(),
            viewer.role(),
            Duration::from_secs(60),
        )
        .ok();
        let base = super::services::address(state, ServiceRole::Admin, ListenerKind::Api);
        Api { state, base, token }
    }

    /// The `data` of a GET, or the reason it failed (the envelope's message).
    pub async fn get(&self, path: &str) -> Result<Value, String> {
        let mut request = self.state.http.get(format!("{}{path}", self.base)).timeout(Duration::from_secs(5));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|_| "not reachable".to_owned())?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|_| format!("HTTP {status} without an answer"))?;
        if status.is_success() {
            Ok(body["data"].clone())
        } else {
            Err(body["error"]["message"].as_str().unwrap_or("failed").to_owned())
        }
    }
}

const NAV: [(&str, &str); 6] = [
    ("/", "Live"),
    ("/auctions", "Auctions"),
    ("/stream", "Stream"),
    ("/host", "Host"),
    ("/events", "Events"),
    ("/system", "System"),
];

/// A page's `<head>`: its title, the stylesheet and `app.js` (asset URLs carry the
/// version), and for a signed-in page the CSRF token and htmx.
fn head(title: &str, csrf: Option<&str>) -> Markup {
    let version = env!("CARGO_PKG_VERSION");
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            @if let Some(csrf) = csrf {
                meta name="csrf-token" content=(csrf);
                meta name="htmx-config" content=r#"{"history":false}"#;
            }
            title { "SothebAIs · " (title) }
            link rel="stylesheet" href={ "/ui/assets/style.css?v=" (version) };
            @if csrf.is_some() { script src={ "/ui/assets/htmx.min.js?v=" (version) } defer {} }
            script src={ "/ui/assets/app.js?v=" (version) } defer {}
        }
    }
}

/// A whole page: the header with the navigation and the account, then `body`.
pub fn layout(state: &AppState, viewer: &Viewer, current: &str, body: Markup) -> Response {
    let title = NAV.iter().find(|(path, _)| *path == current).map_or("Console", |(_, name)| *name);
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, Some(&viewer.session.csrf)))
            body data-role=(viewer.role().as_str()) data-timezone=(state.config.timezone.name()) {
                header {
                    a.brand href="/" { "SothebAIs" }
                    nav {
                        @for (path, name) in NAV {
                            a href=(path) aria-current=[(path == current).then_some("page")] { (name) }
                        }
                    }
                    span.who {
                        (viewer.name()) " · " (viewer.role().as_str())
                        button.quiet type="button" data-logout { "Sign out" }
                    }
                }
                main { (body) }
                div #toast role="status" aria-live="polite" {}
            }
        }
    };
    Html(page.into_string()).into_response()
}

async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    // Already signed in: straight to the console.
    if let Ok(Some(_)) = state.accounts.session_of(&headers).await {
        return Redirect::to("/").into_response();
    }
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            (head("Sign in", None))
            body.login {
                form #login-form data-login {
                    h1 { "SothebAIs" }
                    p.muted { "Sign in to the control room." }
                    label { "User name" input name="username" autocomplete="username" required autofocus; }
                    label { "Password" input name="password" type="password" autocomplete="current-password" required; }
                    button type="submit" { "Sign in" }
                    p.error data-error {}
                    p.muted.small { "No account yet? On the server: " code { "sothebais user add NAME --role admin" } "." }
                }
            }
        }
    };
    (StatusCode::OK, Html(page.into_string())).into_response()
}

/// `/link`: where a bidder links their X handle to their browser wallet (public:
/// bidders have no console account). The message to sign names this site, the
/// handle and a one-time nonce; see docs/chain.md.
async fn link_page() -> Response {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            (head("Link your wallet", None))
            body.login {
                form #link-form data-wallet-link {
                    h1 { "SothebAIs" }
                    p.muted { "Link your X account to your wallet, so your bids on X can be settled." }
                    label { "Your X handle" input name="handle" placeholder="@you" autocomplete="username" required autofocus; }
                    button type="submit" { "Connect wallet and sign" }
                    p.muted data-status {}
                    p.muted.small { "Signing costs nothing and moves nothing: it proves the wallet is yours." }
                }
            }
        }
    };
    (StatusCode::OK, Html(page.into_string())).into_response()
}

/// A JSON value as text: strings bare, absent as a dash.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "–".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A bidder as people know them: the handle, or the id where there is none.
pub fn bidder(bidder: &Value) -> String {
    match bidder["handle"].as_str().filter(|handle| !handle.is_empty()) {
        Some(handle) => handle.to_owned(),
        None => text(&bidder["id"]),
    }
}

/// A time as the API gives it: RFC 3339 text, or Unix milliseconds (an event's
/// `timestamp`).
fn instant(value: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    match value {
        Value::String(text) => {
            chrono::DateTime::parse_from_rfc3339(text).ok().map(|at| at.with_timezone(&chrono::Utc))
        }
        Value::Number(millis) => millis.as_i64().and_then(chrono::DateTime::from_timestamp_millis),
        _ => None,
    }
}

/// A time as the show's timezone shows it, with UTC beside.
pub fn when(state: &AppState, value: &Value) -> Markup {
    let Some(utc) = instant(value) else {
        return html! { "–" };
    };
    let local = utc.with_timezone(&state.config.timezone);
    html! {
        time datetime=(utc.to_rfc3339()) title=(utc.to_rfc3339()) {
            (local.format("%b %-d %H:%M:%S %Z")) " "
            span.muted { "(" (utc.format("%H:%M:%S UTC")) ")" }
        }
    }
}

/// A message in place of a section that could not be read.
pub fn unavailable(what: &str, reason: &str) -> Markup {
    html! { p.muted { (what) ": " (reason) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_rfc3339_text_or_unix_milliseconds() {
        let text = instant(&Value::from("2026-12-02T10:00:00.250Z"));
        let millis = instant(&Value::from(1_796_205_600_250_i64));
        assert_eq!(text, millis);
        assert!(text.is_some());
        assert_eq!(instant(&Value::from("yesterday")), None);
        assert_eq!(instant(&Value::Null), None);
    }
}
