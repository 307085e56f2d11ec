//! Which events a list or an export shows: the filters of `/audit`, its exports and
//! `/api/v1/audit` (person, action, object kind, organization, time range, search, sign-ins),
//! read once from the query string and always applied inside the reader's scope, so a filter
//! can only narrow what the scope reaches.

use chrono::{DateTime, Days, NaiveDate, NaiveDateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::access::Scope;
use crate::ids::{OrganizationId, PartnerId, UserId};
use crate::schema::{audit_events, organizations, users};
use crate::web::form::FieldErrors;

/// The filter as sent: every value text, so a wrong one is said beside its field.
#[derive(Deserialize, Serialize, Default, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct FilterParams {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub q: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub person: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub action: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub org: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub from: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub to: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sign_ins: String,
}

/// Actions of signing in and out (`session.…`): hidden unless asked for, as they would
/// flood the log.
const SESSION_ACTIONS: &str = "session.%";

/// A checked filter.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filter {
    /// `%term%` over the actor and the object's label.
    pub search: Option<String>,
    pub person: Option<UserId>,
    pub action: Option<String>,
    pub kind: Option<String>,
    pub organization: Option<OrganizationId>,
    /// From this instant on.
    pub from: Option<DateTime<Utc>>,
    /// Before this instant (a day given as a date counts whole).
    pub to: Option<DateTime<Utc>>,
    /// Whether sign-ins and sign-outs show (an action filter naming one shows it anyway).
    pub sign_ins: bool,
}

impl FilterParams {
    /// The filter of a query string; `None` when it cannot be read (a field twice).
    pub fn parse(query: &str) -> Option<FilterParams> {
        serde_urlencoded::from_str(query).ok()
    }

    /// This filter as a query string (empty values left out), for the links that keep it.
    pub fn to_query(&self) -> String {
        serde_urlencoded::to_string(self).unwrap_or_default()
    }

    /// The names of the filters that are set, as the export's audit row lists them.
    pub fn names(&self) -> Vec<&'static str> {
        [
            ("q", &self.q),
            ("person", &self.person),
            ("action", &self.action),
            ("kind", &self.kind),
            ("org", &self.org),
            ("from", &self.from),
            ("to", &self.to),
            ("sign_ins", &self.sign_ins),
        ]
        .into_iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(name, _)| name)
        .collect()
    }

    /// Checks every value; `sign_ins` is what an absent `sign_ins` means (the page hides
    /// sign-ins, the API keeps answering them).
    pub fn check(&self, sign_ins: bool) -> Result<Filter, FieldErrors> {
        let mut errors = FieldErrors::default();
        let text = |value: &str| Some(value.trim().to_string()).filter(|v| !v.is_empty());
        let mut id = |field: &'static str, value: &str, message: &str| {
            let value = text(value)?;
            let parsed = value.parse::<i64>().ok().filter(|id| *id > 0);
            if parsed.is_none() {
                errors.add(field, message);
            }
            parsed
        };
        let person = id("person", &self.person, "Choose a person from the list.").map(UserId);
        let organization =
            id("org", &self.org, "Choose an organization from the list.").map(OrganizationId);
        let mut code = |field: &'static str, value: &str, message: &str| {
            let value = text(value)?;
            let known = value.len() <= 60
                && value
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_');
            if !known {
                errors.add(field, message);
            }
            known.then_some(value)
        };
        let action = code("action", &self.action, "Choose an action from the list.");
        let kind = code("kind", &self.kind, "Choose a kind of object from the list.");
        let mut instant = |field: &'static str, value: &str, end_of_day: bool| {
            let value = text(value)?;
            let parsed = parse_instant(&value, end_of_day);
            if parsed.is_none() {
                errors.add(field, "Enter a date as YYYY-MM-DD (UTC).");
            }
            parsed
        };
        let from = instant("from", &self.from, false);
        let to = instant("to", &self.to, true);
        if let (Some(from), Some(to)) = (from, to)
            && to <= from
        {
            errors.add("to", "The end comes before the start.");
        }
        let sign_ins = match self.sign_ins.trim() {
            "" => sign_ins,
            "1" | "true" | "on" | "yes" => true,
            "0" | "false" | "off" | "no" => false,
            _ => {
                errors.add("sign_ins", "Expected true or false.");
                sign_ins
            }
        };
        let search = text(&self.q).map(|q| {
            let q: String = q.chars().filter(|c| !c.is_control()).take(100).collect();
            contains_pattern(&q)
        });
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Filter {
            search,
            person,
            action,
            kind,
            organization,
            from,
            to,
            sign_ins,
        })
    }
}

/// `2026-12-07T10:30:00Z` (RFC 3339), `2026-12-07T10:30` (UTC) or `2026-12-07`: its start,
/// or with `end_of_day` the start of the next day, so a date given as the end counts whole.
fn parse_instant(text: &str, end_of_day: bool) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(text, format) {
            return Some(at.and_utc());
        }
    }
    let day = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let day = if end_of_day {
        day.checked_add_days(Days::new(1))?
    } else {
        day
    };
    Some(day.and_hms_opt(0, 0, 0)?.and_utc())
}

/// `%term%` for ILIKE, with the term's own wildcards escaped.
fn contains_pattern(term: &str) -> String {
    let escaped = term
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

impl Filter {
    /// `query` narrowed to the events of `scope`, then to this filter.
    pub fn apply(
        &self,
        scope: &Scope,
        query: audit_events::BoxedQuery<'static, Pg>,
    ) -> audit_events::BoxedQuery<'static, Pg> {
        let mut query = match *scope {
            Scope::Partner(partner) => query.filter(audit_events::partner_id.eq(partner)),
            Scope::Organization(organization) => {
                query.filter(audit_events::organization_id.eq(organization))
            }
        };
        if let Some(person) = self.person {
            query = query.filter(audit_events::actor_id.eq(person));
        }
        match &self.action {
            Some(action) => query = query.filter(audit_events::action.eq(action.clone())),
            None if !self.sign_ins => {
                query = query.filter(audit_events::action.not_like(SESSION_ACTIONS));
            }
            None => {}
        }
        if let Some(kind) = &self.kind {
            query = query.filter(audit_events::object_kind.eq(kind.clone()));
        }
        if let Some(organization) = self.organization {
            query = query.filter(audit_events::organization_id.eq(organization));
        }
        if let Some(from) = self.from {
            query = query.filter(audit_events::at.ge(from));
        }
        if let Some(to) = self.to {
            query = query.filter(audit_events::at.lt(to));
        }
        if let Some(pattern) = &self.search {
            query = query.filter(
                audit_events::actor_label
                    .ilike(pattern.clone())
                    .or(audit_events::object_label.ilike(pattern.clone())),
            );
        }
        query
    }
}

/// The people the person filter offers inside `scope`, by email: everyone of a partner
/// account; for an organization its people and the partner account's Partners, who act in
/// every organization (never people of another organization).
pub fn people(conn: &mut PgConnection, scope: &Scope) -> QueryResult<Vec<(UserId, String)>> {
    let query = users::table
        .select((users::id, users::email))
        .order(users::email)
        .into_boxed();
    match *scope {
        Scope::Partner(partner) => query.filter(users::partner_id.eq(partner)),
        Scope::Organization(organization) => {
            let partner: PartnerId = organizations::table
                .find(organization)
                .select(organizations::partner_id)
                .first(conn)?;
            query.filter(
                users::organization_id.eq(organization).or(users::partner_id
                    .eq(partner)
                    .and(users::organization_id.is_null())
                    .nullable()),
            )
        }
    }
    .load(conn)
}

/// The organizations `scope` reaches, by name: the organization filter's choices.
pub fn organizations(
    conn: &mut PgConnection,
    scope: &Scope,
) -> QueryResult<Vec<(OrganizationId, String)>> {
    let query = organizations::table
        .select((organizations::id, organizations::name))
        .order(organizations::name)
        .into_boxed();
    match *scope {
        Scope::Partner(partner) => query.filter(organizations::partner_id.eq(partner)),
        Scope::Organization(organization) => query.filter(organizations::id.eq(organization)),
    }
    .load(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> FilterParams {
        FilterParams::parse(query).expect("readable")
    }

    #[test]
    fn a_date_as_the_end_counts_whole_and_wrong_values_are_named() {
        let filter = params("from=2026-12-01&to=2026-12-01&q=50%25_off")
            .check(false)
            .expect("valid");
        assert_eq!(
            filter.from.unwrap().to_rfc3339(),
            "2026-12-01T00:00:00+00:00"
        );
        assert_eq!(filter.to.unwrap().to_rfc3339(), "2026-12-02T00:00:00+00:00");
        assert_eq!(filter.search.as_deref(), Some("%50\\%\\_off%"));
        assert!(!filter.sign_ins);
        assert!(params("").check(true).unwrap().sign_ins);

        let errors = params("person=x&org=-1&action=DROP%20TABLE&from=yesterday&sign_ins=maybe")
            .check(false)
            .unwrap_err();
        for field in ["person", "org", "action", "from", "sign_ins"] {
            assert!(errors.get(field).is_some(), "{field}");
        }
        let backwards = params("from=2026-12-02&to=2026-12-01").check(false);
        assert!(backwards.unwrap_err().get("to").is_some());
        assert!(FilterParams::parse("q=a&q=b").is_none());
    }

    #[test]
    fn the_query_keeps_only_what_is_set() {
        let set = params("q=&action=credential.lock&from=2026-12-01&page=3");
        assert_eq!(set.to_query(), "action=credential.lock&from=2026-12-01");
        assert_eq!(set.names(), ["action", "from"]);
    }
}
