//! The Host page: characters, a question box, memory by bidder.

use axum::extract::{OriginalUri, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::json;
use sothebais_kit::access::Role;

use super::live::host_now;
use super::live_section;
use crate::admin::dashboard::{Api, Viewer, layout, text, unavailable, viewer};
use crate::app::AppState;

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

pub(super) async fn characters(api: &Api<'_>, viewer: &Viewer) -> Markup {
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

pub(super) async fn memory(api: &Api<'_>, user: &str) -> Markup {
    let user = user.trim().trim_start_matches('@');
    if user.is_empty() {
        return html! {};
    }
    let path = format!("/api/agent/memory?user={}", crate::admin::dashboard::url_escape(user));
    match api.get(&path).await {
        Ok(found) => html! {
            @let memories = found["memories"].as_array().cloned().unwrap_or_default();
            @if memories.is_empty() { p.muted { "Nothing remembered about @" (user) "." } }
            ul.plain { @for memory in memories { li { span.badge { (text(&memory["kind"])) } " " (text(&memory["text"])) } } }
        },
        Err(reason) => unavailable("memory", &reason),
    }
}
