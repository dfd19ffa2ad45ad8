//! The one HTTP error type: picks the status code and a stable snake_case `code`, and
//! renders `{"error": {"code": ..., "message": ...}}` (SPEC section 3). Internal failures
//! are logged in full and shown to the caller only as a generic sentence.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use countersign_core::identity::IdentityError;
use countersign_core::lifecycle::{DecideError, RefusalKind, ReviewError, StateError};
use countersign_store::NewTokenError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An error answered to the caller.
#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

/// The error body, as the OpenAPI document describes it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable snake_case code, e.g. `invalid_action_name`.
    pub code: String,
    /// A human sentence saying what was expected and what was found.
    pub message: String,
}

impl AppError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> AppError {
        AppError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn invalid(code: &'static str, message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::CONFLICT, code, message)
    }

    /// A failure that is not the caller's: logged with its details, answered as a 500
    /// without them.
    pub fn internal(error: &dyn std::fmt::Display) -> AppError {
        tracing::error!(%error, "internal error");
        AppError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed to handle this request; the details are in its log",
        )
    }

    /// The store is temporarily unable to take writes (e.g. shutting down).
    pub fn unavailable(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<DecideError> for AppError {
    fn from(error: DecideError) -> AppError {
        let code = match &error {
            DecideError::NotPending(_) => "not_pending",
            DecideError::OwnAgent { .. } => "own_agent",
            DecideError::NotAnApprover { .. } => "not_an_approver",
            DecideError::AlreadyApproved(_) => "already_approved",
            DecideError::ConfirmationMismatch { .. } => "confirmation_mismatch",
            DecideError::ModifyWithoutArgs => "modify_without_args",
            DecideError::ArgsWithoutModify => "args_without_modify",
            DecideError::DeadlinePassed { .. } => "expired",
            DecideError::ModifiedArgsDenied { .. } => "modified_args_denied",
            DecideError::Unclassified => "unclassified_args",
        };
        let status = match error.kind() {
            RefusalKind::Conflict => StatusCode::CONFLICT,
            RefusalKind::Forbidden => StatusCode::FORBIDDEN,
            RefusalKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        };
        AppError::new(status, code, error.to_string())
    }
}

impl From<ReviewError> for AppError {
    fn from(error: ReviewError) -> AppError {
        match &error {
            ReviewError::OwnAgent { .. } => AppError::forbidden("own_agent", error.to_string()),
            ReviewError::NotSampled => AppError::conflict("not_in_review_queue", error.to_string()),
            ReviewError::AlreadyReviewed => {
                AppError::conflict("already_reviewed", error.to_string())
            }
        }
    }
}

impl From<IdentityError> for AppError {
    fn from(error: IdentityError) -> AppError {
        let code = match &error {
            IdentityError::Reserved { .. } => "reserved_name",
            IdentityError::OwnerOfPerson | IdentityError::OwnsItself(_) => "invalid_owner",
            IdentityError::OtherCase { .. } => "name_taken_in_other_case",
            IdentityError::NameIsAgent { .. } => "name_is_agent",
            IdentityError::NameIsPerson(_) => "name_is_person",
            IdentityError::OwnerConflict { .. }
            | IdentityError::OwnerlessAgent { .. }
            | IdentityError::SeveralOwners { .. } => "owner_conflict",
        };
        let status = match error.kind() {
            RefusalKind::Conflict => StatusCode::CONFLICT,
            RefusalKind::Forbidden => StatusCode::FORBIDDEN,
            RefusalKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        };
        AppError::new(status, code, error.to_string())
    }
}

impl From<NewTokenError> for AppError {
    fn from(error: NewTokenError) -> AppError {
        let code = match &error {
            NewTokenError::Role(_) => "invalid_role",
            NewTokenError::Name { .. } => "invalid_name",
            NewTokenError::Group { .. } => "invalid_group",
            NewTokenError::Owner { .. } => "invalid_owner",
            NewTokenError::Identity(error) => return error.clone().into(),
        };
        AppError::invalid(code, error.to_string())
    }
}

impl From<StateError> for AppError {
    fn from(error: StateError) -> AppError {
        let code = match &error {
            StateError::NotCancellable(_) => "not_pending",
            StateError::MayNotRun(_) => "may_not_run",
            StateError::OutcomeAlreadyReported => "outcome_already_recorded",
        };
        AppError::conflict(code, error.to_string())
    }
}

impl From<countersign_store::StoreError> for AppError {
    fn from(error: countersign_store::StoreError) -> AppError {
        use countersign_store::StoreError as E;
        let message = error.to_string();
        match error {
            E::NotFound(_) => AppError::not_found(message),
            E::Decide(e) => e.into(),
            E::State(e) => e.into(),
            E::Review(e) => e.into(),
            E::Identity(e) => e.into(),
            E::IdempotencyMismatch { .. } => AppError::invalid("idempotency_mismatch", message),
            E::TokenNotFound(_) | E::GrantNotFound(_) => AppError::not_found(message),
            E::UserNotFound(_) | E::SessionNotFound(_) => AppError::not_found(message),
            E::UserExists(_) => AppError::conflict("user_exists", message),
            E::UserDisabled(_) => AppError::forbidden("user_disabled", message),
            E::SessionEnded(_) => AppError::unauthorized(message),
            E::BadCursor(_) => AppError::bad_request("invalid_cursor", message),
            E::Closed | E::NotCommitted(_) | E::WriterStopped | E::Stopped(_) => {
                AppError::unavailable(message)
            }
            // The storage, not the request or the code: "not now", with the reason.
            E::Unavailable(_) | E::Busy(_) | E::Damaged(_) => {
                tracing::error!(error = %message, "the database cannot serve this request");
                AppError::unavailable(message)
            }
            // Out of descriptors, a lock held too long: the caller may retry; the log says
            // which.
            other if other.is_temporary() => {
                tracing::warn!(error = %other, "store unavailable");
                AppError::unavailable(
                    "the server is short of resources (database connections or file descriptors); try again shortly",
                )
            }
            E::CheckpointMismatch(_) => AppError::conflict("checkpoint_mismatch", message),
            other => AppError::internal(&other),
        }
    }
}
