//! `/api/stream` on the gateway, forwarded to the renderer's stream manager API. A
//! signed-in browser's request goes on with a short bearer token for its account
//! (the renderer knows tokens, not sessions); cookies never leave the gateway.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sothebais_kit::access::Caller;

use crate::app::AppState;
use crate::error::Error;

/// Largest body forwarded (asset uploads go through here).
const MAX_FORWARDED_BODY: usize = 32 * 1024 * 1024;

/// Headers that belong to one hop and are not forwarded.
const HOP_BY_HOP: [HeaderName; 4] =
    [header::CONNECTION, header::HOST, header::TRANSFER_ENCODING, header::CONTENT_LENGTH];

pub async fn to_renderer(State(state): State<AppState>, caller: Caller, request: Request) -> Response {
    let path_and_query =
        request.uri().path_and_query().map_or("/api/stream", |value| value.as_str()).to_owned();
    let url = format!("{}{path_and_query}", state.config.stream_manager_url);
    let method = request.method().clone();
    let mut headers = request.headers().clone();
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::COOKIE);
    if !headers.contains_key(header::AUTHORIZATION)
        && let Some(claims) = &caller.0
    {
        let token = sothebais_kit::access::issue_token(
            &state.secret,
            &claims.sub,
            claims.role,
            Duration::from_secs(60),
        );
        if let Ok(value) = token.map(|token| format!("Bearer {token}"))
            && let Ok(value) = HeaderValue::from_str(&value)
        {
            headers.insert(header::AUTHORIZATION, value);
        }
    }
    let body = match to_bytes(request.into_body(), MAX_FORWARDED_BODY).await {
        Ok(body) => body,
        Err(_) => {
            return sothebais_kit::http::Failure::payload_too_large("request body is too large")
                .into_response();
        }
    };
    let forwarded = state.http.request(method, &url).headers(headers).body(body).send().await;
    match forwarded {
        Ok(answer) => {
            let status = answer.status();
            let mut headers = answer.headers().clone();
            for name in &HOP_BY_HOP {
                headers.remove(name);
            }
            match answer.bytes().await {
                Ok(bytes) => {
                    let mut response = Response::new(Body::from(bytes));
                    *response.status_mut() = status;
                    *response.headers_mut() = headers;
                    response
                }
                Err(error) => {
                    tracing::warn!(%error, "renderer answer cut short");
                    Error::Unavailable { dependency: "renderer" }.into_response()
                }
            }
        }
        Err(error) => {
            tracing::warn!(%url, %error, "renderer unreachable");
            Error::Unavailable { dependency: "renderer" }.into_response()
        }
    }
}
