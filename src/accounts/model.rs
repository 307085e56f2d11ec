//! Partner accounts, organizations and people, and the queries over them. Every list takes the
//! caller's `Scope`, so nobody reads outside the organizations they may reach.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::access::{Role, Scope};
use crate::db::Tables;
use crate::schema::{credentials, notification_channels, organizations, partners, projects, users};

pub use crate::ids::{OrganizationId, PartnerId, UserId};

/// A partner account: owns organizations, employs Partners.
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = partners)]
pub struct Partner {
    pub id: PartnerId,
    pub name: String,
}

impl Partner {
    /// Creates a partner account.
    pub fn create(conn: &mut PgConnection, name: &str) -> QueryResult<Partner> {
        diesel::insert_into(partners::table)
            .values(partners::name.eq(name))
            .returning(Partner::as_returning())
            .get_result(conn)
    }

    /// Who must sign in with a second factor in `partner`'s account: everyone, and the
    /// people of which organizations.
    pub fn second_factor_requirements(
        conn: &mut PgConnection,
        partner: PartnerId,
    ) -> QueryResult<(bool, Vec<OrganizationId>)> {
        let everyone: bool = partners::table
            .find(partner)
            .select(partners::mfa_required)
            .first(conn)?;
        let organizations = organizations::table
            .filter(organizations::partner_id.eq(partner))
            .filter(organizations::mfa_required.eq(true))
            .select(organizations::id)
            .load(conn)?;
        Ok((everyone, organizations))
    }

    /// Every partner account, oldest first.
    pub fn all(conn: &mut PgConnection) -> QueryResult<Vec<Partner>> {
        partners::table
            .order(partners::id)
            .select(Partner::as_select())
            .load(conn)
    }
}

/// An organization of a partner account: owns credentials and projects.
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = organizations)]
pub struct Organization {
    pub id: OrganizationId,
    pub partner_id: PartnerId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl Organization {
    /// The tables `list` reads.
    pub const LIST_READS: Tables = Tables::ORGANIZATIONS;

    /// The organizations `scope` reaches, by name.
    pub fn list(conn: &mut PgConnection, scope: &Scope) -> QueryResult<Vec<Organization>> {
        let query = organizations::table
            .select(Organization::as_select())
            .order(organizations::name)
            .into_boxed();
        match scope {
            Scope::Partner(partner) => query.filter(organizations::partner_id.eq(partner)),
            Scope::Organization(organization) => query.filter(organizations::id.eq(organization)),
        }
        .load(conn)
    }

    /// One organization inside `scope`; `NotFound` otherwise.
    pub fn find(
        conn: &mut PgConnection,
        scope: &Scope,
        id: OrganizationId,
    ) -> QueryResult<Organization> {
        Organization::list_by_ids(conn, scope, &[id])?
            .pop()
            .ok_or(diesel::result::Error::NotFound)
    }

    fn list_by_ids(
        conn: &mut PgConnection,
        scope: &Scope,
        ids: &[OrganizationId],
    ) -> QueryResult<Vec<Organization>> {
        let query = organizations::table
            .select(Organization::as_select())
            .filter(organizations::id.eq_any(ids))
            .into_boxed();
        match scope {
            Scope::Partner(partner) => query.filter(organizations::partner_id.eq(partner)),
            Scope::Organization(organization) => query.filter(organizations::id.eq(organization)),
        }
        .load(conn)
    }

    /// Finds an organization of `partner` by id or by name (for the command line).
    pub fn find_by_id_or_name(
        conn: &mut PgConnection,
        partner: PartnerId,
        id_or_name: &str,
    ) -> QueryResult<Option<Organization>> {
        let by_id = id_or_name.parse::<i64>().unwrap_or(-1);
        organizations::table
            .select(Organization::as_select())
            .filter(organizations::partner_id.eq(partner))
            .filter(
                organizations::id
                    .eq(by_id)
                    .or(organizations::name.eq(id_or_name)),
            )
            .first(conn)
            .optional()
    }

    /// Creates an organization in a partner account.
    pub fn create(
        conn: &mut PgConnection,
        partner: PartnerId,
        name: &str,
        created_by: Option<UserId>,
    ) -> QueryResult<Organization> {
        diesel::insert_into(organizations::table)
            .values((
                organizations::partner_id.eq(partner),
                organizations::name.eq(name),
                organizations::created_by.eq(created_by),
            ))
            .returning(Organization::as_returning())
            .get_result(conn)
    }
}

/// What an organization still holds: it is deleted only when all are zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Contents {
    pub people: i64,
    pub credentials: i64,
    pub projects: i64,
    pub channels: i64,
}

impl Contents {
    /// Whether nothing is left.
    pub fn is_empty(&self) -> bool {
        *self == Contents::default()
    }

    /// What is left, in words ("2 people, 1 project").
    pub fn words(&self) -> String {
        let plural = |n: i64, one: &str, many: &str| {
            (n > 0).then(|| format!("{n} {}", if n == 1 { one } else { many }))
        };
        [
            plural(self.people, "person", "people"),
            plural(self.credentials, "credential", "credentials"),
            plural(self.projects, "project", "projects"),
            plural(
                self.channels,
                "notification channel",
                "notification channels",
            ),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ")
    }
}

impl Organization {
    /// One organization inside `scope`, locked until the transaction ends; `NotFound`
    /// otherwise.
    pub fn find_for_update(
        conn: &mut PgConnection,
        scope: &Scope,
        id: OrganizationId,
    ) -> QueryResult<Organization> {
        let query = organizations::table
            .select(Organization::as_select())
            .filter(organizations::id.eq(id));
        match scope {
            Scope::Partner(partner) => query
                .filter(organizations::partner_id.eq(partner))
                .for_update()
                .first(conn),
            Scope::Organization(organization) => query
                .filter(organizations::id.eq(organization))
                .for_update()
                .first(conn),
        }
    }

    /// What the organization still holds.
    pub fn contents(conn: &mut PgConnection, id: OrganizationId) -> QueryResult<Contents> {
        Ok(Contents {
            people: users::table
                .filter(users::organization_id.eq(id))
                .count()
                .get_result(conn)?,
            credentials: credentials::table
                .filter(credentials::organization_id.eq(id))
                .count()
                .get_result(conn)?,
            projects: projects::table
                .filter(projects::organization_id.eq(id))
                .count()
                .get_result(conn)?,
            channels: notification_channels::table
                .filter(notification_channels::organization_id.eq(id))
                .count()
                .get_result(conn)?,
        })
    }

    /// Renames an organization.
    pub fn rename(conn: &mut PgConnection, id: OrganizationId, name: &str) -> QueryResult<()> {
        diesel::update(organizations::table.find(id))
            .set(organizations::name.eq(name))
            .execute(conn)?;
        Ok(())
    }

    /// Deletes an organization (the database refuses one that still holds people,
    /// credentials or projects).
    pub fn delete(conn: &mut PgConnection, id: OrganizationId) -> QueryResult<()> {
        diesel::delete(organizations::table.find(id)).execute(conn)?;
        Ok(())
    }
}

/// A person who can sign in.
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = users)]
pub struct User {
    pub id: UserId,
    pub partner_id: PartnerId,
    pub organization_id: Option<OrganizationId>,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

/// A row of the people list: the person and the name of their organization.
#[derive(Debug, Clone)]
pub struct UserListing {
    pub user: User,
    pub organization_name: Option<String>,
}

/// What it takes to create a person.
#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub partner_id: PartnerId,
    pub organization_id: Option<OrganizationId>,
    pub email: &'a str,
    pub display_name: &'a str,
    pub role: Role,
    pub password_hash: &'a str,
    pub created_by: Option<UserId>,
}

impl User {
    /// Whether anyone has an account yet (first run is over once someone does).
    pub fn any_exists(conn: &mut PgConnection) -> QueryResult<bool> {
        diesel::select(diesel::dsl::exists(users::table.select(users::id))).get_result(conn)
    }

    /// The person with this email, compared case-insensitively.
    pub fn find_by_email(conn: &mut PgConnection, email: &str) -> QueryResult<Option<User>> {
        users::table
            .select(User::as_select())
            .filter(lower(users::email).eq(email.to_lowercase()))
            .first(conn)
            .optional()
    }

    /// Whether an account already uses this email.
    pub fn email_taken(conn: &mut PgConnection, email: &str) -> QueryResult<bool> {
        Ok(User::find_by_email(conn, email)?.is_some())
    }

    /// One person inside `scope`; `NotFound` otherwise.
    pub fn find(conn: &mut PgConnection, scope: &Scope, id: UserId) -> QueryResult<User> {
        let query = users::table
            .select(User::as_select())
            .filter(users::id.eq(id))
            .into_boxed();
        match scope {
            Scope::Partner(partner) => query.filter(users::partner_id.eq(partner)),
            Scope::Organization(organization) => {
                query.filter(users::organization_id.eq(organization))
            }
        }
        .first(conn)
    }

    /// The people `scope` reaches, by email.
    pub fn list(conn: &mut PgConnection, scope: &Scope) -> QueryResult<Vec<UserListing>> {
        let query = users::table
            .left_join(
                organizations::table.on(users::organization_id.eq(organizations::id.nullable())),
            )
            .select((User::as_select(), organizations::name.nullable()))
            .order(users::email)
            .into_boxed();
        let rows: Vec<(User, Option<String>)> = match scope {
            Scope::Partner(partner) => query.filter(users::partner_id.eq(partner)),
            Scope::Organization(organization) => {
                query.filter(users::organization_id.eq(organization))
            }
        }
        .load(conn)?;
        Ok(rows
            .into_iter()
            .map(|(user, organization_name)| UserListing {
                user,
                organization_name,
            })
            .collect())
    }

    /// How many people `scope` reaches.
    pub fn count(conn: &mut PgConnection, scope: &Scope) -> QueryResult<i64> {
        let query = users::table.count().into_boxed();
        match scope {
            Scope::Partner(partner) => query.filter(users::partner_id.eq(partner)),
            Scope::Organization(organization) => {
                query.filter(users::organization_id.eq(organization))
            }
        }
        .get_result(conn)
    }

    /// Creates a person.
    pub fn create(conn: &mut PgConnection, new: &NewUser<'_>) -> QueryResult<User> {
        diesel::insert_into(users::table)
            .values(new)
            .returning(User::as_returning())
            .get_result(conn)
    }

    /// One person, whatever the scope (the person signing in, or signed in).
    pub fn find_any(conn: &mut PgConnection, id: UserId) -> QueryResult<User> {
        users::table.find(id).select(User::as_select()).first(conn)
    }

    /// Sets a person's password hash.
    pub fn set_password_hash(conn: &mut PgConnection, id: UserId, hash: &str) -> QueryResult<()> {
        diesel::update(users::table.find(id))
            .set(users::password_hash.eq(hash))
            .execute(conn)?;
        Ok(())
    }

    /// One person inside `scope`, locked until the transaction ends; `NotFound` otherwise.
    pub fn find_for_update(
        conn: &mut PgConnection,
        scope: &Scope,
        id: UserId,
    ) -> QueryResult<User> {
        let query = users::table
            .select(User::as_select())
            .filter(users::id.eq(id));
        match scope {
            Scope::Partner(partner) => query
                .filter(users::partner_id.eq(partner))
                .for_update()
                .first(conn),
            Scope::Organization(organization) => query
                .filter(users::organization_id.eq(organization))
                .for_update()
                .first(conn),
        }
    }

    /// The enabled Partners of a partner account, locked until the transaction ends (so two
    /// Partners demoting each other at once cannot leave the account without one).
    pub fn lock_partners(conn: &mut PgConnection, partner: PartnerId) -> QueryResult<Vec<UserId>> {
        users::table
            .filter(users::partner_id.eq(partner))
            .filter(users::role.eq(Role::Partner))
            .filter(users::disabled.eq(false))
            .order(users::id)
            .select(users::id)
            .for_update()
            .load(conn)
    }

    /// Sets a person's role and organization (none for a Partner).
    pub fn set_role(
        conn: &mut PgConnection,
        id: UserId,
        role: Role,
        organization: Option<OrganizationId>,
    ) -> QueryResult<()> {
        diesel::update(users::table.find(id))
            .set((
                users::role.eq(role),
                users::organization_id.eq(organization),
            ))
            .execute(conn)?;
        Ok(())
    }

    /// Deletes a person: their sessions, second factors and API tokens go with them; what they
    /// made stays and forgets them; audit rows keep their label.
    pub fn delete(conn: &mut PgConnection, id: UserId) -> QueryResult<()> {
        diesel::delete(users::table.find(id)).execute(conn)?;
        Ok(())
    }

    /// Disables or enables a person; a disabled person's sessions end at once.
    pub fn set_disabled(conn: &mut PgConnection, id: UserId, disabled: bool) -> QueryResult<()> {
        conn.transaction(|conn| {
            diesel::update(users::table.find(id))
                .set(users::disabled.eq(disabled))
                .execute(conn)?;
            if disabled {
                crate::session_store::revoke_all_for(conn, id)?;
            }
            Ok(())
        })
    }
}

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);
