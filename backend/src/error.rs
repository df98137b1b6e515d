//! The backend's error type and how each error becomes an enveloped HTTP response.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sothebais_shared::api::{ApiError, ApiResponse, codes};

use crate::bus::BusError;
use crate::storage::StorageError;

/// `Result` with the backend's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every way a request can fail. Each variant maps to one status and code; internal
/// detail is logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{message}")]
    BadRequest { message: String, details: Option<serde_json::Value> },
    #[error("authentication required: {0}")]
    Unauthenticated(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    /// A refusal with its own code, such as a rejected bid (422 `BELOW_MIN_INCREMENT`).
    #[error("{code}: {message}")]
    Coded { status: StatusCode, code: &'static str, message: String, details: Option<serde_json::Value> },
    #[error("{dependency} unavailable")]
    Unavailable { dependency: &'static str },
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("event bus: {0}")]
    Bus(#[from] BusError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    /// A 400 naming the field at fault.
    pub fn bad_field(field: &str, message: impl Into<String>) -> Error {
        Error::BadRequest { message: message.into(), details: Some(serde_json::json!({ "field": field })) }
    }

    fn status_and_body(&self) -> (StatusCode, ApiError) {
        let error = |code: &str, message: String, details: Option<serde_json::Value>| ApiError {
            code: code.to_owned(),
            message,
            details,
        };
        match self {
            Error::BadRequest { message, details } => {
                (StatusCode::BAD_REQUEST, error(codes::BAD_REQUEST, message.clone(), details.clone()))
            }
            Error::Unauthenticated(why) => (
                StatusCode::UNAUTHORIZED,
                error(codes::UNAUTHENTICATED, format!("authentication required: {why}"), None),
            ),
            Error::Forbidden(why) => (StatusCode::FORBIDDEN, error(codes::FORBIDDEN, why.clone(), None)),
            Error::NotFound(what) => {
                (StatusCode::NOT_FOUND, error(codes::NOT_FOUND, format!("{what} not found"), None))
            }
            Error::Conflict(why) => (StatusCode::CONFLICT, error(codes::CONFLICT, why.clone(), None)),
            Error::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                error(codes::PAYLOAD_TOO_LARGE, "request body is too large".into(), None),
            ),
            Error::RateLimited { retry_after_secs } => (
                StatusCode::TOO_MANY_REQUESTS,
                error(
                    codes::RATE_LIMITED,
                    format!("too many requests; retry in {retry_after_secs} s"),
                    Some(serde_json::json!({ "retry_after_secs": retry_after_secs })),
                ),
            ),
            Error::Coded { status, code, message, details } => {
                (*status, error(code, message.clone(), details.clone()))
            }
            Error::Unavailable { dependency } => unavailable(dependency),
            Error::Storage(StorageError::Unavailable(_)) => unavailable("database"),
            Error::Bus(BusError::Unavailable(_)) => unavailable("redis"),
            Error::Storage(_) | Error::Bus(_) | Error::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                error(codes::INTERNAL, "internal error; it has been logged".into(), None),
            ),
        }
    }
}

fn unavailable(dependency: &str) -> (StatusCode, ApiError) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        ApiError {
            code: codes::UNAVAILABLE.to_owned(),
            message: format!("{dependency} is unavailable; try again shortly"),
            details: Some(serde_json::json!({ "dependency": dependency })),
        },
    )
}

/// Detail of a failed request, handed to the logging middleware through response
/// extensions so it is logged inside the request's span and never sent.
#[derive(Debug, Clone)]
pub struct InternalDetail(pub String);

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, body) = self.status_and_body();
        let mut response = envelope_response(status, body);
        if let Error::RateLimited { retry_after_secs } = &self
            && let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if status.is_server_error() {
            response.extensions_mut().insert(InternalDetail(format!("{self:#}")));
        }
        response
    }
}

/// A failed response in the envelope.
pub fn envelope_response(status: StatusCode, error: ApiError) -> Response {
    (status, axum::Json(ApiResponse::<()>::err(error))).into_response()
}
