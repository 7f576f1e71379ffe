//! The API's one error type. Every failure becomes `{"error":{"code","message"}}` with a status
//! chosen here, in one place. Client mistakes are 4xx and say what to fix; internal failures are
//! 5xx with a generic message, and their detail goes to the log only.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tributary_ledger::StoreError;
use tributary_ledger::state::LedgerError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema, Debug)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema, Debug)]
pub struct ErrorDetail {
    /// A stable snake_case code for programs.
    pub code: String,
    /// What went wrong and what to fix, for people.
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(what: &str, id: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{what} {id} does not exist"))
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(%detail, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the operator's log has details",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code.to_owned(), message: self.message } };
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        let message = error.to_string();
        match error {
            StoreError::Ledger(ledger) => {
                let (status, code) = match ledger {
                    LedgerError::AccountNotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
                    LedgerError::SameAccount(_) => (StatusCode::BAD_REQUEST, "same_account"),
                    LedgerError::ZeroAmount => (StatusCode::BAD_REQUEST, "invalid_amount"),
                    LedgerError::InsufficientFunds { .. } => {
                        (StatusCode::PAYMENT_REQUIRED, "insufficient_funds")
                    }
                    LedgerError::Overflow => (StatusCode::BAD_REQUEST, "amount_overflow"),
                    LedgerError::HoldNotPending(_) => (StatusCode::CONFLICT, "hold_not_pending"),
                    LedgerError::PostExceedsHold { .. } => (StatusCode::BAD_REQUEST, "post_exceeds_hold"),
                    LedgerError::HoldExpired(_) => (StatusCode::CONFLICT, "hold_expired"),
                    LedgerError::BadTimeout { .. } => (StatusCode::BAD_REQUEST, "invalid_timeout"),
                };
                ApiError::new(status, code, message)
            }
            StoreError::NotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            StoreError::Forbidden(_) => ApiError::forbidden(message),
            StoreError::Invalid(_) => ApiError::bad_request("invalid_request", message),
            StoreError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            StoreError::IdempotencyConflict(_) => {
                ApiError::new(StatusCode::CONFLICT, "idempotency_key_reused", message)
            }
            StoreError::Overloaded => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message),
            StoreError::ShuttingDown => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", message)
            }
            StoreError::Internal(detail) => ApiError::internal(detail),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
