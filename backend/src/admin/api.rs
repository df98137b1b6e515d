//! The admin API (`/api/admin`, `admin.md`): sign-in and sessions, the services'
//! status and metrics digest, configuration (read, and change what may change),
//! recent logs, maintenance, the audit trail, the block list and accounts.

use std::net::SocketAddr;

use axum::Extension;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sothebais_kit::access::{
    AdminRole, Authorized, Caller, CallerSlot, Claims, OperatorRole, Role, SESSION_COOKIE, Via, ViewerRole,
};
use sothebais_kit::http::Failure;

use super::accounts::{AccountError, Login};
use super::audit::AuditNote;
use crate::app::AppState;
use crate::error::{Error, Result};
use crate::http::{Json, Query, created, ok};
use crate::storage::{BlockEntry, RuntimeSetting};

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// The cookie that holds a session, or with `ending` the one that ends it. It has no
/// `Max-Age`: the server ends a session after `ADMIN_SESSION_IDLE_SECS` without use,
/// and a lifetime fixed at sign-in would end one still in use.
fn session_cookie(value: &str, ending: bool, headers: &HeaderMap) -> HeaderValue {
    // Behind TLS (a proxy that says so), the cookie is only ever sent over TLS.
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
    let text = format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{}{}",
        if ending { "; Max-Age=0" } else { "" },
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("sothebais_session=; Max-Age=0"))
}

fn client_address(connect: Option<&Extension<ConnectInfo<SocketAddr>>>) -> String {
    connect.map_or_else(|| "unknown".to_owned(), |Extension(ConnectInfo(address))| address.ip().to_string())
}

/// `POST /api/admin/login`.
pub async fn login(
    State(state): State<AppState>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    slot: Option<Extension<CallerSlot>>,
    headers: HeaderMap,
    Json(request): Json<LoginRequest>,
) -> Result<Response> {
    let address = client_address(connect.as_ref());
    let username = request.username.trim().to_ascii_lowercase();
    match state.accounts.login(&address, &username, &request.password).await? {
        Login::Throttled(wait) => {
            tracing::warn!(%address, user = %username, wait_secs = wait.as_secs(), "login throttled");
            Err(Failure::rate_limited(wait.as_secs().max(1)).into())
        }
        Login::Refused => {
            tracing::warn!(%address, user = %username, "login refused");
            Err(Failure::unauthenticated("wrong user name or password").into())
        }
        Login::SignedIn { account, session } => {
            tracing::info!(%address, user = %account.username, role = %account.role, "signed in");
            let role: Role = account.role.parse().unwrap_or(Role::Viewer);
            if let Some(Extension(slot)) = slot {
                let claims = Claims { sub: account.username.clone(), role, exp: 0, iat: None };
                slot.set(&claims, Via::Session);
            }
            let mut response = ok(json!({
                "username": account.username,
                "role": account.role,
                "csrf_token": session.csrf,
                "idle_timeout_secs": state.accounts.idle().as_secs(),
            }));
            response
                .headers_mut()
                .insert(header::SET_COOKIE, session_cookie(&session.cookie, false, &headers));
            Ok(response)
        }
    }
}

/// `POST /api/admin/logout`: ends the cookie's session (a write: the CSRF token is
/// checked when signed in).
pub async fn logout(State(state): State<AppState>, caller: Caller, headers: HeaderMap) -> Result<Response> {
    if let Some(value) = sothebais_kit::access::cookie(&headers, SESSION_COOKIE) {
        state.accounts.logout(value).await?;
    }
    if let Some(claims) = &caller.0 {
        tracing::info!(user = %claims.sub, "signed out");
    }
    let mut response = ok(json!({ "signed_out": true }));
    response.headers_mut().insert(header::SET_COOKIE, session_cookie("", true, &headers));
    Ok(response)
}

/// `GET /api/admin/session`: who is signed in, and the CSRF token for writes.
pub async fn session(State(state): State<AppState>, headers: HeaderMap) -> Result<Response> {
    let Some(session) = state.accounts.session_of(&headers).await? else {
        return Err(Failure::unauthenticated("not signed in").into());
    };
    Ok(ok(json!({
        "username": session.claims.sub,
        "role": session.claims.role,
        "csrf_token": session.csrf,
    })))
}

#[derive(Debug, Deserialize)]
pub struct FirstLogin {
    token: String,
}

/// `GET /api/admin/first-login?token=`: the first start's one-time link, from this
/// machine only.
pub async fn first_login(
    State(state): State<AppState>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Query(query): Query<FirstLogin>,
) -> Result<Response> {
    let local = connect.is_some_and(|Extension(ConnectInfo(address))| address.ip().is_loopback());
    if !local {
        return Err(Failure::forbidden("the first sign-in link works from this machine only").into());
    }
    let Some(session) = state.accounts.first_login(&query.token).await? else {
        return Err(
            Failure::unauthenticated("this sign-in link was used already or is not the latest").into()
        );
    };
    tracing::info!("signed in with the first start's link; set the admin's password now");
    let mut response = Redirect::to("/system?setup=1").into_response();
    response.headers_mut().insert(header::SET_COOKIE, session_cookie(&session.cookie, false, &headers));
    Ok(response)
}

/// Prints the first start's sign-in link when no admin account exists.
pub async fn announce_first_start(state: &AppState) {
    match state.accounts.first_start_token().await {
        Ok(Some(token)) => {
            let port = state
                .listener(crate::app::ServiceRole::Admin, crate::app::ListenerKind::Api)
                .map_or(state.config.ports.admin.api, |addr| addr.port());
            tracing::warn!(
                "no admin account yet: open http://127.0.0.1:{port}/api/admin/first-login?token={token} once on this machine to sign in and set a password (or run `sothebais user add NAME --role admin`)"
            );
        }
        Ok(None) => {}
        Err(error) => tracing::warn!(%error, "could not check for an admin account"),
    }
}

pub async fn services_status(State(state): State<AppState>, _viewer: Authorized<ViewerRole>) -> Response {
    ok(super::services::status(&state).await)
}

pub async fn services_metrics(State(state): State<AppState>, _viewer: Authorized<ViewerRole>) -> Response {
    ok(super::services::digest(&state).await)
}

/// `GET /api/admin/config`: every setting with its origin, secrets redacted, and
/// the ones changed while running with who changed them.
pub async fn config(State(state): State<AppState>, _admin: Authorized<AdminRole>) -> Result<Response> {
    let mut view = state.config.redacted_view();
    let changes = state.storage.runtime_settings().await?;
    for change in changes {
        let key = crate::config::file_key(&change.name);
        if let Some(setting) = view["settings"].get_mut(&key) {
            setting["value"] = json!(change.value);
            setting["origin"] = json!("runtime");
            setting["changed_by"] = json!(change.changed_by);
            setting["changed_at"] = json!(change.changed_at);
        }
    }
    view["changeable"] = json!(crate::runtime::CHANGEABLE);
    Ok(ok(view))
}

/// `POST /api/admin/config`: `{ "NAME": "value", … }` for settings that may change
/// while running; all are checked before any is stored.
pub async fn change_config(
    State(state): State<AppState>,
    Authorized(claims, _): Authorized<AdminRole>,
    Json(changes): Json<serde_json::Map<String, Value>>,
) -> Result<Response> {
    if changes.is_empty() {
        return Err(Error::BadRequest {
            message: "name at least one setting to change".into(),
            details: None,
        });
    }
    let mut checked = Vec::new();
    for (key, value) in &changes {
        let name = crate::config::SETTINGS
            .iter()
            .find(|setting| setting.name == key.as_str() || crate::config::file_key(setting.name) == *key)
            .map(|setting| setting.name)
            .ok_or_else(|| Error::bad_field(key, format!("{key} is not a setting")))?;
        let value = match value {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            _ => return Err(Error::bad_field(key, "a setting's value is a string, a number or a boolean")),
        };
        crate::runtime::check(name, &value).map_err(|reason| Error::bad_field(name, reason))?;
        checked.push((name, value));
    }
    let now = state.clock.now();
    for (name, value) in &checked {
        state
            .storage
            .set_runtime_setting(&RuntimeSetting {
                name: (*name).to_owned(),
                value: value.clone(),
                changed_by: claims.sub.clone(),
                changed_at: now,
            })
            .await?;
    }
    state.runtime.refresh(state.storage.as_ref()).await?;
    let note = checked.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join(", ");
    tracing::info!(by = %claims.sub, changes = %note, "settings changed while running");
    let mut response = ok(
        json!({ "changed": checked.iter().map(|(name, value)| json!({ "name": name, "value": value })).collect::<Vec<_>>() }),
    );
    response.extensions_mut().insert(AuditNote(note));
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct LogQuery {
    level: Option<String>,
    since: Option<DateTime<Utc>>,
    limit: Option<usize>,
}

fn level_rank(level: &str) -> u8 {
    match level {
        "error" => 4,
        "warn" => 3,
        "info" => 2,
        "debug" => 1,
        _ => 0,
    }
}

/// Replaces each secret in `text`, tokens after `Bearer `, and the value of any
/// `token=` parameter.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_owned();
    for secret in secrets {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), "[redacted]");
        }
    }
    for marker in ["Bearer ", "token="] {
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(at) = rest.find(marker) {
            let start = at + marker.len();
            out.push_str(&rest[..start]);
            let end = rest[start..]
                .find(|c: char| c.is_whitespace() || matches!(c, '&' | '"' | '\'' | ','))
                .map_or(rest.len(), |offset| start + offset);
            if end > start {
                out.push_str("[redacted]");
            }
            rest = &rest[end..];
        }
        out.push_str(rest);
        text = out;
    }
    text
}

/// `GET /api/admin/logs?level=&since=&limit=`: this process's latest lines.
pub async fn logs(
    State(state): State<AppState>,
    _admin: Authorized<AdminRole>,
    Query(query): Query<LogQuery>,
) -> Result<Response> {
    let least = match query.level.as_deref() {
        None => 0,
        Some(level @ ("error" | "warn" | "info" | "debug" | "trace")) => level_rank(level),
        Some(other) => {
            return Err(Error::bad_field(
                "level",
                format!("{other:?} is not error, warn, info, debug or trace"),
            ));
        }
    };
    let limit = query.limit.unwrap_or(200).clamp(1, sothebais_kit::telemetry::KEPT_LINES);
    let secrets = state.config.secret_values();
    let mut lines: Vec<Value> = sothebais_kit::telemetry::recent()
        .into_iter()
        .filter(|line| level_rank(line.level) >= least)
        .filter(|line| query.since.is_none_or(|since| line.at >= since))
        .map(|line| {
            json!({ "at": line.at, "level": line.level, "target": line.target, "text": redact(&line.text, &secrets) })
        })
        .collect();
    let skip = lines.len().saturating_sub(limit);
    lines.drain(..skip);
    Ok(ok(json!({ "lines": lines })))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct MaintenanceRequest {
    /// `backup`, `prune_events` or `retry_dead_letters`.
    pub action: String,
    /// `prune_events`: events older than this many days go (default 30, at least 1).
    pub older_than_days: Option<u32>,
    /// `retry_dead_letters`: only this consumer's (default every consumer's).
    pub consumer: Option<String>,
}

/// `POST /api/admin/maintenance`.
pub async fn maintenance(
    State(state): State<AppState>,
    Authorized(claims, _): Authorized<AdminRole>,
    Json(request): Json<MaintenanceRequest>,
) -> Result<Response> {
    let (result, note) = match request.action.as_str() {
        "backup" => {
            let folder = state.config.data_dir.join("backups");
            tokio::fs::create_dir_all(&folder)
                .await
                .map_err(|error| anyhow::anyhow!("creating {}: {error}", folder.display()))?;
            let file = folder.join(format!("sothebais-{}.db", state.clock.now().format("%Y%m%dT%H%M%SZ")));
            if state.storage.backup(&file).await? {
                let bytes = tokio::fs::metadata(&file).await.map(|meta| meta.len()).unwrap_or(0);
                tracing::info!(by = %claims.sub, file = %file.display(), bytes, "database backed up");
                (
                    json!({ "action": "backup", "file": file, "bytes": bytes }),
                    format!("backup to {}", file.display()),
                )
            } else {
                (
                    json!({ "action": "backup", "file": null, "message": "PostgreSQL is backed up with pg_dump: scripts/backup, the backup service of compose.yaml (see docs/deploy.md)" }),
                    "backup: PostgreSQL (pg_dump)".to_owned(),
                )
            }
        }
        "prune_events" => {
            let days = request.older_than_days.unwrap_or(30);
            if days == 0 {
                return Err(Error::bad_field("older_than_days", "at least 1 day"));
            }
            let before = state.clock.now() - chrono::Duration::days(i64::from(days));
            let pruned = state.storage.prune_events(before).await?;
            tracing::info!(by = %claims.sub, pruned, days, "old events pruned");
            (
                json!({ "action": "prune_events", "pruned": pruned, "before": before }),
                format!("pruned {pruned} events older than {days} days"),
            )
        }
        "retry_dead_letters" => {
            let letters = state.storage.dead_letters(request.consumer.as_deref(), 10_000).await?;
            let retried = crate::events::hand_back(&state, &letters, &claims.sub).await?;
            (
                json!({ "action": "retry_dead_letters", "retried": retried.len() }),
                format!("retried {} dead letters", retried.len()),
            )
        }
        other => {
            return Err(Error::bad_field(
                "action",
                format!("{other:?} is not backup, prune_events or retry_dead_letters"),
            ));
        }
    };
    let mut response = ok(result);
    response.extensions_mut().insert(AuditNote(note));
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    limit: Option<u32>,
    before: Option<DateTime<Utc>>,
}

/// `GET /api/admin/audit?limit=&before=`: newest first.
pub async fn audit(
    State(state): State<AppState>,
    _admin: Authorized<AdminRole>,
    Query(query): Query<AuditQuery>,
) -> Result<Response> {
    let entries = state.storage.audit(query.before, query.limit.unwrap_or(100).clamp(1, 1000)).await?;
    Ok(ok(json!({ "entries": entries })))
}

pub async fn blocklist(
    State(state): State<AppState>,
    _operator: Authorized<OperatorRole>,
) -> Result<Response> {
    let values = state.runtime.values();
    let stored = state.storage.blocked_bidders().await?;
    let configured: Vec<&String> =
        values.blocked.iter().filter(|entry| !stored.iter().any(|stored| stored.entry == **entry)).collect();
    Ok(ok(json!({ "entries": stored, "configured": configured })))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct BlockRequest {
    /// A bidder id (`x:123`, `web:ada`) or an `@handle`.
    pub entry: String,
    pub reason: Option<String>,
}

pub async fn block(
    State(state): State<AppState>,
    Authorized(claims, _): Authorized<OperatorRole>,
    Json(request): Json<BlockRequest>,
) -> Result<Response> {
    let entry = request.entry.trim().to_ascii_lowercase();
    if entry.is_empty() || entry.len() > 100 || entry.contains(',') || entry.chars().any(char::is_whitespace)
    {
        return Err(Error::bad_field(
            "entry",
            "a bidder id or @handle: up to 100 characters, no spaces or commas",
        ));
    }
    let block = BlockEntry {
        entry: entry.clone(),
        reason: request.reason.unwrap_or_default().chars().take(200).collect(),
        added_by: claims.sub.clone(),
        added_at: state.clock.now(),
    };
    let added = state.storage.block_bidder(&block).await?;
    state.runtime.refresh(state.storage.as_ref()).await?;
    tracing::info!(by = %claims.sub, %entry, added, "bidder blocked");
    let mut response = created(json!({ "entry": block, "added": added }));
    response.extensions_mut().insert(AuditNote(format!("blocked {entry}")));
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct UnblockQuery {
    entry: String,
}

pub async fn unblock(
    State(state): State<AppState>,
    Authorized(claims, _): Authorized<OperatorRole>,
    Query(query): Query<UnblockQuery>,
) -> Result<Response> {
    let entry = query.entry.trim().to_ascii_lowercase();
    if !state.storage.unblock_bidder(&entry).await? {
        return Err(Error::NotFound(format!("block list entry {entry:?}")));
    }
    state.runtime.refresh(state.storage.as_ref()).await?;
    tracing::info!(by = %claims.sub, %entry, "bidder unblocked");
    let mut response = ok(json!({ "removed": entry }));
    response.extensions_mut().insert(AuditNote(format!("unblocked {entry}")));
    Ok(response)
}

pub async fn users(State(state): State<AppState>, _admin: Authorized<AdminRole>) -> Result<Response> {
    let accounts = state.storage.accounts().await?;
    let accounts: Vec<Value> = accounts
        .iter()
        .map(|account| json!({ "username": account.username, "role": account.role, "created_at": account.created_at }))
        .collect();
    Ok(ok(json!({ "users": accounts })))
}

#[derive(Debug, Deserialize)]
pub struct NewUser {
    pub username: String,
    /// `admin`, `operator` or `viewer`.
    pub role: Role,
    /// Generated (and answered once) when absent.
    pub password: Option<String>,
}

/// A password of 20 random letters and digits.
pub fn generate_password() -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20).map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())])).collect()
}

fn account_error(error: AccountError) -> Error {
    match error {
        AccountError::BadName => Error::bad_field("username", error.to_string()),
        AccountError::ShortPassword => Error::bad_field("password", error.to_string()),
        AccountError::BadRole => Error::bad_field("role", error.to_string()),
        AccountError::Taken(_) => Error::Conflict(error.to_string()),
        AccountError::NoSuchUser(name) => Error::NotFound(format!("user {name:?}")),
        AccountError::Storage(error) => Error::Storage(error),
    }
}

pub async fn add_user(
    State(state): State<AppState>,
    Authorized(claims, _): Authorized<AdminRole>,
    Json(request): Json<NewUser>,
) -> Result<Response> {
    let generated = request.password.is_none();
    let password = request.password.unwrap_or_else(generate_password);
    let account =
        state.accounts.add(request.username.trim(), request.role, &password).await.map_err(account_error)?;
    tracing::info!(by = %claims.sub, user = %account.username, role = %account.role, "account added");
    let mut body =
        json!({ "username": account.username, "role": account.role, "created_at": account.created_at });
    if generated {
        body["password"] = json!(password);
    }
    let mut response = created(body);
    response
        .extensions_mut()
        .insert(AuditNote(format!("added user {} ({})", account.username, account.role)));
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct UserQuery {
    username: String,
}

pub async fn remove_user(
    State(state): State<AppState>,
    Authorized(claims, _): Authorized<AdminRole>,
    Query(query): Query<UserQuery>,
) -> Result<Response> {
    if query.username == claims.sub {
        return Err(Error::Conflict(
            "an admin cannot remove their own account while signed in with it".into(),
        ));
    }
    state.accounts.remove(&query.username).await.map_err(account_error)?;
    tracing::info!(by = %claims.sub, user = %query.username, "account removed; its sessions ended");
    let mut response = ok(json!({ "removed": query.username }));
    response.extensions_mut().insert(AuditNote(format!("removed user {}", query.username)));
    Ok(response)
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct PasswordRequest {
    pub password: String,
}

/// `POST /api/admin/password`: the signed-in account's own password. The first
/// start's session (as `admin`, before any account) creates the account here.
pub async fn set_password(
    State(state): State<AppState>,
    caller: Caller,
    slot: Option<Extension<CallerSlot>>,
    headers: HeaderMap,
    Json(request): Json<PasswordRequest>,
) -> Result<Response> {
    let claims = caller.require(Role::Viewer)?;
    // Only a signed-in browser changes its own password: a bearer token's subject
    // is not proof of owning the console account of that name.
    let via = slot.and_then(|Extension(slot)| slot.get()).map(|(_, via)| via);
    if via != Some(Via::Session) {
        return Err(Failure::forbidden(
            "a password is set from a signed-in console session, not with a token",
        )
        .into());
    }
    let exists = state.storage.account(&claims.sub).await?.is_some();
    if exists {
        let keep = sothebais_kit::access::cookie(&headers, SESSION_COOKIE);
        state.accounts.set_password(&claims.sub, &request.password, keep).await.map_err(account_error)?;
    } else {
        state.accounts.add(&claims.sub, claims.role, &request.password).await.map_err(account_error)?;
    }
    tracing::info!(user = %claims.sub, "password set; other sessions ended");
    let mut response = ok(json!({ "username": claims.sub, "password_set": true }));
    response.extensions_mut().insert(AuditNote(format!("password of {} set", claims.sub)));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_secrets_bearer_tokens_and_token_parameters() {
        let secrets = vec!["hunter2-secret".to_owned()];
        let text =
            "connecting with hunter2-secret, header Bearer eyJabc.def and link /first-login?token=abc123&x=1";
        let redacted = redact(text, &secrets);
        assert!(!redacted.contains("hunter2-secret"), "{redacted}");
        assert!(!redacted.contains("eyJabc"), "{redacted}");
        assert!(!redacted.contains("abc123"), "{redacted}");
        assert!(redacted.contains("&x=1"), "{redacted}");
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let (first, second) = (generate_password(), generate_password());
        assert_eq!(first.len(), 20);
        assert_ne!(first, second);
    }
}
