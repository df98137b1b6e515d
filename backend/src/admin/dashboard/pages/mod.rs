//! The dashboard's pages and the sections htmx refreshes in place
//! (`/ui/fragment/{name}`). Each section reads the API as the viewer; writes are
//! forms and buttons that `app.js` sends to the API with the CSRF token.

use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Api, viewer};
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

mod auctions;
mod events;
mod host;
mod live;
mod stream;
mod system;

pub use auctions::{auctions, lot};
pub use events::events;
pub use host::host;
pub use live::live;
pub use stream::stream;
pub use system::system;

use auctions::{auction_list, lot_detail};
use events::{dead_letters, history};
use host::{characters, memory};
use live::{host_now, on_air, services, x_status};
use stream::{layers, outputs, scenes};
use system::{audit, blocklist, config, logs, users};
