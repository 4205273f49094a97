//! The crate's one error type, mapped once to an HTTP response with a stable JSON shape:
//! `{"error": {"code": "...", "message": "..."}}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::config::ConfigError;
use crate::domain::Invalid;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed request: bad JSON syntax, bad query string or path parameter.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed but breaks a rule; the message names the field.
    #[error("{0}")]
    Invalid(#[from] Invalid),
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("method not allowed for this endpoint")]
    MethodNotAllowed,
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The database is not connected or migrated yet, or unreachable right now.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("webhook delivery failed: {0}")]
    Webhook(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error body of every non-2xx answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `validation_failed`, `not_found`, `unauthorized`.
    #[schema(example = "validation_failed")]
    pub code: &'static str,
    /// What is wrong, naming the field when there is one.
    #[schema(example = "candles[0].low: must not exceed open (100.5 > 100)")]
    pub message: String,
}

/// The stable machine-readable codes of API errors. Each code has one status, so the compiler
/// checks that every error maps to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    ValidationFailed,
    Unauthorized,
    NotFound,
    Conflict,
    MethodNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unavailable,
    Internal,
    MigrationFailed,
    InvalidConfiguration,
    Io,
    Webhook,
}

impl ErrorCode {
    /// The JSON `code` and the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::MigrationFailed => "migration_failed",
            ErrorCode::InvalidConfiguration => "invalid_configuration",
            ErrorCode::Io => "io",
            ErrorCode::Webhook => "webhook",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::ValidationFailed => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal
            | ErrorCode::MigrationFailed
            | ErrorCode::InvalidConfiguration
            | ErrorCode::Io
            | ErrorCode::Webhook => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    /// Stable code: the JSON `code`, the metric label and the status.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::BadRequest(_) => ErrorCode::BadRequest,
            Error::Invalid(_) => ErrorCode::ValidationFailed,
            Error::Unauthorized => ErrorCode::Unauthorized,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::Conflict(_) => ErrorCode::Conflict,
            Error::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            Error::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            Error::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            Error::Unavailable(_) => ErrorCode::Unavailable,
            Error::Database(e) => match classify(e) {
                DbErrorClass::Unavailable => ErrorCode::Unavailable,
                DbErrorClass::Conflict => ErrorCode::Conflict,
                DbErrorClass::Invalid => ErrorCode::ValidationFailed,
                DbErrorClass::Other => ErrorCode::Internal,
            },
            Error::Migrate(_) => ErrorCode::MigrationFailed,
            Error::Config(_) => ErrorCode::InvalidConfiguration,
            Error::Io(_) => ErrorCode::Io,
            Error::Webhook(_) => ErrorCode::Webhook,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.code().status()
    }

    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Error::NotFound(format!("{what} not found"))
    }

    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Error::Invalid(Invalid::new(field, problem))
    }

    /// Whether retrying later may help (database down), as opposed to a bug or bad data.
    pub fn is_transient(&self) -> bool {
        self.code() == ErrorCode::Unavailable
    }
}

enum DbErrorClass {
    Unavailable,
    Conflict,
    Invalid,
    Other,
}

/// Database errors caused by input that slipped past validation (a constraint) are the client's;
/// connection trouble is a 503; everything else is ours.
fn classify(error: &sqlx::Error) -> DbErrorClass {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => DbErrorClass::Unavailable,
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("23505") => DbErrorClass::Conflict,
            Some(code) if code.starts_with("22") || code == "23503" || code == "23514" => {
                DbErrorClass::Invalid
            }
            // 57P01 admin shutdown, 57P03 cannot connect now, 08xxx connection exceptions,
            // 40001/40P01 serialization failure or deadlock (retrying helps).
            Some(code)
                if code.starts_with("08") || code.starts_with("57P") || code.starts_with("40") =>
            {
                DbErrorClass::Unavailable
            }
            _ => DbErrorClass::Other,
        },
        _ => DbErrorClass::Other,
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match (&self, status) {
            (_, StatusCode::INTERNAL_SERVER_ERROR) => {
                tracing::error!(error = %self, "request failed");
                "internal error (logged on the server)".to_owned()
            }
            (Error::Database(e), StatusCode::SERVICE_UNAVAILABLE) => {
                tracing::warn!(error = %e, "database unavailable during request");
                "database unavailable, retry later".to_owned()
            }
            // Input that slipped past validation into a constraint: the client learns what kind
            // of problem it is, never the schema's names nor PostgreSQL's wording (logged here).
            (Error::Database(e), _) => {
                tracing::warn!(error = %e, "request refused by the database");
                match status {
                    StatusCode::CONFLICT => "conflicts with a stored record".to_owned(),
                    _ => "a value is out of range or inconsistent with stored data".to_owned(),
                }
            }
            _ => self.to_string(),
        };
        let mut response = (
            status,
            Json(ErrorBody {
                error: ErrorDetail {
                    code: self.code().as_str(),
                    message,
                },
            }),
        )
            .into_response();
        match status {
            StatusCode::UNAUTHORIZED => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes() {
        let cases = [
            (Error::BadRequest("x".into()), 400, "bad_request"),
            (Error::invalid("f", "p"), 422, "validation_failed"),
            (Error::Unauthorized, 401, "unauthorized"),
            (Error::not_found("strategy 4"), 404, "not_found"),
            (Error::Conflict("x".into()), 409, "conflict"),
            (Error::Unavailable("starting".into()), 503, "unavailable"),
            (
                Error::Database(sqlx::Error::PoolTimedOut),
                503,
                "unavailable",
            ),
            (Error::Database(sqlx::Error::RowNotFound), 500, "internal"),
        ];
        for (error, status, code) in cases {
            assert_eq!(error.status().as_u16(), status, "{error}");
            assert_eq!(error.code().as_str(), code);
        }
        assert_eq!(
            Error::not_found("strategy 4").to_string(),
            "strategy 4 not found"
        );
    }

    #[derive(Debug)]
    struct ConstraintViolation(&'static str);

    impl std::fmt::Display for ConstraintViolation {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(
                "new row for relation \"orders\" violates check constraint \"orders_notional_check\"",
            )
        }
    }

    impl std::error::Error for ConstraintViolation {}

    impl sqlx::error::DatabaseError for ConstraintViolation {
        fn message(&self) -> &str {
            "new row for relation \"orders\" violates check constraint \"orders_notional_check\""
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn constraint(&self) -> Option<&str> {
            Some("orders_notional_check")
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::CheckViolation
        }
    }

    /// Issue 16: constraint names and PostgreSQL's messages reached API clients.
    #[tokio::test]
    async fn database_details_stay_on_the_server() {
        for (code, status) in [("23514", 422), ("23505", 409)] {
            let error = Error::Database(sqlx::Error::Database(Box::new(ConstraintViolation(code))));
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status);
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            let body = String::from_utf8(body.to_vec()).unwrap();
            for leak in ["orders_notional_check", "relation", "violates"] {
                assert!(!body.contains(leak), "{body}");
            }
        }
    }
}
