//! The production stack (`compose.yaml`, `compose.dev.yaml`, `.env.example`, the
//! Dockerfiles under `deploy/`), checked against the binaries and the platform spec
//! without a container engine: the settings each service is given, its ports and
//! health check, where each role runs, and that no secret is written down.
//! `drill.rs` restores real backups; `images.rs` checks the runtime images' packages.

mod drill;
mod images;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_norway::Value;
use sothebais_backend::config::{Config, FlagValues, SETTINGS, Secrecy};
use sothebais_shared::ports::{PortBlock, defaults};
use sothebais_testkit::process::binary;

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|error| panic!("reading {path}: {error}"))
}

/// A compose file as compose reads it: YAML with its merge keys (`<<: *anchor`) applied.
fn compose_file(path: &str) -> Value {
    let mut value: Value =
        serde_norway::from_str(&read(path)).unwrap_or_else(|error| panic!("{path} is not YAML: {error}"));
    value.apply_merge().unwrap_or_else(|error| panic!("{path}: merge keys: {error}"));
    value
}

fn services(compose: &Value) -> BTreeMap<String, Value> {
    compose["services"]
        .as_mapping()
        .expect("services")
        .iter()
        .map(|(name, service)| (name.as_str().unwrap_or_default().to_owned(), service.clone()))
        .collect()
}

fn strings(value: &Value) -> Vec<String> {
    value.as_sequence().map(|items| items.iter().map(scalar).collect()).unwrap_or_default()
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        _ => String::new(),
    }
}

/// A service's `environment`, before interpolation.
fn environment(service: &Value) -> BTreeMap<String, String> {
    service["environment"]
        .as_mapping()
        .map(|mapping| {
            mapping
                .iter()
                .map(|(key, value)| (key.as_str().unwrap_or_default().to_owned(), scalar(value)))
                .collect()
        })
        .unwrap_or_default()
}

/// Which binary a service runs, from the Dockerfile it is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Image {
    Backend,
    Renderer,
    /// Traefik, PostgreSQL, Redis: not ours.
    Other,
}

fn image(service: &Value) -> Image {
    match service["build"]["dockerfile"].as_str() {
        Some("deploy/backend.Dockerfile") => Image::Backend,
        Some("deploy/renderer.Dockerfile") => Image::Renderer,
        _ => Image::Other,
    }
}

/// The variables of `.env.example`, in order, with their example values.
fn env_example() -> Vec<(String, String)> {
    read(".env.example")
        .lines()
        .filter(|line| !line.trim_start().starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| line.split_once('=').map(|(key, value)| (key.trim().to_owned(), value.to_owned())))
        .collect()
}

/// Compose's interpolation of `${NAME}`, `${NAME:-default}`, `${NAME-default}`,
/// `${NAME:?message}` and `$$`, from `vars`; an error names a required variable
/// that is unset or empty.
fn interpolate(text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let Some(body) = after.strip_prefix('{') else {
            return Err(format!("a bare $ in {text:?} (write $$ for a dollar)"));
        };
        let end = body.find('}').ok_or_else(|| format!("an unclosed ${{ in {text:?}"))?;
        let expression = &body[..end];
        let name_end = expression.find([':', '-', '?']).unwrap_or(expression.len());
        let (name, operator) = expression.split_at(name_end);
        let value = vars.get(name).cloned();
        let set = value.as_deref().is_some_and(|value| !value.is_empty());
        let resolved = if let Some(default) = operator.strip_prefix(":-") {
            if set { value.unwrap_or_default() } else { default.to_owned() }
        } else if let Some(default) = operator.strip_prefix('-') {
            value.unwrap_or_else(|| default.to_owned())
        } else if let Some(message) = operator.strip_prefix(":?") {
            if !set {
                return Err(format!("{name}: {message}"));
            }
            value.unwrap_or_default()
        } else if operator.is_empty() {
            value.unwrap_or_default()
        } else {
            return Err(format!("unknown interpolation {expression:?}"));
        };
        out.push_str(&resolved);
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Every `${NAME…}` a text uses.
fn variables_used(text: &str) -> BTreeSet<String> {
    text.split("${")
        .skip(1)
        .map(|part| part.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect())
        .collect()
}

/// `.env.example` with every empty value filled as an operator would (a secret, a
/// domain, an ingest URL).
fn filled_env() -> BTreeMap<String, String> {
    env_example()
        .into_iter()
        .map(|(key, value)| {
            let value = match (key.as_str(), value.is_empty()) {
                ("SOTHEBAIS_DOMAIN", true) => "auction.example.com".to_owned(),
                ("ACME_EMAIL", true) => "ops@example.com".to_owned(),
                ("STREAM_OUTPUTS", true) => "rtmps://va.pscp.tv:443/x/streamkey".to_owned(),
                ("POSTGRES_PASSWORD" | "REDIS_PASSWORD" | "JWT_SECRET", true) => {
                    "0123456789abcdef0123456789abcdef0123456789abcdef".to_owned()
                }
                _ => value,
            };
            (key, value)
        })
        .collect()
}

/// The `ENV` settings of a Dockerfile's last stage.
fn dockerfile_env(dockerfile: &str) -> BTreeMap<String, String> {
    let text = read(dockerfile);
    let runtime = text.rsplit("\nFROM ").next().unwrap_or_default();
    instructions(runtime)
        .into_iter()
        .filter_map(|line| line.strip_prefix("ENV ").map(str::to_owned))
        .flat_map(|line| {
            line.split_whitespace()
                .filter_map(|pair| {
                    pair.split_once('=').map(|(key, value)| (key.to_owned(), value.to_owned()))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A Dockerfile's instructions, continuation lines joined, comments dropped.
fn instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        if let Some(start) = trimmed.strip_suffix('\\') {
            current.push_str(start);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            out.push(std::mem::take(&mut current));
        }
    }
    out
}

/// The environment names `sothebais-renderer` reads (its `--help`, `[env: NAME]`).
fn renderer_settings() -> BTreeSet<String> {
    let output =
        Command::new(binary("sothebais-renderer")).arg("--help").output().expect("sothebais-renderer --help");
    assert!(output.status.success(), "sothebais-renderer --help failed");
    let help = String::from_utf8_lossy(&output.stdout).into_owned();
    let names: BTreeSet<String> = help
        .split("[env: ")
        .skip(1)
        .map(|part| part.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect())
        .collect();
    assert!(names.contains("STREAM_OUTPUTS"), "the renderer's --help names its settings: {help}");
    names
}

/// The port block of a backend role, as `platform.md` gives it.
fn block(role: &str) -> PortBlock {
    let base = match role {
        "admin" => defaults::ADMIN,
        "events" => defaults::EVENT_HANDLER,
        "auction" => defaults::AUCTION_ENGINE,
        "agent" => defaults::AGENT_SERVICE,
        "social" => defaults::SOCIAL,
        "stream" => defaults::STREAM_MANAGER,
        other => panic!("{other} is not a role"),
    };
    PortBlock::from_base(base).expect("a port block")
}

/// The roles a backend service runs (`serve --roles a,b`).
fn roles(service: &Value) -> Vec<String> {
    let command = strings(&service["command"]);
    match command.iter().position(|arg| arg == "--roles") {
        Some(at) => {
            command.get(at + 1).map(|list| list.split(',').map(str::to_owned).collect()).unwrap_or_default()
        }
        None if command.first().is_some_and(|first| first == "serve") => {
            ["auction", "events", "agent", "social", "admin"].map(str::to_owned).to_vec()
        }
        None => Vec::new(),
    }
}

fn health_port(service: &Value) -> Option<u16> {
    let test = strings(&service["healthcheck"]["test"]);
    (test.first().map(String::as_str) == Some("CMD")
        && test.get(1).map(String::as_str) == Some("healthcheck"))
    .then(|| test.get(2).and_then(|port| port.parse().ok()))
    .flatten()
}

#[test]
fn every_setting_compose_gives_our_services_is_one_their_binary_knows_and_loads() {
    let compose = compose_file("compose.yaml");
    let known: BTreeSet<&str> = SETTINGS.iter().map(|setting| setting.name).collect();
    let renderer_known = renderer_settings();
    let vars = filled_env();
    let backend_image = dockerfile_env("deploy/backend.Dockerfile");
    let renderer_image = dockerfile_env("deploy/renderer.Dockerfile");
    for name in backend_image.keys() {
        assert!(
            known.contains(name.as_str()),
            "deploy/backend.Dockerfile sets {name}, which the backend does not know"
        );
    }
    for name in renderer_image.keys() {
        // The NVIDIA Container Toolkit's own variables (which GPU, which driver parts).
        let toolkit = name.starts_with("NVIDIA_");
        assert!(
            toolkit || renderer_known.contains(name),
            "deploy/renderer.Dockerfile sets {name}, which the renderer does not know"
        );
    }
    let mut ours = 0;
    for (name, service) in services(&compose) {
        let env = environment(&service);
        match image(&service) {
            Image::Backend => {
                ours += 1;
                for key in env.keys() {
                    assert!(
                        known.contains(key.as_str()),
                        "service {name} is given {key}, which the backend does not know"
                    );
                }
                // The very settings the container starts with load as a configuration.
                let mut effective = backend_image.clone();
                for (key, value) in &env {
                    let value =
                        interpolate(value, &vars).unwrap_or_else(|error| panic!("{name}.{key}: {error}"));
                    effective.insert(key.clone(), value);
                }
                let lookup = |key: &str| effective.get(key).cloned();
                let config = Config::load(&FlagValues::new(), None, &lookup);
                assert!(config.is_ok(), "service {name}'s settings do not load: {:?}", config.err());
            }
            Image::Renderer => {
                ours += 1;
                for key in env.keys() {
                    assert!(
                        renderer_known.contains(key),
                        "service {name} is given {key}, which the renderer does not know"
                    );
                }
            }
            Image::Other => {}
        }
    }
    assert!(ours >= 8, "migrate, five roles and two renderers are built from our Dockerfiles: {ours}");
}

#[test]
fn every_role_runs_somewhere_and_each_health_check_probes_its_own_health_port() {
    let compose = compose_file("compose.yaml");
    let mut running = BTreeSet::new();
    for (name, service) in services(&compose) {
        match image(&service) {
            Image::Backend => {
                let roles = roles(&service);
                if roles.is_empty() {
                    assert_eq!(
                        strings(&service["command"]),
                        ["migrate"],
                        "{name} runs no role, so it migrates"
                    );
                    continue;
                }
                assert_eq!(roles.len(), 1, "{name}: one role per container");
                let role = &roles[0];
                assert_eq!(
                    health_port(&service),
                    Some(block(role).health),
                    "{name}'s health check probes the {role} role's health port"
                );
                running.insert(role.clone());
                let depends = &service["depends_on"];
                for (needed, condition) in [
                    ("postgres", "service_healthy"),
                    ("redis", "service_healthy"),
                    ("migrate", "service_completed_successfully"),
                ] {
                    assert_eq!(
                        depends[needed]["condition"].as_str(),
                        Some(condition),
                        "{name} waits for {needed}"
                    );
                }
                assert_eq!(service["restart"].as_str(), Some("unless-stopped"), "{name} restarts");
            }
            Image::Renderer => {
                assert_eq!(health_port(&service), Some(block("stream").health), "{name}'s health check");
                let env = environment(&service);
                let admin = block("admin");
                assert_eq!(
                    env["SOTHEBAIS_BACKEND_URL"],
                    format!("http://admin:{}", admin.api),
                    "{name} finds the gateway"
                );
                assert_eq!(service["restart"].as_str(), Some("unless-stopped"), "{name} restarts");
                let aliases = strings(&service["networks"]["internal"]["aliases"]);
                assert!(aliases.contains(&"renderer".to_owned()), "{name} is reached as `renderer`");
            }
            Image::Other => {
                assert!(
                    !service["healthcheck"]["test"].is_null() || name == "backup",
                    "{name} has a health check"
                );
            }
        }
    }
    let every: BTreeSet<String> = ["auction", "events", "agent", "social", "admin"].map(str::to_owned).into();
    assert_eq!(running, every, "every role runs in some container");

    // The admin role finds the others and the renderer at their ports.
    let all = services(&compose);
    let admin = &all["admin"];
    let env = environment(admin);
    let stream = block("stream");
    assert_eq!(env["STREAM_MANAGER_URL"], format!("http://renderer:{}", stream.api));
    assert_eq!(env["STREAM_MANAGER_WS_URL"], format!("ws://renderer:{}", stream.ws));
    for role in ["auction", "events", "agent", "social"] {
        assert!(
            env["ADMIN_SERVICE_HOSTS"].split(',').any(|pair| pair == format!("{role}={role}")),
            "ADMIN_SERVICE_HOSTS names {role}"
        );
    }
    // Traefik routes to the gateway's API port and checks it on its health port.
    let labels = strings(&admin["labels"]);
    let admin_block = block("admin");
    assert!(
        labels.contains(&format!(
            "traefik.http.services.sothebais.loadbalancer.server.port={}",
            admin_block.api
        )),
        "{labels:?}"
    );
    assert!(
        labels.contains(&format!(
            "traefik.http.services.sothebais.loadbalancer.healthcheck.port={}",
            admin_block.health
        )),
        "{labels:?}"
    );
    // Only Traefik publishes ports.
    for (name, service) in &all {
        assert!(name == "traefik" || service["ports"].is_null(), "{name} publishes ports; only Traefik may");
    }

    // The images: health checks and exposed ports from the same blocks, not root.
    for (dockerfile, health, blocks) in [
        (
            "deploy/backend.Dockerfile",
            admin_block.health,
            vec!["admin", "events", "auction", "agent", "social"],
        ),
        ("deploy/renderer.Dockerfile", stream.health, vec!["stream"]),
    ] {
        let lines = instructions(&read(dockerfile));
        let healthcheck = lines.iter().find(|line| line.starts_with("HEALTHCHECK")).expect("a HEALTHCHECK");
        assert!(
            healthcheck.ends_with(&format!("CMD [\"healthcheck\", \"{health}\"]")),
            "{dockerfile}: {healthcheck}"
        );
        let user = lines.iter().rfind(|line| line.starts_with("USER ")).expect("a USER");
        assert!(!matches!(user.as_str(), "USER root" | "USER 0"), "{dockerfile} runs as root");
        let exposed: BTreeSet<u16> = lines
            .iter()
            .filter_map(|line| line.strip_prefix("EXPOSE "))
            .flat_map(|ports| {
                ports.split_whitespace().filter_map(|port| port.parse().ok()).collect::<Vec<_>>()
            })
            .collect();
        let wanted: BTreeSet<u16> = blocks
            .into_iter()
            .map(block)
            .flat_map(|block| [block.api, block.ws, block.metrics, block.health])
            .collect();
        assert_eq!(exposed, wanted, "{dockerfile} exposes its roles' port blocks");
    }
}

#[test]
fn no_secret_is_written_in_the_stack_and_each_is_required_from_env() {
    let secret_names: BTreeSet<&str> = SETTINGS
        .iter()
        .filter(|setting| setting.secrecy == Secrecy::Secret)
        .map(|setting| setting.name)
        .chain(["POSTGRES_PASSWORD", "REDIS_PASSWORD", "REDISCLI_AUTH", "STREAM_OUTPUTS"])
        .collect();
    for file in ["compose.yaml", "compose.dev.yaml"] {
        let compose = compose_file(file);
        for (name, service) in services(&compose) {
            for (key, value) in environment(&service) {
                if secret_names.contains(key.as_str()) {
                    assert!(
                        value.starts_with("${") && value.ends_with('}') && variables_used(&value).len() == 1,
                        "{file}: {name}.{key} must come from .env, not be written: {value:?}"
                    );
                }
                // A URL's password (postgres://user:PASSWORD@host) is interpolated too.
                if let Some((_, after_scheme)) = value.split_once("://")
                    && let Some((userinfo, _)) = after_scheme.split_once('@')
                {
                    let password = userinfo.split_once(':').map_or("", |(_, password)| password);
                    assert!(
                        password.starts_with("${") && password.ends_with('}'),
                        "{file}: {name}.{key} writes a password"
                    );
                }
            }
            let command = strings(&service["command"]);
            if let Some(at) = command.iter().position(|arg| arg == "--requirepass") {
                assert!(
                    command.get(at + 1).is_some_and(|password| password.starts_with("${")),
                    "{file}: {name} writes a password"
                );
            }
        }
    }
    // The example leaves every secret empty, and compose refuses to start without one.
    let example: BTreeMap<String, String> = env_example().into_iter().collect();
    for (key, value) in &example {
        let secret =
            secret_names.contains(key.as_str()) || key.contains("PASSWORD") || key.contains("SECRET");
        assert!(!secret || value.is_empty(), ".env.example must not hold a value for {key}");
    }
    let text = read("compose.yaml");
    for required in ["POSTGRES_PASSWORD", "REDIS_PASSWORD", "JWT_SECRET", "STREAM_OUTPUTS"] {
        let mut vars = filled_env();
        vars.insert(required.to_owned(), String::new());
        let refused = interpolate(&text, &vars);
        assert!(
            refused.as_ref().is_err_and(|error| error.contains(required)),
            "compose starts without {required}"
        );
    }
    assert!(interpolate(&text, &filled_env()).is_ok(), "with .env filled in, compose.yaml interpolates");
    for dockerfile in ["deploy/backend.Dockerfile", "deploy/renderer.Dockerfile"] {
        for key in dockerfile_env(dockerfile).keys() {
            assert!(!secret_names.contains(key.as_str()), "{dockerfile} bakes {key} into the image");
        }
    }
    let ignored = read(".dockerignore");
    for kept_out in [".env", "data/", "*.db", "sothebais.toml"] {
        assert!(ignored.lines().any(|line| line == kept_out), ".dockerignore keeps {kept_out} out of images");
    }
}

#[test]
fn every_variable_the_stack_uses_is_documented_in_env_example_and_none_is_left_over() {
    let documented: BTreeSet<String> = env_example().into_iter().map(|(key, _)| key).collect();
    let mut used = variables_used(&read("compose.yaml"));
    used.extend(variables_used(&read("compose.dev.yaml")));
    let missing: Vec<&String> = used.difference(&documented).collect();
    assert!(missing.is_empty(), ".env.example does not document {missing:?}");
    // COMPOSE_PROFILES is compose's own: which renderer runs.
    let unused: Vec<&String> =
        documented.iter().filter(|key| !used.contains(*key) && key.as_str() != "COMPOSE_PROFILES").collect();
    assert!(unused.is_empty(), ".env.example documents {unused:?}, which nothing reads");
}

#[test]
fn traefik_redirects_to_https_sends_security_headers_and_shows_its_dashboard_only_in_dev() {
    let compose = compose_file("compose.yaml");
    let traefik = &services(&compose)["traefik"];
    let command = strings(&traefik["command"]);
    for flag in [
        "--entrypoints.web.http.redirections.entrypoint.to=websecure",
        "--entrypoints.web.http.redirections.entrypoint.scheme=https",
        "--providers.docker.exposedbydefault=false",
    ] {
        assert!(command.contains(&flag.to_owned()), "traefik runs with {flag}");
    }
    assert!(
        !command.iter().any(|flag| flag.starts_with("--api.insecure")),
        "no open dashboard in production"
    );
    let labels = strings(&services(&compose)["admin"]["labels"]);
    assert!(labels.contains(&"traefik.http.routers.sothebais.middlewares=security-headers@file".to_owned()));
    assert!(labels.contains(&"traefik.http.routers.sothebais.tls.certresolver=letsencrypt".to_owned()));

    let headers_file: Value =
        serde_norway::from_str(&read("deploy/traefik/dynamic/security-headers.yaml")).expect("YAML");
    let headers = &headers_file["http"]["middlewares"]["security-headers"]["headers"];
    assert!(
        headers["stsSeconds"].as_u64().is_some_and(|secs| secs >= 31_536_000),
        "HSTS for a year at least"
    );
    assert_eq!(headers["frameDeny"].as_bool(), Some(true));
    assert_eq!(headers["contentTypeNosniff"].as_bool(), Some(true));
    let csp = headers["contentSecurityPolicy"].as_str().unwrap_or_default();
    for directive in
        ["default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'"]
    {
        assert!(csp.contains(directive), "the CSP has {directive}: {csp}");
    }
    // The dashboard loads nothing from elsewhere and runs no inline script, which
    // that CSP allows.
    let page = read("backend/src/admin/dashboard/mod.rs");
    assert!(!page.contains("https://"), "the dashboard loads something from another origin");

    // The dev override is the production command plus the dashboard, on loopback.
    let dev = compose_file("compose.dev.yaml");
    let dev_traefik = &services(&dev)["traefik"];
    let dev_command = strings(&dev_traefik["command"]);
    let added: Vec<&String> = dev_command.iter().filter(|flag| !command.contains(flag)).collect();
    let dropped: Vec<&String> = command.iter().filter(|flag| !dev_command.contains(flag)).collect();
    assert_eq!(
        added,
        ["--api.insecure=true", "--log.level=DEBUG"],
        "compose.dev.yaml adds only the dashboard"
    );
    assert_eq!(dropped, ["--log.level=INFO"], "compose.dev.yaml drops nothing else");
    for port in strings(&dev_traefik["ports"]) {
        assert!(port.starts_with("127.0.0.1:"), "the dashboard is published on loopback only: {port}");
    }
    assert_eq!(services(&dev).len(), 1, "compose.dev.yaml changes Traefik only");
}

#[test]
fn interpolation_follows_compose_for_defaults_required_values_and_dollars() {
    let vars: BTreeMap<String, String> =
        [("SET", "yes"), ("EMPTY", "")].map(|(k, v)| (k.to_owned(), v.to_owned())).into();
    assert_eq!(interpolate("a ${SET} b", &vars).as_deref(), Ok("a yes b"));
    assert_eq!(interpolate("${EMPTY:-d} ${EMPTY-d} ${UNSET-d}", &vars).as_deref(), Ok("d  d"));
    assert_eq!(interpolate("$$HOME", &vars).as_deref(), Ok("$HOME"));
    assert!(interpolate("${EMPTY:?say so}", &vars).is_err_and(|error| error.contains("say so")));
    assert_eq!(variables_used("${A:-x} and ${B_2}"), ["A".to_owned(), "B_2".to_owned()].into());
}
