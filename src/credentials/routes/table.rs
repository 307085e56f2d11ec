//! A tab's table: the list's query string, the column headings with their sort links, each row
//! and its cells (borrowing from the listed row), and an opened row's details.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::access::Role;
use crate::auth::CurrentUser;
use crate::credentials::model::{CredentialPage, ListQuery, Listed, Total};
use crate::credentials::provider::{self, Column, Kind, Provider, Value};
use crate::credentials::service::Action;
use crate::credentials::verify::VerifyState;
use crate::ids::{CredentialId, OrganizationId};
use crate::web::form::Pagination;
use crate::web::words::{ago, utc_minute, utc_second};

const PER_PAGE: i64 = 50;

/// The list's query string: search, filters, sort, page.
#[derive(Deserialize, Serialize, Default, Clone, Debug)]
pub struct ListParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) q: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) org: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) sort: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) page: Option<String>,
}

impl ListParams {
    pub fn parse(query: &str) -> ListParams {
        serde_urlencoded::from_str(query).unwrap_or_default()
    }

    pub fn to_query(&self) -> String {
        serde_urlencoded::to_string(self).unwrap_or_default()
    }

    fn text(value: &Option<String>) -> Option<&str> {
        value.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }

    pub(super) fn provider(&self, kind: Kind) -> Option<&'static Provider> {
        let key = ListParams::text(&self.provider)?;
        kind.spec()
            .by_provider
            .then(|| provider::find(kind, Some(key)))
            .flatten()
    }

    pub fn query(&self, kind: Kind, user: &CurrentUser) -> ListQuery {
        let organization = ListParams::text(&self.org)
            .filter(|_| user.role() == Role::Partner)
            .and_then(|org| org.parse().ok())
            .map(OrganizationId);
        let page = ListParams::text(&self.page).and_then(|page| page.parse::<i64>().ok());
        ListQuery {
            kind,
            organization,
            provider: self.provider(kind).map(|p| p.key),
            search: ListParams::text(&self.q)
                .map(|q| {
                    q.chars()
                        .filter(|c| !c.is_control())
                        .take(100)
                        .collect::<String>()
                })
                .filter(|q| !q.is_empty()),
            sort: ListParams::text(&self.sort).unwrap_or("name").to_string(),
            descending: ListParams::text(&self.dir) == Some("desc"),
            pagination: Pagination::new(page, PER_PAGE),
        }
    }

    /// This query with one parameter changed (for sort and page links).
    pub fn with(&self, key: &str, value: &str) -> String {
        let mut next = self.clone();
        let value = Some(value.to_string());
        match key {
            "sort" => next.sort = value,
            "dir" => next.dir = value,
            "page" => next.page = value,
            _ => {}
        }
        next.to_query()
    }
}

/// A column heading with its sort link.
pub struct ColumnView {
    pub label: &'static str,
    pub sort_url: Option<String>,
    /// `ascending`/`descending` when the table is sorted by this column.
    pub sorted: &'static str,
}

/// One cell: what it shows and how.
pub struct Cell<'a> {
    pub kind: CellKind,
    pub text: Cow<'a, str>,
    /// Its column's heading, which a phone shows beside the value (the table's head is hidden).
    pub label: &'static str,
}

/// How a cell is shown: its text, or the name that opens the row's details, or one of the
/// row's states (default, lock, verification, expiry) drawn from the row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellKind {
    Text,
    Name,
    Default,
    Lock,
    Verified,
    Expires,
}

/// What a row's verification badge says: its last check, unless the credential expired or was
/// never checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Badge {
    Never,
    Expired,
    Checked(VerifyState),
}

impl Badge {
    /// The CSS modifier of the badge (`verify-ok`, `verify-expired`, …).
    pub fn key(self) -> &'static str {
        match self {
            Badge::Never => "never",
            Badge::Expired => "expired",
            Badge::Checked(state) => state.key(),
        }
    }

    /// The badge's words.
    pub fn words(self) -> &'static str {
        match self {
            Badge::Checked(VerifyState::Ok) => "✓ Verified",
            Badge::Checked(VerifyState::Warning) => "⚠ Verified, with a warning",
            Badge::Checked(VerifyState::Failed) => "✗ Failed",
            Badge::Expired => "✗ Expired",
            Badge::Never => "Not verified",
        }
    }
}

/// A credential as a table row, borrowing what it shows from the listed row (a page builds
/// fifty of these: no copy of every name and value).
pub struct RowView<'a> {
    pub id: CredentialId,
    /// `/credentials/{kind}/{id}`, which its actions extend.
    pub path: String,
    pub name: &'a str,
    pub is_default: bool,
    pub is_locked: bool,
    pub has_default: bool,
    pub editable: bool,
    /// `ok`, `warning`, `failed`, or `never` before the first verification.
    pub verify_state: Badge,
    pub verify_message: &'a str,
    /// When it was last verified (none before the first verification).
    pub verified_at: Option<VerifiedAt>,
    pub cells: Vec<Cell<'a>>,
    pub expires_soon: bool,
    /// Projects using it: while any do, it cannot be deleted.
    pub projects: Vec<&'a str>,
    /// Its actions menu is shown open (a row swapped after one of them).
    pub menu_open: bool,
    /// Why the action just tried on it was refused, shown in the row.
    pub refusal: Option<String>,
}

/// When a row was last verified, as its status cell shows it: how long ago, with the exact
/// time for `<time>` and its title.
pub struct VerifiedAt {
    /// RFC 3339, to the second (`datetime`).
    pub datetime: String,
    /// `2026-11-22 14:26:05 UTC`.
    pub exact: String,
    /// `3 minutes ago`.
    pub ago: String,
}

impl VerifiedAt {
    fn new(at: DateTime<Utc>) -> VerifiedAt {
        VerifiedAt {
            datetime: at.to_rfc3339_opts(SecondsFormat::Secs, true),
            exact: utc_second(at),
            ago: ago(at),
        }
    }
}

/// A multi-line value on one line.
fn one_line(text: &str) -> Cow<'_, str> {
    if text.contains('\n') {
        Cow::Owned(text.replace('\n', ", "))
    } else {
        Cow::Borrowed(text)
    }
}

impl<'a> RowView<'a> {
    pub fn in_use(&self) -> bool {
        !self.projects.is_empty()
    }

    pub fn projects_text(&self) -> String {
        self.projects.join(", ")
    }

    /// The action its lock button takes.
    pub fn lock_action(&self) -> &'static str {
        if self.is_locked {
            Action::Unlock.key()
        } else {
            Action::Lock.key()
        }
    }

    pub(super) fn new(listed: &'a Listed, columns: &[Column]) -> RowView<'a> {
        let credential = &listed.credential;
        let provider = credential.provider();
        let cells = columns
            .iter()
            .map(|column| Cell {
                label: column.label,
                ..cell(listed, provider, column.value)
            })
            .collect();
        let projects = listed.projects();
        let message = credential.verify_message.as_deref().unwrap_or_default();
        // An expired credential reads Expired, whatever its last check found.
        let (verify_state, verify_message) = match credential.verification() {
            _ if credential.expired() => {
                (Badge::Expired, "The credential's expiry date has passed")
            }
            None => (Badge::Never, "Not verified yet"),
            Some(state) => (Badge::Checked(state), message),
        };
        RowView {
            id: credential.id,
            path: format!("/credentials/{}/{}", credential.kind.key(), credential.id),
            name: &credential.name,
            is_default: credential.is_default,
            is_locked: credential.is_locked,
            has_default: credential.kind.spec().has_default,
            editable: provider.is_some_and(Provider::editable),
            verify_state,
            verify_message,
            // A claimed re-verification moves the time before it has a result.
            verified_at: credential
                .verified_at
                .filter(|_| credential.verification().is_some())
                .map(VerifiedAt::new),
            cells,
            expires_soon: credential.expires_soon(),
            projects,
            menu_open: false,
            refusal: None,
        }
    }
}

/// What an expanded row shows (`GET /credentials/{kind}/{id}`, loaded when a row is opened):
/// the provider's fields (secrets only as set, or by their last characters), associated
/// projects, who created and changed it, and the last verification.
pub(super) fn details<'a>(
    listed: &'a Listed,
    row: &RowView<'a>,
) -> Vec<(&'static str, Cow<'a, str>)> {
    let credential = &listed.credential;
    let provider = credential.provider();
    let mut details: Vec<(&'static str, Cow<'a, str>)> = Vec::with_capacity(16);
    if let Some(provider) = provider {
        if credential.kind.spec().by_provider {
            details.push(("Provider", Cow::Borrowed(provider.label)));
        }
        for field in provider.fields {
            let value = if field.secret {
                match credential.public_value(&format!("{}_hint", field.key)) {
                    "" => Cow::Borrowed("set (hidden)"),
                    hint => Cow::Owned(format!("ends in {hint}")),
                }
            } else {
                one_line(credential.public_value(field.key))
            };
            if !value.is_empty() {
                details.push((field.label, value));
            }
        }
        for (label, key) in provider.columns {
            if provider.field(key).is_none() && !credential.public_value(key).is_empty() {
                details.push((label, Cow::Borrowed(credential.public_value(key))));
            }
        }
    }
    if let Some(date) = credential.expires_on {
        details.push(("Expires on", Cow::Owned(date.to_string())));
    }
    let projects = &row.projects;
    details.push((
        "Associated projects",
        if projects.is_empty() {
            Cow::Borrowed("none")
        } else {
            Cow::Owned(projects.join(", "))
        },
    ));
    details.push(("Created", Cow::Owned(utc_minute(credential.created_at))));
    details.push((
        "Created by",
        Cow::Borrowed(listed.created_by_label.as_deref().unwrap_or("—")),
    ));
    details.push((
        "Last modified",
        Cow::Owned(utc_minute(credential.updated_at)),
    ));
    details.push((
        "Last modified by",
        Cow::Borrowed(listed.updated_by_label.as_deref().unwrap_or("—")),
    ));
    if let Some(at) = credential.verified_at {
        details.push((
            "Last verified",
            Cow::Owned(format!("{} — {}", utc_minute(at), row.verify_message)),
        ));
    }
    details
}

fn cell<'a>(listed: &'a Listed, provider: Option<&'static Provider>, value: Value) -> Cell<'a> {
    let credential = &listed.credential;
    let borrowed = |kind: CellKind, text: &'a str| Cell {
        kind,
        text: Cow::Borrowed(text),
        label: "",
    };
    let owned = |kind: CellKind, text: String| Cell {
        kind,
        text: Cow::Owned(text),
        label: "",
    };
    match value {
        Value::Id => owned(CellKind::Text, credential.id.to_string()),
        Value::Name => borrowed(CellKind::Name, &credential.name),
        Value::Organization => borrowed(CellKind::Text, &listed.organization_name),
        Value::ProviderName => borrowed(
            CellKind::Text,
            provider.map_or(credential.provider.as_str(), |p| p.label),
        ),
        Value::Public(key) => Cell {
            kind: CellKind::Text,
            text: one_line(credential.public_value(key)),
            label: "",
        },
        // `KindSpec::columns` puts the provider's own columns or the summary in its place.
        Value::Summary | Value::ProviderColumns => owned(
            CellKind::Text,
            provider
                .map(|p| {
                    p.columns
                        .iter()
                        .map(|(label, key)| (label, credential.public_value(key)))
                        .filter(|(_, value)| !value.is_empty())
                        .map(|(label, value)| format!("{label}: {}", one_line(value)))
                        .collect::<Vec<_>>()
                        .join(" · ")
                })
                .unwrap_or_default(),
        ),
        Value::Created => owned(
            CellKind::Text,
            credential.created_at.date_naive().to_string(),
        ),
        Value::Expires => owned(
            CellKind::Expires,
            credential
                .expires_on
                .map(|d| d.to_string())
                .unwrap_or_default(),
        ),
        Value::Default => borrowed(CellKind::Default, ""),
        Value::Lock => borrowed(CellKind::Lock, ""),
        Value::Verified => borrowed(CellKind::Verified, ""),
        Value::Associated => owned(
            CellKind::Text,
            listed
                .associated_projects
                .as_deref()
                .map_or(0, |names| names.lines().count())
                .to_string(),
        ),
    }
}

/// What the table fragment and the page around it show.
pub(super) struct Table<'a> {
    pub(super) kind: Kind,
    pub(super) columns: Vec<ColumnView>,
    pub(super) rows: Vec<RowView<'a>>,
    pub(super) total: Total,
    pub(super) page: i64,
    pub(super) previous_url: Option<String>,
    pub(super) next_url: Option<String>,
    /// The list query, carried by every action form so the answer can show the same page.
    pub(super) back: String,
}

pub(super) fn table<'a>(
    kind: Kind,
    params: &ListParams,
    query: &ListQuery,
    page: &'a CredentialPage,
) -> Table<'a> {
    let (listed, total) = (&page.rows, page.total);
    let columns = kind.spec().columns(params.provider(kind));
    let base = format!("/credentials/{}", kind.key());
    let column_views = columns
        .iter()
        .map(|column| {
            let key = column.value.sort_key();
            let sorted = match &key {
                Some(key) if *key == query.sort => {
                    if query.descending {
                        "descending"
                    } else {
                        "ascending"
                    }
                }
                _ => "",
            };
            ColumnView {
                label: column.label,
                sort_url: key.map(|key| {
                    let dir = if sorted == "ascending" { "desc" } else { "asc" };
                    let mut next = params.clone();
                    next.sort = Some(key);
                    next.dir = Some(dir.into());
                    next.page = None;
                    format!("{base}?{}", next.to_query())
                }),
                sorted,
            }
        })
        .collect();
    let page = query.pagination.page;
    Table {
        kind,
        columns: column_views,
        rows: listed
            .iter()
            .map(|row| RowView::new(row, &columns))
            .collect(),
        total,
        page,
        previous_url: (page > 1)
            .then(|| format!("{base}?{}", params.with("page", &(page - 1).to_string()))),
        next_url: total
            .exceeds(page * PER_PAGE)
            .then(|| format!("{base}?{}", params.with("page", &(page + 1).to_string()))),
        back: params.to_query(),
    }
}
