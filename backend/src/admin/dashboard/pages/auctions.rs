//! The Auctions page (lists, the forms for an auction and a campaign) and a lot's page.

use axum::extract::{OriginalUri, Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::{Value, json};
use sothebais_kit::access::Role;

use super::live_section;
use crate::admin::dashboard::{Api, Viewer, bidder, layout, text, unavailable, viewer, when};
use crate::app::AppState;

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

pub(super) async fn auction_list(state: &AppState, api: &Api<'_>, viewer: &Viewer) -> Markup {
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

pub(super) fn auction_form() -> Markup {
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

pub(super) fn campaign_form() -> Markup {
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

pub(super) async fn lot_detail(state: &AppState, api: &Api<'_>, viewer: &Viewer, id: &str) -> Markup {
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
