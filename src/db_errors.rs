//! Database errors read by what they mean (a constraint's name), never by their text.

use diesel::result::{DatabaseErrorKind, Error};

/// Whether `error` is a violation of the unique constraint `constraint`.
pub fn unique_violation(error: &Error, constraint: &str) -> bool {
    matches!(
        error,
        Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info)
            if info.constraint_name() == Some(constraint)
    )
}
