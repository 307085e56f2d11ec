//! What the backup pages and the API read: a project's page (its tab's rows, the Backups tab
//! kept in `page_cache` while nothing runs, and what the whole page shows around the tab), a
//! backup's page, the project and the policy or backup an action names, and the API's lists.
//! Each is one use case that owns its `db::run`; the handlers render what it answers.

use std::sync::Arc;

use crate::access::Scope;
use crate::backup::drill::{BackupTable, Drill};
use crate::backup::encryption::Encryption;
use crate::backup::model::{Backup, BackupPolicy, Restore};
use crate::backup::service::BackupError;
use crate::credentials::model::{Credential, CredentialOption};
use crate::credentials::provider::Kind;
use crate::crypto::Keyring;
use crate::db::{self, DbPool};
use crate::ids::{BackupId, PolicyId, ProjectId};
use crate::page_cache::{PageCache, PageKey};
use crate::projects::data_source::DataSource;
use crate::projects::model::{Project, ProjectListing};
use crate::web::form::Pagination;

/// The Backup tabs of a project page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TabName {
    Schedules,
    Backups,
    Restores,
}

impl TabName {
    /// The tab a query names; anything unknown is Schedules.
    pub fn parse(tab: &str) -> TabName {
        match tab {
            "backups" => TabName::Backups,
            "restores" => TabName::Restores,
            _ => TabName::Schedules,
        }
    }

    /// The name in addresses and templates.
    pub fn key(self) -> &'static str {
        match self {
            TabName::Schedules => "schedules",
            TabName::Backups => "backups",
            TabName::Restores => "restores",
        }
    }
}

/// What a project's tab lists (the schedules show each policy's last backup, so they read the
/// backups too), and whether anything of the project runs (the tab then refreshes itself).
pub struct TabRows {
    pub project: ProjectListing,
    pub policies: Vec<BackupPolicy>,
    pub backups: Vec<Backup>,
    pub restores: Vec<Restore>,
    pub polling: bool,
    /// The schemas keyhold saw when it last connected (no connection while rendering).
    pub schemas: Vec<String>,
    /// The latest drill of each listed backup.
    pub drills: Vec<Drill>,
}

/// What a project's Backups tab, while nothing runs, is kept under in the page cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct BackupsTabKey {
    scope: Scope,
    project: ProjectId,
}

/// The rows of a project's tab; the Backups tab's from memory if `from_memory` and they are
/// kept there. A tab answering a change must not come from memory: this process forgets its
/// pages only once the request that made the change has ended.
pub async fn project_tab(
    pool: &DbPool,
    pages: &PageCache,
    scope: Scope,
    id: ProjectId,
    tab: TabName,
    from_memory: bool,
) -> Result<Arc<TabRows>, BackupError> {
    let load = db::run(pool, move |conn| tab_rows(conn, &scope, id, tab));
    // The Backups tab is the most visited; the others check the data source or follow a
    // restore.
    if tab == TabName::Backups && from_memory {
        let key = PageKey::new(BackupsTabKey { scope, project: id });
        let read_from = Project::LISTING_READS
            | Backup::FOR_PROJECT_READS
            | Restore::ANY_RUNNING_READS
            | Drill::LATEST_READS;
        let nothing_runs = |rows: &TabRows| !rows.polling;
        return Ok(pages.load(key, read_from, load, nothing_runs).await?);
    }
    Ok(Arc::new(load.await?))
}

fn tab_rows(
    conn: &mut diesel::PgConnection,
    scope: &Scope,
    id: ProjectId,
    tab: TabName,
) -> diesel::QueryResult<TabRows> {
    let (schedules, restoring) = (tab == TabName::Schedules, tab == TabName::Restores);
    let project = Project::find_listing(conn, scope, id)?;
    let policies = if schedules {
        BackupPolicy::for_project(conn, id)?
    } else {
        Vec::new()
    };
    let backups = if restoring {
        Vec::new()
    } else {
        Backup::for_project(conn, id, 100)?
    };
    let restores = if restoring {
        Restore::for_project(conn, id, 50)?
    } else {
        Vec::new()
    };
    let polling = if restoring {
        restores.iter().any(Restore::running) || Backup::any_running(conn, id)?
    } else {
        backups.iter().any(Backup::running) || Restore::any_running(conn, id)?
    };
    let schemas = if schedules {
        Project::known_schemas(conn, id)?
    } else {
        Vec::new()
    };
    let ids: Vec<BackupId> = backups.iter().map(|backup| backup.id).collect();
    let drills = if restoring {
        Vec::new()
    } else {
        Drill::latest_of(conn, &ids)?
    };
    let polling = polling || Drill::any_running_in(conn, id)?;
    Ok(TabRows {
        project,
        policies,
        backups,
        restores,
        polling,
        schemas,
        drills,
    })
}

/// What a project page is asked for.
pub struct ProjectPageRead {
    pub scope: Scope,
    pub project: ProjectId,
    pub tab: TabName,
    /// A GET: the Backups tab may come from memory.
    pub from_memory: bool,
    /// The whole page, not the tab alone (htmx).
    pub whole_page: bool,
    /// The reader may enable backup (its credential select is read).
    pub can_manage: bool,
}

/// What the whole project page shows around its tab.
pub struct ProjectSettings {
    /// The data source in words; `None` when the configured keys cannot open it.
    pub data_source: Option<String>,
    /// The organization's backup credentials, when backup is off and the reader may enable it.
    pub backup_credentials: Option<Vec<CredentialOption>>,
    pub encryption: Option<Encryption>,
}

/// A project page: its tab's rows, and (for the whole page) its settings.
pub struct ProjectPageRows {
    pub tab: Arc<TabRows>,
    pub settings: Option<ProjectSettings>,
}

/// Reads a project page.
pub async fn project_page(
    pool: &DbPool,
    pages: &PageCache,
    keyring: &Keyring,
    read: ProjectPageRead,
) -> Result<ProjectPageRows, BackupError> {
    let (scope, id) = (read.scope, read.project);
    let tab = project_tab(pool, pages, scope, id, read.tab, read.from_memory).await?;
    if !read.whole_page {
        return Ok(ProjectPageRows {
            tab,
            settings: None,
        });
    }
    let project = &tab.project.project;
    let backup_credentials = if read.can_manage && !project.backup_enabled {
        let organization = project.organization_id;
        let options = db::run(pool, move |conn| {
            Credential::options(conn, &scope, Kind::Backup)
        })
        .await?;
        Some(
            options
                .into_iter()
                .filter(|option| option.organization_id == organization)
                .collect(),
        )
    } else {
        None
    };
    let data_source = project
        .open_database_url(keyring)
        .ok()
        .and_then(|url| DataSource::parse(&url).ok())
        .map(|source| source.display());
    let encryption = db::run(pool, move |conn| Encryption::find(conn, id)).await?;
    Ok(ProjectPageRows {
        tab,
        settings: Some(ProjectSettings {
            data_source,
            backup_credentials,
            encryption,
        }),
    })
}

/// A project in `scope` (`NotFound` for any other).
pub async fn project(pool: &DbPool, scope: Scope, id: ProjectId) -> Result<Project, BackupError> {
    Ok(db::run(pool, move |conn| Project::find(conn, &scope, id)).await?)
}

/// A project in `scope` and one of its policies, in one trip.
pub async fn project_policy(
    pool: &DbPool,
    scope: Scope,
    id: ProjectId,
    policy: PolicyId,
) -> Result<(Project, BackupPolicy), BackupError> {
    Ok(db::run(pool, move |conn| {
        let project = Project::find(conn, &scope, id)?;
        let policy = BackupPolicy::find(conn, project.id, policy)?;
        Ok::<_, diesel::result::Error>((project, policy))
    })
    .await?)
}

/// A project in `scope` and one of its backups, in one trip.
pub async fn project_backup(
    pool: &DbPool,
    scope: Scope,
    id: ProjectId,
    backup: BackupId,
) -> Result<(Project, Backup), BackupError> {
    Ok(db::run(pool, move |conn| {
        let project = Project::find(conn, &scope, id)?;
        let backup = Backup::find(conn, project.id, backup)?;
        Ok::<_, diesel::result::Error>((project, backup))
    })
    .await?)
}

/// A backup of a project (after a use case made it).
pub async fn backup(
    pool: &DbPool,
    project: ProjectId,
    id: BackupId,
) -> Result<Backup, BackupError> {
    Ok(db::run(pool, move |conn| Backup::find(conn, project, id)).await?)
}

/// Whether keyhold keeps the age identity of a project (a restore then needs none pasted).
pub async fn identity_kept(pool: &DbPool, project: ProjectId) -> Result<bool, BackupError> {
    Ok(db::run(pool, move |conn| Encryption::find(conn, project))
        .await?
        .is_some_and(|saved| saved.identity.is_some()))
}

/// A backup's page: what it holds (tables and rows at dump time), its drills and restores.
pub struct BackupRecord {
    pub project: Project,
    pub backup: Backup,
    pub tables: Vec<BackupTable>,
    pub drills: Vec<Drill>,
    pub restores: Vec<Restore>,
}

/// Reads a backup's page; the project in `scope`.
pub async fn backup_record(
    pool: &DbPool,
    scope: Scope,
    id: ProjectId,
    backup: BackupId,
) -> Result<BackupRecord, BackupError> {
    Ok(db::run(pool, move |conn| {
        let project = Project::find(conn, &scope, id)?;
        let backup = Backup::find(conn, project.id, backup)?;
        let tables = BackupTable::of(conn, backup.id)?;
        let drills = Drill::of(conn, backup.id)?;
        let restores: Vec<_> = Restore::for_project(conn, project.id, 200)?
            .into_iter()
            .filter(|restore| restore.backup_id == Some(backup.id))
            .collect();
        Ok::<_, diesel::result::Error>(BackupRecord {
            project,
            backup,
            tables,
            drills,
            restores,
        })
    })
    .await?)
}

/// The policies of a project in `scope` (any persona who sees it).
pub async fn policies(
    pool: &DbPool,
    scope: Scope,
    id: ProjectId,
) -> Result<Vec<BackupPolicy>, BackupError> {
    Ok(db::run(pool, move |conn| {
        let project = Project::find_listing(conn, &scope, id)?.project.id;
        BackupPolicy::for_project(conn, project)
    })
    .await?)
}

/// A page of the backups of a project in `scope`, newest first, and how many it has.
pub async fn backups_page(
    pool: &DbPool,
    scope: Scope,
    id: ProjectId,
    pagination: Pagination,
) -> Result<(Vec<Backup>, i64), BackupError> {
    Ok(db::run(pool, move |conn| {
        let project = Project::find_listing(conn, &scope, id)?.project.id;
        Backup::page_for_project(conn, project, pagination)
    })
    .await?)
}

/// A page of the restores of a project in `scope`, newest first, and how many it has.
pub async fn restores_page(
    pool: &DbPool,
    scope: Scope,
    id: ProjectId,
    pagination: Pagination,
) -> Result<(Vec<Restore>, i64), BackupError> {
    Ok(db::run(pool, move |conn| {
        let project = Project::find_listing(conn, &scope, id)?.project.id;
        Restore::page_for_project(conn, project, pagination)
    })
    .await?)
}

/// A backup of a project in `scope` (any persona who sees the project).
pub async fn visible_backup(
    pool: &DbPool,
    scope: Scope,
    id: ProjectId,
    backup: BackupId,
) -> Result<Backup, BackupError> {
    Ok(db::run(pool, move |conn| {
        let project = Project::find_listing(conn, &scope, id)?.project.id;
        Backup::find(conn, project, backup)
    })
    .await?)
}

/// The newest restore of a project, if it is the one named `name` (just started).
pub async fn started_restore(
    pool: &DbPool,
    project: ProjectId,
    name: String,
) -> Result<Option<Restore>, BackupError> {
    Ok(db::run(pool, move |conn| {
        Restore::for_project(conn, project, 1).map(|restores| restores.into_iter().next())
    })
    .await?
    .filter(|restore| restore.name == name))
}
