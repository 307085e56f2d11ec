//! The page that asks before something that cannot be undone: what happens, the choices made,
//! a button that does it, and the way back. Browsers without JavaScript get it from a Delete
//! link, or from a restore form sent from keyhold's own page; with htmx the same question is
//! swapped in place of the form that asked. A refused delete shows it again (409) with the
//! reason beside the button.

use actix_session::Session;
use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use askama::Template;

use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::web::{Page, html_with_status};

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage<'a> {
    page: Page,
    question: &'a Confirm,
    csrf: String,
}

#[derive(Template)]
#[template(path = "_confirm.html")]
struct ConfirmFragment<'a> {
    question: &'a Confirm,
    csrf: String,
}

/// A secret the question asks for again: it was typed on the form before, and secrets are
/// never sent back into a page.
pub struct AskAgain {
    pub name: &'static str,
    pub label: String,
    pub help: String,
}

/// What the page asks about.
pub struct Confirm {
    /// The navigation section it belongs to (`projects`, `users`, …).
    pub section: &'static str,
    /// The question, as the heading.
    pub title: String,
    /// What doing it does, in a sentence.
    pub consequence: String,
    /// The choices made on the form before, shown as (label, value).
    pub choices: Vec<(String, String)>,
    /// Where the button posts, and the fields it posts again (never secrets).
    pub action: String,
    pub fields: Vec<(String, String)>,
    pub ask_again: Vec<AskAgain>,
    /// The button's words.
    pub button: String,
    /// The ids of the form and of its refusal.
    pub form_id: String,
    pub error_id: String,
    /// The page it came from, its name, and the words of the way back.
    pub back: String,
    pub back_label: String,
    pub cancel: String,
    /// Why it was (or would be) refused.
    pub refusal: Option<String>,
    /// With htmx: the element the button's answer replaces.
    pub htmx_target: Option<String>,
}

impl Confirm {
    /// The page: 200, or 409 when `refused` (it was asked and refused).
    pub fn render(
        &self,
        user: &CurrentUser,
        session: &Session,
        refused: bool,
    ) -> Result<HttpResponse, AppError> {
        html_with_status(
            status(refused),
            &ConfirmPage {
                page: Page::new(user, session, self.section, &self.title),
                question: self,
                csrf: crate::auth::csrf::token(session),
            },
        )
    }

    /// The question alone, for htmx to swap in place of the form that asked.
    pub fn fragment(&self, session: &Session) -> Result<HttpResponse, AppError> {
        html_with_status(
            StatusCode::OK,
            &ConfirmFragment {
                question: self,
                csrf: crate::auth::csrf::token(session),
            },
        )
    }
}

fn status(refused: bool) -> StatusCode {
    if refused {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    }
}

/// The question before a delete.
pub struct ConfirmDelete {
    /// The navigation section it belongs to (`projects`, `users`, …).
    pub section: &'static str,
    /// The name of what would be deleted.
    pub name: String,
    /// What deleting it does, in a sentence.
    pub consequence: String,
    /// Where the Delete button posts.
    pub action: String,
    /// The page it came from, and its name.
    pub back: String,
    pub back_label: String,
    /// Why the delete was (or would be) refused.
    pub refusal: Option<String>,
}

impl ConfirmDelete {
    /// The page: 200, or 409 when `refused` (a delete was asked and refused).
    pub fn render(
        self,
        user: &CurrentUser,
        session: &Session,
        refused: bool,
    ) -> Result<HttpResponse, AppError> {
        Confirm::from(self).render(user, session, refused)
    }
}

impl From<ConfirmDelete> for Confirm {
    fn from(question: ConfirmDelete) -> Confirm {
        Confirm {
            section: question.section,
            title: format!("Delete {}?", question.name),
            consequence: question.consequence,
            choices: Vec::new(),
            action: question.action,
            fields: Vec::new(),
            ask_again: Vec::new(),
            button: format!("Delete {}", question.name),
            form_id: "delete-form".into(),
            error_id: "delete-error".into(),
            back: question.back,
            back_label: question.back_label,
            cancel: "Keep it".into(),
            refusal: question.refusal,
            htmx_target: None,
        }
    }
}
