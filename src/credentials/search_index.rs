//! Searches of the credentials tabs found in memory: the searched text of every credential, in
//! the tabs' name order, with a list of the credentials holding each three-byte sequence.
//!
//! A search in PostgreSQL must visit every match to count it and order it (a trigram bitmap,
//! then one heap page per match: ~1,000 of them for a term found in 1 % of 100,000
//! credentials). Here the matches are the entries of the rarest of the term's trigram lists
//! whose text holds the term, already in name order; PostgreSQL then reads only the page's rows,
//! by id, checking scope, filters and the term again (`Credential::listed_by_ids`), so a row it
//! would not list is never shown. The rows it read are kept for the next search of the same
//! scope (`ShownRows`, like a page: until a notice, 5 s at most), so a term asked again reads
//! nothing from PostgreSQL.
//!
//! One index per process, kept in the page cache (`page_cache`) like a page: built in the
//! background on the first search after any change to credentials or organizations, dropped
//! when a notice says either changed; searches read PostgreSQL meanwhile. Only name order is
//! served from here (the default); other orders read PostgreSQL.

mod shown_rows;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use crate::access::Scope;
use crate::credentials::model::{Credential, CredentialPage, ListQuery, SEARCH_COUNT_CAP, Total};
use crate::credentials::provider::Kind;
use crate::db::Tables;
use crate::db::{self, DbPool};
use crate::page_cache::{PageCache, PageKey};

pub use shown_rows::ShownRows;

/// What the index is kept under in the page cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct IndexKey;

fn key() -> PageKey {
    PageKey::new(IndexKey)
}

/// An index is used this long at most (unless a notice drops it sooner): building one reads
/// every credential (a few hundred milliseconds for 100,000), so not every `MAX_AGE` of a
/// page; and whatever it finds, PostgreSQL checks again before a row is shown.
const MAX_AGE: Duration = Duration::from_secs(60);

/// Builds this process's index as soon as its page cache keeps anything (the listener heard its
/// first heartbeat): the first search then finds it ready. Gives up after a few seconds.
pub fn warm_up(pages: Arc<PageCache>, pool: DbPool) {
    actix_web::rt::spawn(async move {
        for _ in 0..100 {
            if pages.trusted() {
                current(&pages, &pool);
                return;
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

/// The index of this process if it has a current one; otherwise `None`, and one is built in
/// the background (unless one is being built, or nothing can be kept now).
pub fn current(pages: &Arc<PageCache>, pool: &DbPool) -> Option<Arc<SearchIndex>> {
    let ticket = match pages.get::<SearchIndex>(key()) {
        Ok(index) => return Some(index),
        Err(ticket) => ticket,
    };
    if !pages.trusted() || !pages.begin_background(&key()) {
        return None;
    }
    // An index near its end is dropped now, not when the new one is ready: two at once would
    // double the memory it takes.
    pages.remove(&key());
    /// Marks the build done however its task ends (even dropped unfinished).
    struct Building(Arc<PageCache>);
    impl Drop for Building {
        fn drop(&mut self) {
            self.0.end_background(&key());
        }
    }
    let building = Building(pages.clone());
    let (pages, pool) = (pages.clone(), pool.clone());
    actix_web::rt::spawn(async move {
        let _building = building;
        let started = Instant::now();
        match db::run(&pool, SearchIndex::build).await {
            Ok(index) => {
                let (entries, bytes) = index.size();
                tracing::info!(
                    "search index: {entries} credentials, {} KB, built in {:?}",
                    bytes / 1024,
                    started.elapsed()
                );
                pages.fill_for(ticket, key(), SearchIndex::READS, Arc::new(index), MAX_AGE);
            }
            Err(error) => tracing::warn!("the search index could not be built: {error}"),
        }
    });
    None
}

/// What answered a search (`/metrics`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnsweredBy {
    /// The index, and rows searches showed lately.
    Memory,
    /// The index, and rows read by id.
    Index,
    /// PostgreSQL alone: no current index, another order, or a row the index proposed refused.
    Database,
}

impl AnsweredBy {
    pub fn label(self) -> &'static str {
        match self {
            AnsweredBy::Memory => "memory",
            AnsweredBy::Index => "index",
            AnsweredBy::Database => "database",
        }
    }
}

/// A name-ordered search as this process's index found it.
pub enum Indexed {
    /// The page is ready: nothing matches, or every row was shown lately under this scope.
    Answered((CredentialPage, AnsweredBy)),
    /// The page's rows are to be read by id, then kept for the next search.
    ToRead {
        found: Found,
        term: String,
        shown: Arc<ShownRows>,
    },
}

impl Indexed {
    /// The search for `term` found in the index, if there is a current one that can answer
    /// `query` (otherwise one is built in the background, `current`).
    pub fn find(
        pages: &Arc<PageCache>,
        pool: &DbPool,
        scope: &Scope,
        query: &ListQuery,
        term: &str,
    ) -> Option<Indexed> {
        let found = current(pages, pool)?.find(scope, query, term)?;
        if found.ids.is_empty() {
            let page = CredentialPage {
                rows: Vec::new(),
                total: found.total,
            };
            return Some(Indexed::Answered((page, AnsweredBy::Index)));
        }
        let shown = ShownRows::current(pages);
        Some(match shown.get(scope, query, &found.ids) {
            Some(rows) => {
                let page = CredentialPage {
                    rows,
                    total: found.total,
                };
                Indexed::Answered((page, AnsweredBy::Memory))
            }
            None => Indexed::ToRead {
                found,
                term: term.to_string(),
                shown,
            },
        })
    }

    /// The page if it needs no database; otherwise itself.
    pub fn answered(self) -> Result<(CredentialPage, AnsweredBy), Indexed> {
        match self {
            Indexed::Answered(answer) => Ok(answer),
            to_read => Err(to_read),
        }
    }

    /// The page: ready, or its rows read by id with scope, filters and term checked again by
    /// PostgreSQL (`Credential::listed_by_ids`). `None` when PostgreSQL refuses a proposed row or
    /// orders them otherwise: a row changed since the index was built (gone, moved, renamed),
    /// and the caller answers the whole search from PostgreSQL instead.
    pub fn read(
        self,
        conn: &mut PgConnection,
        scope: &Scope,
        query: &ListQuery,
    ) -> QueryResult<Option<(CredentialPage, AnsweredBy)>> {
        let (found, term, shown) = match self {
            Indexed::Answered(answer) => return Ok(Some(answer)),
            Indexed::ToRead { found, term, shown } => (found, term, shown),
        };
        let rows = Credential::listed_by_ids(conn, scope, query, &term, &found.ids)?;
        let same = rows.len() == found.ids.len()
            && rows
                .iter()
                .zip(&found.ids)
                .all(|(row, id)| row.credential.id.0 == *id);
        if !same {
            return Ok(None);
        }
        shown.keep(scope, &rows);
        let page = CredentialPage {
            rows,
            total: found.total,
        };
        Ok(Some((page, AnsweredBy::Index)))
    }
}

/// The entries holding one trigram: their positions, ascending, as differences to the previous
/// one in LEB128 (most are small: one byte each).
#[derive(Default)]
struct Postings {
    bytes: Vec<u8>,
    last: u32,
    len: u32,
}

impl Postings {
    fn push(&mut self, entry: u32) {
        let mut delta = entry - self.last;
        self.last = entry;
        self.len += 1;
        loop {
            let byte = (delta & 0x7f) as u8;
            delta >>= 7;
            if delta == 0 {
                self.bytes.push(byte);
                return;
            }
            self.bytes.push(byte | 0x80);
        }
    }

    fn entries(&self) -> impl Iterator<Item = u32> + '_ {
        let mut at = 0;
        let mut entry = 0u32;
        std::iter::from_fn(move || {
            let mut delta = 0u32;
            let mut shift = 0;
            loop {
                let byte = *self.bytes.get(at)?;
                at += 1;
                delta |= u32::from(byte & 0x7f) << shift;
                shift += 7;
                if byte & 0x80 == 0 {
                    break;
                }
            }
            entry += delta;
            Some(entry)
        })
    }
}

/// The entries of `sorted` also in `other` (both ascending).
fn intersect(sorted: &[u32], other: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut kept = Vec::with_capacity(sorted.len());
    let mut mine = sorted.iter().peekable();
    for entry in other {
        while mine.next_if(|candidate| **candidate < entry).is_some() {}
        match mine.peek() {
            Some(candidate) if **candidate == entry => {
                kept.push(entry);
                mine.next();
            }
            Some(_) => {}
            None => break,
        }
    }
    kept
}

fn trigram(bytes: &[u8]) -> u32 {
    u32::from(bytes[0]) << 16 | u32::from(bytes[1]) << 8 | u32::from(bytes[2])
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    organization_id: i64,
    #[diesel(sql_type = BigInt)]
    partner_id: i64,
    #[diesel(sql_type = Text)]
    kind: Kind,
    #[diesel(sql_type = Text)]
    provider: String,
    #[diesel(sql_type = Text)]
    search_text: String,
}

/// Every credential's searched text and what a search filters on, in name order.
pub struct SearchIndex {
    ids: Vec<i64>,
    organizations: Vec<i64>,
    partners: Vec<i64>,
    kinds: Vec<Kind>,
    /// Position in `provider_names`.
    providers: Vec<u16>,
    provider_names: Vec<String>,
    /// Entry `i`'s text is `text[starts[i]..starts[i + 1]]`.
    starts: Vec<u32>,
    text: String,
    postings: HashMap<u32, Postings>,
}

/// What a search found: the page's credential ids in order, and the tab's total.
#[derive(Debug, PartialEq, Eq)]
pub struct Found {
    pub ids: Vec<i64>,
    pub total: Total,
}

impl SearchIndex {
    /// The tables `build` reads.
    pub const READS: Tables = Tables::CREDENTIALS.with(Tables::ORGANIZATIONS);

    /// Reads every credential, in the order the tabs sort by name (PostgreSQL's own collation),
    /// a row at a time (neither libpq nor this process holds all the rows at once).
    pub fn build(conn: &mut PgConnection) -> QueryResult<SearchIndex> {
        let rows = diesel::sql_query(
            "SELECT c.id, c.organization_id, o.partner_id, c.kind, c.provider, c.search_text
             FROM credentials c JOIN organizations o ON o.id = c.organization_id
             ORDER BY lower(c.name), c.id",
        )
        .load_iter::<Row, diesel::pg::PgRowByRowLoadingMode>(conn)?;
        SearchIndex::of(rows)
    }

    fn of<E>(rows: impl IntoIterator<Item = Result<Row, E>>) -> Result<SearchIndex, E> {
        let mut index = SearchIndex {
            ids: Vec::new(),
            organizations: Vec::new(),
            partners: Vec::new(),
            kinds: Vec::new(),
            providers: Vec::new(),
            provider_names: Vec::new(),
            starts: Vec::new(),
            text: String::new(),
            postings: HashMap::new(),
        };
        let mut trigrams: Vec<u32> = Vec::new();
        for (entry, row) in rows.into_iter().enumerate() {
            let row = row?;
            let entry = entry as u32;
            index.ids.push(row.id);
            index.organizations.push(row.organization_id);
            index.partners.push(row.partner_id);
            index.kinds.push(row.kind);
            let provider = match index.provider_names.iter().position(|p| *p == row.provider) {
                Some(known) => known,
                None => {
                    index.provider_names.push(row.provider);
                    index.provider_names.len() - 1
                }
            };
            index.providers.push(provider as u16);
            index.starts.push(index.text.len() as u32);
            index.text.push_str(&row.search_text);
            trigrams.clear();
            trigrams.extend(row.search_text.as_bytes().windows(3).map(trigram));
            trigrams.sort_unstable();
            trigrams.dedup();
            for key in &trigrams {
                index.postings.entry(*key).or_default().push(entry);
            }
        }
        index.starts.push(index.text.len() as u32);
        for postings in index.postings.values_mut() {
            postings.bytes.shrink_to_fit();
        }
        index.text.shrink_to_fit();
        index.ids.shrink_to_fit();
        index.organizations.shrink_to_fit();
        index.partners.shrink_to_fit();
        index.kinds.shrink_to_fit();
        index.providers.shrink_to_fit();
        index.starts.shrink_to_fit();
        Ok(index)
    }

    /// How many credentials it holds, and the bytes it takes (roughly).
    pub fn size(&self) -> (usize, usize) {
        let postings: usize = self.postings.values().map(|p| p.bytes.len() + 16).sum();
        (
            self.ids.len(),
            self.text.len() + postings + self.ids.len() * (8 + 8 + 8 + 2 + 2 + 4),
        )
    }

    fn text_of(&self, entry: u32) -> &str {
        let entry = entry as usize;
        &self.text[self.starts[entry] as usize..self.starts[entry + 1] as usize]
    }

    fn listed(&self, entry: u32, scope: &Scope, query: &ListQuery) -> bool {
        let entry = entry as usize;
        let in_scope = match *scope {
            Scope::Partner(partner) => self.partners[entry] == partner.0,
            Scope::Organization(organization) => self.organizations[entry] == organization.0,
        };
        in_scope
            && query.lists(
                self.kinds[entry],
                self.organizations[entry],
                &self.provider_names[self.providers[entry] as usize],
            )
    }

    /// The page `query` asks for, searched for `term` in name order, with the total counted
    /// as `Credential::list` counts it; `None` when this index cannot answer (another order, a
    /// term shorter than a trigram).
    pub fn find(&self, scope: &Scope, query: &ListQuery, term: &str) -> Option<Found> {
        if query.sort != "name" {
            return None;
        }
        // As stored: `search_text` is lowercased text, matched by LIKE '%term%' with the
        // term lowercased and its wildcards taken literally.
        let needle = term.to_lowercase();
        let bytes = needle.as_bytes();
        if bytes.len() < 3 {
            return None;
        }
        let mut lists: Vec<&Postings> = Vec::new();
        for window in bytes.windows(3) {
            let Some(postings) = self.postings.get(&trigram(window)) else {
                // No credential holds this trigram: nothing matches.
                return Some(Found {
                    ids: Vec::new(),
                    total: Total::Exact(0),
                });
            };
            lists.push(postings);
        }
        // The entries holding the rarest trigrams (merging a list costs less than reading the
        // text of each entry it would rule out), then those whose text holds the term.
        lists.sort_by_key(|postings| postings.len);
        let mut candidates: Vec<u32> = lists[0].entries().collect();
        for postings in lists.iter().skip(1).take(2) {
            candidates = intersect(&candidates, postings.entries());
        }
        let matches: Vec<u32> = candidates
            .into_iter()
            .filter(|entry| self.listed(*entry, scope, query))
            .filter(|entry| self.text_of(*entry).contains(needle.as_str()))
            .collect();
        let pagination = query.pagination;
        let cap = SEARCH_COUNT_CAP.max(pagination.offset() + pagination.per_page);
        let total = if matches.len() as i64 <= cap {
            Total::Exact(matches.len() as i64)
        } else {
            Total::MoreThan(cap)
        };
        let page = |ordered: &mut dyn Iterator<Item = &u32>| -> Vec<i64> {
            ordered
                .skip(pagination.offset() as usize)
                .take(pagination.per_page as usize)
                .map(|entry| self.ids[*entry as usize])
                .collect()
        };
        let ids = if query.descending {
            page(&mut matches.iter().rev())
        } else {
            page(&mut matches.iter())
        };
        Some(Found { ids, total })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{OrganizationId, PartnerId};
    use crate::web::form::Pagination;

    fn row(id: i64, organization: i64, partner: i64, kind: &str, text: &str) -> Row {
        Row {
            id,
            organization_id: organization,
            partner_id: partner,
            kind: Kind::parse(kind).unwrap(),
            provider: "s3".into(),
            search_text: text.into(),
        }
    }

    fn index_of(rows: Vec<Row>) -> SearchIndex {
        SearchIndex::of(rows.into_iter().map(Ok::<_, ()>)).unwrap()
    }

    fn query(sort: &str, descending: bool, page: i64, per_page: i64) -> ListQuery {
        ListQuery {
            kind: Kind::Backup,
            organization: None,
            provider: None,
            search: None,
            sort: sort.into(),
            descending,
            pagination: Pagination::new(Some(page), per_page),
        }
    }

    #[test]
    fn postings_survive_their_encoding() {
        let mut postings = Postings::default();
        let entries = [0, 1, 2, 127, 128, 300, 16_384, 2_000_000, 2_000_001];
        for entry in entries {
            postings.push(entry);
        }
        assert_eq!(postings.entries().collect::<Vec<_>>(), entries);
        assert_eq!(postings.len, entries.len() as u32);
    }

    #[test]
    fn intersections_keep_what_both_hold() {
        let other = [0u32, 2, 3, 7, 8, 20];
        assert_eq!(
            intersect(&[1, 2, 3, 9, 20, 21], other.into_iter()),
            [2, 3, 20]
        );
        assert!(intersect(&[], other.into_iter()).is_empty());
        assert!(intersect(&[4, 5], other.into_iter()).is_empty());
    }

    #[test]
    fn a_search_finds_what_like_finds_in_scope_and_name_order() {
        // Rows come in name order: their position is their rank.
        let index = index_of(vec![
            row(5, 1, 10, "backup", "alpha-t042 org a"),
            row(3, 2, 10, "backup", "beta org b"),
            row(9, 1, 10, "backup", "gamma-t042 org a"),
            row(4, 3, 20, "backup", "delta-t042 org c"),
            row(7, 1, 10, "ai", "eps-t042 org a"),
            row(8, 2, 10, "backup", "zeta-t0429 org b"),
        ]);
        let partner = Scope::Partner(PartnerId(10));
        let found = index.find(&partner, &query("name", false, 1, 50), "T042");
        assert_eq!(
            found,
            Some(Found {
                ids: vec![5, 9, 8],
                total: Total::Exact(3)
            }),
            "case-blind, own partner, own kind, in name order"
        );
        let manager = Scope::Organization(OrganizationId(1));
        let found = index
            .find(&manager, &query("name", true, 1, 50), "t042")
            .unwrap();
        assert_eq!(found.ids, vec![9, 5], "descending");
        let second = index
            .find(&partner, &query("name", false, 2, 2), "t042")
            .unwrap();
        assert_eq!(second.ids, vec![8], "second page of two");
        let none = index
            .find(&partner, &query("name", false, 1, 50), "xyz")
            .unwrap();
        assert_eq!(none.total, Total::Exact(0));
        assert!(
            index
                .find(&partner, &query("created", false, 1, 50), "t042")
                .is_none()
        );
        assert!(
            index
                .find(&partner, &query("name", false, 1, 50), "t0")
                .is_none()
        );
        let mut filtered = query("name", false, 1, 50);
        filtered.organization = Some(OrganizationId(2));
        assert_eq!(
            index.find(&partner, &filtered, "t042").unwrap().ids,
            vec![8]
        );
    }

    #[test]
    fn totals_are_bounded_like_the_databases() {
        let rows = (0..SEARCH_COUNT_CAP + 5)
            .map(|n| row(n, 1, 1, "backup", &format!("key-{n:05} common")))
            .collect();
        let index = index_of(rows);
        let found = index
            .find(
                &Scope::Partner(PartnerId(1)),
                &query("name", false, 1, 50),
                "common",
            )
            .unwrap();
        assert_eq!(found.total, Total::MoreThan(SEARCH_COUNT_CAP));
        assert_eq!(found.ids.len(), 50);
        assert_eq!(found.ids[0], 0);
    }
}
