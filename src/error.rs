//! `AppError`: the one error type of request handlers. It knows its HTTP status; the page or
//! htmx fragment the person sees is rendered by `web::error_pages`, which can see the request.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

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

impl<E: Into<AppError>> From<crate::db::RunError<E>> for AppError {
    fn from(error: crate::db::RunError<E>) -> AppError {
        match error {
            crate::db::RunError::Unavailable(reason) => {
                tracing::warn!("database connection unavailable: {reason}");
                AppError::Unavailable
            }
            crate::db::RunError::Failed(error) => error.into(),
        }
    }
}

impl From<crate::backup::service::BackupError> for AppError {
    fn from(error: crate::backup::service::BackupError) -> AppError {
        use crate::backup::service::BackupError;
        match error {
            BackupError::Store(error) => error,
            BackupError::NoSuchCredential | BackupError::Refused(_) | BackupError::Form(_) => {
                AppError::Invalid(error.to_string())
            }
            BackupError::AlreadyEnabled
            | BackupError::NotEnabled
            | BackupError::Busy(_)
            | BackupError::Running(_)
            | BackupError::Checking(_)
            | BackupError::NotRestorable(_)
            | BackupError::Storage(_) => AppError::Conflict(error.to_string()),
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

impl From<crate::credentials::error::CredentialError> for AppError {
    fn from(error: crate::credentials::error::CredentialError) -> AppError {
        use crate::credentials::error::CredentialError as E;
        match error {
            E::NotFound => AppError::NotFound,
            E::Database(error) => error,
            E::Sealing(cause) => AppError::Internal(cause),
            refused @ (E::NoProvider
            | E::NoVersion
            | E::Invalid(_)
            | E::Unverified(_)
            | E::NameTaken { .. }) => AppError::Invalid(refused.to_string()),
            refused => AppError::Conflict(refused.to_string()),
        }
    }
}

impl From<crate::tokens::service::TokenError> for AppError {
    fn from(error: crate::tokens::service::TokenError) -> AppError {
        use crate::tokens::service::TokenError;
        match error {
            TokenError::Store(error) => error,
            TokenError::NotFound => AppError::NotFound,
            TokenError::Invalid(_) => AppError::Invalid(error.to_string()),
            TokenError::AlreadyRevoked { .. } => AppError::Conflict(error.to_string()),
        }
    }
}

impl From<crate::auth::mfa::MfaError> for AppError {
    fn from(error: crate::auth::mfa::MfaError) -> AppError {
        match error {
            crate::auth::mfa::MfaError::WrongCode => AppError::Invalid(error.to_string()),
            crate::auth::mfa::MfaError::AlreadyOn | crate::auth::mfa::MfaError::NotOn => {
                AppError::Conflict(error.to_string())
            }
            crate::auth::mfa::MfaError::Database(error) => error.into(),
            crate::auth::mfa::MfaError::Sealing(cause) => AppError::Internal(cause),
        }
    }
}

impl From<crate::projects::service::ProjectError> for AppError {
    fn from(error: crate::projects::service::ProjectError) -> AppError {
        use crate::projects::service::ProjectError;
        match error {
            ProjectError::Store(error) => error,
            ProjectError::Invalid(_) => AppError::Invalid(error.to_string()),
            ProjectError::ChangedMeanwhile { .. } | ProjectError::Kept(_) => {
                AppError::Conflict(error.to_string())
            }
        }
    }
}

impl From<crate::auth::passkey::PasskeyError> for AppError {
    fn from(error: crate::auth::passkey::PasskeyError) -> AppError {
        use crate::auth::passkey::PasskeyError;
        match error {
            PasskeyError::Database(error) => error.into(),
            PasskeyError::Stored(error) => AppError::internal(error),
            PasskeyError::BadName | PasskeyError::Refused(_) => {
                AppError::Invalid(error.to_string())
            }
            PasskeyError::Unavailable
            | PasskeyError::NeedsTotp
            | PasskeyError::TooMany
            | PasskeyError::Duplicate
            | PasskeyError::NoCeremony => AppError::Conflict(error.to_string()),
        }
    }
}

impl From<crate::accounts::service::AccountError> for AppError {
    fn from(error: crate::accounts::service::AccountError) -> AppError {
        use crate::accounts::service::AccountError;
        match error {
            AccountError::Store(error) => error,
            AccountError::NotFound => AppError::NotFound,
            AccountError::Invalid(_) => AppError::Invalid(error.to_string()),
            AccountError::NotEmpty { .. } | AccountError::LastPartner { .. } => {
                AppError::Conflict(error.to_string())
            }
        }
    }
}
