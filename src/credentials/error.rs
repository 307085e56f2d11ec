//! `CredentialError`: why a credential use case refused or failed. Each refusal says what a
//! person reads (the text `AppError` answers with, see `error.rs`); none is found by its text.

use crate::credentials::model::StoreError;
use crate::credentials::provider::Kind;
use crate::credentials::verify::Outcome;
use crate::error::AppError;
use crate::web::form::FieldErrors;

/// What a person was doing when a locked credential refused it (each has its own advice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Edit,
    Delete,
    MakeDefault,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// No credential of this kind by this id inside the caller's scope.
    #[error("no such credential")]
    NotFound,
    #[error("Choose a provider.")]
    NoProvider,
    #[error("The form is missing its version: reload it.")]
    NoVersion,
    /// The form's fields, with a message next to each wrong one.
    #[error("Correct the highlighted fields first.")]
    Invalid(FieldErrors),
    /// The check against the credential's API failed: nothing was saved.
    #[error("{}", .0.message())]
    Unverified(Outcome),
    /// Another credential of the organization and kind has this name (found at save).
    #[error("{name} already exists")]
    NameTaken { name: String },
    #[error("{name} is locked: {}", advice(*.attempt))]
    Locked { name: String, attempt: Attempt },
    #[error("{name} was locked meanwhile")]
    LockedMeanwhile { name: String },
    #[error("{provider} credentials cannot be edited: delete and add again")]
    NotEditable { provider: &'static str },
    #[error("{name} is already locked")]
    AlreadyLocked { name: String },
    #[error("{name} is already unlocked")]
    AlreadyUnlocked { name: String },
    #[error("{} credentials have no default", .kind.spec().label)]
    NoDefault { kind: Kind },
    #[error("{name} is already the default")]
    AlreadyDefault { name: String },
    /// Projects use it; `asking` when the delete confirmation was asked for (its own wording).
    #[error("{}", in_use(name, projects, *asking))]
    InUse {
        name: String,
        projects: Vec<String>,
        asking: bool,
    },
    /// Stored or running backups were written with it.
    #[error("{}", holds_backups(name, backups))]
    HoldsBackups { name: String, backups: Vec<String> },
    /// The edit form showed an older version than the one stored.
    #[error(
        "{name} was changed by someone else since you opened the form. Reload it to see the changes."
    )]
    Stale { name: String },
    /// The row changed between its check and its update.
    #[error("{name} was changed by someone else meanwhile.")]
    ChangedMeanwhile { name: String },
    /// Secrets could not be sealed or opened.
    #[error("sealing failed: {0:#}")]
    Sealing(anyhow::Error),
    /// The database failed or could not be reached, as `db::run` answers it.
    #[error("{0}")]
    Database(AppError),
}

impl From<StoreError> for CredentialError {
    fn from(error: StoreError) -> CredentialError {
        match error {
            StoreError::Query(error) => error.into(),
            StoreError::Sealing(cause) => CredentialError::Sealing(cause),
        }
    }
}

impl From<diesel::result::Error> for CredentialError {
    fn from(error: diesel::result::Error) -> CredentialError {
        match error {
            diesel::result::Error::NotFound => CredentialError::NotFound,
            other => CredentialError::Database(AppError::from(other)),
        }
    }
}

fn advice(attempt: Attempt) -> &'static str {
    match attempt {
        Attempt::Edit => "unlock it to edit",
        Attempt::Delete => "unlock it before deleting",
        Attempt::MakeDefault => "unlock it first",
    }
}

fn in_use(name: &str, projects: &[String], asking: bool) -> String {
    if asking {
        return format!(
            "{name} is used by {}: change or delete those projects first",
            projects.join(", ")
        );
    }
    let one = projects.len() == 1;
    format!(
        "{name} is used by project{} {}: change or delete {} first",
        if one { "" } else { "s" },
        projects.join(", "),
        if one { "it" } else { "them" }
    )
}

fn holds_backups(name: &str, backups: &[String]) -> String {
    let one = backups.len() == 1;
    let them = if one { "it" } else { "them" };
    format!(
        "{name} holds {} stored or running backup{} ({}): delete {them} first, or let retention \
         remove {them}",
        backups.len(),
        if one { "" } else { "s" },
        backups
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
            + if backups.len() > 5 { ", …" } else { "" },
    )
}
