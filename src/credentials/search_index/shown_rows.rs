//! The rows searches showed lately, kept per scope so that a search whose page the index found
//! and whose rows were shown lately reads nothing from PostgreSQL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::access::Scope;
use crate::credentials::model::{Credential, ListQuery, Listed};
use crate::notices;
use crate::page_cache::{PageCache, PageKey};

/// What the rows searches showed lately are kept under in the page cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ShownRowsKey;
/// At most this many shown rows are kept (forty pages; some 1 KB each); a full store is
/// emptied and fills again.
const SHOWN_CAPACITY: usize = 2_000;

/// The rows searches showed lately, as `Credential::listed_by_ids` read them, by the scope they
/// were read under and credential id. Kept in the page cache like a page (forgotten when a notice
/// says credentials, organizations or projects changed, and a page's age at most), so a search
/// whose page the index found and whose rows were shown lately under the same scope reads
/// nothing from PostgreSQL; the others read their rows and keep them here.
#[derive(Default)]
pub struct ShownRows {
    rows: Mutex<HashMap<(Scope, i64), Arc<Listed>>>,
}

impl ShownRows {
    /// This process's store: the current one, or a new empty one, kept if the page cache keeps
    /// anything now. A store dropped by a notice while a request still fills it is dropped for
    /// every later request (the notice's rows may have been read before the change).
    pub fn current(pages: &PageCache) -> Arc<ShownRows> {
        match pages.get::<ShownRows>(PageKey::new(ShownRowsKey)) {
            Ok(rows) => rows,
            Err(ticket) => {
                let rows = Arc::new(ShownRows::default());
                let read_from = Credential::LISTED_BY_IDS_READS;
                pages.fill(ticket, PageKey::new(ShownRowsKey), read_from, rows.clone());
                rows
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Scope, i64), Arc<Listed>>> {
        notices::lock(&self.rows)
    }

    /// The rows of `ids`, in that order, if every one was shown under `scope` and is still of
    /// what `query` lists (kind, organization, provider: the index found them by the term);
    /// otherwise `None`.
    pub fn get(&self, scope: &Scope, query: &ListQuery, ids: &[i64]) -> Option<Vec<Arc<Listed>>> {
        let rows = self.lock();
        ids.iter()
            .map(|id| {
                let row = rows.get(&(*scope, *id))?;
                let credential = &row.credential;
                query
                    .lists(
                        credential.kind,
                        credential.organization_id.0,
                        &credential.provider,
                    )
                    .then(|| row.clone())
            })
            .collect()
    }

    /// Keeps `rows`, read under `scope`.
    pub fn keep(&self, scope: &Scope, rows: &[Arc<Listed>]) {
        let mut kept = self.lock();
        if kept.len() + rows.len() > SHOWN_CAPACITY {
            kept.clear();
        }
        for row in rows {
            kept.insert((*scope, row.credential.id.0), row.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::provider::Kind;
    use crate::ids::{OrganizationId, PartnerId};
    use crate::web::form::Pagination;

    fn by_name() -> ListQuery {
        ListQuery {
            kind: Kind::Backup,
            organization: None,
            provider: None,
            search: None,
            sort: "name".into(),
            descending: false,
            pagination: Pagination::new(Some(1), 50),
        }
    }

    fn shown(id: i64, organization: i64, kind: &str, provider: &str) -> Arc<Listed> {
        use crate::credentials::model::{Credential, Fields};
        use crate::ids::CredentialId;
        let now = chrono::Utc::now();
        Arc::new(Listed {
            credential: Credential {
                id: CredentialId(id),
                organization_id: OrganizationId(organization),
                kind: Kind::parse(kind).unwrap(),
                provider: provider.into(),
                name: format!("credential {id}"),
                public: Fields::default(),
                secrets: serde_json::Value::Null,
                key_id: "k1".into(),
                is_default: false,
                is_locked: false,
                expires_on: None,
                verified_at: None,
                verify_ok: None,
                verify_message: None,
                verify_state: None,
                version: 1,
                created_at: now,
                created_by: None,
                updated_at: now,
                updated_by: None,
            },
            organization_name: format!("org {organization}"),
            created_by_label: None,
            updated_by_label: None,
            associated_projects: None,
        })
    }

    fn ids(rows: Option<Vec<Arc<Listed>>>) -> Option<Vec<i64>> {
        rows.map(|rows| rows.iter().map(|row| row.credential.id.0).collect())
    }

    #[test]
    fn shown_rows_answer_only_their_own_scope_and_only_when_all_are_there() {
        let store = ShownRows::default();
        let partner = Scope::Partner(PartnerId(10));
        let manager = Scope::Organization(OrganizationId(1));
        store.keep(
            &partner,
            &[shown(5, 1, "backup", "s3"), shown(9, 1, "backup", "s3")],
        );
        let listing = by_name();
        assert_eq!(
            ids(store.get(&partner, &listing, &[9, 5])),
            Some(vec![9, 5])
        );
        assert_eq!(ids(store.get(&partner, &listing, &[])), Some(vec![]));
        assert_eq!(store.get(&partner, &listing, &[5, 9, 4]).map(|_| ()), None);
        // Read under a Partner's scope: a Manager of the same organization reads them again.
        assert_eq!(store.get(&manager, &listing, &[5]).map(|_| ()), None);
    }

    #[test]
    fn shown_rows_are_checked_against_the_listing() {
        let store = ShownRows::default();
        let partner = Scope::Partner(PartnerId(10));
        store.keep(
            &partner,
            &[shown(5, 1, "backup", "s3"), shown(6, 2, "ai", "openai")],
        );
        let mut listing = by_name();
        assert!(store.get(&partner, &listing, &[5]).is_some());
        assert!(
            store.get(&partner, &listing, &[6]).is_none(),
            "another kind"
        );
        listing.organization = Some(OrganizationId(2));
        assert!(
            store.get(&partner, &listing, &[5]).is_none(),
            "another organization"
        );
        listing.organization = Some(OrganizationId(1));
        listing.provider = Some("azure_blob");
        assert!(
            store.get(&partner, &listing, &[5]).is_none(),
            "another provider"
        );
        listing.provider = Some("s3");
        assert!(store.get(&partner, &listing, &[5]).is_some());
    }

    #[test]
    fn a_full_store_starts_again() {
        let store = ShownRows::default();
        let partner = Scope::Partner(PartnerId(10));
        let page = |from: i64| -> Vec<Arc<Listed>> {
            (from..from + 50)
                .map(|id| shown(id, 1, "backup", "s3"))
                .collect()
        };
        for from in (0..SHOWN_CAPACITY as i64).step_by(50) {
            store.keep(&partner, &page(from));
        }
        let listing = by_name();
        assert!(
            store.get(&partner, &listing, &[0]).is_some(),
            "exactly full"
        );
        store.keep(&partner, &page(1_000_000));
        assert!(store.get(&partner, &listing, &[0]).is_none());
        assert!(store.get(&partner, &listing, &[1_000_000]).is_some());
        assert_eq!(store.lock().len(), 50);
    }

    #[test]
    fn shown_rows_go_with_a_notice_of_any_table_they_came_from() {
        use crate::notices::Listener;
        let pages = Arc::new(PageCache::default());
        pages.heard();
        let store = ShownRows::current(&pages);
        assert!(Arc::ptr_eq(&store, &ShownRows::current(&pages)), "kept");
        pages.notice("backups");
        assert!(Arc::ptr_eq(&store, &ShownRows::current(&pages)));
        for table in ["credentials", "organizations", "projects"] {
            let store = ShownRows::current(&pages);
            pages.notice(table);
            assert!(!Arc::ptr_eq(&store, &ShownRows::current(&pages)), "{table}");
        }
    }

    #[test]
    fn shown_rows_are_not_kept_while_the_listener_is_not_heard() {
        let pages = Arc::new(PageCache::default());
        let store = ShownRows::current(&pages);
        assert!(!Arc::ptr_eq(&store, &ShownRows::current(&pages)));
    }
}
