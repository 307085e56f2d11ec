//! Flash messages: set before a redirect, shown once on the next page.

use actix_session::Session;
use serde::{Deserialize, Serialize};

const SESSION_KEY: &str = "flash";

/// One message for the next page.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Flash {
    pub kind: FlashKind,
    pub message: String,
}

/// What a message says: its style (`flash-{kind}`), kept in the session as its word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlashKind {
    Success,
    Info,
    Error,
}

impl FlashKind {
    pub fn key(self) -> &'static str {
        match self {
            FlashKind::Success => "success",
            FlashKind::Info => "info",
            FlashKind::Error => "error",
        }
    }

    /// Whether screen readers hear it at once (`role="alert"`) rather than politely.
    pub fn is_alert(self) -> bool {
        self == FlashKind::Error
    }
}

impl std::fmt::Display for FlashKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

impl Flash {
    pub fn success(message: impl Into<String>) -> Flash {
        Flash {
            kind: FlashKind::Success,
            message: message.into(),
        }
    }
}

/// Queues a success message.
pub fn success(session: &Session, message: impl Into<String>) {
    push(session, FlashKind::Success, message.into());
}

/// Queues an informational message.
pub fn info(session: &Session, message: impl Into<String>) {
    push(session, FlashKind::Info, message.into());
}

/// Queues an error message.
pub fn error(session: &Session, message: impl Into<String>) {
    push(session, FlashKind::Error, message.into());
}

fn push(session: &Session, kind: FlashKind, message: String) {
    let mut flashes: Vec<Flash> = session.get(SESSION_KEY).ok().flatten().unwrap_or_default();
    flashes.push(Flash { kind, message });
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
