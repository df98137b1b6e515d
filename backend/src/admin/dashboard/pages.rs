//! The dashboard's pages and the sections htmx refreshes in place
//! (`/ui/fragment/{name}`). Each section reads the API as the viewer; writes are
//! forms and buttons that `app.js` sends to the API with the CSRF token.

use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};
use sothebais_kit::access::Role;

use super::{Api, Viewer, bidder, layout, text, unavailable, viewer, when};
use crate::app::AppState;

/// A section htmx refreshes when the page's live feed says something changed.
fn live_section(id: &str, name: &str, query: &str, body: Markup) -> Markup {
    let url = if query.is_empty() {
        format!("/ui/fragment/{name}")
    } else {
        format!("/ui/fragment/{name}?{query}")
    };
    html! {
        div id=(id) hx-get=(url) hx-trigger="refresh" hx-swap="innerHTML" data-refresh { (body) }
    }
}

#[derive(Debug, Deserialize)]
pub struct FragmentQuery {
    id: Option<String>,
    pattern: Option<String>,
    user: Option<String>,
}

/// `GET /ui/fragment/{name}`: one section, for htmx.
pub async fn fragment(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: OriginalUri,
    Path(name): Path<String>,
    Query(query): Query<FragmentQuery>,
) -> Response {
    let viewer = match viewer(&state, &headers, &uri).await {
        Ok(viewer) => viewer,
        Err(_) => {
            return (axum::http::StatusCode::UNAUTHORIZED, Html("signed out: reload the page"))
                .into_response();
        }
    };
    let api = Api::new(&state, &viewer);
    let id = query.id.unwrap_or_default();
    let markup = match name.as_str() {
        "on-air" => on_air(&state, &api).await,
        "services" => services(&api).await,
        "host-now" => host_now(&api).await,
        "x-status" => x_status(&api).await,
        "auction-list" => auction_list(&state, &api, &viewer).await,
        "lot" => lot_detail(&state, &api, &viewer, &id).await,
        "scenes" => scenes(&api, &viewer).await,
        "layers" => layers(&api, &viewer).await,
        "outputs" => outputs(&api, &viewer).await,
        "characters" => characters(&api, &viewer).await,
        "memory" => memory(&api, query.user.as_deref().unwrap_or_default()).await,
        "history" => history(&state, &api, query.pattern.as_deref().unwrap_or("auction:*")).await,
        "dead-letters" => dead_letters(&state, &api, &viewer).await,
        "blocklist" => blocklist(&api, &viewer).await,
        "users" => users(&state, &api, &viewer).await,
        "audit" => audit(&state, &api, &viewer).await,
        "logs" => logs(&api, &viewer).await,
        "config" => config(&api, &viewer).await,
        _ => return sothebais_kit::http::Failure::not_found(format!("section {name:?}")).into_response(),
    };
    Html(markup.into_string()).into_response()
}

macro_rules! page {
    ($state:ident, $headers:ident, $uri:ident) => {
        match viewer(&$state, &$headers, &$uri).await {
            Ok(viewer) => viewer,
            Err(redirect) => return redirect,
        }
    };
}

// ---- Live ---------------------------------------------------------------------

pub async fn live(State(state): State<AppState>, headers: HeaderMap, uri: OriginalUri) -> Response {
    let viewer = page!(state, headers, uri);
    let api = Api::new(&state, &viewer);
    let (on_air, services, host, x) =
        futures::join!(on_air(&state, &api), services(&api), host_now(&api), x_status(&api));
    let body = html! {
        div.grid data-live-page {
            section.wide {
                h2 { "On air" }
                div.air {
                    img #preview alt="the stream's picture" width="480" height="270";
                    div {
                        p #stream-state.muted { "waiting for the renderer…" }
                        div #stream-outputs.tiles {}
                    }
                }
            }
            section {
                h2 { "Lot on air" }
                (live_section("on-air", "on-air", "", on_air))
                h3 { "Bids as they come" }
                ol #bid-feed.feed {}
            }
            section {
                h2 { "Host" }
                (live_section("host-now", "host-now", "", host))
            }
            section {
                h2 { "X" }
                (live_section("x-status", "x-status", "", x))
            }
            section {
                h2 { "Services" }
                (live_section("services", "services", "", services))
            }
        }
    };
    layout(&state, &viewer, "/", body)
}

async fn on_air(state: &AppState, api: &Api<'_>) -> Markup {
    let board = match api.get("/api/auction/status").await {
        Ok(board) => board,
        Err(reason) => return unavailable("auctions", &reason),
    };
    let auctions = board["auctions"].as_array().cloned().unwrap_or_default();
    let open: Vec<&Value> = auctions.iter().filter(|auction| auction["state"] != "scheduled").collect();
    let next = auctions.iter().find(|auction| auction["state"] == "scheduled");
    html! {
        @if open.is_empty() {
            p.muted { "No lot is open." }
            @if let Some(next) = next {
                p { "Next: " a href={ "/auctions/" (text(&next["id"])) } { (text(&next["title"])) } " at " (when(state, &next["starts_at"])) }
            }
        }
        @for auction in open {
            div.lot data-auction=(text(&auction["id"])) {
                p.title { a href={ "/auctions/" (text(&auction["id"])) } { (text(&auction["title"])) } " " span.badge { (text(&auction["state"])) } }
                p.big {
                    span data-high-bid=(text(&auction["id"])) {
                        @if auction["high_bid"].is_null() { "opens at " (text(&auction["starting_price"])) " ETH" }
                        @else { (text(&auction["high_bid"]["amount"])) " ETH by " (bidder(&auction["high_bid"]["bidder"])) }
                    }
                }
                p {
                    span.countdown data-ends-at=(text(&auction["ends_at"])) { "–" }
                    " left · " span data-bid-count=(text(&auction["id"])) { (text(&auction["bid_count"])) } " bids"
                    @if auction["extended"] == true { " · extended" }
                    @if auction["reserve_met"] == true { " · reserve met" }
                }
            }
        }
    }
}

async fn services(api: &Api<'_>) -> Markup {
    let status = match api.get("/api/admin/services/status").await {
        Ok(status) => status,
        Err(reason) => return unavailable("services", &reason),
    };
    html! {
        div.tiles {
            @for service in status["services"].as_array().cloned().unwrap_or_default() {
                @let state = text(&service["status"]);
                div class={ "tile " (state) } data-service=(text(&service["name"])) {
                    strong { (text(&service["name"])) }
                    small {
                        (state)
                        @if let Some(idle) = service["idle"].as_str() { " · " (idle) }
                        @if let Some(error) = service["error"].as_str() { " · " (error) }
                        @if let Some(checks) = service["checks"].as_object() {
                            @for (name, value) in checks { @if value != "ok" { " · " (name) ": " (text(value)) } }
                        }
                        @if let Some(uptime) = service["uptime_secs"].as_u64() { " · up " (uptime) " s" }
                    }
                }
            }
        }
    }
}

async fn host_now(api: &Api<'_>) -> Markup {
    let host = match api.get("/api/agent/state").await {
        Ok(host) => host,
        Err(reason) => return unavailable("host", &reason),
    };
    html! {
        p { strong { (text(&host["character"]["name"])) } " · mood " span #host-mood { (text(&host["mood"])) } " · " (text(&host["provider"])) }
        blockquote #host-line { (text(&host["last_message"]["text"])) }
    }
}

async fn x_status(api: &Api<'_>) -> Markup {
    let x = match api.get("/api/social/status").await {
        Ok(x) => x,
        Err(reason) => return unavailable("X", &reason),
    };
    html! {
        @if x["configured"] != true {
            p.muted { "X is not configured: set X_BEARER_TOKEN or run " code { "sothebais x login" } "." }
        } @else {
            p {
                "@" (text(&x["handle"])) " · " @if x["connected"] == true { "reading" } @else { "not connected" }
                @if x["dry_run"] == true { " · dry run" }
            }
            p { (text(&x["replies_sent"])) " replies sent · " (text(&x["replies_pending"])) " pending · $" (text(&x["spend_usd"]["show"])) " spent"
                @if !x["spend_limit_usd"].is_null() { " of $" (text(&x["spend_limit_usd"])) } }
            @if let Some(limits) = x["rate_limits"].as_object() {
                p.small.muted {
                    "Rate limits left: "
                    @for (endpoint, limit) in limits { (endpoint) " " (text(&limit["remaining"])) "  " }
                }
            }
            @if let Some(error) = x["last_error"].as_str() { p.error { (error) } }
        }
    }
}

// ---- Auctions and campaigns ------------------------------------------------------

pub async fn auctions(State(state): State<AppState>, headers: HeaderMap, uri: OriginalUri) -> Response {
    let viewer = page!(state, headers, uri);
    let api = Api::new(&state, &viewer);
    let list = auction_list(&state, &api, &viewer).await;
    let body = html! {
        div.grid {
            section.wide { h2 { "Auctions" } (live_section("auction-list", "auction-list", "", list)) }
            @if viewer.can(Role::Operator) {
                section { h2 { "New auction" } (auction_form()) }
                section { h2 { "New campaign" } (campaign_form()) }
            }
        }
    };
    layout(&state, &viewer, "/auctions", body)
}

async fn auction_list(state: &AppState, api: &Api<'_>, viewer: &Viewer) -> Markup {
    let list = match api.get("/api/auction/auctions").await {
        Ok(list) => list,
        Err(reason) => return unavailable("auctions", &reason),
    };
    let auctions = list["auctions"].as_array().cloned().unwrap_or_default();
    let campaigns = api
        .get("/api/auction/campaigns")
        .await
        .ok()
        .and_then(|list| list["campaigns"].as_array().cloned())
        .unwrap_or_default();
    let order = ["open", "closing", "scheduled", "closed", "settled", "cancelled"];
    html! {
        @if !campaigns.is_empty() {
            h3 { "Campaigns (" (campaigns.len()) ")" }
            ul.plain {
                @for campaign in &campaigns {
                    li { strong { (text(&campaign["name"])) } " · " (campaign["lots"].as_array().map_or(0, Vec::len)) " lots · from " (when(state, &campaign["lots"][0]["starts_at"])) " · " span.muted { (text(&campaign["timezone"])) } }
                }
            }
        }
        @if auctions.is_empty() { p.muted { "No auctions yet." } }
        @for state_name in order {
            @let group: Vec<&Value> = auctions.iter().filter(|auction| auction["state"] == state_name).collect();
            @if !group.is_empty() {
                h3 { (state_name) " (" (group.len()) ")" }
                table {
                    thead { tr { th { "Lot" } th { "Price" } th { "Bids" } th { "Starts / ends" } th {} } }
                    tbody {
                        @for auction in group {
                            tr data-auction-row=(text(&auction["id"])) {
                                td { a href={ "/auctions/" (text(&auction["id"])) } { (text(&auction["title"])) } }
                                td {
                                    @if auction["high_bid"].is_null() { (text(&auction["starting_price"])) " ETH (start)" }
                                    @else { (text(&auction["high_bid"]["amount"])) " ETH" }
                                }
                                td { (text(&auction["bid_count"])) }
                                td { (when(state, &auction["starts_at"])) br; (when(state, &auction["ends_at"])) }
                                td.actions {
                                    @if viewer.can(Role::Operator) {
                                        @if state_name == "scheduled" {
                                            button type="button" data-api={ "/api/auction/auctions/" (text(&auction["id"])) "/start" } data-method="POST" { "Start now" }
                                        }
                                        @if matches!(state_name, "scheduled" | "open") {
                                            button.danger type="button" data-api={ "/api/auction/auctions/" (text(&auction["id"])) "/cancel" }
                                                data-method="POST" data-prompt="Why is this auction cancelled?" data-prompt-field="reason" { "Cancel" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn auction_form() -> Markup {
    html! {
        form #new-auction data-api="/api/auction/auctions" data-method="POST" data-reset {
            label { "Title" input name="title" required maxlength="200"; }
            div.row {
                label { "Starting price (ETH)" input name="starting_price" required inputmode="decimal" placeholder="0.5"; }
                label { "Reserve (ETH)" input name="reserve_price" inputmode="decimal" placeholder="= starting price"; }
            }
            label.check { input name="reserve_visible" type="checkbox" data-type="bool" checked; "Viewers see the reserve" }
            div.row {
                label { "Increment %" input name="increment_percent" type="number" min="1" max="100" data-type="number" placeholder="5"; }
                label { "Duration (s)" input name="duration_secs" type="number" min="10" data-type="number" placeholder="90"; }
                label { "Late grace (s)" input name="late_grace_secs" type="number" min="0" data-type="number" placeholder="15"; }
            }
            label { "Increment table (JSON, optional)" textarea name="increment_table" data-type="json" rows="2" placeholder=r#"[{"below":"1","step":"0.05"},{"below":null,"step":"0.1"}]"# {} }
            label {
                "Starts at (your local time; empty: start it by hand)"
                input name="starts_at" type="datetime-local" step="1" data-type="datetime";
                small.time-hint {}
            }
            fieldset {
                legend { "Anti-snipe" }
                select name="anti_snipe" data-type="anti-snipe" {
                    option value="default" { "default (10 s window)" }
                    option value="custom" { "custom" }
                    option value="none" { "none: sudden death" }
                }
                div.row {
                    label { "Window (s)" input name="anti_snipe.window_secs" type="number" min="1" data-type="number"; }
                    label { "Reset to (s)" input name="anti_snipe.reset_secs" type="number" min="1" data-type="number"; }
                    label { "Max extension (s)" input name="anti_snipe.max_extension_secs" type="number" min="0" data-type="number"; }
                }
            }
            fieldset {
                legend { "The NFT (optional)" }
                div.row {
                    label { "Chain id" input name="lot.chain_id" type="number" data-type="number" placeholder="1"; }
                    label { "Token id" input name="lot.token_id"; }
                }
                label { "Contract" input name="lot.contract" placeholder="0x…"; }
                label { "Image URL" input name="lot.image_url" type="url"; }
            }
            div.row {
                label { "Consignor" input name="consignor" placeholder="who sells it (may not bid)"; }
                label { "Campaign id" input name="campaign_id"; }
            }
            button type="submit" { "Create auction" }
            p.error data-error {}
        }
    }
}

fn campaign_form() -> Markup {
    let example = json!([
        { "title": "Lot 1", "starting_price": "0.5", "reserve_price": "1", "duration_secs": 60 },
        { "title": "Lot 2", "starting_price": "0.2", "duration_secs": 45, "anti_snipe": null }
    ]);
    html! {
        form #new-campaign data-api="/api/auction/campaigns" data-method="POST" data-reset {
            label { "Name" input name="name" required; }
            div.row {
                label { "Timezone" input name="timezone" placeholder="America/New_York"; }
                label { "Gap between lots (s)" input name="gap_secs" type="number" min="0" data-type="number" placeholder="10"; }
            }
            label {
                "First lot starts (on the campaign's clock, e.g. 2026-12-24T20:00:00)"
                input name="starts_at" required placeholder="2026-12-24T20:00:00";
            }
            div.row {
                label { "Character" input name="character" placeholder="auctioneer"; }
                label.check { input name="concurrent" type="checkbox" data-type="bool"; "All lots at once" }
            }
            label { "Lots (JSON: each lot takes every field of a new auction)" textarea name="lots" data-type="json" rows="6" required { (serde_json::to_string_pretty(&example).unwrap_or_default()) } }
            button type="submit" { "Create campaign" }
            p.error data-error {}
        }
    }
}

pub async fn lot(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: OriginalUri,
    Path(id): Path<String>,
) -> Response {
    let viewer = page!(state, headers, uri);
    let api = Api::new(&state, &viewer);
    let detail = lot_detail(&state, &api, &viewer, &id).await;
    let query = format!("id={id}");
    let body = html! { section.wide data-lot-page=(id) { (live_section("lot", "lot", &query, detail)) } };
    layout(&state, &viewer, "/auctions", body)
}

async fn lot_detail(state: &AppState, api: &Api<'_>, viewer: &Viewer, id: &str) -> Markup {
    if uuid::Uuid::parse_str(id).is_err() {
        return unavailable("lot", "not an auction id");
    }
    let (auction_path, history_path, verify_path) = (
        format!("/api/auction/auctions/{id}"),
        format!("/api/auction/history?auction_id={id}&limit=500"),
        format!("/api/auction/auctions/{id}/verify"),
    );
    let (auction, history, verify, clips) = futures::join!(
        api.get(&auction_path),
        api.get(&history_path),
        api.get(&verify_path),
        api.get("/api/stream/clips"),
    );
    let auction = match auction {
        Ok(auction) => auction,
        Err(reason) => return unavailable("lot", &reason),
    };
    let clip = clips
        .ok()
        .and_then(|clips| clips["clips"].as_array()?.iter().find(|clip| clip["auction_id"] == id).cloned());
    let state_name = text(&auction["state"]);
    html! {
        h2 { (text(&auction["title"])) " " span.badge { (state_name) } }
        div.grid {
            div {
                dl {
                    dt { "Starting price" } dd { (text(&auction["starting_price"])) " ETH" }
                    dt { "Reserve" } dd { (text(&auction["reserve_price"])) @if auction["reserve_met"] == true { " (met)" } }
                    dt { "High bid" } dd {
                        @if auction["high_bid"].is_null() { "none" }
                        @else { (text(&auction["high_bid"]["amount"])) " ETH by " (bidder(&auction["high_bid"]["bidder"])) }
                    }
                    dt { "Next bid at least" } dd { (text(&auction["min_next_bid"])) " ETH" }
                    dt { "Starts" } dd { (when(state, &auction["starts_at"])) }
                    dt { "Ends" } dd { (when(state, &auction["ends_at"])) @if auction["extended"] == true { " (extended)" } }
                    dt { "Outcome" } dd {
                        @if auction["outcome"].is_null() { "–" }
                        @else { (text(&auction["outcome"]["result"])) @if !auction["outcome"]["winner"].is_null() { " · " (bidder(&auction["outcome"]["winner"])) " for " (text(&auction["outcome"]["amount"])) " ETH" } }
                    }
                    dt { "Hash chain" } dd data-verify {
                        @match &verify {
                            Ok(verify) if verify["chain_valid"] == true => { "verified: " (text(&verify["bids"])) " records" }
                            Ok(verify) => { span.error { "BROKEN at record " (text(&verify["first_bad_seq"])) } }
                            Err(reason) => { (reason) }
                        }
                    }
                }
                @if viewer.can(Role::Operator) {
                    div.actions {
                        @if state_name == "scheduled" {
                            button type="button" data-api={ "/api/auction/auctions/" (id) "/start" } data-method="POST" { "Start now" }
                        }
                        @if matches!(state_name.as_str(), "scheduled" | "open") {
                            button.danger type="button" data-api={ "/api/auction/auctions/" (id) "/cancel" } data-method="POST"
                                data-prompt="Why is this auction cancelled?" data-prompt-field="reason" { "Cancel" }
                        }
                    }
                }
                @if let Some(clip) = clip {
                    h3 { "Winning moment" }
                    video controls preload="metadata" width="480" src={ "/api/stream/clips/" (id) ".mp4" } {}
                    p.muted { (text(&clip["duration_ms"])) " ms" }
                }
            }
            div {
                h3 { "Bids" }
                @match history {
                    Ok(history) => {
                        table {
                            thead { tr { th { "#" } th { "Bidder" } th { "Amount" } th { "Decision" } th { "At" } } }
                            tbody #lot-bids {
                                @for bid in history["bids"].as_array().cloned().unwrap_or_default().iter().rev() {
                                    tr class=(text(&bid["status"])) {
                                        td { (text(&bid["seq"])) }
                                        td { (bidder(&bid["bidder"])) }
                                        td { (text(&bid["amount"])) }
                                        td { @if bid["status"] == "accepted" { "accepted" } @else { (text(&bid["reason"])) } }
                                        td { (when(state, &bid["received_at"])) }
                                    }
                                }
                            }
                        }
                    }
                    Err(reason) => { (unavailable("bids", &reason)) }
                }
            }
        }
    }
}

// ---- Stream -------------------------------------------------------------------

pub async fn stream(State(state): State<AppState>, headers: HeaderMap, uri: OriginalUri) -> Response {
    let viewer = page!(state, headers, uri);
    let api = Api::new(&state, &viewer);
    let (scenes, layers, outputs) =
        futures::join!(scenes(&api, &viewer), layers(&api, &viewer), outputs(&api, &viewer));
    let body = html! {
        div.grid {
            section.wide {
                h2 { "On air" }
                div.air { img #preview alt="the stream's picture" width="480" height="270"; p #stream-state.muted { "waiting for the renderer…" } }
            }
            section { h2 { "Scenes" } (live_section("scenes", "scenes", "", scenes)) }
            section { h2 { "Outputs" } (live_section("outputs", "outputs", "", outputs)) }
            section.wide { h2 { "Layers" } (live_section("layers", "layers", "", layers)) }
            @if viewer.can(Role::Operator) {
                section {
                    h2 { "Upload an asset" }
                    form #upload-asset data-upload="/api/stream/assets/upload" {
                        input type="file" name="file" required accept="image/png,image/jpeg,font/ttf,font/otf,audio/wav,audio/ogg,.ttf,.otf,.wav,.ogg,.png,.jpg,.jpeg";
                        button type="submit" { "Upload" }
                        p.error data-error {}
                    }
                }
            }
        }
    };
    layout(&state, &viewer, "/stream", body)
}

async fn scenes(api: &Api<'_>, viewer: &Viewer) -> Markup {
    let scenes = match api.get("/api/stream/scenes").await {
        Ok(scenes) => scenes,
        Err(reason) => return unavailable("the renderer", &reason),
    };
    let pinned = scenes["pinned"].as_str().map(str::to_owned);
    html! {
        p { "On air: " strong #scene-on-air { (text(&scenes["active"])) } @if let Some(pinned) = &pinned { " (pinned: " (pinned) ")" } @else { " (by the rules)" } }
        ul.plain {
            @for scene in scenes["scenes"].as_array().cloned().unwrap_or_default() {
                @let name = text(&scene["name"]);
                li data-scene=(name) {
                    strong { (name) } " " span.muted { (scene["states"].as_array().map(|states| states.iter().map(text).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                    @if let Some(error) = scene["error"].as_str() { br; span.error { (error) } }
                    @if viewer.can(Role::Operator) && pinned.as_deref() != Some(name.as_str()) {
                        " " button type="button" data-api="/api/stream/scenes/active" data-method="POST" data-body=(json!({ "name": name }).to_string()) { "Pin" }
                    }
                }
            }
        }
        @if viewer.can(Role::Operator) && pinned.is_some() {
            button type="button" data-api="/api/stream/scenes/active" data-method="POST" data-body=r#"{"name":null}"# { "Back to the rules" }
        }
    }
}

async fn layers(api: &Api<'_>, viewer: &Viewer) -> Markup {
    let layers = match api.get("/api/stream/layers").await {
        Ok(layers) => layers,
        Err(reason) => return unavailable("the renderer", &reason),
    };
    html! {
        table {
            thead { tr { th { "Layer" } th { "Kind" } th { "Shown" } th { "Text" } } }
            tbody {
                @for layer in layers["layers"].as_array().cloned().unwrap_or_default() {
                    @let id = text(&layer["id"]);
                    tr data-layer=(id) {
                        td { (id) }
                        td { (text(&layer["kind"])) }
                        td {
                            @if viewer.can(Role::Operator) {
                                button type="button" data-api={ "/api/stream/layers/" (id) } data-method="POST"
                                    data-body=(json!({ "visible": layer["visible"] != true }).to_string()) {
                                    @if layer["visible"] == true { "Hide" } @else { "Show" }
                                }
                            } @else { @if layer["visible"] == true { "yes" } @else { "no" } }
                        }
                        td {
                            @if !layer["text"].is_null() && viewer.can(Role::Operator) {
                                form.inline data-api={ "/api/stream/layers/" (id) } data-method="POST" {
                                    input name="text" value=(text(&layer["text"]));
                                    button type="submit" { "Set" }
                                }
                            } @else if !layer["text"].is_null() { (text(&layer["text"])) }
                        }
                    }
                }
            }
        }
    }
}

async fn outputs(api: &Api<'_>, viewer: &Viewer) -> Markup {
    let status = match api.get("/api/stream/status").await {
        Ok(status) => status,
        Err(reason) => return unavailable("the renderer", &reason),
    };
    html! {
        p { (text(&status["state"])) " · " (text(&status["resolution"])) " · " (text(&status["encoder"])) " · " (text(&status["frames_dropped"])) " dropped" }
        ul.plain {
            @for output in status["outputs"].as_array().cloned().unwrap_or_default() {
                @let url = text(&output["url"]);
                li {
                    code { (url) } " · " (text(&output["state"])) " · " (text(&output["bitrate_kbps"])) " kbps · " (text(&output["reconnects"])) " reconnects"
                    @if viewer.can(Role::Operator) {
                        @for action in ["stop", "start", "restart"] {
                            " " button type="button" data-api="/api/stream/playback" data-method="POST"
                                data-body=(json!({ "action": action, "outputs": [url] }).to_string()) { (action) }
                        }
                    }
                }
            }
        }
    }
}

// ---- Host -----------------------------------------------------------------------

pub async fn host(State(state): State<AppState>, headers: HeaderMap, uri: OriginalUri) -> Response {
    let viewer = page!(state, headers, uri);
    let api = Api::new(&state, &viewer);
    let (now, characters) = futures::join!(host_now(&api), characters(&api, &viewer));
    let body = html! {
        div.grid {
            section { h2 { "On air" } (live_section("host-now", "host-now", "", now)) }
            section { h2 { "Characters" } (live_section("characters", "characters", "", characters)) }
            @if viewer.can(Role::Operator) {
                section {
                    h2 { "Ask the host" }
                    form #ask-host data-api="/api/agent/interact" data-method="POST" data-show="reply" {
                        label { "As @" input name="user.handle" required value="operator"; }
                        label { "Question" textarea name="text" required rows="2" {} }
                        button type="submit" { "Ask" }
                        p.error data-error {}
                        blockquote data-result {}
                    }
                }
                section {
                    h2 { "Memory" }
                    form #memory-lookup hx-get="/ui/fragment/memory" hx-target="#memory" hx-swap="innerHTML" {
                        label { "Bidder handle" input name="user" required placeholder="curie"; }
                        button type="submit" { "Look up" }
                    }
                    div #memory {}
                }
                section {
                    h2 { "Upload a character" }
                    form #upload-character data-api="/api/agent/characters" data-method="POST" data-file-json {
                        input type="file" name="file" accept=".json,application/json" required;
                        button type="submit" { "Upload" }
                        p.error data-error {}
                    }
                }
            }
        }
    };
    layout(&state, &viewer, "/host", body)
}

async fn characters(api: &Api<'_>, viewer: &Viewer) -> Markup {
    let list = match api.get("/api/agent/characters").await {
        Ok(list) => list,
        Err(reason) => return unavailable("characters", &reason),
    };
    html! {
        ul.plain {
            @for character in list["characters"].as_array().cloned().unwrap_or_default() {
                li data-character=(text(&character["id"])) {
                    strong { (text(&character["name"])) } " (" (text(&character["id"])) ", " (text(&character["origin"])) ")"
                    @if character["active"] == true { " " span.badge { "on air" } }
                    @else if viewer.can(Role::Operator) {
                        " " button type="button" data-api="/api/agent/characters/active" data-method="POST"
                            data-body=(json!({ "id": character["id"] }).to_string()) { "Put on air" }
                    }
                    @if let Some(bio) = character["bio"].as_str() { br; span.muted { (bio) } }
                }
            }
        }
        @for invalid in list["invalid"].as_array().cloned().unwrap_or_default() { p.error { (text(&invalid)) } }
    }
}

async fn memory(api: &Api<'_>, user: &str) -> Markup {
    let user = user.trim().trim_start_matches('@');
    if user.is_empty() {
        return html! {};
    }
    let path = format!("/api/agent/memory?user={}", super::url_escape(user));
    match api.get(&path).await {
        Ok(found) => html! {
            @let memories = found["memories"].as_array().cloned().unwrap_or_default();
            @if memories.is_empty() { p.muted { "Nothing remembered about @" (user) "." } }
            ul.plain { @for memory in memories { li { span.badge { (text(&memory["kind"])) } " " (text(&memory["text"])) } } }
        },
        Err(reason) => unavailable("memory", &reason),
    }
}

// ---- Events ---------------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    pattern: Option<String>,
}

pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: OriginalUri,
    Query(query): Query<EventsQuery>,
) -> Response {
    let viewer = page!(state, headers, uri);
    let api = Api::new(&state, &viewer);
    let pattern = query.pattern.unwrap_or_else(|| "auction:*".to_owned());
    let (history, dead) =
        futures::join!(history(&state, &api, &pattern), dead_letters(&state, &api, &viewer));
    let body = html! {
        div.grid {
            section.wide {
                h2 { "History" }
                form.inline method="get" action="/events" {
                    label { "Type or pattern " input name="pattern" value=(pattern) placeholder="auction:*"; }
                    button type="submit" { "Show" }
                }
                (live_section("history", "history", &format!("pattern={}", super::url_escape(&pattern)), history))
            }
            section.wide { h2 { "Dead letters" } (live_section("dead-letters", "dead-letters", "", dead)) }
        }
    };
    layout(&state, &viewer, "/events", body)
}

async fn history(state: &AppState, api: &Api<'_>, pattern: &str) -> Markup {
    let path = format!("/api/events/{}/history?limit=50", super::url_escape(pattern));
    let history = match api.get(&path).await {
        Ok(history) => history,
        Err(reason) => return unavailable("history", &reason),
    };
    html! {
        table {
            thead { tr { th { "Type" } th { "At" } th { "Data" } } }
            tbody {
                @for event in history["events"].as_array().cloned().unwrap_or_default() {
                    tr { td { code { (text(&event["type"])) } } td { (when(state, &event["timestamp"])) } td.data { (event["data"].to_string().chars().take(160).collect::<String>()) } }
                }
            }
        }
    }
}

async fn dead_letters(state: &AppState, api: &Api<'_>, viewer: &Viewer) -> Markup {
    // The letters themselves (events with their data) are for operators; a viewer
    // sees how many each consumer has.
    if !viewer.can(Role::Operator) {
        let status = match api.get("/api/admin/status").await {
            Ok(status) => status,
            Err(reason) => return unavailable("dead letters", &reason),
        };
        let consumers = status["consumers"].as_array().cloned().unwrap_or_default();
        let total: u64 = consumers.iter().filter_map(|consumer| consumer["dead_letters"].as_u64()).sum();
        return html! {
            @if total == 0 { p.muted { "None: every event was delivered." } }
            @else {
                ul {
                    @for consumer in consumers.iter().filter(|consumer| consumer["dead_letters"].as_u64().unwrap_or(0) > 0) {
                        li { (text(&consumer["name"])) ": " (text(&consumer["dead_letters"])) }
                    }
                }
                p.muted { "An operator can read and retry them." }
            }
        };
    }
    let letters = match api.get("/api/events/dead-letters").await {
        Ok(letters) => letters,
        Err(reason) => return unavailable("dead letters", &reason),
    };
    let letters = letters["events"].as_array().cloned().unwrap_or_default();
    html! {
        @if letters.is_empty() { p.muted { "None: every event was delivered." } }
        @else {
            table {
                thead { tr { th { "Consumer" } th { "Event" } th { "Why" } th { "At" } th {} } }
                tbody {
                    @for letter in letters {
                        tr data-dead-letter=(text(&letter["id"])) {
                            td { (text(&letter["consumer"])) }
                            td { code { (text(&letter["event"]["type"])) } }
                            td { (text(&letter["error"])) }
                            td { (when(state, &letter["failed_at"])) }
                            td { @if viewer.can(Role::Operator) {
                                button type="button" data-api={ "/api/events/dead-letters/" (text(&letter["id"])) "/retry" } data-method="POST" { "Retry" }
                            } }
                        }
                    }
                }
            }
        }
    }
}

// ---- System ---------------------------------------------------------------------

pub async fn system(State(state): State<AppState>, headers: HeaderMap, uri: OriginalUri) -> Response {
    let viewer = page!(state, headers, uri);
    let api = Api::new(&state, &viewer);
    let setup = uri.0.query().is_some_and(|query| query.contains("setup=1"));
    let (services, blocklist, users, audit, logs, config) = futures::join!(
        services(&api),
        blocklist(&api, &viewer),
        users(&state, &api, &viewer),
        audit(&state, &api, &viewer),
        logs(&api, &viewer),
        config(&api, &viewer),
    );
    let body = html! {
        @if setup {
            section.wide.notice {
                h2 { "Welcome: set your password" }
                p { "You signed in with the first start's link as " strong { (viewer.name()) } ". Choose a password to sign in with from now on." }
            }
        }
        div.grid {
            section.wide { h2 { "Services" } (live_section("services", "services", "", services)) }
            section {
                h2 { "Your password" }
                form #own-password data-api="/api/admin/password" data-method="POST" data-reset {
                    label { "New password (at least 10 characters)" input name="password" type="password" minlength="10" required autocomplete="new-password"; }
                    button type="submit" { "Set password" }
                    p.error data-error {}
                }
            }
            @if viewer.can(Role::Operator) { section { h2 { "Block list" } (live_section("blocklist", "blocklist", "", blocklist)) } }
            @if viewer.can(Role::Admin) {
                section { h2 { "Accounts" } (live_section("users", "users", "", users)) }
                section {
                    h2 { "Maintenance" }
                    div.actions {
                        button type="button" data-api="/api/admin/maintenance" data-method="POST" data-body=r#"{"action":"backup"}"# data-show="file" { "Back up the database" }
                        button type="button" data-api="/api/admin/maintenance" data-method="POST" data-body=r#"{"action":"retry_dead_letters"}"# { "Retry every dead letter" }
                        button.danger type="button" data-api="/api/admin/maintenance" data-method="POST" data-body=r#"{"action":"prune_events","older_than_days":30}"# data-confirm="Delete stored events older than 30 days?" { "Prune events > 30 days" }
                    }
                }
                section.wide { h2 { "Configuration" } (live_section("config", "config", "", config)) }
                section.wide { h2 { "Audit trail" } (live_section("audit", "audit", "", audit)) }
                section.wide { h2 { "Recent logs" } (live_section("logs", "logs", "", logs)) }
            }
        }
    };
    layout(&state, &viewer, "/system", body)
}

async fn blocklist(api: &Api<'_>, viewer: &Viewer) -> Markup {
    if !viewer.can(Role::Operator) {
        return html! {};
    }
    let list = match api.get("/api/admin/blocklist").await {
        Ok(list) => list,
        Err(reason) => return unavailable("block list", &reason),
    };
    html! {
        ul.plain {
            @for entry in list["configured"].as_array().cloned().unwrap_or_default() {
                li { code { (text(&entry)) } " " span.muted { "(BLOCKED_BIDDERS)" } }
            }
            @for entry in list["entries"].as_array().cloned().unwrap_or_default() {
                li {
                    code { (text(&entry["entry"])) } " " span.muted { (text(&entry["reason"])) " · by " (text(&entry["added_by"])) }
                    " " button type="button" data-api={ "/api/admin/blocklist?entry=" (super::url_escape(&text(&entry["entry"]))) } data-method="DELETE" { "Unblock" }
                }
            }
        }
        form #block-bidder data-api="/api/admin/blocklist" data-method="POST" data-reset {
            div.row {
                label { "Bidder id or @handle" input name="entry" required; }
                label { "Reason" input name="reason"; }
            }
            button type="submit" { "Block" }
            p.error data-error {}
        }
    }
}

async fn users(state: &AppState, api: &Api<'_>, viewer: &Viewer) -> Markup {
    if !viewer.can(Role::Admin) {
        return html! {};
    }
    let list = match api.get("/api/admin/users").await {
        Ok(list) => list,
        Err(reason) => return unavailable("accounts", &reason),
    };
    html! {
        table {
            tbody {
                @for user in list["users"].as_array().cloned().unwrap_or_default() {
                    @let name = text(&user["username"]);
                    tr data-user=(name) {
                        td { (name) } td { (text(&user["role"])) } td { (when(state, &user["created_at"])) }
                        td { @if name != viewer.name() {
                            button.danger type="button" data-api={ "/api/admin/users?username=" (super::url_escape(&name)) } data-method="DELETE"
                                data-confirm={ "Remove " (name) "? Their sessions end at once." } { "Remove" }
                        } }
                    }
                }
            }
        }
        form #add-user data-api="/api/admin/users" data-method="POST" data-reset data-show="password" {
            div.row {
                label { "User name" input name="username" required pattern="[a-z0-9._-]{1,32}"; }
                label { "Role" select name="role" { option { "viewer" } option { "operator" } option { "admin" } } }
            }
            label { "Password (empty: one is generated and shown once)" input name="password" type="password" minlength="10" autocomplete="new-password"; }
            button type="submit" { "Add account" }
            p.error data-error {}
            p data-result {}
        }
    }
}

async fn audit(state: &AppState, api: &Api<'_>, viewer: &Viewer) -> Markup {
    if !viewer.can(Role::Admin) {
        return html! {};
    }
    let trail = match api.get("/api/admin/audit?limit=50").await {
        Ok(trail) => trail,
        Err(reason) => return unavailable("audit trail", &reason),
    };
    html! {
        table {
            thead { tr { th { "When" } th { "Who" } th { "What" } th { "Status" } th { "Note" } } }
            tbody {
                @for entry in trail["entries"].as_array().cloned().unwrap_or_default() {
                    tr {
                        td { (when(state, &entry["at"])) }
                        td { (text(&entry["account"])) " " span.muted { (text(&entry["role"])) " · " (text(&entry["via"])) } }
                        td { code { (text(&entry["method"])) " " (text(&entry["path"])) } }
                        td { (text(&entry["status"])) }
                        td { (text(&entry["note"])) }
                    }
                }
            }
        }
    }
}

async fn logs(api: &Api<'_>, viewer: &Viewer) -> Markup {
    if !viewer.can(Role::Admin) {
        return html! {};
    }
    let logs = match api.get("/api/admin/logs?limit=100&level=info").await {
        Ok(logs) => logs,
        Err(reason) => return unavailable("logs", &reason),
    };
    html! {
        pre.logs {
            @for line in logs["lines"].as_array().cloned().unwrap_or_default().iter().rev() {
                span class=(text(&line["level"])) { (text(&line["at"])) " " (text(&line["level"])) " " (text(&line["target"])) ": " (text(&line["text"])) } "\n"
            }
        }
    }
}

async fn config(api: &Api<'_>, viewer: &Viewer) -> Markup {
    if !viewer.can(Role::Admin) {
        return html! {};
    }
    let config = match api.get("/api/admin/config").await {
        Ok(config) => config,
        Err(reason) => return unavailable("configuration", &reason),
    };
    let changeable: Vec<String> =
        config["changeable"].as_array().map(|names| names.iter().map(text).collect()).unwrap_or_default();
    html! {
        p.muted { (text(&config["mode"])) " mode. Settings marked ✎ change while running; the others at the next start." }
        table.config {
            thead { tr { th { "Setting" } th { "Value" } th { "Origin" } } }
            tbody {
                @for (_, setting) in config["settings"].as_object().cloned().unwrap_or_default() {
                    @let name = text(&setting["env"]);
                    tr data-setting=(name) {
                        td { code { (name) } }
                        td {
                            @if changeable.contains(&name) {
                                form.inline data-api="/api/admin/config" data-method="POST" {
                                    input name=(name) value=(setting["value"].as_str().unwrap_or_default());
                                    button type="submit" title="change now" { "✎ Set" }
                                }
                            } @else { (text(&setting["value"])) }
                        }
                        td { (text(&setting["origin"])) @if let Some(by) = setting["changed_by"].as_str() { " by " (by) } }
                    }
                }
            }
        }
    }
}
