//! The response envelope every HTTP endpoint answers with.
//!
//! ```json
//! { "success": true, "data": { } }
//! { "success": false, "error": { "code": "BAD_REQUEST", "message": "…", "details": { } } }
//! ```

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The envelope of every JSON response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApiResponse<T> {
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

impl<T> ApiResponse<T> {
    /// A successful response carrying `data`.
    pub fn ok(data: T) -> Self {
        ApiResponse { success: true, data: Some(data), error: None }
    }

    /// A failed response.
    pub fn err(error: ApiError) -> Self {
        ApiResponse { success: false, data: None, error: Some(error) }
    }
}

/// The `error` member of a failed response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApiError {
    /// A stable machine-readable code such as `BELOW_MIN_INCREMENT`.
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// Structured detail, such as the field at fault or the least valid bid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// Error codes of the platform (bid reasons are in [`crate::auction::RejectReason`]).
pub mod codes {
    pub const BAD_REQUEST: &str = "BAD_REQUEST";
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    pub const FORBIDDEN: &str = "FORBIDDEN";
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const METHOD_NOT_ALLOWED: &str = "METHOD_NOT_ALLOWED";
    pub const CONFLICT: &str = "CONFLICT";
    pub const PAYLOAD_TOO_LARGE: &str = "PAYLOAD_TOO_LARGE";
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    pub const REQUEST_TIMEOUT: &str = "REQUEST_TIMEOUT";
    pub const UNAVAILABLE: &str = "UNAVAILABLE";
    pub const INTERNAL: &str = "INTERNAL";
}
