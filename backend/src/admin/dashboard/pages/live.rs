//! The Live page: the picture on air, services, the host now, X.

use axum::extract::{OriginalUri, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;

use super::live_section;
use crate::admin::dashboard::{Api, bidder, layout, text, unavailable, viewer, when};
use crate::app::AppState;

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

pub(super) async fn on_air(state: &AppState, api: &Api<'_>) -> Markup {
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

pub(super) async fn services(api: &Api<'_>) -> Markup {
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

pub(super) async fn host_now(api: &Api<'_>) -> Markup {
    let host = match api.get("/api/agent/state").await {
        Ok(host) => host,
        Err(reason) => return unavailable("host", &reason),
    };
    html! {
        p { strong { (text(&host["character"]["name"])) } " · mood " span #host-mood { (text(&host["mood"])) } " · " (text(&host["provider"])) }
        blockquote #host-line { (text(&host["last_message"]["text"])) }
    }
}

pub(super) async fn x_status(api: &Api<'_>) -> Markup {
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
