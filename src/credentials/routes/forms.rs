//! The add and edit forms of every kind (`GET …/new`, `POST /credentials/{kind}`, `GET …/edit`,
//! `POST …/{id}`) and their check without saving (`POST …/verify`).

use std::collections::HashMap;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{actor, authorize, context, detail_page, tab_and_id};
use crate::accounts::model::Organization;
use crate::auth::{CurrentUser, Role};
use crate::credentials::error::CredentialError;
use crate::credentials::field::{Field, Values};
use crate::credentials::model::{CredentialId, Listed};
use crate::credentials::paste;
use crate::credentials::provider::{self, Kind, Provider};
use crate::credentials::service::{self, CheckedForm, Checking, Created, Editing, Submission};
use crate::credentials::verify::Outcome;
use crate::error::AppError;
use crate::startup::AppState;
use crate::web::form::FieldErrors;
use crate::web::{Page, flash, html, html_with_status, is_htmx, see_other};

/// The add and edit form.
#[derive(Template)]
#[template(path = "credentials/form.html")]
struct FormPage {
    page: Page,
    kind: Kind,
    provider: &'static Provider,
    /// `None` when adding.
    editing: Option<EditTarget>,
    values: Values,
    name: String,
    expires_on: String,
    organization_id: String,
    organizations: Vec<Organization>,
    is_partner: bool,
    errors: FieldErrors,
    outcome: Option<Outcome>,
    /// Why saving was refused when no field is to blame (a stale edit).
    refusal: Option<String>,
}

struct EditTarget {
    id: CredentialId,
    version: i32,
    organization: String,
}

impl FormPage {
    /// The blank add form of `provider`; callers replace what a submission changed.
    fn add(
        user: &CurrentUser,
        session: &Session,
        kind: Kind,
        provider: &'static Provider,
        organizations: Vec<Organization>,
        organization_id: String,
    ) -> FormPage {
        FormPage {
            page: Page::new(
                user,
                session,
                "credentials",
                &format!("Add {}", kind.spec().noun),
            ),
            kind,
            provider,
            editing: None,
            values: Values::default(),
            name: String::new(),
            expires_on: String::new(),
            organization_id,
            organizations,
            is_partner: user.role() == Role::Partner,
            errors: FieldErrors::default(),
            outcome: None,
            refusal: None,
        }
    }

    /// The edit form of a stored credential as it is stored; callers replace what a
    /// submission changed.
    fn edit(
        user: &CurrentUser,
        session: &Session,
        provider: &'static Provider,
        listed: &Listed,
        version: i32,
    ) -> FormPage {
        let credential = &listed.credential;
        FormPage {
            page: Page::new(
                user,
                session,
                "credentials",
                &format!("Edit {}", credential.name),
            ),
            kind: credential.kind,
            provider,
            editing: Some(EditTarget {
                id: credential.id,
                version,
                organization: listed.organization_name.clone(),
            }),
            values: credential.public_values(),
            name: credential.name.clone(),
            expires_on: credential
                .expires_on
                .map(|d| d.to_string())
                .unwrap_or_default(),
            organization_id: credential.organization_id.to_string(),
            organizations: Vec::new(),
            is_partner: user.role() == Role::Partner,
            errors: FieldErrors::default(),
            outcome: None,
            refusal: None,
        }
    }

    /// The edit form after a refused submission: the stored public values, with the
    /// editable ones as typed.
    fn edit_again(
        user: &CurrentUser,
        session: &Session,
        editing: &Editing,
        submission: &Submission,
        version: i32,
    ) -> FormPage {
        let Editing { listed, provider } = editing;
        let mut values = listed.credential.public_values();
        for field in provider.public_fields().filter(|f| f.editable) {
            values.set(field.key, submission.values.get(field.key).to_string());
        }
        FormPage {
            values,
            ..FormPage::edit(user, session, provider, listed, version)
        }
    }

    /// The form again after a refused submission: what was typed, and why it was refused.
    fn again(
        self,
        submission: &Submission,
        errors: FieldErrors,
        outcome: Option<Outcome>,
    ) -> FormPage {
        FormPage {
            name: submission.name.clone(),
            expires_on: submission.expires_text.clone(),
            errors,
            outcome,
            ..self
        }
    }

    fn action(&self) -> String {
        match &self.editing {
            Some(target) => format!("/credentials/{}/{}", self.kind.key(), target.id),
            None => format!("/credentials/{}", self.kind.key()),
        }
    }

    /// Whether this field can be changed on this form.
    fn can_change(&self, field: &Field) -> bool {
        self.editing.is_none() || field.editable
    }

    /// A secret typed into an add form that came back (refused or checked): it is never sent
    /// back, so the person is asked for it again.
    fn asks_again(&self, field: &Field) -> bool {
        field.secret
            && self.editing.is_none()
            && (!self.errors.is_empty() || self.outcome.is_some() || self.refusal.is_some())
    }

    /// Whether the add form offers a box for a pasted block of credentials.
    fn takes_paste(&self) -> bool {
        self.editing.is_none() && self.provider.fields.iter().any(|f| !f.pasted_as.is_empty())
    }

    fn can_change_name(&self) -> bool {
        self.editing.is_none() || self.provider.name_editable
    }

    fn outcome_state(&self) -> &'static str {
        self.outcome
            .as_ref()
            .map_or("", |outcome| outcome.state().key())
    }
}

#[derive(Template)]
#[template(path = "credentials/providers.html")]
struct ProvidersPage {
    page: Page,
    kind: Kind,
    providers: Vec<&'static Provider>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NewQuery {
    provider: Option<String>,
}

/// The provider of a new credential, refusing Partner-only providers to Managers.
pub fn provider_for_new(
    kind: Kind,
    key: Option<&str>,
    user: &CurrentUser,
) -> Result<Option<&'static Provider>, AppError> {
    let Some(provider) = provider::find(kind, key) else {
        return Ok(None);
    };
    if provider.partner_only_add && user.role() != Role::Partner {
        return Err(AppError::Forbidden);
    }
    Ok(Some(provider))
}

/// GET /credentials/{kind}/new
pub async fn new(
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    kind: web::Path<String>,
    query: web::Query<NewQuery>,
) -> Result<HttpResponse, AppError> {
    let kind = authorize(&user, &kind)?;
    let Some(provider) = provider_for_new(kind, query.provider.as_deref(), &user)? else {
        let providers = kind
            .spec()
            .providers()
            .filter(|p| !p.partner_only_add || user.role() == Role::Partner)
            .collect();
        let title = format!("Add a {}", kind.spec().noun);
        return html(&ProvidersPage {
            page: Page::new(&user, &session, "credentials", &title),
            kind,
            providers,
        });
    };
    let organizations = service::organizations(&context(&state), user.scope()).await?;
    let mut values = Values::default();
    for field in provider.fields {
        values.set(field.key, field.default);
    }
    let first = organizations
        .first()
        .map(|o| o.id.to_string())
        .unwrap_or_default();
    html(&FormPage {
        values,
        ..FormPage::add(&user, &session, kind, provider, organizations, first)
    })
}

/// POST /credentials/{kind}
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    kind: web::Path<String>,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, AppError> {
    let kind = authorize(&user, &kind)?;
    let form = form.into_inner();
    let provider = provider_for_new(kind, form.get("provider").map(String::as_str), &user)?
        .ok_or(CredentialError::NoProvider)?;
    let mut submission = Submission::parse(form);
    paste::fill_blanks(provider.fields, &mut submission.values);
    let context = context(&state);
    let actor = actor(&req, &state, &user);
    let (errors, outcome) = match service::create(&context, &actor, provider, &submission).await {
        Ok(Created {
            credential,
            outcome,
        }) => {
            let saved = saved(&session, kind, &credential.name, &outcome);
            if let Outcome::Warning(message) = &outcome {
                flash::info(&session, format!("Warning: {message}"));
            }
            return Ok(saved);
        }
        Err(error) => shown_on_form(error)?,
    };
    let organizations = service::organizations(&context, user.scope()).await?;
    let chosen = submission.organization_id.clone();
    let form = FormPage::add(&user, &session, kind, provider, organizations, chosen);
    html_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &FormPage {
            values: submission.values.clone(),
            ..form.again(&submission, errors, outcome)
        },
    )
}

/// A form saved: its words for the next page, and the way back to its tab.
fn saved(session: &Session, kind: Kind, name: &str, outcome: &Outcome) -> HttpResponse {
    let saved = capitalize(outcome.message());
    flash::success(session, format!("{name} saved. {saved}."));
    see_other(&format!("/credentials/{}", kind.key()))
}

/// A refusal a form shows next to its fields or in its verification box (422); any other
/// refusal answers as itself.
fn shown_on_form(error: CredentialError) -> Result<(FieldErrors, Option<Outcome>), AppError> {
    match error {
        CredentialError::Invalid(errors) => Ok((errors, None)),
        CredentialError::NameTaken { name } => Ok((
            FieldErrors::one("name", format!("{name} already exists")),
            None,
        )),
        CredentialError::Unverified(outcome) => Ok((FieldErrors::default(), Some(outcome))),
        other => Err(other.into()),
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[derive(Template)]
#[template(path = "credentials/_verify.html")]
struct VerifyFragment {
    outcome: Outcome,
    /// Messages of wrong fields, swapped in beside them.
    errors: FieldErrors,
}

impl VerifyFragment {
    fn state(&self) -> &'static str {
        self.outcome.state().key()
    }
}

/// POST /credentials/{kind}/verify: checks the form's values without saving. On an edit form
/// (`credential_id`), blank secrets are taken from the stored credential.
pub async fn verify_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    kind: web::Path<String>,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, AppError> {
    let kind = authorize(&user, &kind)?;
    let form = form.into_inner();
    let checking = match form.get("credential_id").and_then(|id| id.parse().ok()) {
        Some(id) => Checking::Stored(CredentialId(id)),
        None => Checking::New(
            provider_for_new(kind, form.get("provider").map(String::as_str), &user)?
                .ok_or(CredentialError::NoProvider)?,
        ),
    };
    let context = context(&state);
    let mut submission = Submission::parse(form);
    if let Checking::New(provider) = &checking {
        paste::fill_blanks(provider.fields, &mut submission.values);
    }
    let checked = service::check(&context, user.scope(), kind, checking, submission).await?;
    if is_htmx(&req) {
        return html(&VerifyFragment {
            outcome: checked.outcome,
            errors: checked.errors,
        });
    }
    checked_form(&context, &user, &session, kind, checked).await
}

/// The form again, with what its check found (browsers without JavaScript); secrets are
/// never shown again.
async fn checked_form(
    context: &service::Context<'_>,
    user: &CurrentUser,
    session: &Session,
    kind: Kind,
    checked: CheckedForm,
) -> Result<HttpResponse, AppError> {
    let CheckedForm {
        provider,
        stored,
        submission,
        errors,
        outcome,
    } = checked;
    let mut values = submission.values.clone();
    for field in provider.secret_fields() {
        values.remove(field.key);
    }
    let form = match &stored {
        Some(listed) => {
            let version = submission.version.unwrap_or(listed.credential.version);
            FormPage::edit(user, session, provider, listed, version)
        }
        None => {
            let organizations = service::organizations(context, user.scope()).await?;
            let chosen = submission.organization_id.clone();
            FormPage::add(user, session, kind, provider, organizations, chosen)
        }
    };
    html(&FormPage {
        values,
        name: submission.name.clone(),
        expires_on: submission.expires_text.clone(),
        errors,
        outcome: Some(outcome),
        ..form
    })
}

/// GET /credentials/{kind}/{id}/edit
pub async fn edit(
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (kind, id) = tab_and_id(&user, &path.0, &path.1)?;
    let context = context(&state);
    match service::editing(&context, user.scope(), kind, id).await {
        Ok(Editing { listed, provider }) => {
            let version = listed.credential.version;
            html(&FormPage::edit(&user, &session, provider, &listed, version))
        }
        // Locked, or of a provider that cannot be edited: its page says so (409), with the
        // way out.
        Err(refused @ (CredentialError::Locked { .. } | CredentialError::NotEditable { .. })) => {
            let listed = service::find(&context, user.scope(), kind, id).await?;
            detail_page(
                &user,
                &session,
                kind,
                &listed,
                Some(refused.to_string()),
                None,
            )
        }
        Err(error) => Err(error.into()),
    }
}

/// POST /credentials/{kind}/{id}: saves an edit after verifying the result.
pub async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    path: web::Path<(String, String)>,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, AppError> {
    let (kind, id) = tab_and_id(&user, &path.0, &path.1)?;
    let context = context(&state);
    let editing = service::editing(&context, user.scope(), kind, id).await?;
    let submission = editing.submission(form.into_inner());
    let actor = actor(&req, &state, &user);
    let (mut status, mut version) = (StatusCode::UNPROCESSABLE_ENTITY, submission.version);
    let (errors, outcome, refusal) = match service::update(&context, &actor, &editing, &submission)
        .await
    {
        Ok(outcome) => return Ok(saved(&session, kind, &submission.name, &outcome)),
        // Someone else saved it since the form was opened: the form again (409) with what
        // this person typed, the reason, and the stored version, so saving again is a
        // choice made knowingly.
        Err(
            refused @ (CredentialError::Stale { .. } | CredentialError::ChangedMeanwhile { .. }),
        ) => {
            status = StatusCode::CONFLICT;
            let stored = service::find(&context, user.scope(), kind, id).await?;
            version = Some(stored.credential.version);
            (FieldErrors::default(), None, Some(refused.to_string()))
        }
        Err(error) => {
            let (errors, outcome) = shown_on_form(error)?;
            (errors, outcome, None)
        }
    };
    let version = version.unwrap_or(editing.listed.credential.version);
    let form = FormPage::edit_again(&user, &session, &editing, &submission, version);
    html_with_status(
        status,
        &FormPage {
            refusal,
            ..form.again(&submission, errors, outcome)
        },
    )
}
