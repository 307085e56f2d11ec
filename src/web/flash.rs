//! Flash messages: set before a redirect, shown once on the next page.

use actix_session::Session;
use serde::{Deserialize, Serialize};

const SESSION_KEY: &str = "flash";

/// One message for the next page.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Flash {
    /// `success`, `info` or `error`: the style, and the word screen readers hear first.
    pub kind: String,
    pub message: String,
}

/// Queues a success message.
pub fn success(session: &Session, message: impl Into<String>) {
    push(session, "success", message.into());
}

/// Queues an informational message.
pub fn info(session: &Session, message: impl Into<String>) {
    push(session, "info", message.into());
}

/// Queues an error message.
pub fn error(session: &Session, message: impl Into<String>) {
    push(session, "error", message.into());
}

fn push(session: &Session, kind: &str, message: String) {
    let mut flashes: Vec<Flash> = session.get(SESSION_KEY).ok().flatten().unwrap_or_default();
    flashes.push(Flash {
        kind: kind.to_string(),
        message,
    });
    let _ = session.insert(SESSION_KEY, flashes);
}

/// Takes the queued messages (they are shown once).
pub fn take(session: &Session) -> Vec<Flash> {
    if !session.contains_key(SESSION_KEY) {
        return Vec::new();
    }
    session
        .remove_as::<Vec<Flash>>(SESSION_KEY)
        .and_then(Result::ok)
        .unwrap_or_default()
}
