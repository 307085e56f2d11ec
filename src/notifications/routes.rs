//! The Notifications pages (SPEC §9): the channels list with the new-channel form, a channel
//! with its edit form and delivery log, "Send test" and delete. Managers and Partners only;
//! another organization's channel is "not found".

use actix_session::Session;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use crate::access::Role;
use crate::accounts::model::Organization;
use crate::audit::NewEvent;
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::ids::ChannelId;
use crate::notifications::EventKind;
use crate::notifications::model::{Channel, ChannelKind, Delivery, SmtpTls};
use crate::notifications::send::Answer;
use crate::notifications::service::{self, ChannelError, ChannelList, ChannelPage, Submission};
use crate::projects::MANAGERS;
use crate::startup::AppState;
use crate::web::form::FieldErrors;
use crate::web::{Page, client_ip, flash, html_with_status, see_other};

/// Deliveries shown on a channel's page.
const LOG_LENGTH: i64 = 50;

#[derive(Template)]
#[template(path = "notifications/list.html")]
struct ListPage {
    page: Page,
    channels: Vec<(Channel, String)>,
    organizations: Vec<Organization>,
    partner: bool,
    form: Submission,
    errors: FieldErrors,
    kinds: [ChannelKind; 3],
    tls_modes: [SmtpTls; 3],
    events: &'static [EventKind],
}

#[derive(Template)]
#[template(path = "notifications/show.html")]
struct ShowPage {
    page: Page,
    channel: Channel,
    organization: String,
    deliveries: Vec<Delivery>,
    form: Submission,
    errors: FieldErrors,
    tls_modes: [SmtpTls; 3],
    events: &'static [EventKind],
}

fn event(state: &AppState, req: &HttpRequest, user: &CurrentUser) -> NewEvent {
    NewEvent::by(user, "", &client_ip(req, &state.settings.trusted_proxies))
}

async fn render_list(
    state: &AppState,
    session: &Session,
    user: &CurrentUser,
    form: Submission,
    errors: FieldErrors,
) -> Result<HttpResponse, AppError> {
    let ChannelList {
        channels,
        organizations,
    } = service::channel_list(&state.pool, user.scope()).await?;
    html_with_status(
        errors.status(),
        &ListPage {
            page: Page::new(user, session, "notifications", "Notifications"),
            channels,
            organizations,
            partner: user.identity.role == Role::Partner,
            form,
            errors,
            kinds: ChannelKind::ALL,
            tls_modes: SmtpTls::ALL,
            events: EventKind::subscribable(),
        },
    )
}

async fn render_show(
    state: &AppState,
    session: &Session,
    user: &CurrentUser,
    id: ChannelId,
    form: Option<Submission>,
    errors: FieldErrors,
) -> Result<HttpResponse, AppError> {
    let ChannelPage {
        channel,
        organization,
        deliveries,
    } = service::channel_page(&state.pool, user.scope(), id, LOG_LENGTH).await?;
    let form = form.unwrap_or_else(|| Submission::of(&channel));
    let title = format!("Notification channel {}", channel.name);
    html_with_status(
        errors.status(),
        &ShowPage {
            page: Page::new(user, session, "notifications", &title),
            channel,
            organization,
            deliveries,
            form,
            errors,
            tls_modes: SmtpTls::ALL,
            events: EventKind::subscribable(),
        },
    )
}

/// GET /notifications
pub async fn list(
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
) -> Result<HttpResponse, AppError> {
    user.require(&MANAGERS)?;
    let form = Submission {
        kind: "webhook".into(),
        events: ["backup.failed", "backup.missed", "drill.failed"]
            .map(String::from)
            .to_vec(),
        ..Submission::default()
    };
    render_list(&state, &session, &user, form, FieldErrors::default()).await
}

/// POST /notifications
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, AppError> {
    user.require(&MANAGERS)?;
    let submission = Submission::from_fields(form.into_inner());
    let by = event(&state, &req, &user);
    match service::create(&state.deliverer, user.scope(), user.id(), &submission, by).await {
        Ok(channel) => {
            flash::success(
                &session,
                format!(
                    "Channel {} created. Send a test to check that it arrives.",
                    channel.name
                ),
            );
            Ok(see_other(&format!("/notifications/{}", channel.id)))
        }
        Err(ChannelError::Form(errors)) => {
            render_list(
                &state,
                &session,
                &user,
                submission.without_secrets(),
                errors,
            )
            .await
        }
        Err(error) => Err(error.into()),
    }
}

/// GET /notifications/{id}
pub async fn show(
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    user.require(&MANAGERS)?;
    let id = ChannelId::from_path(&id)?;
    render_show(&state, &session, &user, id, None, FieldErrors::default()).await
}

/// POST /notifications/{id}
pub async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    id: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, AppError> {
    user.require(&MANAGERS)?;
    let id = ChannelId::from_path(&id)?;
    let submission = Submission::from_fields(form.into_inner());
    let by = event(&state, &req, &user);
    match service::update(
        &state.deliverer,
        user.scope(),
        user.id(),
        id,
        &submission,
        by,
    )
    .await
    {
        Ok(channel) => {
            flash::success(&session, format!("Channel {} saved.", channel.name));
            Ok(see_other(&format!("/notifications/{id}")))
        }
        Err(ChannelError::Form(errors)) => {
            let form = Some(submission.without_secrets());
            render_show(&state, &session, &user, id, form, errors).await
        }
        Err(error) => Err(error.into()),
    }
}

/// POST /notifications/{id}/{action}: `test` or `delete`.
pub async fn action(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    user.require(&MANAGERS)?;
    let (id, action) = path.into_inner();
    let id = ChannelId::from_path(&id)?;
    let by = event(&state, &req, &user);
    let outcome = match action.as_str() {
        "test" => service::test(&state.deliverer, user.scope(), id, by)
            .await
            .map(|(channel, answer)| {
                flash_test(&session, &channel, answer);
                format!("/notifications/{id}")
            }),
        "delete" => service::delete(&state.pool, user.scope(), id, by)
            .await
            .map(|channel| {
                flash::success(&session, format!("Channel {} deleted.", channel.name));
                "/notifications".to_string()
            }),
        _ => return Err(AppError::NotFound),
    };
    match outcome {
        Ok(next) => Ok(see_other(&next)),
        Err(ChannelError::Form(_)) => Err(AppError::Invalid("The request was refused.".into())),
        Err(error) => Err(error.into()),
    }
}

/// What a test's answer says in the flash.
fn flash_test(session: &Session, channel: &Channel, answer: Answer) {
    match (answer.error, answer.status) {
        (None, Some(status)) => flash::success(
            session,
            format!("Test sent to {}: answered HTTP {status}.", channel.name),
        ),
        (None, None) => flash::success(
            session,
            format!("Test sent to {}: the server took it.", channel.name),
        ),
        (Some(error), _) => flash::error(
            session,
            format!("The test did not reach {}: {error}", channel.name),
        ),
    }
}
