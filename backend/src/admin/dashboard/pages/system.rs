//! The System page: services, password, block list, accounts, audit, logs, configuration.

use axum::extract::{OriginalUri, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};
use sothebais_kit::access::Role;

use super::live::services;
use super::live_section;
use crate::admin::dashboard::{Api, Viewer, layout, text, unavailable, viewer, when};
use crate::app::AppState;

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

pub(super) async fn blocklist(api: &Api<'_>, viewer: &Viewer) -> Markup {
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
                    " " button type="button" data-api={ "/api/admin/blocklist?entry=" (crate::admin::dashboard::url_escape(&text(&entry["entry"]))) } data-method="DELETE" { "Unblock" }
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

pub(super) async fn users(state: &AppState, api: &Api<'_>, viewer: &Viewer) -> Markup {
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
                            button.danger type="button" data-api={ "/api/admin/users?username=" (crate::admin::dashboard::url_escape(&name)) } data-method="DELETE"
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

pub(super) async fn audit(state: &AppState, api: &Api<'_>, viewer: &Viewer) -> Markup {
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

pub(super) async fn logs(api: &Api<'_>, viewer: &Viewer) -> Markup {
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

pub(super) async fn config(api: &Api<'_>, viewer: &Viewer) -> Markup {
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
