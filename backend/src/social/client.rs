//! The X API v2 client: the same paths, parameters and headers as X, so the real API
//! and the simulator work alike.
//!
//! - Every answer's `x-rate-limit-remaining` / `-reset` is kept per endpoint; a call
//!   whose window is spent is not sent (`XError::RateLimited` until the reset), and a
//!   429 waits for the reset too (at least 1 s). The reader spaces its polls by
//!   `pace`, so what is left of a window lasts until its reset.
//! - A 5xx is retried with backoff (0.5 s, 1 s, 2 s); a transport error likewise.
//! - A 401 refreshes the user token once and tries again; a second 401 is reported
//!   (the role's `x_api` health check fails).
//! - User tokens are refreshed five minutes before they expire; the new single-use
//!   refresh token is written to the token file before the old one is dropped.
//! - `X_DRY_RUN` logs each write and answers as if sent, sending nothing.
//! - Every request, and every billable resource it returns, is counted for the
//!   spend meter (`x_requests_total`, `x_resources_total`, `x_spend_usd_total`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use reqwest::StatusCode;
use secrecy::{ExposeSecret as _, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex as AsyncMutex;

use super::xapi::{
    self, Billing, CreatedTweet, NewTweet, Problem, ReplySettings, Resource, Single, TokenResponse,
    TweetPage, User,
};
use crate::config::XConfig;

/// An X endpoint, as the client counts and limits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    Me,
    Mentions,
    Search,
    Post,
    Token,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Me => "users_me",
            Endpoint::Mentions => "mentions",
            Endpoint::Search => "search_recent",
            Endpoint::Post => "create_post",
            Endpoint::Token => "oauth2_token",
        }
    }
}

/// Why a call to X failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum XError {
    #[error("{endpoint} is rate limited until {reset_at}")]
    RateLimited { endpoint: &'static str, reset_at: DateTime<Utc> },
    #[error("X refused the credentials: {0}")]
    Unauthorized(String),
    #[error("X answered {status}: {title}: {detail}")]
    Refused { status: u16, title: String, detail: String },
    #[error("X is failing ({0})")]
    Unavailable(String),
    #[error("X is not configured: {0}")]
    NotConfigured(&'static str),
}

/// What became of a post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posted {
    Created(String),
    /// X refused it as a repeat of one of the account's posts: it was sent before.
    Duplicate,
    /// X refused a reply to a post that did not summon the show.
    NotRepliable,
}

/// The user tokens as kept in `<data dir>/x-tokens.json` (mode 0600).
#[derive(Clone, Serialize, Deserialize)]
pub struct UserTokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// Unknown for tokens given in the environment: refreshed on the first 401.
    pub expires_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for UserTokens {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("UserTokens").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

/// Where the user tokens live.
pub fn token_file(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("x-tokens.json")
}

/// Writes the tokens to a temporary file then renames it over the old one, so a
/// crash leaves either the old pair or the new, never half of one; 0600 on Unix.
pub fn store_tokens(path: &std::path::Path, tokens: &UserTokens) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let temporary = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(tokens).map_err(std::io::Error::other)?;
    {
        use std::io::Write as _;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(&temporary)?;
        file.write_all(&text)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)
}

pub fn load_tokens(path: &std::path::Path) -> Option<UserTokens> {
    let text = std::fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

/// An endpoint's rate limit as X last reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    pub remaining: u32,
    pub reset_at: DateTime<Utc>,
}

/// What the client has counted: requests by endpoint and status, billed resources.
#[derive(Debug, Default)]
struct Meter {
    billing: Billing,
    requests: BTreeMap<(&'static str, u16), u64>,
    limits: BTreeMap<&'static str, RateLimit>,
    /// When each endpoint may be called again after a 429 or a spent window.
    blocked_until: BTreeMap<&'static str, DateTime<Utc>>,
    last_unauthorized: Option<String>,
}

/// The X client of the social role. Clones share the tokens and the meter.
#[derive(Clone)]
pub struct XClient {
    http: reqwest::Client,
    base: String,
    bearer: Option<SecretString>,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    dry_run: bool,
    tokens: Arc<AsyncMutex<Option<UserTokens>>>,
    token_path: PathBuf,
    meter: Arc<Mutex<Meter>>,
}

impl fmt::Debug for XClient {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("XClient").field("base", &self.base).field("dry_run", &self.dry_run).finish()
    }
}

/// Refresh this long before the access token expires.
const REFRESH_AHEAD: chrono::Duration = chrono::Duration::minutes(5);

impl XClient {
    /// A client for `config`; user tokens come from the token file when there is one
    /// (it holds the latest pair), else from `X_USER_ACCESS_TOKEN`/`X_USER_REFRESH_TOKEN`.
    pub fn new(config: &XConfig, data_dir: &std::path::Path, http: reqwest::Client) -> XClient {
        let token_path = token_file(data_dir);
        let tokens = load_tokens(&token_path).or_else(|| {
            config.user_access_token.as_ref().map(|access| UserTokens {
                access_token: access.expose_secret().to_owned(),
                refresh_token: config
                    .user_refresh_token
                    .as_ref()
                    .map(|token| token.expose_secret().to_owned()),
                expires_at: None,
            })
        });
        XClient {
            http,
            base: config.api_base_url.clone(),
            bearer: config.bearer_token.clone(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            dry_run: config.dry_run,
            tokens: Arc::new(AsyncMutex::new(tokens)),
            token_path,
            meter: Arc::new(Mutex::new(Meter::default())),
        }
    }

    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    fn meter(&self) -> std::sync::MutexGuard<'_, Meter> {
        self.meter.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The rate limits X last reported, by endpoint.
    pub fn rate_limits(&self) -> BTreeMap<&'static str, RateLimit> {
        self.meter().limits.clone()
    }

    /// What the show has been billed so far (as X bills: repeat reads of a day once).
    pub fn spend(&self) -> (f64, BTreeMap<Resource, u64>) {
        let meter = self.meter();
        (meter.billing.usd(), meter.billing.counts().clone())
    }

    /// Requests sent, by endpoint and status.
    pub fn requests(&self) -> BTreeMap<(&'static str, u16), u64> {
        self.meter().requests.clone()
    }

    /// The last credential failure that a refresh could not mend.
    pub fn unauthorized(&self) -> Option<String> {
        self.meter().last_unauthorized.clone()
    }

    /// The least time between calls of `endpoint` that makes what is left of its
    /// window last until the reset, as X last reported them (None before it has). A
    /// poll that spends its window early waits out the rest without reading at all
    /// (minutes, at X's 300 mentions reads per 15 min and a 2 s interval).
    pub fn pace(&self, endpoint: Endpoint) -> Option<Duration> {
        let limit = *self.meter().limits.get(endpoint.as_str())?;
        let left = (limit.reset_at - Utc::now()).to_std().ok()?;
        Some(left / limit.remaining.max(1))
    }

    /// When `endpoint` may be called again (`None`: now).
    pub fn blocked_until(&self, endpoint: Endpoint) -> Option<DateTime<Utc>> {
        self.meter().blocked_until.get(endpoint.as_str()).copied().filter(|until| *until > Utc::now())
    }

    /// Records billable resources and their cost.
    pub fn bill(&self, resource: Resource, id: &str) -> bool {
        let (billed, usd) = {
            let mut meter = self.meter();
            (meter.billing.record(resource, id, Utc::now()), meter.billing.usd())
        };
        if billed {
            metrics::counter!("x_resources_total", "resource" => resource.as_str()).increment(1);
            // A dollar amount only grows; Prometheus counters are integers in this
            // recorder, so the running total is exported as a gauge of that name.
            metrics::gauge!("x_spend_usd_total").set(usd);
        }
        billed
    }

    /// The account behind the user token (`GET /2/users/me`).
    pub async fn me(&self) -> Result<User, XError> {
        let answer: Single<User> = self.get(Endpoint::Me, "/2/users/me", &[], true).await?;
        self.bill(Resource::UserRead, &answer.data.id);
        Ok(answer.data)
    }

    /// One page of the account's mentions after `since_id`.
    pub async fn mentions(
        &self,
        user_id: &str,
        since_id: Option<&str>,
        pagination_token: Option<&str>,
    ) -> Result<(TweetPage, f64), XError> {
        let query = read_query(Vec::new(), since_id, ("pagination_token", pagination_token));
        let page: TweetPage =
            self.get(Endpoint::Mentions, &format!("/2/users/{user_id}/mentions"), &query, false).await?;
        let usd = self.bill_page(&page, Resource::OwnedPostRead);
        Ok((page, usd))
    }

    /// One page of the posts in `conversation` after `since_id` (recent search).
    pub async fn conversation(
        &self,
        conversation: &str,
        since_id: Option<&str>,
        next_token: Option<&str>,
    ) -> Result<(TweetPage, f64), XError> {
        let query = read_query(
            vec![("query", format!("conversation_id:{conversation}"))],
            since_id,
            ("next_token", next_token),
        );
        let page: TweetPage = self.get(Endpoint::Search, "/2/tweets/search/recent", &query, false).await?;
        let usd = self.bill_page(&page, Resource::PostRead);
        Ok((page, usd))
    }

    /// Bills a page's posts and users; what they cost.
    fn bill_page(&self, page: &TweetPage, resource: Resource) -> f64 {
        let mut usd = 0.0;
        for tweet in &page.data {
            if self.bill(resource, &tweet.id) {
                usd += resource.price_usd();
            }
        }
        for user in page.includes.iter().flat_map(|includes| &includes.users) {
            if self.bill(Resource::UserRead, &user.id) {
                usd += Resource::UserRead.price_usd();
            }
        }
        if !page.errors.is_empty() {
            tracing::warn!(
                errors = page.errors.len(),
                kept = page.data.len(),
                "X answered a partial error; the data is kept"
            );
        }
        usd
    }

    /// Posts `text`, as a reply to `in_reply_to` when given.
    pub async fn post(&self, text: &str, in_reply_to: Option<&str>) -> Result<Posted, XError> {
        if self.dry_run {
            let id = format!("dry-run-{}", uuid::Uuid::now_v7().simple());
            tracing::info!(%id, in_reply_to, text, "X_DRY_RUN: not posted");
            return Ok(Posted::Created(id));
        }
        let body = NewTweet {
            text: text.to_owned(),
            reply: in_reply_to.map(|id| ReplySettings { in_reply_to_tweet_id: id.to_owned() }),
        };
        match self.send::<Single<CreatedTweet>>(Endpoint::Post, "/2/tweets", Request::Post(&body), true).await
        {
            Ok(created) => {
                let resource =
                    if xapi::has_url(text) { Resource::PostCreatedWithUrl } else { Resource::PostCreated };
                self.bill(resource, &created.data.id);
                Ok(Posted::Created(created.data.id))
            }
            Err(XError::Refused { status: 403, detail, .. }) if detail.contains("duplicate content") => {
                Ok(Posted::Duplicate)
            }
            Err(XError::Refused { status: 403, detail, .. })
                if detail.contains("not allowed") && in_reply_to.is_some() =>
            {
                Ok(Posted::NotRepliable)
            }
            Err(error) => Err(error),
        }
    }

    async fn get<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        path: &str,
        query: &[(&str, String)],
        user_only: bool,
    ) -> Result<T, XError> {
        self.send(endpoint, path, Request::Get(query), user_only).await
    }

    /// The token a call carries: the user's (refreshed when due) or the app's.
    async fn credential(&self, user_only: bool) -> Result<String, XError> {
        let due = {
            let tokens = self.tokens.lock().await;
            match tokens.as_ref() {
                Some(tokens) => tokens.expires_at.is_some_and(|at| at - REFRESH_AHEAD <= Utc::now()),
                None if user_only => {
                    return Err(XError::NotConfigured("no user token: run `sothebais x login`"));
                }
                None => false,
            }
        };
        if due {
            self.refresh().await?;
        }
        if let Some(tokens) = self.tokens.lock().await.as_ref() {
            return Ok(tokens.access_token.clone());
        }
        self.bearer
            .as_ref()
            .map(|token| token.expose_secret().to_owned())
            .ok_or(XError::NotConfigured("set X_BEARER_TOKEN or run `sothebais x login`"))
    }

    /// Trades the refresh token for a new pair, stored before the old is dropped.
    pub async fn refresh(&self) -> Result<(), XError> {
        let mut tokens = self.tokens.lock().await;
        let Some(refresh) = tokens.as_ref().and_then(|tokens| tokens.refresh_token.clone()) else {
            return Err(XError::Unauthorized("the user token expired and there is no refresh token".into()));
        };
        let client_id =
            self.client_id.clone().ok_or(XError::NotConfigured("X_CLIENT_ID is needed to refresh"))?;
        let mut request =
            self.http.post(format!("{}/2/oauth2/token", self.base)).timeout(Duration::from_secs(10)).form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.as_str()),
                ("client_id", client_id.as_str()),
            ]);
        if let Some(secret) = &self.client_secret {
            request = request.basic_auth(&client_id, Some(secret.expose_secret()));
        }
        let response = request.send().await.map_err(|error| XError::Unavailable(error.to_string()))?;
        let status = response.status();
        self.count(Endpoint::Token, status.as_u16());
        if !status.is_success() {
            let problem: Problem = response.json().await.unwrap_or_default();
            return Err(XError::Unauthorized(format!(
                "the token refresh was refused ({status}): {}",
                problem.detail
            )));
        }
        let answer: TokenResponse =
            response.json().await.map_err(|error| XError::Unavailable(error.to_string()))?;
        let new = UserTokens {
            access_token: answer.access_token,
            refresh_token: answer.refresh_token.or(Some(refresh)),
            expires_at: Some(Utc::now() + chrono::Duration::seconds(answer.expires_in as i64)),
        };
        store_tokens(&self.token_path, &new)
            .map_err(|error| XError::Unavailable(format!("storing the refreshed tokens: {error}")))?;
        *tokens = Some(new);
        tracing::info!("X user token refreshed; the new pair is stored");
        Ok(())
    }

    fn count(&self, endpoint: Endpoint, status: u16) {
        *self.meter().requests.entry((endpoint.as_str(), status)).or_default() += 1;
        metrics::counter!("x_requests_total", "endpoint" => endpoint.as_str(), "status" => status.to_string())
            .increment(1);
    }

    fn note_limits(&self, endpoint: Endpoint, headers: &reqwest::header::HeaderMap, status: StatusCode) {
        let read = |name: &str| {
            headers.get(name).and_then(|value| value.to_str().ok()).and_then(|text| text.parse::<i64>().ok())
        };
        let mut meter = self.meter();
        if let (Some(remaining), Some(reset)) = (read("x-rate-limit-remaining"), read("x-rate-limit-reset"))
            && let Some(reset_at) = Utc.timestamp_opt(reset, 0).single()
        {
            meter
                .limits
                .insert(endpoint.as_str(), RateLimit { remaining: remaining.max(0) as u32, reset_at });
            if remaining <= 0 {
                meter
                    .blocked_until
                    .insert(endpoint.as_str(), reset_at.max(Utc::now() + chrono::Duration::seconds(1)));
            }
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            let until = meter
                .limits
                .get(endpoint.as_str())
                .map(|limit| limit.reset_at)
                .filter(|reset| *reset > Utc::now())
                .unwrap_or_else(|| Utc::now() + chrono::Duration::seconds(1));
            meter
                .blocked_until
                .insert(endpoint.as_str(), until.max(Utc::now() + chrono::Duration::seconds(1)));
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        path: &str,
        request: Request<'_>,
        user_only: bool,
    ) -> Result<T, XError> {
        if let Some(reset_at) = self.blocked_until(endpoint) {
            return Err(XError::RateLimited { endpoint: endpoint.as_str(), reset_at });
        }
        let mut refreshed = false;
        let mut failures = 0u32;
        loop {
            let token = self.credential(user_only).await?;
            let url = format!("{}{path}", self.base);
            let builder = match &request {
                Request::Get(query) => self.http.get(&url).query(query),
                Request::Post(body) => self.http.post(&url).json(body),
            };
            let answer = builder.bearer_auth(&token).timeout(Duration::from_secs(10)).send().await;
            let response = match answer {
                Ok(response) => response,
                Err(error) => {
                    failures += 1;
                    self.count(endpoint, 0);
                    if failures >= 4 {
                        return Err(XError::Unavailable(error.to_string()));
                    }
                    tokio::time::sleep(backoff(failures)).await;
                    continue;
                }
            };
            let status = response.status();
            self.count(endpoint, status.as_u16());
            self.note_limits(endpoint, response.headers(), status);
            if status.is_success() {
                self.meter().last_unauthorized = None;
                return response
                    .json::<T>()
                    .await
                    .map_err(|error| XError::Unavailable(format!("unreadable answer: {error}")));
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                let reset_at =
                    self.blocked_until(endpoint).unwrap_or_else(|| Utc::now() + chrono::Duration::seconds(1));
                tracing::warn!(endpoint = endpoint.as_str(), %reset_at, "X rate limit reached; waiting for the reset");
                return Err(XError::RateLimited { endpoint: endpoint.as_str(), reset_at });
            }
            if status.is_server_error() {
                failures += 1;
                if failures >= 4 {
                    return Err(XError::Unavailable(format!("{status} after {failures} tries")));
                }
                tokio::time::sleep(backoff(failures)).await;
                continue;
            }
            let problem: Problem = response.json().await.unwrap_or_default();
            if status == StatusCode::UNAUTHORIZED {
                let has_refresh =
                    self.tokens.lock().await.as_ref().is_some_and(|tokens| tokens.refresh_token.is_some());
                if !refreshed && has_refresh {
                    refreshed = true;
                    match self.refresh().await {
                        Ok(()) => continue,
                        Err(error) => {
                            self.meter().last_unauthorized = Some(error.to_string());
                            return Err(error);
                        }
                    }
                }
                let reason = format!("{}: {}", problem.title, problem.detail);
                self.meter().last_unauthorized = Some(reason.clone());
                return Err(XError::Unauthorized(reason));
            }
            return Err(XError::Refused {
                status: status.as_u16(),
                title: problem.title,
                detail: problem.detail,
            });
        }
    }
}

/// The parameters of a read of posts: the fields the show asks for on every read,
/// `since_id`, and the page token under the endpoint's own name.
fn read_query(
    mut query: Vec<(&'static str, String)>,
    since_id: Option<&str>,
    (token_name, token): (&'static str, Option<&str>),
) -> Vec<(&'static str, String)> {
    query.extend([
        ("max_results", "100".to_owned()),
        ("tweet.fields", xapi::TWEET_FIELDS.to_owned()),
        ("expansions", "author_id".to_owned()),
        ("user.fields", xapi::USER_FIELDS.to_owned()),
    ]);
    if let Some(since) = since_id {
        query.push(("since_id", since.to_owned()));
    }
    if let Some(token) = token {
        query.push((token_name, token.to_owned()));
    }
    query
}

enum Request<'a> {
    Get(&'a [(&'a str, String)]),
    Post(&'a NewTweet),
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(500u64 << failures.saturating_sub(1).min(4))
}
