//! HTTP conventions every listener of both binaries shares: the response envelope on
//! every path (including malformed JSON, a wrong content type, an unknown route, an
//! oversized body, a timeout and a panic), body caps, request timeouts, request
//! metrics and logs.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Router, middleware};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sothebais_shared::api::{ApiError, ApiResponse, codes};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

/// Largest JSON body accepted.
pub const JSON_BODY_LIMIT: usize = 64 * 1024;

/// How long one WebSocket send may take; a client that reads slower is dropped.
pub const WS_SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// A successful response: `{"success": true, "data": …}` with 200.
pub fn ok<T: Serialize>(data: T) -> Response {
    (StatusCode::OK, axum::Json(ApiResponse::ok(data))).into_response()
}

/// A successful response with 201 Created.
pub fn created<T: Serialize>(data: T) -> Response {
    (StatusCode::CREATED, axum::Json(ApiResponse::ok(data))).into_response()
}

/// An empty body, for handlers that answer with only a status.
pub fn empty(status: StatusCode) -> Response {
    (status, Body::empty()).into_response()
}

/// A refused request: its status and the envelope's error. Detail for the logs
/// (`internal`) travels to the request middleware, which logs it inside the request's
/// span; it is never sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub status: StatusCode,
    /// Boxed: failures travel in `Result`s on every request path.
    pub error: Box<ApiError>,
    pub retry_after_secs: Option<u64>,
    pub internal: Option<String>,
}

impl Failure {
    /// A failure with `status`, `code` and a message for the client.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Failure {
        Failure {
            status,
            error: Box::new(ApiError { code: code.to_owned(), message: message.into(), details: None }),
            retry_after_secs: None,
            internal: None,
        }
    }

    /// Adds `details` to the envelope's error.
    pub fn with_details(mut self, details: serde_json::Value) -> Failure {
        self.error.details = Some(details);
        self
    }

    /// 400 `BAD_REQUEST`.
    pub fn bad_request(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, message)
    }

    /// 400 naming the field at fault.
    pub fn bad_field(field: &str, message: impl Into<String>) -> Failure {
        Failure::bad_request(message).with_details(serde_json::json!({ "field": field }))
    }

    /// 401: no usable token.
    pub fn unauthenticated(why: impl std::fmt::Display) -> Failure {
        Failure::new(
            StatusCode::UNAUTHORIZED,
            codes::UNAUTHENTICATED,
            format!("authentication required: {why}"),
        )
    }

    /// 403: a valid token whose role is too low.
    pub fn forbidden(why: impl Into<String>) -> Failure {
        Failure::new(StatusCode::FORBIDDEN, codes::FORBIDDEN, why)
    }

    /// 404 for `what`.
    pub fn not_found(what: impl std::fmt::Display) -> Failure {
        Failure::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, format!("{what} not found"))
    }

    /// 409.
    pub fn conflict(why: impl Into<String>) -> Failure {
        Failure::new(StatusCode::CONFLICT, codes::CONFLICT, why)
    }

    /// 413.
    pub fn payload_too_large(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::PAYLOAD_TOO_LARGE, codes::PAYLOAD_TOO_LARGE, message)
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(retry_after_secs: u64) -> Failure {
        let mut failure = Failure::new(
            StatusCode::TOO_MANY_REQUESTS,
            codes::RATE_LIMITED,
            format!("too many requests; retry in {retry_after_secs} s"),
        )
        .with_details(serde_json::json!({ "retry_after_secs": retry_after_secs }));
        failure.retry_after_secs = Some(retry_after_secs);
        failure
    }

    /// 503: `dependency` (the database, Redis, the pipeline…) is down.
    pub fn unavailable(dependency: &str) -> Failure {
        Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::UNAVAILABLE,
            format!("{dependency} is unavailable; try again shortly"),
        )
        .with_details(serde_json::json!({ "dependency": dependency }))
    }

    /// 500 whose `detail` is logged and never sent.
    pub fn internal(detail: impl Into<String>) -> Failure {
        let mut failure = Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            "internal error; it has been logged",
        );
        failure.internal = Some(detail.into());
        failure
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{} {}: {}", self.status.as_u16(), self.error.code, self.error.message)
    }
}

impl std::error::Error for Failure {}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(ApiResponse::<()>::err(*self.error))).into_response();
        if let Some(secs) = self.retry_after_secs
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if let Some(detail) = self.internal {
            response.extensions_mut().insert(InternalDetail(detail));
        }
        response
    }
}

/// Detail of a failed request, handed to the logging middleware through response
/// extensions so it is logged inside the request's span and never sent.
#[derive(Debug, Clone)]
pub struct InternalDetail(pub String);

/// A JSON body whose rejections (malformed JSON, wrong content type, too large)
/// come back in the envelope.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Failure;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> Failure {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return Failure::payload_too_large("request body is too large");
    }
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            Failure::bad_field("content-type", "expected a JSON body with `Content-Type: application/json`")
        }
        JsonRejection::JsonDataError(error) => {
            // serde's message names the field ("missing field `title`", "…at line 1 column 9").
            let message = error.body_text();
            match field_in_message(&message) {
                Some(field) => Failure::bad_field(&field, message),
                None => Failure::bad_request(message),
            }
        }
        JsonRejection::JsonSyntaxError(error) => Failure::bad_field("body", error.body_text()),
        other => Failure::bad_request(other.body_text()),
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
    type Rejection = Failure;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|rejection: QueryRejection| Failure::bad_field("query", rejection.body_text()))
    }
}

/// Path parameters whose rejection comes back in the envelope.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = Failure;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|rejection: PathRejection| Failure::bad_field("path", rejection.body_text()))
    }
}

/// The answer to a route nobody serves.
pub async fn not_found(request: Request) -> Failure {
    Failure::not_found(format!("route {} {}", request.method(), request.uri().path()))
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
    let mut failure = Failure::new(status, code, message);
    if status.is_server_error() {
        failure.internal = Some(format!("{status} without detail (panic or layer)"));
    }
    let mut enveloped = failure.into_response();
    for name in [header::RETRY_AFTER, header::ALLOW] {
        if let Some(value) = response.headers().get(&name) {
            enveloped.headers_mut().insert(name, value.clone());
        }
    }
    enveloped
}

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use tower::ServiceExt as _;

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
    async fn internal_failure_never_carries_its_detail_to_the_client() {
        let router = with_conventions(
            Router::new().route(
                "/fail",
                get(|| async { Err::<(), Failure>(Failure::internal("password=hunter2 in a stack")) }),
            ),
            "test",
            Duration::from_secs(5),
        );
        let (status, body) = call(router, "/fail").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.to_string().contains("hunter2"), "{body}");
    }

    #[tokio::test]
    async fn unknown_route_answers_not_found_in_the_envelope() {
        let router = with_conventions(Router::new(), "test", Duration::from_secs(5));
        let (status, body) = call(router, "/nowhere").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], codes::NOT_FOUND);
    }

    #[tokio::test]
    async fn rate_limited_failure_carries_retry_after() {
        let response = Failure::rate_limited(7).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("7"));
    }
}
