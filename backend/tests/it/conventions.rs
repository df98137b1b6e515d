//! The envelope on every error path of the gateway and the role listeners.

use crate::helpers::Role;
use sothebais_backend::ServiceRole;
use sothebais_backend::app::ListenerKind;

use crate::helpers::{Backend, TestApp, assert_error, json, token};

#[tokio::test]
async fn unknown_route_gets_the_not_found_envelope() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let (status, body) = json(app.client.get(app.gateway("/api/nowhere")).send().await.expect("send")).await;
    assert_eq!(status, 404);
    assert_error(&body, "NOT_FOUND");
}

#[tokio::test]
async fn unknown_route_on_a_role_listener_gets_the_envelope_too() {
    let app = TestApp::spawn(Backend::Embedded).await;
    for kind in [ListenerKind::Api, ListenerKind::Ws, ListenerKind::Metrics, ListenerKind::Health] {
        let url = app.url(ServiceRole::Auction, kind, "/nowhere");
        let (status, body) = json(app.client.get(url).send().await.expect("send")).await;
        assert_eq!(status, 404, "{kind:?}");
        assert_error(&body, "NOT_FOUND");
    }
}

#[tokio::test]
async fn wrong_method_gets_the_envelope() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let response = app.client.delete(app.gateway("/api/events/schemas")).send().await.expect("send");
    let (status, body) = json(response).await;
    assert_eq!(status, 405);
    assert_error(&body, "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn malformed_json_gets_bad_request_naming_the_body() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let response = app
        .client
        .post(app.gateway("/api/events/agent:mood"))
        .bearer_auth(token(Role::Operator))
        .header("content-type", "application/json")
        .body("{\"mood\": ")
        .send()
        .await
        .expect("send");
    let (status, body) = json(response).await;
    assert_eq!(status, 400);
    assert_error(&body, "BAD_REQUEST");
    assert_eq!(body["error"]["details"]["field"], "body");
}

#[tokio::test]
async fn wrong_content_type_gets_bad_request_naming_the_header() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let response = app
        .client
        .post(app.gateway("/api/events/agent:mood"))
        .bearer_auth(token(Role::Operator))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("send");
    let (status, body) = json(response).await;
    assert_eq!(status, 400);
    assert_error(&body, "BAD_REQUEST");
    assert_eq!(body["error"]["details"]["field"], "content-type");
}

#[tokio::test]
async fn oversized_body_gets_payload_too_large() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let huge = format!("{{\"text\": \"{}\"}}", "x".repeat(100 * 1024));
    let response = app
        .client
        .post(app.gateway("/api/events/agent:message"))
        .bearer_auth(token(Role::Operator))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("send");
    let (status, body) = json(response).await;
    assert_eq!(status, 413);
    assert_error(&body, "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn data_not_matching_its_type_gets_bad_request_naming_data() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let response = app
        .client
        .post(app.gateway("/api/events/agent:mood"))
        .bearer_auth(token(Role::Operator))
        .json(&serde_json::json!({ "mood": "furious", "intensity": 1.0, "expression": "x" }))
        .send()
        .await
        .expect("send");
    let (status, body) = json(response).await;
    assert_eq!(status, 400);
    assert_error(&body, "BAD_REQUEST");
    assert_eq!(body["error"]["details"]["field"], "data");
}

#[tokio::test]
async fn unknown_event_type_gets_bad_request_naming_type() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let response = app
        .client
        .post(app.gateway("/api/events/auction:teleport"))
        .bearer_auth(token(Role::Operator))
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("send");
    let (status, body) = json(response).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["details"]["field"], "type");
}

#[tokio::test]
async fn bad_query_value_gets_bad_request() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let url = app.gateway("/api/events/auction:*/history?limit=many");
    let (status, body) = json(app.client.get(url).send().await.expect("send")).await;
    assert_eq!(status, 400);
    assert_error(&body, "BAD_REQUEST");
}

#[tokio::test]
async fn every_role_serves_its_openapi_document_and_the_gateway_merges_them() {
    let app = TestApp::spawn(Backend::Embedded).await;
    for role in ServiceRole::ALL {
        let url = app.url(role, ListenerKind::Api, &format!("/api/{role}/openapi.json"));
        let (status, body) = json(app.client.get(url).send().await.expect("send")).await;
        assert_eq!(status, 200, "{role}");
        assert_eq!(body["openapi"], "3.1.0", "the bare document, as OpenAPI tools read it: {body}");
        assert!(body.get("success").is_none(), "not wrapped in the envelope: {role}");
    }
    let (status, body) =
        json(app.client.get(app.gateway("/api/openapi.json")).send().await.expect("send")).await;
    assert_eq!(status, 200);
    assert_eq!(body["openapi"], "3.1.0");
    let paths = body["paths"].as_object().expect("paths");
    assert!(paths.contains_key("/api/events/{type}") && paths.contains_key("/api/admin/config"), "{paths:?}");
    // No renderer runs here: its API is not listed as if it answered, and the
    // document says why (the whole merge with a real renderer: tests/e2e/console.rs).
    assert!(!paths.keys().any(|path| path.starts_with("/api/stream")), "{paths:?}");
    let unavailable = body["info"]["x-unavailable"]["stream"].as_str().expect("the stream API named missing");
    assert!(unavailable.contains("/api/stream/openapi.json"), "{unavailable}");
}

#[tokio::test]
async fn gateway_answers_unavailable_when_the_renderer_is_not_running() {
    // Nothing listens on port 9 (discard) on a test machine.
    let app = TestApp::spawn_with(Backend::Embedded, &[("STREAM_MANAGER_URL", "http://127.0.0.1:9")]).await;
    let (status, body) =
        json(app.client.get(app.gateway("/api/stream/status")).send().await.expect("send")).await;
    assert_eq!(status, 503);
    assert_error(&body, "UNAVAILABLE");
    assert_eq!(body["error"]["details"]["dependency"], "renderer");
}

#[tokio::test]
async fn gateway_forwards_stream_requests_to_the_renderer() {
    use axum::routing::get;
    let renderer = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let renderer_url = format!("http://{}", renderer.local_addr().expect("addr"));
    let routes = axum::Router::new().route(
        "/api/stream/status",
        get(|query: axum::extract::RawQuery| async move {
            axum::Json(serde_json::json!({ "success": true, "data": { "state": "live", "query": query.0 } }))
        }),
    );
    tokio::spawn(async move { axum::serve(renderer, routes).await });
    let app = TestApp::spawn_with(Backend::Embedded, &[("STREAM_MANAGER_URL", &renderer_url)]).await;
    let url = app.gateway("/api/stream/status?verbose=1");
    let (status, body) = json(app.client.get(url).send().await.expect("send")).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["state"], "live");
    assert_eq!(body["data"]["query"], "verbose=1");
}

#[tokio::test]
async fn a_client_past_its_rate_gets_429_with_retry_after_and_operators_are_not_limited() {
    let app = TestApp::spawn_with(
        Backend::Embedded,
        &[("RATE_LIMIT_READS_PER_SEC", "2"), ("RATE_LIMIT_WRITES_PER_SEC", "1")],
    )
    .await;
    let url = app.gateway("/api/auction/status");
    let mut limited = None;
    for _ in 0..10 {
        let response = app.client.get(&url).send().await.expect("send");
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
    }
    let response = limited.expect("a burst of 4 reads, then 429");
    let retry_after =
        response.headers().get("retry-after").and_then(|value| value.to_str().ok()).map(str::to_owned);
    assert!(retry_after.is_some_and(|secs| secs.parse::<u64>().is_ok_and(|secs| secs >= 1)));
    let (_, body) = json(response).await;
    assert_error(&body, "RATE_LIMITED");

    // Anonymous writes have their own, smaller bucket.
    let bid = app.gateway("/api/auction/bid");
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            app.client.post(&bid).json(&serde_json::json!({})).send().await.expect("send").status().as_u16(),
        );
    }
    assert!(statuses.contains(&429), "{statuses:?}");

    // The show's own tools (operator tokens) are not limited.
    let operator = token(Role::Operator);
    for _ in 0..10 {
        let response = app.client.get(&url).bearer_auth(&operator).send().await.expect("send");
        assert_eq!(response.status(), 200);
    }
    app.stop().await.expect("stops");
}
