//! What the database's and each area's errors mean over HTTP: their `From` impls for
//! `AppError`, in one place. This is the edge, above the areas; `AppError` itself (`error.rs`)
//! is core and knows no area.

use super::AppError;

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
            BackupError::Store(error) => error.into(),
            BackupError::Sealing(cause) => AppError::Internal(cause),
            BackupError::NoSuchCredential | BackupError::Refused(_) | BackupError::Form(_) => {
                AppError::Invalid(error.to_string())
            }
            BackupError::AlreadyEnabled
            | BackupError::NotEnabled
            | BackupError::Busy(_)
            | BackupError::Running(_)
            | BackupError::Checking(_)
            | BackupError::NotRestorable(_)
            | BackupError::Storage(_)
            | BackupError::AlreadyDisabled
            | BackupError::PoliciesExist => AppError::Conflict(error.to_string()),
        }
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
            TokenError::Unavailable(reason) => {
                crate::db::RunError::<AppError>::Unavailable(reason).into()
            }
            TokenError::Database(error) => error.into(),
            TokenError::NotFound => AppError::NotFound,
            TokenError::Invalid(_) => AppError::Invalid(error.to_string()),
            TokenError::AlreadyRevoked { .. } => AppError::Conflict(error.to_string()),
            TokenError::Refused(words) => AppError::TokenRefused(words),
            TokenError::NotFromHere(_) => AppError::Denied(error.to_string()),
            TokenError::Throttled { retry_after_secs } => {
                AppError::TooManyRequests { retry_after_secs }
            }
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
            ProjectError::Store(error) => error.into(),
            ProjectError::Sealing(cause) => AppError::Internal(cause),
            ProjectError::Invalid(_) | ProjectError::SourceTaken(_) => {
                AppError::Invalid(error.to_string())
            }
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
            AccountError::NotFound => AppError::NotFound,
            AccountError::Invalid(_) => AppError::Invalid(error.to_string()),
            AccountError::NotEmpty { .. }
            | AccountError::LastPartner { .. }
            | AccountError::AlreadySo { .. }
            | AccountError::DisablingSelf => AppError::Conflict(error.to_string()),
            AccountError::Hashing(error) => error.into(),
            AccountError::Unavailable(reason) => {
                crate::db::RunError::<AppError>::Unavailable(reason).into()
            }
            AccountError::Database(error) => error.into(),
        }
    }
}

impl From<crate::crypto::password::HashError> for AppError {
    fn from(error: crate::crypto::password::HashError) -> AppError {
        use crate::crypto::password::HashError;
        match error {
            HashError::Closed => AppError::Unavailable,
            HashError::Failed(cause) => AppError::Internal(cause),
        }
    }
}

impl From<crate::auth::service::AuthError> for AppError {
    fn from(error: crate::auth::service::AuthError) -> AppError {
        use crate::auth::service::AuthError;
        match error {
            AuthError::NotFound => AppError::NotFound,
            AuthError::Invalid(_) | AuthError::NoSuchRequirement => {
                AppError::Invalid(error.to_string())
            }
            AuthError::Throttled(seconds) => AppError::TooManyRequests {
                retry_after_secs: seconds,
            },
            AuthError::FactorRequired => AppError::Conflict(error.to_string()),
            AuthError::Mfa(error) => error.into(),
            AuthError::Passkey(error) => error.into(),
            AuthError::Hashing(error) => error.into(),
            AuthError::Unavailable(reason) => {
                crate::db::RunError::<AppError>::Unavailable(reason).into()
            }
            AuthError::Database(error) => error.into(),
        }
    }
}

impl From<crate::notifications::service::ChannelError> for AppError {
    fn from(error: crate::notifications::service::ChannelError) -> AppError {
        use crate::notifications::service::ChannelError;
        match error {
            ChannelError::Form(_) => AppError::Invalid(error.to_string()),
            ChannelError::Unavailable(reason) => {
                crate::db::RunError::<AppError>::Unavailable(reason).into()
            }
            ChannelError::Database(error) => error.into(),
            ChannelError::Failed(cause) => AppError::Internal(cause),
        }
    }
}
