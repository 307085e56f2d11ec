//! The credential use cases, called by the pages (and by any other entry point): create,
//! update, verify (a form's values or a stored credential) and the actions of the table. Each
//! owns its IO — queries, the check against the credential's API, sealing, the audit row, the
//! transaction — and says why it refused with a `CredentialError`. Callers have checked the
//! tab for the person already and pass who acts (`Actor`: scope, role, address). The forms'
//! use cases are `form`, the row actions `actions`; the listing and re-verification are here.

mod actions;
mod form;

use std::sync::Arc;

use chrono::NaiveDate;
use diesel::prelude::*;

pub use actions::{Action, act, deletable};
pub use form::{
    CheckedForm, Checking, Created, Editing, Submission, check, create, editing, update,
};

use crate::access::Scope;
use crate::accounts::model::Organization;
use crate::audit::NewEvent;
use crate::auth::CurrentUser;
use crate::credentials::error::CredentialError;
use crate::credentials::field::Values;
use crate::credentials::model::{Credential, CredentialPage, ListQuery, Listed, sort_expression};
use crate::credentials::provider::{Kind, Provider};
use crate::credentials::search_index::{AnsweredBy, Indexed};
use crate::credentials::verify::{self, Endpoints, Network, Outcome};
use crate::crypto::Keyring;
use crate::db::{self, DbPool};
use crate::ids::CredentialId;
use crate::outbound::Outbound;
use crate::page_cache::{PageCache, PageKey};

/// What the use cases reach: the database, the keys, the network, the page cache.
pub struct Context<'a> {
    pub pool: &'a DbPool,
    pub keyring: &'a Keyring,
    pub outbound: &'a Outbound,
    pub endpoints: &'a Endpoints,
    pub pages: &'a Arc<PageCache>,
    /// Which backups hold a credential, so it is not deleted under them: the backup area's
    /// answer, given by the app (backup sits above credentials).
    pub backups_held: BackupsHeld,
}

/// Names of the backups whose object a credential wrote and still holds, or that run with it.
pub type BackupsHeld = fn(&mut PgConnection, CredentialId) -> diesel::QueryResult<Vec<String>>;

impl Context<'_> {
    /// Runs `provider`'s check on complete values with this context's client and endpoints.
    async fn verify(
        &self,
        provider: &Provider,
        values: &Values,
        expires_on: Option<NaiveDate>,
    ) -> Outcome {
        let network = Network {
            outbound: self.outbound,
            endpoints: self.endpoints,
        };
        verify::run(network, provider, values, expires_on).await
    }
}

/// Who acts, and from where (for the audit row).
pub struct Actor<'a> {
    pub user: &'a CurrentUser,
    pub ip: String,
}

impl Actor<'_> {
    fn scope(&self) -> Scope {
        self.user.scope()
    }

    fn event(&self, action: &str) -> NewEvent {
        NewEvent::by(self.user, action, &self.ip)
    }
}

/// Runs `work` on a pooled connection, keeping its refusal as it is (`db::run` would turn it
/// into an HTTP answer).
async fn run<T, F>(pool: &DbPool, work: F) -> Result<T, CredentialError>
where
    F: FnOnce(&mut PgConnection) -> Result<T, CredentialError> + Send + 'static,
    T: Send + 'static,
{
    db::run(pool, move |conn| match work(conn) {
        Err(CredentialError::Database(error)) => Err(error),
        outcome => Ok(outcome),
    })
    .await
    .map_err(|error| CredentialError::Database(error.into()))?
}

/// The organizations of `scope` (what add forms offer).
pub async fn organizations(
    context: &Context<'_>,
    scope: Scope,
) -> Result<Vec<Organization>, CredentialError> {
    run(context.pool, move |conn| {
        Ok(Organization::list(conn, &scope)?)
    })
    .await
}

/// One credential of `kind` inside `scope`, with the names shown beside it.
pub async fn find(
    context: &Context<'_>,
    scope: Scope,
    kind: Kind,
    id: CredentialId,
) -> Result<Listed, CredentialError> {
    run(context.pool, move |conn| {
        Ok(Credential::find_listed(conn, &scope, kind, id)?)
    })
    .await
}

/// When a credential was last used (a backup, restore, restore check or verification), and
/// by what, in words: "5 minutes ago: backup nightly-… of project shop".
pub async fn last_use(context: &Context<'_>, id: CredentialId) -> Result<String, CredentialError> {
    let used = run(context.pool, move |conn| {
        Ok(Credential::last_use(conn, id)?)
    })
    .await?;
    Ok(match used {
        Some((at, used_for)) => format!("{}: {used_for}", crate::web::words::ago(at)),
        None => "never".to_string(),
    })
}

/// What a tab shows: one page, the organizations of its filter (when asked for), and what
/// answered a search.
pub struct Listing {
    pub page: CredentialPage,
    pub organizations: Vec<Organization>,
    pub answered_by: AnsweredBy,
}

/// What an unsearched page of a tab is kept under in the page cache.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct TabKey {
    scope: Scope,
    organization_filter: bool,
    query: ListQuery,
}

/// One page of a tab. Unsearched pages are the same for everyone in a scope until a credential,
/// organization or project changes: kept in memory whole (a search's rows are kept one by one
/// instead, `ShownRows`: its page and total are found for each term). A search in name order is
/// found in memory (`search_index`).
pub async fn list(
    context: &Context<'_>,
    scope: Scope,
    query: ListQuery,
    organization_filter: bool,
) -> Result<Arc<Listing>, CredentialError> {
    let key =
        (query.search.is_none() && sort_expression(query.kind, &query.sort).is_some()).then(|| {
            PageKey::new(TabKey {
                scope,
                organization_filter,
                query: query.clone(),
            })
        });
    let indexed = query
        .search
        .as_deref()
        .and_then(|term| Indexed::find(context.pages, context.pool, &scope, &query, term));
    let pool = context.pool.clone();
    let load = async move {
        // A search answered from memory needs no connection, unless the page around it does.
        let indexed = match indexed.map(Indexed::answered) {
            Some(Ok((page, answered_by))) if !organization_filter => {
                return Ok(Listing {
                    page,
                    organizations: Vec::new(),
                    answered_by,
                });
            }
            Some(Ok(answer)) => Some(Indexed::Answered(answer)),
            Some(Err(indexed)) => Some(indexed),
            None => None,
        };
        run(&pool, move |conn| {
            let organizations = if organization_filter {
                Organization::list(conn, &scope)?
            } else {
                Vec::new()
            };
            let answer = match indexed {
                Some(indexed) => indexed.read(conn, &scope, &query)?,
                None => None,
            };
            let (page, answered_by) = match answer {
                Some(answer) => answer,
                None => (
                    Credential::list(conn, &scope, &query)?,
                    AnsweredBy::Database,
                ),
            };
            Ok(Listing {
                page,
                organizations,
                answered_by,
            })
        })
        .await
    };
    match key {
        Some(key) => {
            let read_from = Credential::LIST_READS | Organization::LIST_READS;
            context.pages.load(key, read_from, load, |_| true).await
        }
        None => Ok(Arc::new(load.await?)),
    }
}
/// One page of a tab, read again after an action changed it.
pub async fn page(
    context: &Context<'_>,
    scope: Scope,
    query: ListQuery,
) -> Result<CredentialPage, CredentialError> {
    run(context.pool, move |conn| {
        Ok(Credential::list(conn, &scope, &query)?)
    })
    .await
}

/// Re-verifies up to `limit` credentials whose last check is older than `every` (unlocked,
/// oldest first, never verified ones included), so a key revoked or expired at its provider
/// shows before a backup fails. Each is claimed by moving its check time to now in one
/// statement (`FOR UPDATE SKIP LOCKED`), so two instances never check the same one; a small
/// `limit` per pass spreads the checks over the day. Returns how many were checked.
pub async fn reverify_due(
    context: &Context<'_>,
    every: std::time::Duration,
    limit: i64,
) -> Result<usize, CredentialError> {
    let due = run(context.pool, move |conn| {
        Credential::claim_reverification(conn, every, limit).map_err(CredentialError::from)
    })
    .await?;
    let mut checked = 0;
    for credential in due {
        let Some(provider) = credential.provider() else {
            continue;
        };
        let outcome = match credential.all_values(context.keyring) {
            Ok(values) => {
                context
                    .verify(provider, &values, credential.expires_on)
                    .await
            }
            Err(_) => {
                Outcome::Failed("the secret cannot be opened with the configured keys".to_string())
            }
        };
        run(context.pool, move |conn| {
            credential
                .record_verification(conn, &outcome)
                .map_err(CredentialError::from)
        })
        .await?;
        checked += 1;
    }
    Ok(checked)
}
