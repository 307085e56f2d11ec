//! The audit log's exports: the events a filter finds, as CSV or NDJSON, streamed a chunk at a
//! time (keyset pages of `CHUNK` events, so memory stays the same for any size of log). An
//! export is itself recorded (`audit.export`, with the filter) before its first byte.

use std::sync::Arc;

use actix_web::web::Bytes;
use diesel::prelude::*;
use futures_util::stream::{self, Stream, StreamExt};

use super::{Event, EventView, Filter, NewEvent, OrganizationNames};
use crate::access::Scope;
use crate::db::{self, DbPool, RunError};
use crate::error::AppError;
use crate::schema::audit_events;

/// Events read and written at a time.
const CHUNK: i64 = 500;

/// The CSV export's columns, in order.
pub const CSV_COLUMNS: [&str; 10] = [
    "id",
    "at",
    "actor",
    "organization",
    "action",
    "action_label",
    "object_kind",
    "object",
    "fields",
    "client_ip",
];

/// How an export is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
        }
    }

    /// What comes before the first event: the CSV header.
    fn head(self) -> Option<String> {
        match self {
            Format::Csv => Some(CSV_COLUMNS.join(",") + "\r\n"),
            Format::Ndjson => None,
        }
    }

    /// Appends one event to `out`.
    fn write(self, event: Event, out: &mut String) {
        let view = EventView::from(event);
        match self {
            Format::Csv => {
                let cells = [
                    view.id.to_string(),
                    view.at.to_rfc3339(),
                    view.actor,
                    view.organization.unwrap_or_default(),
                    view.action,
                    view.action_label,
                    view.object_kind,
                    view.object,
                    view.fields.join(", "),
                    view.client_ip.unwrap_or_default(),
                ];
                for (i, cell) in cells.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&csv_cell(cell));
                }
                out.push_str("\r\n");
            }
            Format::Ndjson => {
                // An `EventView` is strings, numbers and a date: it always serializes.
                if let Ok(line) = serde_json::to_string(&view) {
                    out.push_str(&line);
                    out.push('\n');
                }
            }
        }
    }
}

/// One CSV cell, always quoted (a spreadsheet whose list separator is `;` or a tab must not
/// split a value into cells of its own); a value a spreadsheet would run as a formula
/// (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`.
pub fn csv_cell(text: &str) -> String {
    let guarded = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    format!("\"{}\"", guarded.replace('"', "\"\""))
}

/// An export under way: what it reads and the id it has reached.
pub struct Export {
    pool: DbPool,
    format: Format,
    scope: Scope,
    filter: Filter,
    names: Arc<OrganizationNames>,
    /// The next chunk holds events with ids below this.
    below: i64,
}

/// Records the export (`event`) and fixes what it holds: the events up to the newest one now,
/// so those recorded while it streams (its own row included) are left out.
pub async fn start(
    pool: &DbPool,
    scope: Scope,
    filter: Filter,
    format: Format,
    event: NewEvent,
) -> Result<Export, RunError<diesel::result::Error>> {
    let (newest, names) = db::run(pool, move |conn| {
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            let newest: Option<i64> = audit_events::table
                .select(diesel::dsl::max(audit_events::id))
                .first(conn)?;
            event.record(conn)?;
            Ok((newest, OrganizationNames::of(conn, &scope)?))
        })
    })
    .await?;
    Ok(Export {
        pool: pool.clone(),
        format,
        scope,
        filter,
        names: Arc::new(names),
        below: newest.unwrap_or(0) + 1,
    })
}

impl Export {
    /// The file, a chunk of events at a time; a database failure midway ends the answer
    /// early (the client sees a cut download, never a shorter file that looks whole).
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, AppError>> + 'static {
        let head = self.format.head().map(|head| Ok(Bytes::from(head)));
        let chunks = stream::unfold(Some(self), |state| async move {
            let mut export = state?;
            let (scope, filter, names, below) = (
                export.scope,
                export.filter.clone(),
                export.names.clone(),
                export.below,
            );
            let read = db::run(&export.pool, move |conn| {
                Event::before(conn, &scope, &filter, &names, below, CHUNK)
            })
            .await;
            let events = match read {
                Ok(events) => events,
                Err(error) => {
                    tracing::error!(%error, "audit export stopped");
                    return Some((Err(AppError::Unavailable), None));
                }
            };
            // An empty chunk would end a chunked answer: the last one is never sent empty.
            let oldest = events.last()?.id;
            let more = events.len() as i64 == CHUNK;
            let mut text = String::with_capacity(events.len() * 256);
            for event in events {
                export.format.write(event, &mut text);
            }
            export.below = oldest;
            Some((Ok(Bytes::from(text)), more.then_some(export)))
        });
        stream::iter(head).chain(chunks)
    }
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn cells_a_spreadsheet_would_run_are_defused_and_quoted_when_needed() {
        assert_eq!(csv_cell("plain"), "\"plain\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("+1"), "\"'+1\"");
        assert_eq!(csv_cell("-2"), "\"'-2\"");
        assert_eq!(csv_cell("@SUM(A1)"), "\"'@SUM(A1)\"");
        assert_eq!(csv_cell("\tx"), "\"'\tx\"");
        assert_eq!(csv_cell("\rx"), "\"'\rx\"");
        assert_eq!(csv_cell("a, b"), "\"a, b\"");
        assert_eq!(csv_cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_cell("x;=cmd|' /C calc'!A0"), "\"x;=cmd|' /C calc'!A0\"");
        assert_eq!(csv_cell(""), "\"\"");
    }
}
