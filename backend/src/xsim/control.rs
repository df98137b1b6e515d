//! The simulator's control API (`/sim/…`, no token): post as anyone, edit, list the
//! posts, set the latency and limits, inject faults, read the bill, expire tokens.

use super::*;

pub(super) async fn sim_post(State(sim): State<XSim>, Json(draft): Json<Draft>) -> Response {
    if draft.author.trim().is_empty() || draft.text.is_empty() {
        return problem(StatusCode::BAD_REQUEST, "Invalid Request", "author and text are required");
    }
    let author = draft.author.clone();
    let tweet = sim.post_as(&author, draft);
    (StatusCode::CREATED, Json(Single { data: tweet })).into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct EditBody {
    text: String,
}

/// An edit: a new version whose `edit_history_tweet_ids` starts with the original.
pub(super) async fn sim_edit(
    State(sim): State<XSim>,
    Path(id): Path<String>,
    Json(body): Json<EditBody>,
) -> Response {
    let mut sim = sim.lock();
    let Some(original) = sim.posts.get(&xapi::id_number(&id)).cloned() else {
        return problem(StatusCode::NOT_FOUND, "Not Found Error", "no such post");
    };
    let now = Utc::now();
    let new_id = sim.next_id(now);
    let mut history = original.tweet.edit_history_tweet_ids.clone();
    history.push(new_id.clone());
    let tweet = Tweet {
        id: new_id.clone(),
        text: body.text.clone(),
        created_at: Some(now),
        edit_history_tweet_ids: history,
        ..original.tweet.clone()
    };
    sim.posts.insert(
        xapi::id_number(&new_id),
        Post {
            tweet: tweet.clone(),
            mentions: mentions_in(&body.text),
            quotes: original.quotes,
            visible_at: now,
        },
    );
    (StatusCode::CREATED, Json(Single { data: tweet })).into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct PostsQuery {
    author: Option<String>,
}

pub(super) async fn sim_posts(State(sim): State<XSim>, Query(query): Query<PostsQuery>) -> Response {
    let sim = sim.lock();
    let author = query.author.as_deref().map(|name| name.trim_start_matches('@').to_lowercase());
    let author_id = author.as_ref().map(|name| sim.by_name.get(name).cloned().unwrap_or_default());
    let data: Vec<Tweet> = sim
        .posts
        .values()
        .filter(|post| author_id.as_ref().is_none_or(|id| post.tweet.author_id.as_ref() == Some(id)))
        .map(|post| post.tweet.clone())
        .collect();
    let users: Vec<User> = sim.users.values().cloned().collect();
    Json(json!({"data": data, "includes": {"users": users}, "meta": {"result_count": data.len()}}))
        .into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct LatencyBody {
    ms: u64,
}

pub(super) async fn sim_latency(State(sim): State<XSim>, Json(body): Json<LatencyBody>) -> Response {
    sim.lock().latency = Duration::from_millis(body.ms.min(60_000));
    Json(json!({"latency_ms": body.ms.min(60_000)})).into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct LimitBody {
    endpoint: Endpoint,
    limit: u32,
    window_secs: u64,
}

pub(super) async fn sim_limits(State(sim): State<XSim>, Json(body): Json<LimitBody>) -> Response {
    if body.limit == 0 || body.window_secs == 0 {
        return problem(StatusCode::BAD_REQUEST, "Invalid Request", "limit and window_secs must be positive");
    }
    let mut sim = sim.lock();
    sim.limits
        .insert(body.endpoint, Limit { limit: body.limit, window: Duration::from_secs(body.window_secs) });
    sim.windows.retain(|(endpoint, _), _| *endpoint != body.endpoint);
    Json(json!({"endpoint": body.endpoint, "limit": body.limit, "window_secs": body.window_secs}))
        .into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct FaultBody {
    endpoint: Endpoint,
    kind: FaultKind,
    #[serde(default = "one")]
    count: u32,
}

fn one() -> u32 {
    1
}

pub(super) async fn sim_faults(State(sim): State<XSim>, Json(body): Json<FaultBody>) -> Response {
    let mut sim = sim.lock();
    let queue = sim.faults.entry(body.endpoint).or_default();
    for _ in 0..body.count.min(1000) {
        queue.push_back(body.kind);
    }
    Json(json!({"endpoint": body.endpoint, "queued": queue.len()})).into_response()
}

pub(super) async fn sim_billing(State(sim): State<XSim>) -> Response {
    let sim = sim.lock();
    let counts: BTreeMap<&str, u64> =
        Resource::ALL.iter().map(|resource| (resource.as_str(), sim.billing.count(*resource))).collect();
    Json(json!({
        "resources": counts,
        "usd": sim.billing.usd(),
        "requests": sim.requests,
        "refused": sim.refused,
    }))
    .into_response()
}

pub(super) async fn sim_tokens(State(sim): State<XSim>) -> Response {
    let sim = sim.lock();
    let now = Utc::now();
    let access: Vec<&String> =
        sim.access_tokens.iter().filter(|(_, (_, expires))| *expires > now).map(|(token, _)| token).collect();
    let refresh: Vec<&String> = sim.refresh_tokens.keys().collect();
    Json(json!({"access_tokens": access, "refresh_tokens": refresh})).into_response()
}

pub(super) async fn sim_expire(State(sim): State<XSim>) -> Response {
    let mut sim = sim.lock();
    let past = Utc::now() - chrono::Duration::seconds(1);
    for (_, expires) in sim.access_tokens.values_mut() {
        *expires = past;
    }
    Json(json!({"expired": sim.access_tokens.len()})).into_response()
}
