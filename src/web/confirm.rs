//! The page that asks before something is deleted: what goes, a Delete button, and the way
//! back. Browsers without JavaScript get it from the Delete link; a refused delete shows it
//! again (409) with the reason beside the button.

use actix_session::Session;
use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use askama::Template;

use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::web::{Page, html_with_status};

#[derive(Template)]
#[template(path = "confirm_delete.html")]
struct ConfirmDeletePage<'a> {
    page: Page,
    question: &'a ConfirmDelete,
}

/// What the page asks about.
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
        &self,
        user: &CurrentUser,
        session: &Session,
        refused: bool,
    ) -> Result<HttpResponse, AppError> {
        let status = if refused {
            StatusCode::CONFLICT
        } else {
            StatusCode::OK
        };
        html_with_status(
            status,
            &ConfirmDeletePage {
                page: Page::new(
                    user,
                    session,
                    self.section,
                    &format!("Delete {}", self.name),
                ),
                question: self,
            },
        )
    }
}
