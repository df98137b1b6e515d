//! `sothebais xsim`: a simulator of the part of X API v2 the show uses (`x.md`), so the
//! demo and the tests run the show against X's shapes, headers and limits without X.
//!
//! X's side: `GET /2/users/me`, `GET /2/users/{id}/mentions`,
//! `GET /2/tweets/search/recent` (`conversation_id:` queries), `GET /2/tweets/{id}`,
//! `POST /2/tweets`, and OAuth 2.0 (`GET /i/oauth2/authorize`, which approves at once
//! as the show's account, and `POST /2/oauth2/token`). Snowflake ids carry their
//! creation time; every answer carries `x-rate-limit-*`; a limit exceeded is a real
//! 429; bearer tokens are checked (user tokens expire, refresh tokens are single-use);
//! a reply to a post that neither mentions nor quotes the show is refused 403, a post
//! repeating one of the account's posts is refused as a duplicate; billable resources
//! are counted as X bills them.
//!
//! The control API (`/sim/…`, no token): post as anyone, edit, list posts, set the
//! latency and limits, inject faults, read the bill, expire tokens. See docs/x.md.

pub mod audience;
mod control;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post, put};
use axum::{Form, Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::social::xapi::{
    self, Billing, CreatedTweet, Includes, Meta, NewTweet, Problem, ReferencedTweet, Resource, Single,
    TokenResponse, Tweet, TweetPage, User,
};

/// The endpoints the simulator limits and counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Me,
    Mentions,
    Search,
    Tweet,
    Post,
    Token,
}

impl Endpoint {
    pub const ALL: [Endpoint; 6] = [
        Endpoint::Me,
        Endpoint::Mentions,
        Endpoint::Search,
        Endpoint::Tweet,
        Endpoint::Post,
        Endpoint::Token,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Me => "me",
            Endpoint::Mentions => "mentions",
            Endpoint::Search => "search",
            Endpoint::Tweet => "tweet",
            Endpoint::Post => "post",
            Endpoint::Token => "token",
        }
    }

    /// X's limits per 15 minutes for a user token (`../shared/notes/facts.md`).
    fn default_limit(self) -> u32 {
        match self {
            Endpoint::Me => 75,
            Endpoint::Mentions | Endpoint::Search => 300,
            Endpoint::Tweet => 900,
            Endpoint::Post => 100,
            Endpoint::Token => 10_000,
        }
    }
}

/// How the simulator starts.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The show's account.
    pub handle: String,
    /// The app-only bearer token reads accept.
    pub bearer_token: String,
    /// A user access token valid from the start (as if `x login` had run), and its
    /// refresh token.
    pub user_token: String,
    pub refresh_token: String,
    /// How long user access tokens last (X: 2 hours).
    pub token_ttl: Duration,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            handle: "SothebAIs".into(),
            bearer_token: "xsim-bearer".into(),
            user_token: "xsim-user".into(),
            refresh_token: "xsim-refresh".into(),
            token_ttl: Duration::from_secs(7200),
        }
    }
}

/// A post as the simulator keeps it.
#[derive(Debug, Clone)]
struct Post {
    tweet: Tweet,
    /// Lower-cased usernames the text mentions.
    mentions: Vec<String>,
    quotes: Option<String>,
    /// When the post shows up in reads (X's indexing delay; late posters).
    visible_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy)]
struct Limit {
    limit: u32,
    window: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    reset_at: DateTime<Utc>,
    used: u32,
}

/// A fault to inject into the next calls of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// 503 Service Unavailable.
    ServerError,
    /// 429 without the limit being reached (a usage cap).
    RateLimited,
    /// A 200 with `data` and an `errors` entry.
    Partial,
    /// 401, as if the token had been revoked.
    Unauthorized,
}

#[derive(Debug, Default)]
struct Sim {
    options: SimOptionsState,
    users: BTreeMap<String, User>,
    by_name: HashMap<String, String>,
    posts: BTreeMap<u64, Post>,
    sequence: u16,
    access_tokens: HashMap<String, (String, DateTime<Utc>)>,
    refresh_tokens: HashMap<String, String>,
    codes: HashMap<String, (String, String)>,
    limits: HashMap<Endpoint, Limit>,
    windows: HashMap<(Endpoint, String), Window>,
    latency: Duration,
    faults: HashMap<Endpoint, VecDeque<FaultKind>>,
    billing: Billing,
    requests: BTreeMap<&'static str, u64>,
    refused: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Default)]
struct SimOptionsState {
    show_id: String,
    bearer_token: String,
    token_ttl: Duration,
}

/// The simulator's state, shared by its routes and the simulated audience.
#[derive(Debug, Clone)]
pub struct XSim {
    inner: Arc<Mutex<Sim>>,
}

type Refusal = Box<Response>;

fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = Problem {
        title: title.to_owned(),
        detail: detail.to_owned(),
        kind: "about:blank".to_owned(),
        status: Some(status.as_u16()),
        resource_id: None,
    };
    (status, Json(body)).into_response()
}

fn refusal(status: StatusCode, title: &str, detail: &str) -> Refusal {
    Box::new(problem(status, title, detail))
}

impl XSim {
    pub fn new(options: SimOptions) -> XSim {
        let mut sim = Sim {
            options: SimOptionsState {
                bearer_token: options.bearer_token.clone(),
                token_ttl: options.token_ttl,
                ..SimOptionsState::default()
            },
            ..Sim::default()
        };
        let show = sim.user(&options.handle);
        sim.options.show_id = show.clone();
        let expires = Utc::now() + chrono::Duration::from_std(options.token_ttl).unwrap_or_default();
        sim.access_tokens.insert(options.user_token, (show.clone(), expires));
        sim.refresh_tokens.insert(options.refresh_token, show);
        for endpoint in Endpoint::ALL {
            sim.limits.insert(
                endpoint,
                Limit { limit: endpoint.default_limit(), window: Duration::from_secs(15 * 60) },
            );
        }
        XSim { inner: Arc::new(Mutex::new(sim)) }
    }

    fn lock(&self) -> MutexGuard<'_, Sim> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The show account's id.
    pub fn show_id(&self) -> String {
        self.lock().options.show_id.clone()
    }

    /// Posts `text` as `author` (created now, or at `created_at`), visible after
    /// `delay`.
    pub fn post_as(&self, author: &str, draft: Draft) -> Tweet {
        self.lock().create(author, draft)
    }

    /// The show account's handle.
    pub fn show_handle(&self) -> String {
        let sim = self.lock();
        sim.users.get(&sim.options.show_id).map(|user| user.username.clone()).unwrap_or_default()
    }

    /// The newest post of the show that starts a thread and names `title`: a lot's
    /// announcement, whose thread viewers reply in.
    pub fn announcement_of(&self, title: &str) -> Option<String> {
        let sim = self.lock();
        let show = sim.options.show_id.as_str();
        sim.posts
            .values()
            .rev()
            .find(|post| {
                post.tweet.author_id.as_deref() == Some(show)
                    && post.tweet.replied_to().is_none()
                    && post.tweet.text.contains(title)
            })
            .map(|post| post.tweet.id.clone())
    }

    /// The bill so far: requests by endpoint, billed resources by kind, US dollars.
    pub fn billing_view(&self) -> (BTreeMap<String, u64>, BTreeMap<String, u64>, f64) {
        let sim = self.lock();
        let requests =
            sim.requests.iter().map(|(endpoint, count)| ((*endpoint).to_owned(), *count)).collect();
        let resources = Resource::ALL
            .iter()
            .map(|resource| (resource.as_str().to_owned(), sim.billing.count(*resource)))
            .collect();
        (requests, resources, sim.billing.usd())
    }

    /// Every post, oldest first.
    pub fn posts(&self) -> Vec<Tweet> {
        self.lock().posts.values().map(|post| post.tweet.clone()).collect()
    }

    /// The routes: X's API and the control API.
    pub fn router(&self) -> Router {
        let x = Router::new()
            .route("/2/users/me", get(me))
            .route("/2/users/{id}/mentions", get(mentions))
            .route("/2/tweets/search/recent", get(search))
            .route("/2/tweets/{id}", get(tweet))
            .route("/2/tweets", post(create_tweet))
            .route("/2/oauth2/token", post(token))
            .route("/i/oauth2/authorize", get(authorize))
            .layer(middleware::from_fn_with_state(self.clone(), latency));
        let control = Router::new()
            .route("/sim/posts", post(control::sim_post).get(control::sim_posts))
            .route("/sim/posts/{id}/edit", post(control::sim_edit))
            .route("/sim/latency", put(control::sim_latency))
            .route("/sim/limits", put(control::sim_limits))
            .route("/sim/faults", post(control::sim_faults))
            .route("/sim/billing", get(control::sim_billing))
            .route("/sim/tokens", get(control::sim_tokens))
            .route("/sim/tokens/expire", post(control::sim_expire));
        x.merge(control).with_state(self.clone())
    }

    /// Serves the simulator on `listener` until `stop` completes.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router().into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(stop)
            .await
    }
}

/// A post to create through the control API or the audience.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Draft {
    #[serde(default)]
    pub author: String,
    pub text: String,
    #[serde(default)]
    pub in_reply_to: Option<String>,
    #[serde(default)]
    pub quote_of: Option<String>,
    #[serde(default)]
    pub retweet_of: Option<String>,
    /// Shown in reads only this long after its creation (X's delivery delay).
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// A creation time in the past, for late posts.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
}

impl Sim {
    /// The id of user `name`, created on first use.
    fn user(&mut self, name: &str) -> String {
        let name = name.trim_start_matches('@');
        if let Some(id) = self.by_name.get(&name.to_lowercase()) {
            return id.clone();
        }
        let id = (10_000 + self.users.len() as u64).to_string();
        self.users.insert(
            id.clone(),
            User {
                id: id.clone(),
                name: name.to_owned(),
                username: name.to_owned(),
                created_at: Some(Utc::now()),
                verified: Some(false),
            },
        );
        self.by_name.insert(name.to_lowercase(), id.clone());
        id
    }

    fn next_id(&mut self, at: DateTime<Utc>) -> String {
        loop {
            self.sequence = self.sequence.wrapping_add(1) & 0x0fff;
            let id = xapi::snowflake(at, self.sequence);
            if !self.posts.contains_key(&xapi::id_number(&id)) {
                return id;
            }
        }
    }

    fn create(&mut self, author: &str, draft: Draft) -> Tweet {
        let author_id = self.user(author);
        let created_at = draft.created_at.unwrap_or_else(Utc::now);
        let id = self.next_id(created_at);
        let parent = draft.in_reply_to.as_ref().and_then(|parent| self.posts.get(&xapi::id_number(parent)));
        let conversation_id = parent
            .map(|parent| parent.tweet.conversation_id.clone().unwrap_or_else(|| parent.tweet.id.clone()))
            .unwrap_or_else(|| id.clone());
        let in_reply_to_user_id = parent.and_then(|parent| parent.tweet.author_id.clone());
        let mut referenced_tweets = Vec::new();
        if let Some(parent) = &draft.in_reply_to {
            referenced_tweets.push(ReferencedTweet { kind: "replied_to".into(), id: parent.clone() });
        }
        if let Some(quoted) = &draft.quote_of {
            referenced_tweets.push(ReferencedTweet { kind: "quoted".into(), id: quoted.clone() });
        }
        if let Some(original) = &draft.retweet_of {
            referenced_tweets.push(ReferencedTweet { kind: "retweeted".into(), id: original.clone() });
        }
        let tweet = Tweet {
            id: id.clone(),
            text: draft.text.clone(),
            author_id: Some(author_id),
            created_at: Some(created_at),
            conversation_id: Some(conversation_id),
            in_reply_to_user_id,
            referenced_tweets,
            edit_history_tweet_ids: vec![id.clone()],
        };
        let visible_at = Utc::now() + chrono::Duration::milliseconds(draft.delay_ms.unwrap_or(0) as i64);
        self.posts.insert(
            xapi::id_number(&id),
            Post {
                mentions: mentions_in(&draft.text),
                quotes: draft.quote_of,
                tweet: tweet.clone(),
                visible_at,
            },
        );
        tweet
    }

    /// Whether `post` summons the show: it mentions the account, or quotes one of its posts.
    fn summons_show(&self, post: &Post) -> bool {
        let show = &self.options.show_id;
        let handle = self.users.get(show).map(|user| user.username.to_lowercase()).unwrap_or_default();
        post.mentions.contains(&handle)
            || post.tweet.author_id.as_deref() == Some(show.as_str())
            || post.quotes.as_ref().is_some_and(|quoted| {
                self.posts
                    .get(&xapi::id_number(quoted))
                    .is_some_and(|quoted| quoted.tweet.author_id.as_deref() == Some(show.as_str()))
            })
    }

    /// Checks the bearer token: the user id behind it (`None` for the app token).
    fn caller(&self, headers: &HeaderMap, user_only: bool) -> Result<Option<String>, Refusal> {
        let unauthorized = || refusal(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
        let token = headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(unauthorized)?;
        if token == self.options.bearer_token {
            if user_only {
                return Err(refusal(
                    StatusCode::FORBIDDEN,
                    "Unsupported Authentication",
                    "Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.  Supported authentication types are [OAuth 1.0a User Context, OAuth 2.0 User Context].",
                ));
            }
            return Ok(None);
        }
        match self.access_tokens.get(token) {
            Some((user, expires)) if *expires > Utc::now() => Ok(Some(user.clone())),
            _ => Err(unauthorized()),
        }
    }

    /// Counts a call against its limit; a refusal when the window is spent.
    fn admit(&mut self, endpoint: Endpoint, key: &str) -> Result<HeaderMap, Refusal> {
        *self.requests.entry(endpoint.as_str()).or_default() += 1;
        let now = Utc::now();
        let limit = self
            .limits
            .get(&endpoint)
            .copied()
            .unwrap_or(Limit { limit: endpoint.default_limit(), window: Duration::from_secs(900) });
        let window =
            self.windows.entry((endpoint, key.to_owned())).or_insert(Window { reset_at: now, used: 0 });
        if window.reset_at <= now {
            *window = Window {
                reset_at: now + chrono::Duration::from_std(limit.window).unwrap_or_default(),
                used: 0,
            };
        }
        let mut headers = HeaderMap::new();
        let remaining = limit.limit.saturating_sub(window.used);
        let reset = window.reset_at.timestamp() + i64::from(window.reset_at.timestamp_subsec_millis() > 0);
        for (name, value) in [
            ("x-rate-limit-limit", limit.limit.to_string()),
            ("x-rate-limit-remaining", remaining.saturating_sub(1).to_string()),
            ("x-rate-limit-reset", reset.to_string()),
        ] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        if remaining == 0 {
            headers.insert("x-rate-limit-remaining", HeaderValue::from_static("0"));
            *self.refused.entry(endpoint.as_str()).or_default() += 1;
            let mut response =
                problem(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests", "Too Many Requests");
            response.headers_mut().extend(headers);
            return Err(Box::new(response));
        }
        window.used += 1;
        if let Some(fault) = self.faults.get_mut(&endpoint).and_then(VecDeque::pop_front) {
            let response = match fault {
                FaultKind::ServerError => {
                    problem(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable", "Service Unavailable")
                }
                FaultKind::RateLimited => {
                    *self.refused.entry(endpoint.as_str()).or_default() += 1;
                    problem(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests", "Too Many Requests")
                }
                FaultKind::Unauthorized => problem(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized"),
                FaultKind::Partial => {
                    // Marked for the handler: it answers with data and an error.
                    headers.insert("x-sim-partial", HeaderValue::from_static("1"));
                    return Ok(headers);
                }
            };
            let mut response = response;
            response.headers_mut().extend(headers);
            return Err(Box::new(response));
        }
        Ok(headers)
    }

    /// The visible posts matching `keep`, newest first, after `since_id`, paged.
    fn page(
        &mut self,
        keep: impl Fn(&Sim, &Post) -> bool,
        params: &ListParams,
        token: Option<&str>,
        resource: Resource,
        max: u32,
    ) -> TweetPage {
        let now = Utc::now();
        let since = params.since_id.as_deref().map_or(0, xapi::id_number);
        let before =
            token.and_then(|token| token.strip_prefix("pt")).map_or(u64::MAX, |id| id.parse().unwrap_or(0));
        let size = params.max_results.unwrap_or(10).clamp(5, max) as usize;
        let matching: Vec<Tweet> = self
            .posts
            .range(since.saturating_add(1)..before)
            .rev()
            .filter(|(_, post)| post.visible_at <= now && keep(self, post))
            .take(size + 1)
            .map(|(_, post)| post.tweet.clone())
            .collect();
        let more = matching.len() > size;
        let data: Vec<Tweet> = matching.into_iter().take(size).collect();
        let mut users = Vec::new();
        for tweet in &data {
            self.billing.record(resource, &tweet.id, now);
            if params.expansions.as_deref().is_some_and(|expansions| expansions.contains("author_id"))
                && let Some(user) = tweet.author_id.as_ref().and_then(|id| self.users.get(id))
                && !users.iter().any(|known: &User| known.id == user.id)
            {
                users.push(user.clone());
            }
        }
        for user in &users {
            self.billing.record(Resource::UserRead, &user.id, now);
        }
        let meta = Meta {
            result_count: data.len() as u32,
            newest_id: data.first().map(|tweet| tweet.id.clone()),
            oldest_id: data.last().map(|tweet| tweet.id.clone()),
            next_token: (more).then(|| format!("pt{}", data.last().map_or("0", |tweet| tweet.id.as_str()))),
        };
        TweetPage {
            data,
            includes: (!users.is_empty()).then_some(Includes { users }),
            meta,
            errors: Vec::new(),
        }
    }
}

fn mentions_in(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '@'))
        .filter_map(|word| word.strip_prefix('@'))
        .filter(|name| !name.is_empty())
        .map(str::to_lowercase)
        .collect()
}

async fn latency(State(sim): State<XSim>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let delay = sim.lock().latency;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    response
}

fn with_headers(headers: HeaderMap, response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    response.headers_mut().extend(headers);
    response
}

/// The key a rate limit window is kept under: the user, or the app.
fn limit_key(caller: &Option<String>) -> String {
    caller.clone().unwrap_or_else(|| "app".to_owned())
}

async fn me(State(sim): State<XSim>, headers: HeaderMap) -> Response {
    let mut sim = sim.lock();
    let caller = match sim.caller(&headers, true) {
        Ok(caller) => caller,
        Err(refused) => return *refused,
    };
    let limits = match sim.admit(Endpoint::Me, &limit_key(&caller)) {
        Ok(limits) => limits,
        Err(refused) => return *refused,
    };
    let user = caller.and_then(|id| sim.users.get(&id).cloned());
    match user {
        Some(user) => {
            sim.billing.record(Resource::UserRead, &user.id, Utc::now());
            with_headers(limits, Json(Single { data: user }))
        }
        None => problem(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized"),
    }
}

#[derive(Debug, Default, Deserialize)]
struct ListParams {
    since_id: Option<String>,
    max_results: Option<u32>,
    pagination_token: Option<String>,
    next_token: Option<String>,
    query: Option<String>,
    expansions: Option<String>,
    #[serde(rename = "tweet.fields")]
    #[allow(dead_code, reason = "accepted as X accepts it; every field is always sent")]
    tweet_fields: Option<String>,
    #[serde(rename = "user.fields")]
    #[allow(dead_code, reason = "accepted as X accepts it; every field is always sent")]
    user_fields: Option<String>,
}

fn partial(mut page: TweetPage, limits: &HeaderMap) -> TweetPage {
    if limits.contains_key("x-sim-partial") {
        page.errors.push(Problem {
            title: "Not Found Error".into(),
            detail: "Could not find tweet with ids: [1].".into(),
            kind: "https://api.x.com/2/problems/resource-not-found".into(),
            status: None,
            resource_id: Some("1".into()),
        });
    }
    page
}

async fn mentions(
    State(sim): State<XSim>,
    Path(user): Path<String>,
    Query(params): Query<ListParams>,
    headers: HeaderMap,
) -> Response {
    let mut sim = sim.lock();
    let caller = match sim.caller(&headers, false) {
        Ok(caller) => caller,
        Err(refused) => return *refused,
    };
    let mut limits = match sim.admit(Endpoint::Mentions, &limit_key(&caller)) {
        Ok(limits) => limits,
        Err(refused) => return *refused,
    };
    let Some(handle) = sim.users.get(&user).map(|user| user.username.to_lowercase()) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Invalid Request",
            "The `id` query parameter value is not valid",
        );
    };
    let token = params.pagination_token.clone();
    let page = sim.page(
        |_, post| post.mentions.contains(&handle) && post.tweet.author_id.as_deref() != Some(user.as_str()),
        &params,
        token.as_deref(),
        Resource::OwnedPostRead,
        100,
    );
    let page = partial(page, &limits);
    limits.remove("x-sim-partial");
    with_headers(limits, Json(page))
}

async fn search(State(sim): State<XSim>, Query(params): Query<ListParams>, headers: HeaderMap) -> Response {
    let mut sim = sim.lock();
    let caller = match sim.caller(&headers, false) {
        Ok(caller) => caller,
        Err(refused) => return *refused,
    };
    let mut limits = match sim.admit(Endpoint::Search, &limit_key(&caller)) {
        Ok(limits) => limits,
        Err(refused) => return *refused,
    };
    let query = params.query.clone().unwrap_or_default();
    let Some(conversation) = query.trim().strip_prefix("conversation_id:").map(str::to_owned) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Invalid Request",
            "the simulator answers `conversation_id:<id>` queries only",
        );
    };
    let token = params.next_token.clone();
    let page = sim.page(
        |_, post| {
            post.tweet.conversation_id.as_deref() == Some(conversation.as_str())
                && post.tweet.id != conversation
        },
        &params,
        token.as_deref(),
        Resource::PostRead,
        100,
    );
    let page = partial(page, &limits);
    limits.remove("x-sim-partial");
    with_headers(limits, Json(page))
}

async fn tweet(State(sim): State<XSim>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut sim = sim.lock();
    let caller = match sim.caller(&headers, false) {
        Ok(caller) => caller,
        Err(refused) => return *refused,
    };
    let limits = match sim.admit(Endpoint::Tweet, &limit_key(&caller)) {
        Ok(limits) => limits,
        Err(refused) => return *refused,
    };
    let found = sim.posts.get(&xapi::id_number(&id)).map(|post| post.tweet.clone());
    match found {
        Some(tweet) => {
            sim.billing.record(Resource::PostRead, &tweet.id, Utc::now());
            with_headers(limits, Json(Single { data: tweet }))
        }
        None => with_headers(
            limits,
            Json(json!({"errors": [{
                "value": id, "detail": format!("Could not find tweet with id: [{id}]."),
                "title": "Not Found Error", "resource_type": "tweet", "parameter": "id",
                "resource_id": id, "type": "https://api.x.com/2/problems/resource-not-found"
            }]})),
        ),
    }
}

async fn create_tweet(State(sim): State<XSim>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let mut sim = sim.lock();
    let caller = match sim.caller(&headers, true) {
        Ok(Some(caller)) => caller,
        Ok(None) => return problem(StatusCode::FORBIDDEN, "Forbidden", "user context required"),
        Err(refused) => return *refused,
    };
    let limits = match sim.admit(Endpoint::Post, &caller) {
        Ok(limits) => limits,
        Err(refused) => return *refused,
    };
    let new: NewTweet = match serde_json::from_slice(&body) {
        Ok(new) => new,
        Err(error) => return problem(StatusCode::BAD_REQUEST, "Invalid Request", &error.to_string()),
    };
    if new.text.trim().is_empty() || new.text.chars().count() > 280 {
        return problem(StatusCode::BAD_REQUEST, "Invalid Request", "text must be 1 to 280 characters");
    }
    let recent = Utc::now() - chrono::Duration::hours(24);
    let duplicate = sim.posts.values().any(|post| {
        post.tweet.author_id.as_deref() == Some(caller.as_str())
            && post.tweet.text == new.text
            && post.tweet.created_at.is_some_and(|at| at > recent)
    });
    if duplicate {
        *sim.refused.entry("duplicate").or_default() += 1;
        return with_headers(limits, problem(StatusCode::FORBIDDEN, "Forbidden", xapi::DUPLICATE_DETAIL));
    }
    if let Some(reply) = &new.reply {
        let Some(parent) = sim.posts.get(&xapi::id_number(&reply.in_reply_to_tweet_id)) else {
            return with_headers(
                limits,
                problem(StatusCode::BAD_REQUEST, "Invalid Request", "the post replied to does not exist"),
            );
        };
        if !sim.summons_show(parent) {
            *sim.refused.entry("reply_not_allowed").or_default() += 1;
            return with_headers(
                limits,
                problem(StatusCode::FORBIDDEN, "Forbidden", xapi::REPLY_NOT_ALLOWED_DETAIL),
            );
        }
    }
    let resource =
        if xapi::has_url(&new.text) { Resource::PostCreatedWithUrl } else { Resource::PostCreated };
    let handle = sim.users.get(&caller).map(|user| user.username.clone()).unwrap_or_default();
    let tweet = sim.create(
        &handle,
        Draft {
            text: new.text,
            in_reply_to: new.reply.map(|reply| reply.in_reply_to_tweet_id),
            ..Draft::default()
        },
    );
    sim.billing.record(resource, &tweet.id, Utc::now());
    let created =
        CreatedTweet { id: tweet.id.clone(), text: tweet.text, edit_history_tweet_ids: vec![tweet.id] };
    with_headers(limits, (StatusCode::CREATED, Json(Single { data: created })))
}

#[derive(Debug, Deserialize)]
struct AuthorizeParams {
    redirect_uri: String,
    state: String,
    code_challenge: String,
    #[serde(default)]
    code_challenge_method: Option<String>,
    #[allow(dead_code, reason = "accepted as X requires it")]
    client_id: String,
}

/// Approves at once, as the show's account would.
async fn authorize(State(sim): State<XSim>, Query(params): Query<AuthorizeParams>) -> Response {
    if params.code_challenge_method.as_deref() != Some("S256") {
        return problem(StatusCode::BAD_REQUEST, "Invalid Request", "code_challenge_method must be S256");
    }
    let code = format!("code-{}", uuid::Uuid::new_v4().simple());
    sim.lock().codes.insert(code.clone(), (params.code_challenge, params.redirect_uri.clone()));
    let separator = if params.redirect_uri.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{}{separator}state={}&code={code}", params.redirect_uri, params.state))
        .into_response()
}

#[derive(Debug, Deserialize)]
struct TokenForm {
    grant_type: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    code_verifier: Option<String>,
    #[serde(default)]
    redirect_uri: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
}

async fn token(State(sim): State<XSim>, Form(form): Form<TokenForm>) -> Response {
    use base64::Engine as _;
    use sha2::Digest as _;
    let mut sim = sim.lock();
    *sim.requests.entry(Endpoint::Token.as_str()).or_default() += 1;
    let user = match form.grant_type.as_str() {
        "authorization_code" => {
            let Some((challenge, redirect)) = form.code.as_ref().and_then(|code| sim.codes.remove(code))
            else {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Value passed for the authorization code was invalid.",
                );
            };
            let verifier = form.code_verifier.unwrap_or_default();
            let expected =
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier));
            if expected != challenge || form.redirect_uri.as_deref() != Some(redirect.as_str()) {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "code_verifier or redirect_uri does not match",
                );
            }
            sim.options.show_id.clone()
        }
        "refresh_token" => {
            // Single use: the old refresh token is gone once used.
            match form.refresh_token.as_ref().and_then(|token| sim.refresh_tokens.remove(token)) {
                Some(user) => user,
                None => {
                    return problem(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "Value passed for the token was invalid.",
                    );
                }
            }
        }
        _ => return problem(StatusCode::BAD_REQUEST, "unsupported_grant_type", "unsupported grant_type"),
    };
    let access = format!("xsim-access-{}", uuid::Uuid::new_v4().simple());
    let refresh = format!("xsim-refresh-{}", uuid::Uuid::new_v4().simple());
    let ttl = sim.options.token_ttl;
    let expires = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default();
    sim.access_tokens.insert(access.clone(), (user.clone(), expires));
    sim.refresh_tokens.insert(refresh.clone(), user);
    Json(TokenResponse {
        token_type: "bearer".into(),
        expires_in: ttl.as_secs(),
        access_token: access,
        scope: xapi::SCOPES.into(),
        refresh_token: Some(refresh),
    })
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_read_from_the_text_case_insensitively() {
        assert_eq!(mentions_in("@SothebAIs bid 1.5, cc @curie!"), vec!["sothebais", "curie"]);
    }

    #[test]
    fn a_reply_summons_the_show_only_by_mention_or_quote() {
        let sim = XSim::new(SimOptions::default());
        let announcement =
            sim.post_as("SothebAIs", Draft { text: "Lot 1 is open".into(), ..Draft::default() });
        let mention = sim.post_as(
            "curie",
            Draft {
                text: "@SothebAIs bid 1".into(),
                in_reply_to: Some(announcement.id.clone()),
                ..Draft::default()
            },
        );
        let plain = sim.post_as(
            "noether",
            Draft { text: "bid 2".into(), in_reply_to: Some(announcement.id.clone()), ..Draft::default() },
        );
        let quote = sim.post_as(
            "hopper",
            Draft { text: "bid 3".into(), quote_of: Some(announcement.id.clone()), ..Draft::default() },
        );
        let state = sim.lock();
        let post = |id: &str| state.posts.get(&xapi::id_number(id)).cloned().expect("post");
        assert!(state.summons_show(&post(&mention.id)));
        assert!(!state.summons_show(&post(&plain.id)));
        assert!(state.summons_show(&post(&quote.id)));
        assert_eq!(post(&plain.id).tweet.conversation_id, Some(announcement.id.clone()));
    }
}
