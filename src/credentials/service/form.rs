//! The add and edit forms' use cases: create, update, and a form's check without saving.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;

use super::{Actor, Context, find, organizations, run};
use crate::auth::{Role, Scope};
use crate::credentials::error::{Attempt, CredentialError};
use crate::credentials::field::{Field, Input, Values, check_field};
use crate::credentials::model::{
    Credential, CredentialChanges, CredentialId, Listed, NewCredential, StoreError,
};
use crate::credentials::provider::{Kind, Provider, check_name};
use crate::credentials::verify::Outcome;
use crate::db_errors::unique_violation;
use crate::web::form::FieldErrors;

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
pub struct CheckedForm {
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
) -> Result<CheckedForm, CredentialError> {
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
    Ok(CheckedForm {
        provider,
        stored,
        submission,
        errors,
        outcome,
    })
}
