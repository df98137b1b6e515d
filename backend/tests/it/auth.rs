//! Authentication: 401 without or with a bad token, 403 with too low a role, success
//! with the right one; HS256 with the shared secret and RS256 through a JWKS.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretString;
use sothebais_kit::access::{Claims, Role, issue_token};

use crate::helpers::{Backend, TestApp, assert_error, json, token};

fn mood() -> serde_json::Value {
    serde_json::json!({ "mood": "happy", "intensity": 0.5, "expression": "happy.png" })
}

async fn post_mood(app: &TestApp, bearer: Option<&str>) -> (u16, serde_json::Value) {
    let mut request = app.client.post(app.gateway("/api/events/agent:mood")).json(&mood());
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    json(request.send().await.expect("send")).await
}

#[tokio::test]
async fn write_without_a_token_is_unauthenticated() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let (status, body) = post_mood(&app, None).await;
    assert_eq!(status, 401);
    assert_error(&body, "UNAUTHENTICATED");
}

#[tokio::test]
async fn write_with_a_malformed_token_is_unauthenticated() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let (status, body) = post_mood(&app, Some("not-a-jwt")).await;
    assert_eq!(status, 401);
    assert_error(&body, "UNAUTHENTICATED");
}

#[tokio::test]
async fn write_with_a_token_signed_elsewhere_is_unauthenticated() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let forged = issue_token(
        &SecretString::from("some-other-secret-value".to_owned()),
        "mallory",
        Role::Admin,
        Duration::from_secs(60),
    )
    .expect("sign");
    let (status, body) = post_mood(&app, Some(&forged)).await;
    assert_eq!(status, 401);
    assert_error(&body, "UNAUTHENTICATED");
}

#[tokio::test]
async fn write_with_an_expired_token_is_unauthenticated() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let expired = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &Claims {
            sub: "late".into(),
            role: Role::Admin,
            exp: jsonwebtoken::get_current_timestamp() - 3600,
            iat: None,
        },
        &EncodingKey::from_secret(crate::helpers::JWT_SECRET.as_bytes()),
    )
    .expect("sign");
    let (status, body) = post_mood(&app, Some(&expired)).await;
    assert_eq!(status, 401);
    assert!(body["error"]["message"].as_str().is_some_and(|message| message.contains("expired")), "{body}");
}

#[tokio::test]
async fn write_with_too_low_a_role_is_forbidden() {
    let app = TestApp::spawn(Backend::Embedded).await;
    for role in [Role::Viewer, Role::Bidder] {
        let (status, body) = post_mood(&app, Some(&token(role))).await;
        assert_eq!(status, 403, "{role}");
        assert_error(&body, "FORBIDDEN");
    }
}

#[tokio::test]
async fn write_with_operator_or_admin_succeeds() {
    let app = TestApp::spawn(Backend::Embedded).await;
    for role in [Role::Operator, Role::Admin] {
        let (status, body) = post_mood(&app, Some(&token(role))).await;
        assert_eq!(status, 201, "{role}: {body}");
        assert_eq!(body["data"]["type"], "agent:mood");
    }
}

#[tokio::test]
async fn auth_is_checked_before_the_body_is_read() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let response = app
        .client
        .post(app.gateway("/api/events/agent:mood"))
        .header("content-type", "text/plain")
        .body("garbage")
        .send()
        .await
        .expect("send");
    let (status, _) = json(response).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn admin_config_needs_admin_and_hides_secrets() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let url = app.gateway("/api/admin/config");
    let (status, _) =
        json(app.client.get(&url).bearer_auth(token(Role::Operator)).send().await.expect("send")).await;
    assert_eq!(status, 403);
    let response = app.client.get(&url).bearer_auth(token(Role::Admin)).send().await.expect("send");
    let text = response.text().await.expect("body");
    assert!(!text.contains(crate::helpers::JWT_SECRET), "{text}");
    let body: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let jwt_secret = &body["data"]["settings"]["jwt_secret"];
    assert_eq!(jwt_secret["value"], "[redacted]", "{text}");
    assert_eq!(jwt_secret["origin"], "environment", "each setting says where it came from: {text}");
    assert_eq!(body["data"]["settings"]["admin_port"]["env"], "ADMIN_PORT", "{text}");
}

#[tokio::test]
async fn private_history_needs_operator_and_public_history_needs_nothing() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let (status, _) =
        json(app.client.get(app.gateway("/api/events/auction:*/history")).send().await.expect("send")).await;
    assert_eq!(status, 200);
    let private = app.gateway("/api/events/system:*/history");
    let (status, _) = json(app.client.get(&private).send().await.expect("send")).await;
    assert_eq!(status, 401);
    let (status, _) =
        json(app.client.get(&private).bearer_auth(token(Role::Operator)).send().await.expect("send")).await;
    assert_eq!(status, 200);
}

/// Serves the fixture JWKS on a free port, as an OIDC provider would.
async fn jwks_server() -> String {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().expect("addr"));
    let routes = axum::Router::new().route(
        "/.well-known/jwks.json",
        get(|| async {
            ([("content-type", "application/json")], include_str!("../../../auth/fixtures/rs256_jwks.json"))
        }),
    );
    tokio::spawn(async move { axum::serve(listener, routes).await });
    url
}

fn rs256_token(kid: &str, role: Role) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let claims = Claims {
        sub: "oidc-user".into(),
        role,
        exp: jsonwebtoken::get_current_timestamp() + 600,
        iat: Some(jsonwebtoken::get_current_timestamp()),
    };
    let key = EncodingKey::from_rsa_pem(include_bytes!("../../../auth/fixtures/rs256_private.pem"))
        .expect("fixture key");
    jsonwebtoken::encode(&header, &claims, &key).expect("sign")
}

#[tokio::test]
async fn rs256_token_from_the_jwks_provider_is_accepted() {
    let jwks = jwks_server().await;
    let app = TestApp::spawn_with(Backend::Embedded, &[("AUTH_JWKS_URL", &jwks)]).await;
    let (status, body) = post_mood(&app, Some(&rs256_token("test-key-1", Role::Operator))).await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = post_mood(&app, Some(&rs256_token("test-key-1", Role::Viewer))).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn rs256_token_with_an_unknown_key_id_is_unauthenticated() {
    let jwks = jwks_server().await;
    let app = TestApp::spawn_with(Backend::Embedded, &[("AUTH_JWKS_URL", &jwks)]).await;
    let (status, body) = post_mood(&app, Some(&rs256_token("rotated-away", Role::Operator))).await;
    assert_eq!(status, 401, "{body}");
}

#[tokio::test]
async fn rs256_token_without_a_configured_provider_is_unauthenticated() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let (status, body) = post_mood(&app, Some(&rs256_token("test-key-1", Role::Operator))).await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"].as_str().is_some_and(|message| message.contains("AUTH_JWKS_URL")),
        "{body}"
    );
}
