//! The backend's error type and how each error becomes an enveloped HTTP response
//! (a [`Failure`] of the service kit).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sothebais_kit::http::Failure;

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
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// A refusal with its own code, such as a rejected bid (422 `BELOW_MIN_INCREMENT`).
    #[error("{code}: {message}")]
    Coded { status: StatusCode, code: &'static str, message: String, details: Option<serde_json::Value> },
    #[error("{dependency} unavailable")]
    Unavailable { dependency: &'static str },
    /// A refusal the service kit decided (a missing token, a role too low, a bad body).
    #[error(transparent)]
    Refused(#[from] Failure),
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

    /// The enveloped failure this error answers with.
    pub fn failure(self) -> Failure {
        match self {
            Error::BadRequest { message, details } => {
                let failure = Failure::bad_request(message);
                match details {
                    Some(details) => failure.with_details(details),
                    None => failure,
                }
            }
            Error::NotFound(what) => Failure::not_found(what),
            Error::Conflict(why) => Failure::conflict(why),
            Error::Coded { status, code, message, details } => {
                let failure = Failure::new(status, code, message);
                match details {
                    Some(details) => failure.with_details(details),
                    None => failure,
                }
            }
            Error::Unavailable { dependency } => Failure::unavailable(dependency),
            Error::Refused(failure) => failure,
            Error::Storage(StorageError::Unavailable(_)) => Failure::unavailable("database"),
            Error::Bus(BusError::Unavailable(_)) => Failure::unavailable("redis"),
            error @ (Error::Storage(_) | Error::Bus(_) | Error::Internal(_)) => {
                Failure::internal(format!("{error:#}"))
            }
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        self.failure().into_response()
    }
}
