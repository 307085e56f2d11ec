//! How people and partner accounts come in: a person added from the Users page or by
//! `keyhold user create` (one `add_person`, checked by one `NewPerson::check`), and the first
//! run's set-up page, which opens the first partner account with its first Partner.

use diesel::{Connection, PgConnection};

use super::{AccountError, Actor, role_and_organization};
use crate::access::Role;
use crate::accounts::model::{Organization, Partner, User};
use crate::audit::NewEvent;
use crate::crypto::Secret;
use crate::crypto::password::{self, PasswordHasher};
use crate::db::{self, DbPool};
use crate::db_errors::unique_violation;
use crate::ids::{OrganizationId, UserId};
use crate::web::form::{FieldErrors, check_length};

/// A new person as the Users page's form gives them: who, and the role and organization.
pub struct PersonForm<'a> {
    pub person: NewPerson<'a>,
    pub role: &'a str,
    pub organization: Option<&'a str>,
}

/// Adds a person from the Users page: the fields checked (an address in use is refused
/// beside `email`), then `add_person` in one transaction.
pub async fn create_person(
    pool: &DbPool,
    hasher: &PasswordHasher,
    actor: &Actor<'_>,
    form: &PersonForm<'_>,
) -> Result<User, AccountError> {
    let mut errors = form.person.check();
    let scope = actor.scope;
    let organizations = db::run(pool, move |conn| Organization::list(conn, &scope)).await?;
    let (role, organization) =
        role_and_organization(form.role, form.organization, &organizations, &mut errors);
    if errors.get("email").is_none() {
        let email = form.person.email.trim().to_string();
        if db::run(pool, move |conn| User::email_taken(conn, &email)).await? {
            errors.add("email", EMAIL_IN_USE);
        }
    }
    let Some(role) = role.filter(|_| errors.is_empty()) else {
        return Err(AccountError::Invalid(errors));
    };
    let hash = hasher.hash(form.person.password).await?;
    let placement = Placement {
        partner: actor.partner(),
        organization,
        role,
        created_by: Some(actor.id()),
    };
    let event = actor.event("user.create").in_organization(organization);
    let (email, display_name, password) = (
        form.person.email.to_string(),
        form.person.display_name.to_string(),
        form.person.password.clone(),
    );
    db::run(pool, move |conn| {
        let person = NewPerson {
            email: &email,
            display_name: &display_name,
            password: &password,
        };
        conn.build_transaction()
            .run(|conn| add_person(conn, &person, &hash, &placement, event))
    })
    .await
    .map_err(AccountError::from)
}

/// The refusal of an email address someone already signs in with. Addresses sign people in,
/// so they are unique across every partner account and a refusal cannot help saying that the
/// address is taken; it says no more: the same words whether the address is in this partner
/// account (where the Partner sees it listed anyway) or in another one, never "already exists"
/// and nothing about where.
pub const EMAIL_IN_USE: &str = "This email address cannot be used. Choose another one.";

/// A new person as the Users page, the set-up page and `keyhold user create` take them.
pub struct NewPerson<'a> {
    pub email: &'a str,
    pub display_name: &'a str,
    pub password: &'a Secret,
}

impl NewPerson<'_> {
    /// Each field's check, its message under the field's name (`email`, `display_name`,
    /// `password`).
    pub fn check(&self) -> FieldErrors {
        let mut errors = FieldErrors::default();
        errors.check("email", crate::web::form::check_email(self.email));
        errors.check("display_name", check_length(self.display_name, 1, 80));
        errors.check("password", password::check_new(self.password));
        errors
    }
}

/// Where a new person goes and who adds them.
pub struct Placement {
    pub partner: crate::ids::PartnerId,
    pub organization: Option<OrganizationId>,
    pub role: Role,
    pub created_by: Option<UserId>,
}

/// Adds `person` (their password already hashed into `hash`) at `placement`, and records
/// `event` (`user.create`, its object the new person) in `conn`'s transaction: the one way
/// people are added, by the Users page and by `keyhold user create`. An address in use, also
/// one taken by another request at the same moment, is `Invalid` with `EMAIL_IN_USE` beside
/// `email`; the caller's transaction then ends without the row or the event.
pub fn add_person(
    conn: &mut PgConnection,
    person: &NewPerson,
    hash: &str,
    placement: &Placement,
    event: NewEvent,
) -> Result<User, AccountError> {
    // The unique index on lower(email) is the one check: also for a request at the same moment.
    let created = User::create(
        conn,
        &crate::accounts::model::NewUser {
            partner_id: placement.partner,
            organization_id: placement.organization,
            email: person.email.trim(),
            display_name: person.display_name.trim(),
            role: placement.role,
            password_hash: hash,
            created_by: placement.created_by,
        },
    )
    .map_err(|error| {
        if unique_violation(&error, "users_email_unique") {
            let mut errors = FieldErrors::default();
            errors.add("email", EMAIL_IN_USE);
            AccountError::Invalid(errors)
        } else {
            error.into()
        }
    })?;
    event
        .object("user", created.id.0, &created.email)
        .fields(&[
            "email",
            "display_name",
            "role",
            "organization_id",
            "password",
        ])
        .record(conn)?;
    Ok(created)
}

/// Takes the lock on `users` that orders whatever may open the first partner account: of two
/// at once, the second waits for the first's commit, then finds its account.
pub fn lock_people(conn: &mut PgConnection) -> Result<(), AccountError> {
    use diesel::RunQueryDsl;
    diesel::sql_query("LOCK TABLE users IN EXCLUSIVE MODE").execute(conn)?;
    Ok(())
}

/// Opens a partner account named `name` (trimmed; 3 to 60 characters, else `Invalid` beside
/// `partner_name`), in `conn`'s transaction, under `lock_people`.
pub fn open_partner_account(conn: &mut PgConnection, name: &str) -> Result<Partner, AccountError> {
    if let Err(message) = check_length(name, 3, 60) {
        let mut errors = FieldErrors::default();
        errors.add("partner_name", message);
        return Err(AccountError::Invalid(errors));
    }
    Ok(Partner::create(conn, name.trim())?)
}

/// Opens keyhold (`/setup`): the first partner account, named `partner_name`, with `person`
/// (their password hashed into `hash`) as its first Partner, and `setup.complete` recorded
/// from `ip`, in `conn`'s transaction. `NotFound` once anyone signs in: of two set-ups at
/// once, the second waits for the first's lock on `users`, then finds its account.
pub fn open_keyhold(
    conn: &mut PgConnection,
    partner_name: &str,
    person: &NewPerson,
    hash: &str,
    ip: String,
) -> Result<User, AccountError> {
    lock_people(conn)?;
    if User::any_exists(conn)? {
        return Err(AccountError::NotFound);
    }
    let partner = open_partner_account(conn, partner_name)?;
    let user = User::create(
        conn,
        &crate::accounts::model::NewUser {
            partner_id: partner.id,
            organization_id: None,
            email: person.email.trim(),
            display_name: person.display_name.trim(),
            role: Role::Partner,
            password_hash: hash,
            created_by: None,
        },
    )?;
    NewEvent {
        actor_id: Some(user.id),
        actor_label: user.email.clone(),
        partner_id: Some(partner.id),
        client_ip: Some(ip),
        ..NewEvent::system("setup.complete")
    }
    .object("partner", partner.id.0, &partner.name)
    .record(conn)?;
    Ok(user)
}

/// Opens keyhold from the set-up page: refused (`NotFound`) once anyone signs in; the fields
/// checked (`Invalid`), the password hashed, then `open_keyhold` in one transaction.
pub async fn set_up(
    pool: &DbPool,
    hasher: &PasswordHasher,
    partner_name: &str,
    person: &NewPerson<'_>,
    ip: String,
) -> Result<User, AccountError> {
    if db::run(pool, User::any_exists).await? {
        return Err(AccountError::NotFound);
    }
    let mut errors = person.check();
    errors.check("partner_name", check_length(partner_name, 3, 60));
    if !errors.is_empty() {
        return Err(AccountError::Invalid(errors));
    }
    let hash = hasher.hash(person.password).await?;
    let (partner_name, email, display_name, password) = (
        partner_name.to_string(),
        person.email.to_string(),
        person.display_name.to_string(),
        person.password.clone(),
    );
    db::run(pool, move |conn| {
        let person = NewPerson {
            email: &email,
            display_name: &display_name,
            password: &password,
        };
        conn.transaction(|conn| open_keyhold(conn, &partner_name, &person, &hash, ip))
    })
    .await
    .map_err(AccountError::from)
}
