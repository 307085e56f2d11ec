//! The audit log's page: the events a filter finds and the choices its filters offer.

use diesel::result::Error as DbError;

use super::filter::{self, Filter};
use super::{Event, EventPage};
use crate::access::Scope;
use crate::db::{self, DbPool, RunError};
use crate::ids::{OrganizationId, UserId};
use crate::web::form::Pagination;

/// What the person filter and the organization filter offer.
#[derive(Default)]
pub struct FilterChoices {
    pub people: Vec<(UserId, String)>,
    pub organizations: Vec<(OrganizationId, String)>,
}

/// A page of the log (none for a filter that did not check) and, for a whole page, the
/// filters' choices.
pub struct Listing {
    pub page: Option<EventPage>,
    pub choices: FilterChoices,
}

pub async fn list(
    pool: &DbPool,
    scope: Scope,
    filter: Option<Filter>,
    pagination: Pagination,
    with_choices: bool,
) -> Result<Listing, RunError<DbError>> {
    db::run(pool, move |conn| {
        let page = match &filter {
            Some(filter) => Some(Event::page(conn, &scope, filter, pagination)?),
            None => None,
        };
        let choices = if with_choices {
            FilterChoices {
                people: filter::people(conn, &scope)?,
                organizations: filter::organizations(conn, &scope)?,
            }
        } else {
            FilterChoices::default()
        };
        Ok(Listing { page, choices })
    })
    .await
}

/// A page of the log for `filter` (the API's list).
pub async fn page(
    pool: &DbPool,
    scope: Scope,
    filter: Filter,
    pagination: Pagination,
) -> Result<EventPage, RunError<DbError>> {
    db::run(pool, move |conn| {
        Event::page(conn, &scope, &filter, pagination)
    })
    .await
}
