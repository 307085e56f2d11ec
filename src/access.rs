//! Who may do what and reach where: a person's `Role` and the `Scope` of organizations every
//! query takes. Core: imports nothing of the app (how a scope reads in SQL is `db`'s).

use diesel::deserialize::FromSqlRow;
use diesel::expression::AsExpression;
use diesel::sql_types::Text;
use serde::{Deserialize, Serialize};

use crate::ids::{OrganizationId, PartnerId};

/// What a person may do: see SPEC §1.
#[derive(AsExpression, FromSqlRow, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[diesel(sql_type = Text)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Partner,
    Manager,
    User,
}

impl Role {
    /// Every role, in the order forms offer them.
    pub const ALL: [Role; 3] = [Role::Partner, Role::Manager, Role::User];

    /// The stored and submitted form: `partner`, `manager`, `user`.
    pub fn key(self) -> &'static str {
        match self {
            Role::Partner => "partner",
            Role::Manager => "manager",
            Role::User => "user",
        }
    }

    /// The word people read.
    pub fn label(self) -> &'static str {
        match self {
            Role::Partner => "Partner",
            Role::Manager => "Manager",
            Role::User => "User",
        }
    }

    /// Parses the stored or submitted form.
    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.key() == text)
    }
}

crate::stored_as_text!(Role, "role");

/// The organizations a person may reach: every one of a partner account, or exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    Partner(PartnerId),
    Organization(OrganizationId),
}
