//! The credential use cases, called by the pages (and by any other entry point): create,
//! update, verify (a form's values or a stored credential) and the actions of the table. Each
//! owns its IO — queries, the check against the credential's API, sealing, the audit row, the
//! transaction — and says why it refused with a `CredentialError`. Callers have checked the
//! tab for the person already and pass who acts (`Actor`: scope, role, address).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::NaiveDate;
use diesel::prelude::*;

use crate::accounts::model::{Organization, UserId};
use crate::audit::NewEvent;
use crate::auth::{CurrentUser, Role, Scope};
use crate::backup::model::Backup;
use crate::credentials::error::{Attempt, CredentialError};
use crate::credentials::field::{Field, Input, Values, check_field};
use crate::credentials::model::{
    Credential, CredentialChanges, CredentialId, ListPage, ListQuery, Listed, NewCredential,
    StoreError, sort_expression,
};
use crate::credentials::provider::{Kind, Provider, check_name};
use crate::credentials::search_index::{AnsweredBy, Indexed};
use crate::credentials::verify::{self, Endpoints, Network, Outcome};
use crate::crypto::Keyring;
use crate::db::{self, DbPool};
use crate::db_errors::unique_violation;
use crate::outbound::Outbound;
use crate::page_cache::{PageCache, PageKey};
use crate::web::form::FieldErrors;

/// What the use cases reach: the database, the keys, the network, the page cache.
pub struct Context<'a> {
    pub pool: &'a DbPool,
    pub keyring: &'a Keyring,
    pub outbound: &'a Outbound,
    pub endpoints: &'a Endpoints,
    pub pages: &'a Arc<PageCache>,
}

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

/// A submitted add or edit form.
pub struct Submission {
    pub values: Values,
    pub name: String,
    pub expires_on: Option<NaiveDate>,
    pub expires_text: String,
    pub organization_id: String,
    pub version: Option<i32>,
}

impl Submission {
    pub fn parse(form: HashMap<String, String>) -> Submission {
        let get = |key: &str| {
            form.get(key)
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let expires_text = get("expires_on");
        Submission {
            name: get("name"),
            expires_on: NaiveDate::parse_from_str(&expires_text, "%Y-%m-%d").ok(),
            organization_id: get("organization_id"),
            version: get("version").parse().ok(),
            expires_text,
            values: Values::new(form.into_iter().collect::<BTreeMap<_, _>>()),
        }
    }
}

/// Checks every field; `editing` leaves blank secrets and fixed fields alone.
fn validate(
    kind: Kind,
    provider: &Provider,
    submission: &Submission,
    editing: bool,
) -> FieldErrors {
    let mut errors = FieldErrors::default();
    if !editing || provider.name_editable {
        errors.check("name", check_name(kind, &submission.name));
    }
    for field in provider.fields.iter().filter(|f| !editing || f.editable) {
        errors.check(field.key, check_field(field, &submission.values, editing));
    }
    if !submission.expires_text.is_empty() && submission.expires_on.is_none() {
        errors.add("expires_on", "Enter a date as YYYY-MM-DD.");
    }
    if !editing {
        (provider.rules)(&submission.values, &mut errors);
    }
    errors
}

/// Splits form values into stored public fields (with the provider's derived values and secret
/// hints) and secrets; only `fields` are taken.
fn split_values<'a>(
    provider: &Provider,
    values: &Values,
    fields: impl Iterator<Item = &'a Field>,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let (mut public, mut secrets) = (BTreeMap::new(), BTreeMap::new());
    for field in fields {
        let value = match field.input {
            Input::Checkbox => values.flag(field.key).to_string(),
            Input::List => values.list(field.key).join("\n"),
            _ => values.get(field.key).to_string(),
        };
        if field.secret {
            if value.is_empty() {
                continue;
            }
            if field.key.ends_with("_id") && value.chars().count() > 8 {
                let hint: String = value
                    .chars()
                    .rev()
                    .take(4)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                public.insert(format!("{}_hint", field.key), hint);
            }
            secrets.insert(field.key.to_string(), value);
        } else {
            public.insert(field.key.to_string(), value);
        }
    }
    for derived in provider.derived {
        if let Some(value) = (derived.value)(values) {
            public.insert(derived.key.to_string(), value);
        }
    }
    (public, secrets)
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

/// What a tab shows: one page, the organizations of its filter (when asked for), and what
/// answered a search.
pub struct Listing {
    pub page: ListPage,
    pub organizations: Vec<Organization>,
    pub answered_by: AnsweredBy,
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
            PageKey::CredentialsTab {
                scope,
                organization_filter,
                query: query.clone(),
            }
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

/// A created credential and what its check found (a warning is shown beside it).
pub struct Created {
    pub credential: Credential,
    pub outcome: Outcome,
}

/// Creates a credential of `provider` in the organization the submission names (a Manager's
/// own): validated, its name unique in the organization and kind, checked against its API,
/// its secrets sealed, audited.
pub async fn create(
    context: &Context<'_>,
    actor: &Actor<'_>,
    provider: &'static Provider,
    submission: &Submission,
) -> Result<Created, CredentialError> {
    let kind = provider.kind;
    let user = actor.user;
    let organizations = organizations(context, actor.scope()).await?;
    let organization = match user.identity.organization_id {
        Some(own) if user.role() != Role::Partner => {
            organizations.into_iter().find(|o| o.id == own)
        }
        _ => organizations
            .into_iter()
            .find(|o| o.id.to_string() == submission.organization_id),
    };

    let mut errors = validate(kind, provider, submission, false);
    if organization.is_none() {
        errors.add("organization_id", "Choose one of your organizations.");
    }
    if let Some(organization) = &organization
        && errors.get("name").is_none()
    {
        let (id, name) = (organization.id, submission.name.clone());
        if run(context.pool, move |conn| {
            Ok(Credential::name_taken(conn, id, kind, &name, None)?)
        })
        .await?
        {
            errors.add("name", format!("{} already exists", submission.name));
        }
    }
    let Some(organization) = organization.filter(|_| errors.is_empty()) else {
        return Err(CredentialError::Invalid(errors));
    };

    let outcome = context
        .verify(provider, &submission.values, submission.expires_on)
        .await;
    if !outcome.passed() {
        return Err(CredentialError::Unverified(outcome));
    }
    let (public, secrets) = split_values(provider, &submission.values, provider.fields.iter());
    let field_names: Vec<&str> = std::iter::once("name")
        .chain(provider.fields.iter().map(|f| f.key))
        .collect();
    let event = actor
        .event("credential.create")
        .in_organization(Some(organization.id))
        .fields(&field_names);
    let keyring = context.keyring.clone();
    let (actor_id, name, expires_on) = (user.id(), submission.name.clone(), submission.expires_on);
    let verification = outcome.clone();
    let credential = run(context.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            let credential = Credential::create(
                conn,
                &keyring,
                &NewCredential {
                    organization_id: organization.id,
                    organization_name: &organization.name,
                    provider,
                    name: &name,
                    public,
                    secrets,
                    expires_on,
                    verification,
                    created_by: actor_id,
                },
            )
            .map_err(|error| match error {
                StoreError::Query(error) if unique_violation(&error, "credentials_name_unique") => {
                    CredentialError::NameTaken { name: name.clone() }
                }
                other => other.into(),
            })?;
            event
                .object("credential", credential.id.0, &credential.name)
                .record(conn)?;
            Ok::<_, CredentialError>(credential)
        })
    })
    .await?;
    Ok(Created {
        credential,
        outcome,
    })
}

/// A stored credential that may be edited now (unlocked, its provider with editable fields).
pub struct Editing {
    pub listed: Listed,
    pub provider: &'static Provider,
}

impl Editing {
    /// A submitted edit form: a name that cannot change stays the stored one.
    pub fn submission(&self, form: HashMap<String, String>) -> Submission {
        let mut submission = Submission::parse(form);
        if !self.provider.name_editable {
            submission.name = self.listed.credential.name.clone();
        }
        submission
    }
}

/// The credential of `kind` by `id` inside `scope`, if it may be edited now.
pub async fn editing(
    context: &Context<'_>,
    scope: Scope,
    kind: Kind,
    id: CredentialId,
) -> Result<Editing, CredentialError> {
    let listed = find(context, scope, kind, id).await?;
    let credential = &listed.credential;
    let provider = credential.provider().ok_or(CredentialError::NotFound)?;
    if credential.is_locked {
        return Err(CredentialError::Locked {
            name: credential.name.clone(),
            attempt: Attempt::Edit,
        });
    }
    if !provider.editable() {
        return Err(CredentialError::NotEditable {
            provider: provider.label,
        });
    }
    Ok(Editing { listed, provider })
}

/// Saves an edit of the version the form showed, after checking the credential as it would be
/// against its API; every secret is sealed again under the active key. Answers what the check
/// found.
pub async fn update(
    context: &Context<'_>,
    actor: &Actor<'_>,
    editing: &Editing,
    submission: &Submission,
) -> Result<Outcome, CredentialError> {
    let Editing { listed, provider } = editing;
    let provider = *provider;
    let credential = &listed.credential;
    let (id, kind) = (credential.id, credential.kind);
    let version = submission.version.ok_or(CredentialError::NoVersion)?;
    let mut errors = validate(kind, provider, submission, true);
    if errors.get("name").is_none() && submission.name != credential.name {
        let (organization, name) = (credential.organization_id, submission.name.clone());
        if run(context.pool, move |conn| {
            Ok(Credential::name_taken(
                conn,
                organization,
                kind,
                &name,
                Some(id),
            )?)
        })
        .await?
        {
            errors.add("name", format!("{} already exists", submission.name));
        }
    }
    if !errors.is_empty() {
        return Err(CredentialError::Invalid(errors));
    }

    // The credential as it would be after the edit, for verification and the change list.
    let mut merged = credential
        .all_values(context.keyring)
        .map_err(CredentialError::Sealing)?;
    let stored_public = credential.public_values();
    let mut changed: Vec<&str> = Vec::new();
    if submission.name != credential.name {
        changed.push("name");
    }
    for field in provider.fields.iter().filter(|f| f.editable) {
        let value = submission.values.get(field.key).to_string();
        if field.secret && value.is_empty() {
            continue;
        }
        let before = if field.secret {
            merged.get(field.key).to_string()
        } else {
            stored_public.get(field.key).to_string()
        };
        let normalized = match field.input {
            Input::List => submission.values.list(field.key).join("\n"),
            Input::Checkbox => submission.values.flag(field.key).to_string(),
            _ => value.clone(),
        };
        if normalized != before {
            changed.push(field.key);
        }
        merged.set(field.key, normalized);
    }
    if submission.expires_on != credential.expires_on {
        changed.push("expires_on");
    }
    let outcome = context
        .verify(provider, &merged, submission.expires_on)
        .await;
    if !outcome.passed() {
        return Err(CredentialError::Unverified(outcome));
    }
    let (public, secrets) = split_values(provider, &merged, provider.fields.iter());
    let event = actor
        .event("credential.update")
        .in_organization(Some(credential.organization_id))
        .object("credential", credential.id.0, &submission.name)
        .fields(&changed);
    let keyring = context.keyring.clone();
    let scope = actor.scope();
    let (actor_id, name, expires_on, organization_name) = (
        actor.user.id(),
        submission.name.clone(),
        submission.expires_on,
        listed.organization_name.clone(),
    );
    let verification = Some(outcome.clone());
    run(context.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            let current = Credential::find_for_update(conn, &scope, kind, id)?;
            if current.is_locked {
                return Err(CredentialError::LockedMeanwhile { name: current.name });
            }
            if version != current.version {
                return Err(CredentialError::Stale { name: current.name });
            }
            current
                .update(
                    conn,
                    &keyring,
                    &organization_name,
                    &CredentialChanges {
                        name: &name,
                        public,
                        secrets,
                        expires_on,
                        verification,
                        updated_by: actor_id,
                        version,
                    },
                )?
                .ok_or_else(|| CredentialError::ChangedMeanwhile {
                    name: current.name.clone(),
                })?;
            event.record(conn)?;
            Ok(())
        })
    })
    .await?;
    Ok(outcome)
}

/// What a form's verification checks: the values of a new credential of a provider, or an
/// edit of a stored one (its blank secrets taken from the stored credential).
pub enum Checking {
    New(&'static Provider),
    Stored(CredentialId),
}

/// A form's values as checked, and what the check found.
pub struct Checked {
    pub provider: &'static Provider,
    /// The credential edited, when the form is an edit form.
    pub stored: Option<Listed>,
    /// The submission, with the stored values under what the form left blank.
    pub submission: Submission,
    pub errors: FieldErrors,
    pub outcome: Outcome,
}

/// Checks a form's values against the credential's API without saving anything.
pub async fn check(
    context: &Context<'_>,
    scope: Scope,
    kind: Kind,
    checking: Checking,
    mut submission: Submission,
) -> Result<Checked, CredentialError> {
    let (provider, stored) = match checking {
        Checking::Stored(id) => {
            let listed = find(context, scope, kind, id).await?;
            let provider = listed
                .credential
                .provider()
                .ok_or(CredentialError::NotFound)?;
            (provider, Some(listed))
        }
        Checking::New(provider) => (provider, None),
    };
    if let Some(listed) = &stored {
        let mut merged = listed
            .credential
            .all_values(context.keyring)
            .map_err(CredentialError::Sealing)?;
        for field in provider.fields.iter().filter(|f| f.editable) {
            let value = submission.values.get(field.key);
            if !(field.secret && value.is_empty()) {
                merged.set(field.key, value.to_string());
            }
        }
        submission.values = merged;
    }
    let errors = validate(kind, provider, &submission, stored.is_some());
    let outcome = if errors.is_empty() {
        context
            .verify(provider, &submission.values, submission.expires_on)
            .await
    } else {
        Outcome::Failed("Correct the highlighted fields first.".into())
    };
    Ok(Checked {
        provider,
        stored,
        submission,
        errors,
        outcome,
    })
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
type Change = fn(&mut PgConnection, Credential, UserId) -> Result<String, CredentialError>;

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
        Action::Lock => |conn, credential, by| set_locked(conn, credential, true, by),
        Action::Unlock => |conn, credential, by| set_locked(conn, credential, false, by),
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
    let by = actor.user.id();
    run(context.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            let credential = Credential::find_for_update(conn, &scope, kind, id)?;
            let message = change(conn, credential, by)?;
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
    by: UserId,
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
    credential.make_default(conn, by)?;
    Ok(format!("{name} is now the default."))
}

/// Deletes an unlocked credential that no project uses and no stored backup was written with.
fn delete(
    conn: &mut PgConnection,
    credential: Credential,
    _by: UserId,
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
    let backups = Backup::names_held_by(conn, credential.id)?;
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

/// One page of a tab, read again after an action changed it.
pub async fn page(
    context: &Context<'_>,
    scope: Scope,
    query: ListQuery,
) -> Result<ListPage, CredentialError> {
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
