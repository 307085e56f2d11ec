//! `ApiError`: how the API refuses, as `application/problem+json` (`web::problem`), with the
//! words and statuses of the pages (`AppError` and the areas' domain errors) and, for invalid
//! input (422), the field errors.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

use crate::backup::service::BackupError;
use crate::credentials::error::CredentialError;
use crate::error::AppError;
use crate::tokens::service::TokenError;
use crate::web::form::FieldErrors;
use crate::web::problem::problem;

/// An API request's refusal, with the field errors of invalid input.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct ApiError {
    error: AppError,
    errors: FieldErrors,
}

impl ApiError {
    /// Invalid input (422) with a message next to each wrong field.
    pub fn invalid(detail: impl Into<String>, errors: FieldErrors) -> ApiError {
        ApiError {
            error: AppError::Invalid(detail.into()),
            errors,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.error.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        if let AppError::Internal(cause) = &self.error {
            tracing::error!(error.cause_chain = ?cause, "API request failed: {cause:#}");
        }
        let mut response = problem(self.status_code(), &self.error.to_string(), &self.errors);
        let headers = response.headers_mut();
        match &self.error {
            AppError::TooManyRequests { retry_after_secs } => {
                if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    headers.insert(header::RETRY_AFTER, value);
                }
            }
            AppError::Unavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            AppError::TokenRefused(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> ApiError {
        ApiError {
            error,
            errors: FieldErrors::default(),
        }
    }
}

impl<E: Into<AppError>> From<crate::db::RunError<E>> for ApiError {
    fn from(error: crate::db::RunError<E>) -> ApiError {
        AppError::from(error).into()
    }
}

impl From<CredentialError> for ApiError {
    fn from(error: CredentialError) -> ApiError {
        match error {
            CredentialError::Invalid(errors) => ApiError::invalid(
                CredentialError::Invalid(FieldErrors::default()).to_string(),
                errors,
            ),
            CredentialError::NameTaken { name } => {
                let mut errors = FieldErrors::default();
                let message = format!("{name} already exists");
                errors.add("name", message.clone());
                ApiError::invalid(message, errors)
            }
            CredentialError::Unverified(outcome) => {
                let mut errors = FieldErrors::default();
                errors.add("verification", outcome.message());
                ApiError::invalid(outcome.message(), errors)
            }
            other => AppError::from(other).into(),
        }
    }
}

impl From<BackupError> for ApiError {
    fn from(error: BackupError) -> ApiError {
        match error {
            BackupError::Form(errors) => {
                ApiError::invalid("Correct the highlighted fields.", errors)
            }
            other => AppError::from(other).into(),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(error: TokenError) -> ApiError {
        AppError::from(error).into()
    }
}
