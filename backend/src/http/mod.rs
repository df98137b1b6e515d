//! HTTP conventions shared by every role: the response envelope on every path
//! (including malformed JSON, a wrong content type, an unknown route, an oversized
//! body, a timeout and a panic), body caps, request timeouts, request metrics and
//! logs, and the OpenAPI documents.

pub mod openapi;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Router, middleware};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sothebais_shared::api::{ApiError, ApiResponse, codes};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::error::{Error, InternalDetail, envelope_response};

/// Largest JSON body accepted.
pub const JSON_BODY_LIMIT: usize = 64 * 1024;

/// A successful response: `{"success": true, "data": …}` with 200.
pub fn ok<T: Serialize>(data: T) -> Response {
    (StatusCode::OK, axum::Json(ApiResponse::ok(data))).into_response()
}

/// A successful response with 201 Created.
pub fn created<T: Serialize>(data: T) -> Response {
    (StatusCode::CREATED, axum::Json(ApiResponse::ok(data))).into_response()
}

/// A JSON body whose rejections (malformed JSON, wrong content type, too large)
/// come back in the envelope.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> Error {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return Error::PayloadTooLarge;
    }
    match rejection {
        JsonRejection::MissingJsonContentType(_) => Error::BadRequest {
            message: "expected a JSON body with `Content-Type: application/json`".into(),
            details: Some(serde_json::json!({ "field": "content-type" })),
        },
        JsonRejection::JsonDataError(error) => {
            // serde's message names the field ("missing field `title`", "…at line 1 column 9").
            let message = error.body_text();
            let field = field_in_message(&message);
            Error::BadRequest { message, details: field.map(|field| serde_json::json!({ "field": field })) }
        }
        JsonRejection::JsonSyntaxError(error) => Error::BadRequest {
            message: error.body_text(),
            details: Some(serde_json::json!({ "field": "body" })),
        },
        other => Error::BadRequest { message: other.body_text(), details: None },
    }
}

/// The field named in a serde message: the `path` before `:` ("auction.lot: …") or a
/// name in backticks ("missing field `title`").
fn field_in_message(message: &str) -> Option<String> {
    let detail = message.strip_prefix("Failed to deserialize the JSON body into the target type: ")?;
    if let Some((path, _)) = detail.split_once(": ")
        && !path.contains(' ')
    {
        return Some(path.to_owned());
    }
    let start = detail.find('`')? + 1;
    let end = start + detail[start..].find('`')?;
    Some(detail[start..end].to_owned())
}

/// Query parameters whose rejection comes back in the envelope.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|rejection: QueryRejection| Error::BadRequest {
                message: rejection.body_text(),
                details: Some(serde_json::json!({ "field": "query" })),
            })
    }
}

/// Path parameters whose rejection comes back in the envelope.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|rejection: PathRejection| Error::BadRequest {
                message: rejection.body_text(),
                details: Some(serde_json::json!({ "field": "path" })),
            })
    }
}

/// The answer to a route nobody serves.
pub async fn not_found(request: Request) -> Error {
    Error::NotFound(format!("route {} {}", request.method(), request.uri().path()))
}

/// Wraps a role's router with the conventions: envelope on every error, request
/// metrics and logs (labelled with `role`), panic catching, timeout, body cap.
pub fn with_conventions<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    role: &'static str,
    timeout: Duration,
) -> Router<S> {
    router
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(CatchPanicLayer::new())
        .layer(middleware::from_fn(move |request: Request, next: Next| observe(role, request, next)))
}

/// Records metrics, logs the request, and puts any non-envelope error response
/// (from a layer, the router or a panic) into the envelope.
async fn observe(role: &'static str, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |matched| matched.as_str().to_owned());
    let mut response = next.run(request).await;
    let status = response.status();
    if status.is_client_error() || status.is_server_error() {
        response = ensure_envelope(response);
    }
    let elapsed = started.elapsed();
    let labels = [
        ("role", role.to_owned()),
        ("method", method.to_string()),
        ("route", route),
        ("status", status.as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    let millis = elapsed.as_secs_f64() * 1000.0;
    if let Some(InternalDetail(detail)) = response.extensions().get::<InternalDetail>() {
        tracing::error!(%role, %method, %path, status = status.as_u16(), millis, error = %detail, "request failed");
    } else {
        tracing::debug!(%role, %method, %path, status = status.as_u16(), millis, "request");
    }
    response
}

fn ensure_envelope(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    // A WebSocket refusal or an enveloped error passes through as it is.
    if is_json || response.status() == StatusCode::SWITCHING_PROTOCOLS {
        return response;
    }
    let status = response.status();
    let (code, message) = match status {
        StatusCode::NOT_FOUND => (codes::NOT_FOUND, "not found".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => {
            (codes::METHOD_NOT_ALLOWED, "method not allowed on this route".to_owned())
        }
        StatusCode::PAYLOAD_TOO_LARGE => (codes::PAYLOAD_TOO_LARGE, "request body is too large".to_owned()),
        StatusCode::REQUEST_TIMEOUT => {
            (codes::REQUEST_TIMEOUT, "the request took too long and was stopped".to_owned())
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (codes::BAD_REQUEST, "unsupported content type".to_owned()),
        StatusCode::TOO_MANY_REQUESTS => (codes::RATE_LIMITED, "too many requests".to_owned()),
        StatusCode::SERVICE_UNAVAILABLE => (codes::UNAVAILABLE, "temporarily unavailable".to_owned()),
        status if status.is_server_error() => {
            (codes::INTERNAL, "internal error; it has been logged".to_owned())
        }
        _ => (codes::BAD_REQUEST, status.canonical_reason().unwrap_or("bad request").to_owned()),
    };
    let mut enveloped = envelope_response(status, ApiError { code: code.to_owned(), message, details: None });
    if status.is_server_error() {
        enveloped
            .extensions_mut()
            .insert(InternalDetail(format!("{status} without detail (panic or layer)")));
    }
    for name in [header::RETRY_AFTER, header::ALLOW] {
        if let Some(value) = response.headers().get(&name) {
            enveloped.headers_mut().insert(name, value.clone());
        }
    }
    enveloped
}

/// An empty body, for handlers that answer with only a status.
pub fn empty(status: StatusCode) -> Response {
    (status, Body::empty()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_is_found_in_serde_messages() {
        let prefix = "Failed to deserialize the JSON body into the target type: ";
        assert_eq!(
            field_in_message(&format!("{prefix}missing field `title` at line 1 column 2")),
            Some("title".into())
        );
        assert_eq!(
            field_in_message(&format!(
                "{prefix}lot.chain_id: invalid type: string \"x\", expected u64 at line 1"
            )),
            Some("lot.chain_id".into())
        );
    }
}

#[cfg(test)]
mod layer_tests {
    use axum::routing::get;
    use tower::ServiceExt as _;

    use super::*;

    async fn call(router: Router, path: &str) -> (StatusCode, serde_json::Value) {
        let request = Request::builder().uri(path).body(Body::empty()).expect("request");
        let response = router.oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
        (status, serde_json::from_slice(&bytes).expect("JSON envelope"))
    }

    #[tokio::test]
    async fn slow_request_is_stopped_with_the_timeout_envelope() {
        let router = with_conventions(
            Router::new().route("/slow", get(|| async { tokio::time::sleep(Duration::from_secs(5)).await })),
            "test",
            Duration::from_millis(20),
        );
        let (status, body) = call(router, "/slow").await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(body["error"]["code"], codes::REQUEST_TIMEOUT);
    }

    #[tokio::test]
    async fn panicking_handler_answers_the_internal_envelope_without_detail() {
        async fn explode() -> &'static str {
            panic!("secret internal detail")
        }
        let router =
            with_conventions(Router::new().route("/boom", get(explode)), "test", Duration::from_secs(5));
        let (status, body) = call(router, "/boom").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], codes::INTERNAL);
        assert!(!body.to_string().contains("secret internal detail"));
    }

    #[tokio::test]
    async fn server_error_never_carries_internal_text() {
        let router = with_conventions(
            Router::new().route(
                "/fail",
                get(|| async {
                    Err::<(), Error>(Error::Internal(anyhow::anyhow!("password=hunter2 in a stack")))
                }),
            ),
            "test",
            Duration::from_secs(5),
        );
        let (status, body) = call(router, "/fail").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.to_string().contains("hunter2"), "{body}");
    }
}
