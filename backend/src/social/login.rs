//! `sothebais x login`: connects the show's X account once with OAuth 2.0 PKCE. It
//! prints the authorize URL, takes X's redirect on a local port, exchanges the code at
//! once (X wants it within 30 s) and stores the tokens in `<data dir>/x-tokens.json`
//! (0600), where the social role reads them and keeps them refreshed.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use base64::Engine as _;
use chrono::Utc;
use rand::Rng as _;
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use sha2::Digest as _;
use tokio::sync::{Mutex, oneshot};

use super::client::{UserTokens, store_tokens, token_file};
use super::xapi::{SCOPES, TokenResponse};
use crate::config::Config;

/// Where X sends the browser back.
pub const DEFAULT_PORT: u16 = 8765;

/// The authorize page: X's, or the simulator's when `X_API_BASE_URL` points elsewhere.
pub fn authorize_base(config: &Config) -> String {
    if config.x.api_base_url.contains("api.x.com") || config.x.api_base_url.contains("api.twitter.com") {
        "https://x.com/i/oauth2/authorize".to_owned()
    } else {
        format!("{}/i/oauth2/authorize", config.x.api_base_url)
    }
}

fn random_text(length: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
    let mut rng = rand::rng();
    (0..length).map(|_| CHARS[rng.random_range(0..CHARS.len())] as char).collect()
}

/// The S256 challenge of a PKCE verifier.
pub fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

#[derive(Debug, Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

type Waiting = std::sync::Arc<Mutex<Option<oneshot::Sender<Callback>>>>;

async fn callback(State(waiting): State<Waiting>, Query(callback): Query<Callback>) -> &'static str {
    if let Some(sender) = waiting.lock().await.take() {
        let _ = sender.send(callback);
    }
    "SothebAIs: you can close this tab and go back to the terminal."
}

/// Runs the flow; `announce` is told the URL to open (printed by the command).
pub async fn login(config: &Config, port: u16, announce: impl FnOnce(&str)) -> anyhow::Result<UserTokens> {
    let client_id =
        config.x.client_id.clone().context("set X_CLIENT_ID (your X app's OAuth 2.0 client id)")?;
    let verifier = random_text(64);
    let state = random_text(24);
    // On SOTHEBAIS_BIND: loopback on a laptop, 0.0.0.0 in a container, where the port
    // is published to the host's loopback (docs/deploy.md). The redirect X is told is
    // always the browser's 127.0.0.1, as registered with the app.
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((config.bind, port)))
        .await
        .with_context(|| format!("listening for X's redirect on {}:{port}", config.bind))?;
    let redirect = format!("http://127.0.0.1:{}/callback", listener.local_addr()?.port());
    let (sender, receiver) = oneshot::channel();
    let waiting: Waiting = std::sync::Arc::new(Mutex::new(Some(sender)));
    let app = Router::new().route("/callback", get(callback)).with_state(waiting);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let url = reqwest::Url::parse_with_params(
        &authorize_base(config),
        &[
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", redirect.as_str()),
            ("scope", SCOPES),
            ("state", state.as_str()),
            ("code_challenge", challenge(&verifier).as_str()),
            ("code_challenge_method", "S256"),
        ],
    )
    .context("building the authorize URL")?;
    announce(url.as_str());
    let answer = tokio::time::timeout(Duration::from_secs(300), receiver)
        .await
        .context("no answer from X within 5 minutes")?
        .context("the redirect listener stopped")?;
    server.abort();
    if let Some(error) = answer.error {
        anyhow::bail!("X refused the authorization: {error}");
    }
    if answer.state.as_deref() != Some(state.as_str()) {
        anyhow::bail!("the redirect's state does not match: not our request");
    }
    let code = answer.code.context("X's redirect carried no code")?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build()?;
    let mut request = http.post(format!("{}/2/oauth2/token", config.x.api_base_url)).form(&[
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("code_verifier", verifier.as_str()),
        ("client_id", client_id.as_str()),
    ]);
    if let Some(secret) = &config.x.client_secret {
        request = request.basic_auth(&client_id, Some(secret.expose_secret()));
    }
    let response = request.send().await.context("exchanging the code")?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        anyhow::bail!("X refused the code exchange ({status}): {body}");
    }
    let answer: TokenResponse = response.json().await.context("reading X's token answer")?;
    if answer.refresh_token.is_none() {
        tracing::warn!(
            "X sent no refresh token (is offline.access allowed for the app?): log in again in 2 hours"
        );
    }
    let tokens = UserTokens {
        access_token: answer.access_token,
        refresh_token: answer.refresh_token,
        expires_at: Some(Utc::now() + chrono::Duration::seconds(answer.expires_in as i64)),
    };
    let path = token_file(&config.data_dir);
    store_tokens(&path, &tokens).with_context(|| format!("storing the tokens in {}", path.display()))?;
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_the_unpadded_base64url_sha256_of_the_verifier() {
        // Computed independently with Python: base64.urlsafe_b64encode(hashlib.sha256(v)).
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K1uLMCbFbeJ2e6w7Qz1wTlOeg0"),
            "VKE8QuvGSDC3K_U-pM4q14lmtpUxO0sI49btp-zn51g"
        );
    }
}
