//! The actions of a table row (`POST /credentials/{kind}/{id}/{action}`): lock, unlock, make
//! default, verify and delete, each in the transaction that holds the row, audited.

use diesel::prelude::*;

use super::{Actor, BackupsHeld, Context, find, run};
use crate::access::Scope;
use crate::credentials::error::{Attempt, CredentialError};
use crate::credentials::model::{Credential, Listed};
use crate::credentials::provider::Kind;
use crate::credentials::verify::Outcome;
use crate::ids::{CredentialId, UserId};

/// An action of the table (`POST /credentials/{kind}/{id}/{action}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Lock,
    Unlock,
    Default,
    Verify,
    Delete,
}

impl Action {
    /// The action a path segment names; `None` for anything else (404).
    pub fn parse(segment: &str) -> Option<Action> {
        Some(match segment {
            "lock" => Action::Lock,
            "unlock" => Action::Unlock,
            "default" => Action::Default,
            "verify" => Action::Verify,
            "delete" => Action::Delete,
            _ => return None,
        })
    }

    /// Its path segment, also the suffix of its audit action (`credential.lock`).
    pub fn key(self) -> &'static str {
        match self {
            Action::Lock => "lock",
            Action::Unlock => "unlock",
            Action::Default => "default",
            Action::Verify => "verify",
            Action::Delete => "delete",
        }
    }
}

/// The credential whose deletion is about to be confirmed: unlocked, used by no project.
pub async fn deletable(
    context: &Context<'_>,
    scope: Scope,
    kind: Kind,
    id: CredentialId,
) -> Result<Listed, CredentialError> {
    let listed = find(context, scope, kind, id).await?;
    let credential = &listed.credential;
    if credential.is_locked {
        return Err(CredentialError::Locked {
            name: credential.name.clone(),
            attempt: Attempt::Delete,
        });
    }
    let projects = listed.projects();
    if !projects.is_empty() {
        return Err(CredentialError::InUse {
            name: credential.name.clone(),
            projects: projects.into_iter().map(String::from).collect(),
            asking: true,
        });
    }
    Ok(listed)
}

/// A change of a row an action makes, inside the transaction that holds the row; answers the
/// message the person reads.
type Change = fn(&mut PgConnection, Credential, &Acting) -> Result<String, CredentialError>;

/// What a change knows besides the row: who acts, and how to ask which backups hold it.
struct Acting {
    by: UserId,
    backups_held: BackupsHeld,
}

/// Takes `action` on the credential of `kind` by `id` inside the actor's scope, audited;
/// answers the message the person reads.
pub async fn act(
    context: &Context<'_>,
    actor: &Actor<'_>,
    kind: Kind,
    id: CredentialId,
    action: Action,
) -> Result<String, CredentialError> {
    let change: Change = match action {
        Action::Verify => return verify_stored(context, actor, kind, id).await,
        Action::Lock => |conn, credential, acting| set_locked(conn, credential, true, acting.by),
        Action::Unlock => |conn, credential, acting| set_locked(conn, credential, false, acting.by),
        Action::Default => make_default,
        Action::Delete => delete,
    };
    let scope = actor.scope();
    let listed = find(context, scope, kind, id).await?;
    let event = actor
        .event(&format!("credential.{}", action.key()))
        .in_organization(Some(listed.credential.organization_id))
        .object(
            "credential",
            listed.credential.id.0,
            &listed.credential.name,
        );
    let acting = Acting {
        by: actor.user.id(),
        backups_held: context.backups_held,
    };
    run(context.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            let credential = Credential::find_for_update(conn, &scope, kind, id)?;
            let message = change(conn, credential, &acting)?;
            event.record(conn)?;
            Ok(message)
        })
    })
    .await
}

/// Locks or unlocks; the same state twice is refused, changing nothing.
fn set_locked(
    conn: &mut PgConnection,
    credential: Credential,
    locked: bool,
    by: UserId,
) -> Result<String, CredentialError> {
    let name = credential.name.clone();
    match (credential.is_locked, locked) {
        (true, true) => return Err(CredentialError::AlreadyLocked { name }),
        (false, false) => return Err(CredentialError::AlreadyUnlocked { name }),
        _ => credential.set_locked(conn, locked, by)?,
    }
    Ok(if locked {
        format!("{name} is locked.")
    } else {
        format!("{name} is unlocked.")
    })
}

/// Makes an unlocked credential of a kind with defaults the default.
fn make_default(
    conn: &mut PgConnection,
    credential: Credential,
    acting: &Acting,
) -> Result<String, CredentialError> {
    let name = credential.name.clone();
    if !credential.kind.spec().has_default {
        return Err(CredentialError::NoDefault {
            kind: credential.kind,
        });
    }
    if credential.is_locked {
        return Err(CredentialError::Locked {
            name,
            attempt: Attempt::MakeDefault,
        });
    }
    if credential.is_default {
        return Err(CredentialError::AlreadyDefault { name });
    }
    credential.make_default(conn, acting.by)?;
    Ok(format!("{name} is now the default."))
}

/// Deletes an unlocked credential that no project uses and no stored backup was written with.
fn delete(
    conn: &mut PgConnection,
    credential: Credential,
    acting: &Acting,
) -> Result<String, CredentialError> {
    let name = credential.name.clone();
    if credential.is_locked {
        return Err(CredentialError::Locked {
            name,
            attempt: Attempt::Delete,
        });
    }
    let projects = credential.projects_using(conn)?;
    if !projects.is_empty() {
        return Err(CredentialError::InUse {
            name,
            projects,
            asking: false,
        });
    }
    let backups = (acting.backups_held)(conn, credential.id)?;
    if !backups.is_empty() {
        return Err(CredentialError::HoldsBackups { name, backups });
    }
    credential.delete(conn)?;
    Ok(format!("{name} is deleted."))
}

/// Checks a stored credential against its API and records the result, audited.
async fn verify_stored(
    context: &Context<'_>,
    actor: &Actor<'_>,
    kind: Kind,
    id: CredentialId,
) -> Result<String, CredentialError> {
    let credential = find(context, actor.scope(), kind, id).await?.credential;
    let provider = credential.provider().ok_or(CredentialError::NotFound)?;
    let values = credential
        .all_values(context.keyring)
        .map_err(CredentialError::Sealing)?;
    let outcome = context
        .verify(provider, &values, credential.expires_on)
        .await;
    let event = actor
        .event("credential.verify")
        .in_organization(Some(credential.organization_id))
        .object("credential", credential.id.0, &credential.name)
        .fields(&[if outcome.passed() { "ok" } else { "failed" }]);
    let name = credential.name.clone();
    let recorded = outcome.clone();
    run(context.pool, move |conn| {
        credential.record_verification(conn, &recorded)?;
        event.record(conn)?;
        Ok(())
    })
    .await?;
    Ok(match outcome {
        Outcome::Failed(message) => format!("{name} failed verification: {message}."),
        Outcome::Warning(message) => format!("{name} verified with a warning: {message}."),
        Outcome::Ok(message) => format!("{name} verified: {message}."),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_parsed_from_their_path_segment_and_nothing_else() {
        for action in [
            Action::Lock,
            Action::Unlock,
            Action::Default,
            Action::Verify,
            Action::Delete,
        ] {
            assert_eq!(Action::parse(action.key()), Some(action));
        }
        assert_eq!(Action::parse("Lock"), None);
        assert_eq!(Action::parse("archive"), None);
        assert_eq!(Action::parse(""), None);
    }
}
