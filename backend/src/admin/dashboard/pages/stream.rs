//! The Stream page: scenes, layers and outputs.

use axum::extract::{OriginalUri, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::json;
use sothebais_kit::access::Role;

use super::live_section;
use crate::admin::dashboard::{Api, Viewer, layout, text, unavailable, viewer};
use crate::app::AppState;

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

pub(super) async fn scenes(api: &Api<'_>, viewer: &Viewer) -> Markup {
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

pub(super) async fn layers(api: &Api<'_>, viewer: &Viewer) -> Markup {
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

pub(super) async fn outputs(api: &Api<'_>, viewer: &Viewer) -> Markup {
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
