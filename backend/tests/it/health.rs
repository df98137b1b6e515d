//! Health and metrics listeners of every role.

use sothebais_backend::ServiceRole;
use sothebais_backend::app::ListenerKind;

use crate::helpers::both_backends;
use crate::helpers::{Backend, TestApp};

both_backends! {
    async fn every_role_reports_healthy_with_its_checks(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        for role in ServiceRole::ALL {
            let response = app.client.get(app.url(role, ListenerKind::Health, "/health")).send().await.expect("send");
            assert_eq!(response.status(), 200, "{role}");
            let body: serde_json::Value = response.json().await.expect("json");
            // Without X credentials the social role has nothing to do, and says so.
            let expected = if role == ServiceRole::Social { "idle" } else { "ok" };
            assert_eq!(body["status"], expected, "{role}: {body}");
            assert_eq!(body["checks"]["database"], "ok", "{role}: {body}");
            if backend == Backend::Production {
                assert_eq!(body["checks"]["redis"], "ok", "{role}: {body}");
            }
        }
    }

    async fn every_role_serves_prometheus_metrics(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        // One request so the request counters exist.
        app.client.get(app.gateway("/api/admin/status")).send().await.expect("send");
        for role in ServiceRole::ALL {
            let response = app.client.get(app.url(role, ListenerKind::Metrics, "/metrics")).send().await.expect("send");
            assert_eq!(response.status(), 200, "{role}");
            let content_type = response.headers()["content-type"].to_str().expect("header").to_owned();
            assert!(content_type.starts_with("text/plain"), "{content_type}");
            let text = response.text().await.expect("body");
            assert!(text.contains("# TYPE http_requests_total counter"), "{text}");
            assert!(text.contains("http_request_duration_seconds_bucket"), "{text}");
            assert!(text.contains(&format!("sothebais_role_up{{role=\"{role}\"}} 1")), "{text}");
        }
    }

    async fn published_event_is_in_the_history_on_both_backends(backend: Backend) {
        use crate::helpers::Role;
        let app = TestApp::spawn(backend).await;
        let response = app
            .client
            .post(app.gateway("/api/events/agent:message"))
            .bearer_auth(crate::helpers::token(Role::Operator))
            .json(&serde_json::json!({ "text": "Welcome to the show", "channel": "stream", "mood": "happy" }))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 201);
        let created: serde_json::Value = response.json().await.expect("json");
        let history: serde_json::Value = app
            .client
            .get(app.gateway("/api/events/agent:message/history?limit=5"))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        assert_eq!(history["data"]["events"][0], created["data"], "{history}");
        // The relay counts what it published, per type.
        app.settle_events().await;
        let metrics_url = app.url(ServiceRole::Events, ListenerKind::Metrics, "/metrics");
        let text = app.client.get(&metrics_url).send().await.expect("send").text().await.expect("text");
        assert!(text.contains("events_published_total{type=\"agent:message\"}"), "no events_published_total for agent:message: {text}");
    }
}

#[tokio::test]
async fn status_reports_the_embedded_mode() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let body: serde_json::Value = app
        .client
        .get(app.gateway("/api/admin/status"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(body["data"]["mode"], "embedded");
    assert_eq!(body["data"]["storage"], "sqlite");
    assert_eq!(body["data"]["bus"], "memory");
    assert_eq!(body["data"]["roles"].as_array().map(Vec::len), Some(5));
}
