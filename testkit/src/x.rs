//! The X API simulator, in the test's own process, and the settings that point a
//! backend at it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use sothebais_backend::xsim::{SimOptions, XSim};
use tokio_util::sync::CancellationToken;

/// A running simulator: its state, its URL, and a client for its control API.
#[derive(Debug)]
pub struct SimServer {
    pub sim: XSim,
    pub url: String,
    pub client: reqwest::Client,
    stop: CancellationToken,
}

impl SimServer {
    /// Starts a simulator on a free port with the default accounts and tokens.
    pub async fn start() -> SimServer {
        let sim = XSim::new(SimOptions::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind xsim");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let stop = CancellationToken::new();
        let (serving, stopped) = (sim.clone(), stop.clone());
        tokio::spawn(async move { serving.serve(listener, stopped.cancelled_owned()).await });
        let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client");
        SimServer { sim, url, client, stop }
    }

    /// The settings that connect a backend's social role to this simulator, polling
    /// every 100 ms.
    pub fn settings(&self) -> BTreeMap<String, String> {
        let options = SimOptions::default();
        [
            ("X_API_BASE_URL", self.url.clone()),
            ("X_BEARER_TOKEN", options.bearer_token),
            ("X_USER_ACCESS_TOKEN", options.user_token),
            ("X_USER_REFRESH_TOKEN", options.refresh_token),
            ("X_CLIENT_ID", "sothebais-tests".to_owned()),
            ("X_POLL_INTERVAL_MS", "100".to_owned()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
    }

    /// A control API call (`/sim/…`).
    pub async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("xsim control call");
        response.json().await.expect("xsim answers JSON")
    }

    /// Posts `text` as `author`; the post's id.
    pub async fn post(&self, author: &str, text: &str, extra: Value) -> String {
        let mut body = json!({ "author": author, "text": text });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let answer = self.control(reqwest::Method::POST, "/sim/posts", Some(body)).await;
        answer["data"]["id"].as_str().expect("post id").to_owned()
    }

    /// What the show's account has posted, oldest first.
    pub fn show_posts(&self) -> Vec<sothebais_backend::social::xapi::Tweet> {
        let show = self.sim.show_id();
        self.sim.posts().into_iter().filter(|post| post.author_id.as_deref() == Some(show.as_str())).collect()
    }

    /// The show's replies to `post_id`.
    pub fn replies_to(&self, post_id: &str) -> Vec<sothebais_backend::social::xapi::Tweet> {
        self.show_posts().into_iter().filter(|post| post.replied_to() == Some(post_id)).collect()
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
