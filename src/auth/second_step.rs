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
use crate::audit::NewEvent;
use crate::auth::account::CodeForm;
use crate::auth::mfa::{self, MfaError, Passed, Pending};
use crate::auth::passkey;
use crate::auth::throttle::Attempt;
use crate::auth::{Identity, csrf};
use crate::db;
use crate::error::AppError;
use crate::startup::AppState;
use crate::web::form::safe_next;
use crate::web::{Page, client_ip, flash, html, html_with_status, see_other};

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

/// The origin where the waiting person may answer with a passkey, when they have one.
async fn passkeys_offered(state: &AppState, waiting: &Pending) -> Result<Option<String>, AppError> {
    if state.passkeys.is_none() {
        return Ok(None);
    }
    let user = waiting.user_id;
    let any = db::run(&state.pool, move |conn| passkey::any(conn, user)).await?;
    Ok(any.then(|| state.settings.public_url.origin().ascii_serialization()))
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
    html(&LoginMfaPage {
        page: Page::anonymous(&req, &session, "Two-step sign-in"),
        error: None,
        passkey_origin: passkeys_offered(&state, &waiting).await?,
    })
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
    let limits = state.settings.login;
    let user_id = waiting.user_id;
    let user = db::run(&state.pool, move |conn| User::find_any(conn, user_id)).await?;
    let attempt = Attempt::new(&ip, &user.email, &limits);
    let blocked = db::run(&state.pool, move |conn| attempt.count(conn, &limits)).await?;
    if let Some(seconds) = blocked {
        state.metrics.count_login("throttled");
        return Ok(Gate::Blocked(seconds));
    }
    if user.disabled {
        session.purge();
        return Ok(Gate::Restart);
    }
    Ok(Gate::Go(SecondStep { waiting, user, ip }))
}

impl SecondStep {
    /// The audit event of this sign-in, by its person.
    fn event(&self, action: &str) -> NewEvent {
        NewEvent {
            actor_id: Some(self.user.id),
            actor_label: self.user.email.clone(),
            partner_id: Some(self.user.partner_id),
            organization_id: self.user.organization_id,
            client_ip: Some(self.ip.clone()),
            ..NewEvent::system(action)
        }
        .object("user", self.user.id.0, &self.user.email)
    }

    /// Records a refused answer (`how`: `mfa` or `passkey`).
    pub(super) async fn failed(&self, state: &AppState, how: &str) -> Result<(), AppError> {
        let failed = self.event("session.sign_in_failed").fields(&[how]);
        db::run(&state.pool, move |conn| failed.record(conn)).await?;
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
        let attempt = Attempt::new(&self.ip, &self.user.email, &state.settings.login);
        let signed_in = self.event("session.sign_in").fields(&[how]);
        let recovery = self.event("mfa.recovery_code_used");
        db::run(&state.pool, move |conn| {
            attempt.succeeded(conn)?;
            signed_in.record(conn)?;
            if matches!(passed, Passed::RecoveryCode { .. }) {
                recovery.record(conn)?;
            }
            Ok::<_, diesel::result::Error>(())
        })
        .await?;
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
            let mut response = html_with_status(
                StatusCode::TOO_MANY_REQUESTS,
                &LoginMfaPage {
                    page: Page::anonymous(&req, &session, "Two-step sign-in"),
                    error: Some(format!(
                        "Too many failed sign-ins. Try again in {seconds} seconds."
                    )),
                    passkey_origin: None,
                },
            )?;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.into());
            return Ok(response);
        }
    };
    let (keyring, code, user_id) = (
        state.settings.keyring.clone(),
        form.code.expose().to_string(),
        step.user.id,
    );
    let checked = db::run(&state.pool, move |conn| {
        mfa::check(conn, &keyring, user_id, &code)
    })
    .await;
    match checked {
        Ok(passed) => {
            let next = step.passed(&state, &session, "mfa", passed).await?;
            Ok(see_other(&next))
        }
        Err(db::RunError::Failed(MfaError::WrongCode)) => {
            step.failed(&state, "mfa").await?;
            html_with_status(
                StatusCode::UNAUTHORIZED,
                &LoginMfaPage {
                    page: Page::anonymous(&req, &session, "Two-step sign-in"),
                    error: Some(MfaError::WrongCode.to_string()),
                    passkey_origin: passkeys_offered(&state, &step.waiting).await?,
                },
            )
        }
        Err(error) => Err(error.into()),
    }
}

/// Where the sign-in goes once the password is right: the code page when the person has a
/// second factor (the session holds only `Pending` until then), or the session itself, with
/// the setup required first when the partner account requires a factor the person lacks.
pub async fn after_password(
    state: &AppState,
    session: &Session,
    user: &User,
    next: String,
) -> Result<Option<HttpResponse>, AppError> {
    let (id, partner, organization) = (user.id, user.partner_id, user.organization_id);
    let (has_factor, required) = db::run(&state.pool, move |conn| {
        Ok::<_, diesel::result::Error>((
            mfa::enabled(conn, id)?,
            mfa::required(conn, partner, organization)?,
        ))
    })
    .await?;
    if has_factor {
        session.renew();
        session
            .insert(
                mfa::PENDING_KEY,
                Pending {
                    user_id: id,
                    next,
                    since: Utc::now().timestamp(),
                },
            )
            .map_err(|error| AppError::internal(anyhow::anyhow!("{error}")))?;
        return Ok(Some(see_other("/login/mfa")));
    }
    if required {
        session
            .insert(mfa::SETUP_KEY, true)
            .map_err(|error| AppError::internal(anyhow::anyhow!("{error}")))?;
    }
    Ok(None)
}
