//! The Events page: history by pattern, dead letters.

use axum::extract::{OriginalUri, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use sothebais_kit::access::Role;

use super::live_section;
use crate::admin::dashboard::{Api, Viewer, layout, text, unavailable, viewer, when};
use crate::app::AppState;

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
                (live_section("history", "history", &format!("pattern={}", crate::admin::dashboard::url_escape(&pattern)), history))
            }
            section.wide { h2 { "Dead letters" } (live_section("dead-letters", "dead-letters", "", dead)) }
        }
    };
    layout(&state, &viewer, "/events", body)
}

pub(super) async fn history(state: &AppState, api: &Api<'_>, pattern: &str) -> Markup {
    let path = format!("/api/events/{}/history?limit=50", crate::admin::dashboard::url_escape(pattern));
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

pub(super) async fn dead_letters(state: &AppState, api: &Api<'_>, viewer: &Viewer) -> Markup {
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
