//! `AppError`: the one error type of request handlers. It knows its HTTP status; the page or
//! htmx fragment the person sees is rendered by `web::error_pages`, which can see the request.
//! Core: it knows no area; what the areas' errors mean as an `AppError` is `error/areas.rs`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

mod areas;

/// What went wrong while answering a request.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("Please sign in to continue.")]
    SignInRequired,
    /// The password was right; the second factor's code is still owed (303 to `/login/mfa`).
    #[error("Enter the code of your second factor to finish signing in.")]
    SecondFactorRequired,
    /// A second factor is required and not yet set up (303 to `/account/mfa`).
    #[error("Set up two-step sign-in to go on: your partner account requires it.")]
    SecondFactorSetup,
    /// An API request's bearer token is missing, unknown, expired or revoked.
    #[error("{0}")]
    TokenRefused(String),
    #[error("You do not have access to this page.")]
    Forbidden,
    /// Refused for a reason the answer names (an API token's missing scope or address).
    #[error("{0}")]
    Denied(String),
    #[error("The form has expired or was sent from another site. Reload the page and try again.")]
    Csrf,
    #[error("This page does not exist, or you do not have access to it.")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("Too many attempts. Try again in {retry_after_secs} seconds.")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("keyhold cannot reach its database right now. Try again in a moment.")]
    Unavailable,
    #[error("Something went wrong on our side. It has been logged.")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    /// Wraps any unexpected failure.
    pub fn internal(error: impl Into<anyhow::Error>) -> AppError {
        AppError::Internal(error.into())
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::SignInRequired | AppError::TokenRefused(_) => StatusCode::UNAUTHORIZED,
            AppError::SecondFactorRequired | AppError::SecondFactorSetup => StatusCode::SEE_OTHER,
            AppError::Forbidden | AppError::Denied(_) | AppError::Csrf => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let AppError::Internal(cause) = self {
            tracing::error!(error.cause_chain = ?cause, "request failed: {cause:#}");
        }
        let mut response = HttpResponse::build(self.status_code());
        let second_step = match self {
            AppError::SecondFactorRequired => Some("/login/mfa"),
            AppError::SecondFactorSetup => Some("/account/mfa"),
            _ => None,
        };
        if let Some(location) = second_step {
            return response
                .insert_header((header::LOCATION, location))
                .insert_header(("HX-Redirect", location))
                .finish();
        }
        if let AppError::TooManyRequests { retry_after_secs } = self {
            response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        if let AppError::Unavailable = self {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("5")));
        }
        response.content_type(mime_text()).body(self.to_string())
    }
}

fn mime_text() -> HeaderValue {
    HeaderValue::from_static("text/plain; charset=utf-8")
}

impl From<diesel::result::Error> for AppError {
    fn from(error: diesel::result::Error) -> AppError {
        use diesel::result::{DatabaseErrorKind, Error};
        match error {
            Error::NotFound => AppError::NotFound,
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => AppError::Unavailable,
            other => AppError::internal(other),
        }
    }
}

impl From<diesel::r2d2::PoolError> for AppError {
    fn from(error: diesel::r2d2::PoolError) -> AppError {
        tracing::warn!("database connection unavailable: {error}");
        AppError::Unavailable
    }
}

impl From<askama::Error> for AppError {
    fn from(error: askama::Error) -> AppError {
        AppError::internal(error)
    }
}

impl From<actix_web::error::BlockingError> for AppError {
    fn from(error: actix_web::error::BlockingError) -> AppError {
        AppError::internal(anyhow::anyhow!("blocking task failed: {error}"))
    }
}
