//! The API tokens page: `GET /tokens` (list and form), `POST /tokens` (create: the token is
//! shown on the answer page, once) and `POST /tokens/{id}/revoke`.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use crate::access::Role;
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::ids::TokenId;
use crate::startup::AppState;
use crate::tokens::ApiScope;
use crate::tokens::model::TokenListing;
use crate::tokens::service::{self, Issued, TokenError, TokenForm};
use crate::web::form::FieldErrors;
use crate::web::{Page, client_ip, flash, html_with_status, see_other};

#[derive(Template)]
#[template(path = "tokens/list.html")]
struct TokensPage {
    page: Page,
    tokens: Vec<TokenListing>,
    /// The token just created, shown this once.
    created: Option<String>,
    form: TokenForm,
    errors: FieldErrors,
    scopes: Vec<ApiScope>,
    is_partner: bool,
}

impl TokensPage {
    fn today(&self) -> String {
        chrono::Utc::now().date_naive().to_string()
    }
}

async fn render(
    state: &AppState,
    session: &Session,
    user: &CurrentUser,
    (form, errors, created): (TokenForm, FieldErrors, Option<String>),
) -> Result<HttpResponse, AppError> {
    let tokens = service::list(&state.pool, user).await?;
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let scopes = ApiScope::ALL
        .into_iter()
        .filter(|scope| user.role() != Role::User || scope.reads_only())
        .collect();
    html_with_status(
        status,
        &TokensPage {
            page: Page::new(user, session, "tokens", "API tokens"),
            tokens,
            created,
            form,
            errors,
            scopes,
            is_partner: user.role() == Role::Partner,
        },
    )
}

/// GET /tokens
pub async fn list(
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
) -> Result<HttpResponse, AppError> {
    render(&state, &session, &user, Default::default()).await
}

/// POST /tokens: the answer page shows the new token once.
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, AppError> {
    let form = TokenForm::parse(form.into_inner());
    let ip = client_ip(&req, &state.settings.trusted_proxies);
    match service::create(&state.pool, &user, &ip, &form).await {
        Ok(Issued { token, secret }) => {
            flash::success(&session, format!("Token {} created.", token.name));
            let created = Some(secret.expose().to_string());
            render(
                &state,
                &session,
                &user,
                (TokenForm::default(), FieldErrors::default(), created),
            )
            .await
        }
        Err(TokenError::Invalid(errors)) => {
            render(&state, &session, &user, (form, errors, None)).await
        }
        Err(other) => Err(other.into()),
    }
}

/// POST /tokens/{id}/revoke
pub async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = TokenId::from_path(&id)?;
    let ip = client_ip(&req, &state.settings.trusted_proxies);
    let token = service::revoke(&state.pool, &user, &ip, id).await?;
    state.token_uses.forget();
    flash::success(&session, format!("Token {} revoked.", token.name));
    Ok(see_other("/tokens"))
}
