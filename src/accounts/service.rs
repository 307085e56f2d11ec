//! The Partner's changes to organizations and people: rename and delete an organization,
//! change a person's role and organization, set a new password, delete a person. Each is one
//! transaction that records its audit row; a change that ends a person's sessions says so in
//! `Changed::signed_out`, for the caller to forget them in this process's session cache.
//! Also what the organizations, Users and person pages read, and disabling a person; how
//! people come in (the Users page, `keyhold user create`, the set-up page) is `joining`.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::access::{Role, Scope};
use crate::accounts::model::{Contents, Organization, Partner, User, UserListing};
use crate::audit::{self, NewEvent};
use crate::crypto::Secret;
use crate::crypto::password::{self, HashError, PasswordHasher};
use crate::db::{self, DbPool};
use crate::db_errors::unique_violation;
use crate::ids::{OrganizationId, PartnerId, UserId};
use crate::session_store;
use crate::web::form::{FieldErrors, check_length};

mod joining;

pub use joining::{
    EMAIL_IN_USE, NewPerson, PersonForm, Placement, add_person, create_person, lock_people,
    open_keyhold, open_partner_account, set_up,
};

/// Why a change to an organization or a person was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Not in the Partner's account (404).
    #[error("This page does not exist, or you do not have access to it.")]
    NotFound,
    /// The form's fields, with a message next to each wrong one (422).
    #[error("Correct the highlighted fields.")]
    Invalid(FieldErrors),
    /// The organization still holds something (409).
    #[error("{name} still holds {contents}: delete or move them first.")]
    NotEmpty { name: String, contents: String },
    /// The change would leave the partner account without an enabled Partner (409).
    #[error(
        "{email} is the last Partner of the partner account: make someone else a Partner first."
    )]
    LastPartner { email: String },
    /// The person to disable or enable already is (409).
    #[error("{email} is already {state}.")]
    AlreadySo { email: String, state: &'static str },
    /// A Partner cannot disable their own account (409).
    #[error("You cannot disable your own account.")]
    DisablingSelf,
    #[error(transparent)]
    Hashing(#[from] HashError),
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Database(DieselError),
}

impl From<DieselError> for AccountError {
    fn from(error: DieselError) -> AccountError {
        match error {
            DieselError::NotFound => AccountError::NotFound,
            other => AccountError::Database(other),
        }
    }
}

impl<E: Into<AccountError>> From<db::RunError<E>> for AccountError {
    fn from(error: db::RunError<E>) -> AccountError {
        match error {
            db::RunError::Failed(error) => error.into(),
            db::RunError::Unavailable(reason) => AccountError::Unavailable(reason),
        }
    }
}

/// Who acts (the signed-in Partner, as the audit log names them), the organizations they
/// reach, and the address their audit row records.
pub struct Actor<'a> {
    pub who: &'a dyn audit::Actor,
    pub scope: Scope,
    pub ip: String,
}

impl Actor<'_> {
    fn event(&self, action: &str) -> NewEvent {
        NewEvent::by(self.who, action, &self.ip)
    }

    fn id(&self) -> UserId {
        self.who.actor_id()
    }

    fn partner(&self) -> PartnerId {
        self.who.partner_id()
    }
}

/// A person changed: who they are now, and whether their sessions were ended.
pub struct Changed {
    pub person: User,
    pub signed_out: bool,
}

/// Checks an organization's name: 3 to 60 characters.
pub fn check_organization_name(name: &str) -> Result<(), String> {
    check_length(name, 3, 60)
}

/// Renames an organization of the Partner's account; the name stays unique in it.
pub async fn rename_organization(
    pool: &DbPool,
    actor: &Actor<'_>,
    id: OrganizationId,
    name: &str,
) -> Result<Organization, AccountError> {
    let scope = actor.scope;
    db::run(pool, move |conn| Organization::find(conn, &scope, id)).await?;
    let name = name.trim().to_string();
    let mut errors = FieldErrors::default();
    errors.check("name", check_organization_name(&name));
    if !errors.is_empty() {
        return Err(AccountError::Invalid(errors));
    }
    let (scope, event) = (actor.scope, actor.event("organization.rename"));
    let new_name = name.clone();
    let renamed = db::run(pool, move |conn| {
        conn.build_transaction().run(|conn| {
            let organization = Organization::find_for_update(conn, &scope, id)?;
            if organization.name == new_name {
                return Ok(organization);
            }
            Organization::rename(conn, id, &new_name)?;
            event
                .object(
                    "organization",
                    id.0,
                    &format!("{new_name} (was {})", organization.name),
                )
                .in_organization(Some(id))
                .fields(&["name"])
                .record(conn)?;
            Ok::<_, DieselError>(Organization {
                name: new_name,
                ..organization
            })
        })
    })
    .await;
    match renamed {
        Err(db::RunError::Failed(error))
            if unique_violation(&error, "organizations_partner_name_unique") =>
        {
            errors.add("name", format!("{name} already exists"));
            Err(AccountError::Invalid(errors))
        }
        other => Ok(other?),
    }
}

/// What an organization still holds (the delete page says it before anyone presses Delete).
pub async fn organization_contents(
    pool: &DbPool,
    scope: Scope,
    id: OrganizationId,
) -> Result<(Organization, Contents), AccountError> {
    Ok(db::run(pool, move |conn| {
        let organization = Organization::find(conn, &scope, id)?;
        let contents = Organization::contents(conn, id)?;
        Ok::<_, DieselError>((organization, contents))
    })
    .await?)
}

/// Deletes an empty organization: no people, credentials, projects or notification channels.
/// The organization's row is locked first, so nothing can be added to it meanwhile.
pub async fn delete_organization(
    pool: &DbPool,
    actor: &Actor<'_>,
    id: OrganizationId,
) -> Result<Organization, AccountError> {
    let (scope, event) = (actor.scope, actor.event("organization.delete"));
    db::run(pool, move |conn| {
        conn.build_transaction()
            .run(|conn| -> Result<_, AccountError> {
                let organization = Organization::find_for_update(conn, &scope, id)?;
                let contents = Organization::contents(conn, id)?;
                if !contents.is_empty() {
                    return Err(AccountError::NotEmpty {
                        name: organization.name,
                        contents: contents.words(),
                    });
                }
                // Recorded in the partner account, not in the organization about to go.
                event
                    .object("organization", id.0, &organization.name)
                    .record(conn)?;
                Organization::delete(conn, id)?;
                Ok(organization)
            })
    })
    .await
    .map_err(AccountError::from)
}

/// A role and organization as a form gives them, checked against the Partner's organizations.
pub fn role_and_organization(
    role: &str,
    organization: Option<&str>,
    organizations: &[Organization],
    errors: &mut FieldErrors,
) -> (Option<Role>, Option<OrganizationId>) {
    let role = Role::parse(role);
    if role.is_none() {
        errors.add("role", "Choose Partner, Manager or User.");
    }
    let organization = organization
        .filter(|id| !id.is_empty())
        .map(|id| id.parse::<i64>().map(OrganizationId));
    let organization = match (role, organization) {
        // A Partner reaches every organization: one chosen is a mistake, said, not ignored.
        (Some(Role::Partner), Some(_)) => {
            errors.add(
                "organization_id",
                "Partners reach every organization: leave the organization empty, or choose Manager or User.",
            );
            None
        }
        (Some(Role::Partner), None) | (None, _) => None,
        (Some(_), None) => {
            errors.add(
                "organization_id",
                "Managers and Users belong to an organization.",
            );
            None
        }
        (Some(_), Some(id)) => {
            let found = id
                .ok()
                .filter(|id| organizations.iter().any(|o| o.id == *id));
            if found.is_none() {
                errors.add("organization_id", "Choose one of your organizations.");
            }
            found
        }
    };
    (role, organization)
}

/// Refuses a change that takes `target` out of the enabled Partners when no other is left.
pub fn keep_a_partner(conn: &mut diesel::PgConnection, target: &User) -> Result<(), AccountError> {
    if target.role != Role::Partner || target.disabled {
        return Ok(());
    }
    let partners = User::lock_partners(conn, target.partner_id)?;
    if partners.iter().all(|id| *id == target.id) {
        return Err(AccountError::LastPartner {
            email: target.email.clone(),
        });
    }
    Ok(())
}

/// Changes a person's role and organization. Their sessions end (a session carries the role
/// it was signed in with); the last enabled Partner of the account stays a Partner.
pub async fn change_role(
    pool: &DbPool,
    actor: &Actor<'_>,
    id: UserId,
    role: &str,
    organization: Option<&str>,
) -> Result<Changed, AccountError> {
    let scope = actor.scope;
    // Someone outside the account is 404 whatever the form holds.
    let organizations = db::run(pool, move |conn| {
        User::find(conn, &scope, id)?;
        Organization::list(conn, &scope)
    })
    .await?;
    let mut errors = FieldErrors::default();
    let (role, organization) =
        role_and_organization(role, organization, &organizations, &mut errors);
    let Some(role) = role.filter(|_| errors.is_empty()) else {
        return Err(AccountError::Invalid(errors));
    };
    let (scope, event) = (actor.scope, actor.event("user.update"));
    db::run(pool, move |conn| {
        conn.build_transaction()
            .run(|conn| -> Result<_, AccountError> {
                let target = User::find_for_update(conn, &scope, id)?;
                let mut changed = Vec::new();
                if target.role != role {
                    changed.push("role");
                }
                if target.organization_id != organization {
                    changed.push("organization_id");
                }
                if changed.is_empty() {
                    return Ok(Changed {
                        person: target,
                        signed_out: false,
                    });
                }
                if role != Role::Partner {
                    keep_a_partner(conn, &target)?;
                }
                User::set_role(conn, id, role, organization)?;
                session_store::revoke_all_for(conn, id)?;
                event
                    .object("user", id.0, &target.email)
                    .in_organization(organization.or(target.organization_id))
                    .fields(&changed)
                    .record(conn)?;
                Ok(Changed {
                    person: User {
                        role,
                        organization_id: organization,
                        ..target
                    },
                    signed_out: true,
                })
            })
    })
    .await
    .map_err(AccountError::from)
}

/// Sets a new password for a person (the Partner tells it to them); their sessions end. A
/// Partner's own password is changed from their account page, which asks for the current one.
pub async fn set_password(
    pool: &DbPool,
    hasher: &PasswordHasher,
    actor: &Actor<'_>,
    id: UserId,
    new_password: &Secret,
) -> Result<Changed, AccountError> {
    let scope = actor.scope;
    // Someone outside the account is 404 whatever the form holds, and before the hash's cost.
    let target = db::run(pool, move |conn| User::find(conn, &scope, id)).await?;
    let mut errors = FieldErrors::default();
    if id == actor.id() {
        errors.add(
            "password",
            "Change your own password on your Account page: it asks for the current one.",
        );
    } else if target.role == Role::Partner {
        // Another Partner's password would let one Partner sign in as the other, their
        // actions audited under the other's name: a Partner changes their own, on /account
        // (or a locked-out one is reset from a shell).
        errors.add(
            "password",
            "A Partner's password is changed only by that Partner, on their Account page.",
        );
    } else {
        errors.check("password", password::check_new(new_password));
    }
    if !errors.is_empty() {
        return Err(AccountError::Invalid(errors));
    }
    let hash = hasher.hash(new_password).await?;
    let (scope, event) = (actor.scope, actor.event("user.password_reset"));
    db::run(pool, move |conn| {
        conn.build_transaction().run(|conn| {
            let target = User::find_for_update(conn, &scope, id)?;
            User::set_password_hash(conn, id, &hash)?;
            session_store::revoke_all_for(conn, id)?;
            event
                .object("user", id.0, &target.email)
                .in_organization(target.organization_id)
                .fields(&["password"])
                .record(conn)?;
            Ok::<_, AccountError>(Changed {
                person: target,
                signed_out: true,
            })
        })
    })
    .await
    .map_err(AccountError::from)
}

/// The organizations page: the Partner's organizations and who must use a second factor.
pub struct OrganizationList {
    pub organizations: Vec<Organization>,
    /// Two-step sign-in required of everyone, and of these organizations.
    pub mfa_everyone: bool,
    pub mfa_organizations: Vec<OrganizationId>,
}

pub async fn organization_list(
    pool: &DbPool,
    scope: Scope,
    partner: PartnerId,
) -> Result<OrganizationList, AccountError> {
    Ok(db::run(pool, move |conn| {
        let (mfa_everyone, mfa_organizations) = Partner::second_factor_requirements(conn, partner)?;
        Ok::<_, DieselError>(OrganizationList {
            organizations: Organization::list(conn, &scope)?,
            mfa_everyone,
            mfa_organizations,
        })
    })
    .await?)
}

/// Creates an organization in the Partner's account; its name (trimmed) is unique there.
pub async fn create_organization(
    pool: &DbPool,
    actor: &Actor<'_>,
    name: &str,
) -> Result<Organization, AccountError> {
    let name = name.trim().to_string();
    let mut errors = FieldErrors::default();
    errors.check("name", check_organization_name(&name));
    if !errors.is_empty() {
        return Err(AccountError::Invalid(errors));
    }
    let (partner, by) = (actor.partner(), actor.id());
    let (event, new_name) = (actor.event("organization.create"), name.clone());
    let created = db::run(pool, move |conn| {
        conn.build_transaction().run(|conn| {
            let organization = Organization::create(conn, partner, &new_name, Some(by))?;
            event
                .object("organization", organization.id.0, &organization.name)
                .in_organization(Some(organization.id))
                .fields(&["name"])
                .record(conn)?;
            Ok::<_, DieselError>(organization)
        })
    })
    .await;
    match created {
        Err(db::RunError::Failed(DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            _,
        ))) => {
            errors.add("name", format!("{name} already exists"));
            Err(AccountError::Invalid(errors))
        }
        other => Ok(other?),
    }
}

/// The people page: everyone of the Partner's account, and the organizations to place them in.
pub struct PeopleList {
    pub people: Vec<UserListing>,
    pub organizations: Vec<Organization>,
}

pub async fn people_list(pool: &DbPool, scope: Scope) -> Result<PeopleList, AccountError> {
    Ok(db::run(pool, move |conn| {
        Ok::<_, DieselError>(PeopleList {
            people: User::list(conn, &scope)?,
            organizations: Organization::list(conn, &scope)?,
        })
    })
    .await?)
}

/// Disables a person (their sessions end: the caller forgets them in its session cache) or
/// enables them again. A Partner cannot disable themselves, nor the account's last Partner.
pub async fn set_disabled(
    pool: &DbPool,
    actor: &Actor<'_>,
    id: UserId,
    disable: bool,
) -> Result<User, AccountError> {
    if id == actor.id() && disable {
        return Err(AccountError::DisablingSelf);
    }
    let scope = actor.scope;
    let event = actor.event(if disable {
        "user.disable"
    } else {
        "user.enable"
    });
    db::run(pool, move |conn| {
        conn.build_transaction()
            .run(|conn| -> Result<_, AccountError> {
                let target = User::find(conn, &scope, id)?;
                if target.disabled == disable {
                    return Err(AccountError::AlreadySo {
                        email: target.email,
                        state: if disable { "disabled" } else { "enabled" },
                    });
                }
                // Disabling the last enabled Partner would leave the account without one (the
                // Partners' rows are locked while counted, as for a role change).
                if disable {
                    keep_a_partner(conn, &target)?;
                }
                User::set_disabled(conn, id, disable)?;
                event
                    .object("user", target.id.0, &target.email)
                    .in_organization(target.organization_id)
                    .fields(&["disabled"])
                    .record(conn)?;
                Ok(target)
            })
    })
    .await
    .map_err(AccountError::from)
}

/// One person's page: the person and the organizations they may be moved to.
pub struct PersonChoices {
    pub person: User,
    pub organizations: Vec<Organization>,
}

pub async fn person_choices(
    pool: &DbPool,
    scope: Scope,
    id: UserId,
) -> Result<PersonChoices, AccountError> {
    Ok(db::run(pool, move |conn| {
        Ok::<_, DieselError>(PersonChoices {
            person: User::find(conn, &scope, id)?,
            organizations: Organization::list(conn, &scope)?,
        })
    })
    .await?)
}

/// One person of the Partner's account (for the pages that change them).
pub async fn person(pool: &DbPool, scope: Scope, id: UserId) -> Result<User, AccountError> {
    Ok(db::run(pool, move |conn| User::find(conn, &scope, id)).await?)
}

/// Deletes a person: their sessions, second factors and API tokens go with them; what they
/// made stays; audit rows keep their label. The last enabled Partner of the account stays.
pub async fn delete_person(
    pool: &DbPool,
    actor: &Actor<'_>,
    id: UserId,
) -> Result<User, AccountError> {
    let (scope, event) = (actor.scope, actor.event("user.delete"));
    db::run(pool, move |conn| {
        conn.build_transaction().run(|conn| {
            let target = User::find_for_update(conn, &scope, id)?;
            keep_a_partner(conn, &target)?;
            event
                .object("user", id.0, &target.email)
                .in_organization(target.organization_id)
                .record(conn)?;
            User::delete(conn, id)?;
            Ok::<_, AccountError>(target)
        })
    })
    .await
    .map_err(AccountError::from)
}
