//! The second step of signing in (SPEC §12, `/login/mfa`): after a right password the session
//! holds only the pending sign-in (`mfa::Pending`, five minutes); a TOTP code, a recovery code
//! (`login_mfa`) or a passkey (`passkey_pages::sign_in`) finishes it. Both count their attempts
//! against the sign-in limits through `second_step` and make the session through
//! `SecondStep::passed`.

use actix_session::Session;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::Utc;

use crate::accounts::model::User;
use crate::auth::account::CodeForm;
use crate::auth::mfa::{self, MfaError, Passed, Pending};
use crate::auth::passkey;
use crate::auth::routes::guard;
use crate::auth::service::{self, AuthError, Waiting};
use crate::auth::{Identity, csrf};
use crate::error::AppError;
use crate::ids::UserId;
use crate::startup::AppState;
use crate::web::form::safe_next;
use crate::web::{Page, client_ip, flash, html_with_status, see_other};

#[derive(Template)]
#[template(path = "auth/login_mfa.html")]
struct LoginMfaPage {
    page: Page,
    error: Option<String>,
    /// Where the person may answer with a passkey instead of the code (the origin passkeys
    /// are bound to), when they have one.
    passkey_origin: Option<String>,
}

/// The sign-in waiting for its code, if it has not waited too long.
pub(super) fn pending(session: &Session) -> Option<Pending> {
    session
        .get::<Pending>(mfa::PENDING_KEY)
        .ok()
        .flatten()
        .filter(|pending| Utc::now().timestamp() - pending.since <= mfa::PENDING_SECONDS)
}

/// The words of a sign-in refused for too many failures.
pub(super) fn too_many_failures(seconds: u64) -> String {
    format!("Too many failed sign-ins. Try again in {seconds} seconds.")
}

/// `response` (a refusal for too many failures) telling the client how long to wait.
pub(super) fn retry_after(mut response: HttpResponse, seconds: u64) -> HttpResponse {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, seconds.into());
    response
}

/// The origin where the waiting person may answer with a passkey, when they have one.
async fn passkeys_offered(state: &AppState, waiting: &Pending) -> Result<Option<String>, AppError> {
    if state.passkeys.is_none() {
        return Ok(None);
    }
    let any = service::has_passkey(&state.pool, waiting.user_id).await?;
    Ok(any.then(|| state.settings.public_url.origin().ascii_serialization()))
}

/// The code page, with `error` under its field and the passkey offered at `passkey_origin`.
fn code_page(
    req: &HttpRequest,
    session: &Session,
    status: StatusCode,
    error: Option<String>,
    passkey_origin: Option<String>,
) -> Result<HttpResponse, AppError> {
    html_with_status(
        status,
        &LoginMfaPage {
            page: Page::anonymous(req, session, "Two-step sign-in"),
            error,
            passkey_origin,
        },
    )
}

/// GET /login/mfa
pub async fn login_mfa_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
) -> Result<HttpResponse, AppError> {
    let Some(waiting) = pending(&session) else {
        session.remove(mfa::PENDING_KEY);
        return Ok(see_other("/login"));
    };
    let offered = passkeys_offered(&state, &waiting).await?;
    code_page(&req, &session, StatusCode::OK, None, offered)
}

/// A second step of signing in that may be tried: the sign-in waiting for it, its person,
/// and where it comes from. Made by `second_step`, which counted the attempt.
pub(super) struct SecondStep {
    pub waiting: Pending,
    pub user: User,
    ip: String,
}

/// What `second_step` found.
pub(super) enum Gate {
    /// The attempt may go on.
    Go(SecondStep),
    /// Nobody is waiting (or the wait was too long, or the person was disabled): sign in again.
    Restart,
    /// Too many failures: the seconds to wait.
    Blocked(u64),
}

/// Counts an attempt at the second step against the sign-in limits (wrong codes and refused
/// passkeys count like wrong passwords, per account and per client).
pub(super) async fn second_step(
    req: &HttpRequest,
    state: &AppState,
    session: &Session,
) -> Result<Gate, AppError> {
    let Some(waiting) = pending(session) else {
        session.remove(mfa::PENDING_KEY);
        return Ok(Gate::Restart);
    };
    let ip = client_ip(req, &state.settings.trusted_proxies);
    match service::second_step(guard(state), &ip, waiting.user_id).await? {
        Waiting::Blocked(seconds) => {
            state.metrics.count_login("throttled");
            Ok(Gate::Blocked(seconds))
        }
        Waiting::Disabled => {
            session.purge();
            Ok(Gate::Restart)
        }
        Waiting::Go(user) => Ok(Gate::Go(SecondStep { waiting, user, ip })),
    }
}

impl SecondStep {
    /// Records a refused answer (`how`: `mfa` or `passkey`).
    pub(super) async fn failed(&self, state: &AppState, how: &str) -> Result<(), AppError> {
        service::second_step_failed(&state.pool, &self.user, &self.ip, how).await?;
        state.metrics.count_login("failure");
        Ok(())
    }

    /// Finishes the sign-in after a right answer (`how`: `mfa` or `passkey`): the attempts
    /// forgiven, audited, a new session holding the identity. Answers where to go next.
    pub(super) async fn passed(
        self,
        state: &AppState,
        session: &Session,
        how: &str,
        passed: Passed,
    ) -> Result<String, AppError> {
        service::second_step_passed(guard(state), &self.user, &self.ip, how, passed).await?;
        session.renew();
        session.remove(mfa::PENDING_KEY);
        session.remove(passkey::AUTHENTICATION_KEY);
        Identity::of(&self.user).store(session)?;
        csrf::rotate(session);
        state.metrics.count_login("success");
        if let Passed::RecoveryCode { left } = passed {
            flash::error(
                session,
                format!(
                    "You signed in with a recovery code; {left} left. If you did not, \
                     change your password now. Set up two-step sign-in again to get new \
                     codes."
                ),
            );
        }
        Ok(safe_next(Some(&self.waiting.next)))
    }
}

/// POST /login/mfa: a current code (once) or a recovery code finishes the sign-in; wrong
/// codes count toward the same limits as wrong passwords.
pub async fn login_mfa(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    form: web::Form<CodeForm>,
) -> Result<HttpResponse, AppError> {
    let step = match second_step(&req, &state, &session).await? {
        Gate::Go(step) => step,
        Gate::Restart => return Ok(see_other("/login")),
        Gate::Blocked(seconds) => {
            let error = Some(too_many_failures(seconds));
            let status = StatusCode::TOO_MANY_REQUESTS;
            let response = code_page(&req, &session, status, error, None)?;
            return Ok(retry_after(response, seconds));
        }
    };
    let keyring = &state.settings.keyring;
    match service::check_code(&state.pool, keyring, step.user.id, &form.code).await {
        Ok(passed) => {
            let next = step.passed(&state, &session, "mfa", passed).await?;
            Ok(see_other(&next))
        }
        Err(AuthError::Mfa(MfaError::WrongCode)) => {
            step.failed(&state, "mfa").await?;
            let offered = passkeys_offered(&state, &step.waiting).await?;
            let error = Some(MfaError::WrongCode.to_string());
            code_page(&req, &session, StatusCode::UNAUTHORIZED, error, offered)
        }
        Err(error) => Err(error.into()),
    }
}

/// Leaves only the sign-in waiting for `user`'s second step in a renewed session (going on to
/// `next` once it passes).
pub fn wait_for_answer(session: &Session, user: UserId, next: String) -> Result<(), AppError> {
    session.renew();
    let waiting = Pending {
        user_id: user,
        next,
        since: Utc::now().timestamp(),
    };
    session
        .insert(mfa::PENDING_KEY, waiting)
        .map_err(|error| AppError::internal(anyhow::anyhow!("{error}")))
}
