//! The backup use cases, for the pages (and later the API): enable and disable backup, add and
//! delete policies, back up now, delete a backup, restore. Each owns its IO — queries, checks
//! of the data source and the bucket, audit, the transaction — and answers a `BackupError`
//! when it refuses. Handlers (`backup::routes`) extract, authorize, call one of these, render.
//!
//! `by` is the audit event of the request (actor, client address, the project as object),
//! which each use case completes with its action, object and field names.
//!
//! Over 600 lines because it holds every backup use case (enable, disable, encryption,
//! policies, backup now, restore, drill, delete) behind one error type, `BackupError`, which the
//! pages and the API both map.

use chrono::Utc;
use diesel::{PgConnection, QueryResult};

use crate::access::Scope;
use crate::accounts::model::Organization;
use crate::audit::NewEvent;
use crate::backup::drill::{Drill, DrillSchedule};
use crate::backup::encryption::{self, Encryption};
use crate::backup::keeping::Keeping;
use crate::backup::model::{Backup, BackupPolicy, NewPolicy, Restore};
use crate::backup::policy::{self, NO_NAMESPACE, Schedule};
use crate::backup::runner::{Runner, prepare_bucket, s3_settings};
use crate::credentials::model::Credential;
use crate::credentials::provider::Kind;
use crate::db;
use crate::ids::{BackupId, CredentialId, UserId};
use crate::projects::data_source::{Checked, DataSource};
use crate::projects::model::{Project, SourceUse};
use crate::storage::bucket_name::{check_bucket_name, default_bucket};
use crate::web::form::FieldErrors;

/// What a backup use case did, in the words the page's message and the API's `message` both
/// say.
#[derive(Clone, Copy, Debug)]
pub enum Success<'a> {
    /// `ready`: what the bucket check found.
    Enabled {
        ready: &'a str,
    },
    Disabled,
    /// `words`: the schedule in words.
    PolicyAdded {
        name: &'a str,
        words: &'a str,
    },
    PolicyDeleted {
        name: &'a str,
    },
    BackupStarted {
        policy: &'a str,
    },
    BackupDeleted {
        name: &'a str,
    },
    RestoreStarted {
        name: &'a str,
    },
    CheckStarted {
        backup: &'a str,
    },
}

impl std::fmt::Display for Success<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Success::Enabled { ready } => write!(f, "Backup enabled: {ready}."),
            Success::Disabled => {
                f.write_str("Backup disabled. To use it again, enable it with a credential.")
            }
            Success::PolicyAdded { name, words } => write!(f, "Policy {name} added: {words}."),
            Success::PolicyDeleted { name } => write!(
                f,
                "Policy {name} deleted: its schedule stopped; its backups stay until they expire."
            ),
            Success::BackupStarted { policy } => write!(f, "Backup of {policy} started."),
            Success::BackupDeleted { name } => {
                write!(f, "Backup {name} and its object are deleted.")
            }
            Success::RestoreStarted { name } => write!(f, "Restore {name} started."),
            Success::CheckStarted { backup } => write!(
                f,
                "Restore check of {backup} started: it is restored into a scratch database and \
                 its tables and rows compared."
            ),
        }
    }
}

/// Why a backup use case refused, or failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("project backup already enabled: disable it first to switch credentials")]
    AlreadyEnabled,
    #[error("Enable backup before adding a policy.")]
    NotEnabled,
    #[error("Choose an unlocked backup credential of the project's organization.")]
    NoSuchCredential,
    /// The bucket, a restore target, a form value: refused with the reason (422).
    #[error("{0}")]
    Refused(String),
    /// A policy or restore form, with a message per field (shown beside the fields).
    #[error("the form has errors")]
    Form(FieldErrors),
    #[error("A backup of {0} is already waiting or running: wait for it to end.")]
    Busy(String),
    #[error("{0} is still running")]
    Running(String),
    #[error("A restore check of {0} is already running: wait for it to end.")]
    Checking(String),
    #[error("{0} cannot be restored: only completed backups whose object still exists can")]
    NotRestorable(String),
    /// S3 refused to delete the object (409: the backup stays).
    #[error("{0}")]
    Storage(String),
    #[error("project backup already disabled")]
    AlreadyDisabled,
    #[error("delete the backup policies first: backup stays on while a policy exists")]
    PoliciesExist,
    /// A project's age identity could not be sealed.
    #[error("sealing failed: {0:#}")]
    Sealing(anyhow::Error),
    /// The database failed or could not be reached, as `db::run` answers it (a row that is
    /// not there, or not in the person's scope, is `Failed(NotFound)`).
    #[error("{0}")]
    Store(db::RunError<diesel::result::Error>),
}

impl From<diesel::result::Error> for BackupError {
    fn from(error: diesel::result::Error) -> BackupError {
        BackupError::Store(db::RunError::Failed(error))
    }
}

impl<E: Into<BackupError>> From<db::RunError<E>> for BackupError {
    fn from(error: db::RunError<E>) -> BackupError {
        match error {
            db::RunError::Failed(error) => error.into(),
            db::RunError::Unavailable(reason) => {
                BackupError::Store(db::RunError::Unavailable(reason))
            }
        }
    }
}

/// Creates or checks the bucket with the credential's keys, and proves write, read and delete.
pub async fn ready_bucket(
    runner: &Runner,
    credential: CredentialId,
    bucket: &str,
) -> Result<String, String> {
    let credential = db::run(&runner.pool, move |conn| {
        Credential::find_any(conn, credential)
    })
    .await
    .map_err(|error| error.to_string())?;
    let settings = s3_settings(&credential, &runner.keyring)?;
    prepare_bucket(&runner.outbound, &settings, bucket).await
}

/// The enable form as sent: a backup credential's id, and a bucket (empty: the default one).
#[derive(Clone, Debug, Default)]
pub struct EnableRequest {
    pub credential: String,
    pub bucket: String,
}

/// What projects ask of backup when one is created, edited or deleted.
impl crate::projects::service::Checks for Runner {
    fn pool(&self) -> &db::DbPool {
        &self.pool
    }

    async fn check_source(&self, source: &DataSource, usage: SourceUse) -> Result<Checked, String> {
        Runner::check_source(self, source, usage).await
    }

    async fn ready_bucket(&self, credential: CredentialId, bucket: &str) -> Result<String, String> {
        ready_bucket(self, credential, bucket).await
    }

    fn keeping(&self) -> fn(&mut PgConnection, &Project) -> QueryResult<Option<String>> {
        |conn, project| Ok(Keeping::of(conn, project)?.reason(&project.name))
    }
}

/// Turns backup on with one of `scope`'s unlocked backup credentials of the project's
/// organization and a bucket (the default one when none is given), after proving the bucket
/// works; answers what the bucket check found.
pub async fn enable(
    runner: &Runner,
    scope: Scope,
    actor: UserId,
    project: &Project,
    request: &EnableRequest,
    by: NewEvent,
) -> Result<String, BackupError> {
    let (credential, bucket) = (&request.credential, &request.bucket);
    if project.backup_enabled {
        return Err(BackupError::AlreadyEnabled);
    }
    let organization = project.organization_id;
    let (options, organization_name) = db::run(&runner.pool, move |conn| {
        let options = Credential::options(conn, &scope, Kind::Backup)?;
        let name = Organization::find(conn, &Scope::Organization(organization), organization)?.name;
        Ok::<_, diesel::result::Error>((options, name))
    })
    .await?;
    let credential = options
        .iter()
        .find(|o| o.id.to_string() == credential.trim() && o.organization_id == organization)
        .map(|o| o.id)
        .ok_or(BackupError::NoSuchCredential)?;
    let bucket = match bucket.trim() {
        "" => default_bucket(&organization_name, &project.name),
        given => given.to_string(),
    };
    check_bucket_name(&bucket).map_err(BackupError::Refused)?;
    let ready = ready_bucket(runner, credential, &bucket)
        .await
        .map_err(BackupError::Refused)?;
    let event = by
        .action("project.backup_enable")
        .fields(&["backup_credential_id", "bucket"]);
    let id = project.id;
    db::run(&runner.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            let project = Project::find_for_update(conn, &scope, id)?;
            if project.backup_enabled {
                return Err(BackupError::AlreadyEnabled);
            }
            project.enable_backup(conn, credential, &bucket, actor)?;
            event.record(conn)?;
            Ok(())
        })
    })
    .await?;
    Ok(ready)
}

/// Turns backup off (refused while policies exist).
pub async fn disable(
    runner: &Runner,
    scope: Scope,
    actor: UserId,
    project: &Project,
    by: NewEvent,
) -> Result<(), BackupError> {
    let event = by
        .action("project.backup_disable")
        .fields(&["backup_enabled"]);
    let id = project.id;
    db::run(&runner.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            let project = Project::find_for_update(conn, &scope, id)?;
            let policies = BackupPolicy::count_for_project(conn, id)?;
            if !project.backup_enabled {
                return Err(BackupError::AlreadyDisabled);
            }
            if policies > 0 {
                return Err(BackupError::PoliciesExist);
            }
            project.disable_backup(conn, actor)?;
            event.record(conn)?;
            Ok::<_, BackupError>(())
        })
    })
    .await?;
    Ok(())
}

/// A policy as submitted: name, cron period, time zone, retention, namespaces.
#[derive(Clone, Debug, Default)]
pub struct PolicyRequest {
    pub name: String,
    pub cron: String,
    /// The schedule select as sent (`daily`, …, `custom`), for the form shown again: `cron`
    /// already holds its period.
    pub cron_preset: String,
    pub timezone: String,
    pub retention: String,
    pub namespaces: Vec<String>,
    /// `off`, `each`, `daily` or `weekly`.
    pub drill: String,
    /// Optional http(s) URL called after each run.
    pub heartbeat_url: String,
}

/// A policy just added, and its schedule in words.
pub struct AddedPolicy {
    pub policy: BackupPolicy,
    pub words: String,
}

/// Adds a policy after checking every field (namespaces against the database's schemas, over
/// a live connection).
pub async fn create_policy(
    runner: &Runner,
    actor: UserId,
    project: &Project,
    request: &PolicyRequest,
    by: NewEvent,
) -> Result<AddedPolicy, BackupError> {
    if !project.backup_enabled {
        return Err(BackupError::NotEnabled);
    }
    let mut errors = FieldErrors::default();
    errors.check("name", crate::web::form::check_length(&request.name, 3, 30));
    let schedule = match Schedule::parse(&request.cron, &request.timezone) {
        Ok(schedule) => Some(schedule),
        Err(message) => {
            let field = if message == policy::BAD_CRON {
                "cron"
            } else {
                "timezone"
            };
            errors.add(field, message);
            // A wrong cron period hides no wrong zone: both are said at once.
            if policy::parse_zone(&request.timezone).is_none() {
                errors.add("timezone", policy::BAD_ZONE);
            }
            None
        }
    };
    let retention = policy::parse_retention(&request.retention);
    if let Err(message) = retention {
        errors.add("retention", message);
    }
    check_namespaces(runner, project, &request.namespaces, &mut errors).await;
    let drill = DrillSchedule::parse(&request.drill).unwrap_or_else(|| {
        errors.add("drill", "Choose off, each, daily or weekly.");
        DrillSchedule::Off
    });
    let heartbeat_url = request.heartbeat_url.trim();
    if !heartbeat_url.is_empty() {
        let checked = match url::Url::parse(heartbeat_url) {
            Ok(url) => runner.outbound.check_target(&url).await,
            Err(_) => Err(String::new()),
        };
        if let Err(reason) = checked {
            errors.add(
                "heartbeat_url",
                if reason.is_empty() {
                    "Enter an http or https URL, like https://hc-ping.com/<uuid>.".to_string()
                } else {
                    reason
                },
            );
        }
    }
    if errors.get("name").is_none() {
        let (id, name) = (project.id, request.name.clone());
        if db::run(&runner.pool, move |conn| {
            BackupPolicy::name_taken(conn, id, &name)
        })
        .await?
        {
            errors.add("name", format!("{} already exists", request.name));
        }
    }
    let (Some(schedule), Ok(retention_secs), true) = (schedule, retention, errors.is_empty())
    else {
        return Err(BackupError::Form(errors));
    };
    let event = by.action("policy.create").fields(&[
        "name",
        "cron",
        "timezone",
        "retention",
        "namespaces",
        "drill",
        "heartbeat_url",
    ]);
    let words = schedule.describe();
    let (project_id, request) = (project.id, request.clone());
    let policy = db::run(&runner.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            let policy = BackupPolicy::create(
                conn,
                &NewPolicy {
                    project_id,
                    name: &request.name,
                    schedule: &schedule,
                    retention_secs,
                    namespaces: &request.namespaces,
                    drill,
                    heartbeat_url: Some(request.heartbeat_url.trim()).filter(|url| !url.is_empty()),
                    created_by: actor,
                },
                Utc::now(),
            )?;
            event.record(conn)?;
            Ok::<_, diesel::result::Error>(policy)
        })
    })
    .await?;
    Ok(AddedPolicy { policy, words })
}

/// Namespaces must be chosen, and be schemas the database has.
async fn check_namespaces(
    runner: &Runner,
    project: &Project,
    namespaces: &[String],
    errors: &mut FieldErrors,
) {
    if namespaces.is_empty() {
        errors.add("namespaces", NO_NAMESPACE);
        return;
    }
    if namespaces
        .iter()
        .any(|n| n.len() > 63 || n.contains(['\0', '\n']))
    {
        errors.add("namespaces", "Choose schemas of the project database.");
        return;
    }
    match runner.check_project_source(project).await {
        Ok(checked) => {
            if let Some(unknown) = namespaces.iter().find(|n| !checked.schemas.contains(n)) {
                errors.add(
                    "namespaces",
                    format!("{unknown} is not a schema of the project database."),
                );
            }
        }
        Err(message) => errors.add(
            "namespaces",
            format!("The project database's schemas could not be read: {message}"),
        ),
    }
}

/// Deletes a policy: its schedule stops, its backups stay until they expire.
pub async fn delete_policy(
    runner: &Runner,
    policy: BackupPolicy,
    by: NewEvent,
) -> Result<(), BackupError> {
    let event = by
        .action("policy.delete")
        .object("policy", policy.id.0, &policy.name);
    db::run(&runner.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            policy.delete(conn)?;
            event.record(conn)
        })
    })
    .await?;
    Ok(())
}

/// "Backup now": one waiting or running run per policy (the policy row serializes concurrent
/// presses); the run starts in the background and waits for one of the process's slots.
/// Answers the new run's id.
pub async fn backup_now(
    runner: &Runner,
    policy: BackupPolicy,
    by: NewEvent,
) -> Result<BackupId, BackupError> {
    let event = by
        .action("backup.run")
        .object("policy", policy.id.0, &policy.name);
    let id = db::run(&runner.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            if Backup::policy_busy(conn, policy.id)? {
                return Err(BackupError::Busy(policy.name.clone()));
            }
            let id = Backup::insert_slot(conn, &policy, Utc::now())?
                .ok_or_else(|| BackupError::Busy(policy.name.clone()))?;
            event.record(conn)?;
            Ok::<_, BackupError>(id)
        })
    })
    .await?;
    let runner = runner.clone();
    actix_web::rt::spawn(async move { runner.run_backup(id).await });
    Ok(id)
}

/// Deletes a backup and its object (refused while it runs, or when S3 refuses the delete).
pub async fn delete_backup(
    runner: &Runner,
    backup: Backup,
    by: NewEvent,
) -> Result<(), BackupError> {
    if backup.running() {
        return Err(BackupError::Running(backup.name));
    }
    runner
        .delete_object(&backup)
        .await
        .map_err(BackupError::Storage)?;
    let event = by
        .action("backup.delete")
        .object("backup", backup.id.0, &backup.name);
    db::run(&runner.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            Backup::delete(conn, backup.id)?;
            event.record(conn)
        })
    })
    .await?;
    Ok(())
}

/// Starts a drill of `backup` ("Verify restore"): restored into a scratch database, compared
/// with what the backup holds, dropped. One drill of a backup at a time.
pub async fn verify_backup(
    runner: &Runner,
    actor: Option<UserId>,
    project: Project,
    backup: Backup,
    by: Option<NewEvent>,
) -> Result<(), BackupError> {
    if !backup.restorable() {
        return Err(BackupError::NotRestorable(backup.name));
    }
    let event = by.map(|by| {
        by.action("backup.verify")
            .object("backup", backup.id.0, &backup.name)
    });
    let drilled = backup.clone();
    let drill = db::run(&runner.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            if Drill::any_running(conn, drilled.id)? {
                return Ok(None);
            }
            let drill = Drill::create(conn, &drilled, actor)?;
            if let Some(event) = event {
                event.record(conn)?;
            }
            Ok::<_, diesel::result::Error>(Some(drill))
        })
    })
    .await?;
    let Some(drill) = drill else {
        return Err(BackupError::Checking(backup.name));
    };
    let runner = runner.clone();
    actix_web::rt::spawn(async move { runner.run_drill(drill, backup, project).await });
    Ok(())
}

/// A restore as asked for: its name (made up when empty), the namespaces (all when empty),
/// and another database than the project's own, if any.
#[derive(Clone, Debug, Default)]
pub struct RestoreRequest {
    pub name: String,
    pub namespaces: Vec<String>,
    pub target_database_url: String,
    /// `pg_restore --jobs` even into a database that holds data (not one transaction).
    pub parallel: bool,
    /// An age identity for this one restore of an encrypted backup (never stored).
    pub age_identity: String,
}

/// A restore form the checks accepted: what `start_restore` runs.
pub struct CheckedRestore {
    pub name: String,
    pub namespaces: Vec<String>,
    pub parallel: bool,
    /// The pasted age identity's key.
    identity: Option<String>,
    /// Another database than the project's: its URL and how it is shown.
    target: Option<(String, String)>,
}

impl CheckedRestore {
    /// Whether the restore replaces what is in the project's own database (no other target).
    pub fn in_place(&self) -> bool {
        self.target.is_none()
    }

    /// Whether an age identity was pasted for it (asked for again, never shown back).
    pub fn has_identity(&self) -> bool {
        self.identity.is_some()
    }
}

/// Checks a restore form without starting anything: the name, the namespaces, a pasted
/// identity against the backup's recipients, another database like a data source. Refusals
/// name their field (`BackupError::Form`).
pub async fn check_restore(
    runner: &Runner,
    project: &Project,
    backup: &Backup,
    request: &RestoreRequest,
) -> Result<CheckedRestore, BackupError> {
    if !backup.restorable() {
        return Err(BackupError::NotRestorable(backup.name.clone()));
    }
    let mut errors = FieldErrors::default();
    let available = backup.namespaces();
    if request.namespaces.iter().any(|n| !available.contains(n)) {
        errors.add("namespaces", "Choose namespaces that this backup holds.");
    }
    let name = match request.name.trim() {
        "" => format!("restore-{}", Utc::now().format("%Y%m%d-%H%M%S")),
        given => given.to_string(),
    };
    errors.check("restore_name", crate::web::form::check_length(&name, 3, 40));
    // A pasted identity is checked against the backup's recipients before anything runs.
    let identity = match request.age_identity.trim() {
        "" => None,
        text => match (encryption::parse_identity(text), backup.encrypted_to()) {
            (Err(message), _) => {
                errors.add("age_identity", message);
                None
            }
            (Ok(_), None) => {
                errors.add(
                    "age_identity",
                    "This backup is not encrypted: leave the age identity empty.",
                );
                None
            }
            (Ok((_, public)), Some(recipients)) if !recipients.contains(&public) => {
                errors.add("age_identity", "this backup was not encrypted to that key");
                None
            }
            (Ok((key, _)), Some(_)) => Some(key),
        },
    };
    // Another database is reached only for a form that is otherwise right.
    let target = match request.target_database_url.trim() {
        "" => None,
        _ if !errors.is_empty() => None,
        url => match DataSource::parse(url) {
            Err(message) => {
                errors.add("target_database_url", message);
                None
            }
            Ok(source) => match runner
                .check_source(&source, SourceUse::RestoreTarget(project.id))
                .await
            {
                // The project's own database typed as "another" one is a restore in place:
                // it asks first like one and is recorded as one.
                Ok(checked) => {
                    let project_id = project.id;
                    let own = db::run(&runner.pool, move |conn| {
                        Project::source_identity(conn, project_id)
                    })
                    .await?;
                    (own.as_deref() != Some(checked.identity.identity.as_str()))
                        .then(|| (url.to_string(), checked.display()))
                }
                Err(message) => {
                    errors.add("target_database_url", message);
                    None
                }
            },
        },
    };
    if !errors.is_empty() {
        return Err(BackupError::Form(errors));
    }
    Ok(CheckedRestore {
        name,
        namespaces: request.namespaces.clone(),
        parallel: request.parallel,
        identity,
        target,
    })
}

/// Checks and starts a restore of `backup`; answers its name.
pub async fn restore(
    runner: &Runner,
    actor: UserId,
    project: Project,
    backup: Backup,
    request: RestoreRequest,
    by: NewEvent,
) -> Result<String, BackupError> {
    let checked = check_restore(runner, &project, &backup, &request).await?;
    start_restore(runner, actor, project, backup, checked, by).await
}

/// Starts a checked restore of `backup`; answers its name. Another database than the
/// project's own is audited as `restore.create_elsewhere` with the target.
pub async fn start_restore(
    runner: &Runner,
    actor: UserId,
    project: Project,
    backup: Backup,
    checked: CheckedRestore,
    by: NewEvent,
) -> Result<String, BackupError> {
    let CheckedRestore {
        name,
        namespaces,
        parallel,
        identity,
        target,
    } = checked;
    let mut fields = vec!["restore_name"];
    if !namespaces.is_empty() {
        fields.push("namespaces");
    }
    if parallel {
        fields.push("parallel");
    }
    if identity.is_some() {
        fields.push("age_identity");
    }
    let (action, into) = match &target {
        Some((_, shown)) => {
            fields.push("target_database_url");
            ("restore.create_elsewhere", shown.clone())
        }
        None => ("restore.create", "the project database".to_string()),
    };
    let event = by
        .action(action)
        .object(
            "backup",
            backup.id.0,
            &format!("{} into {into}", backup.name),
        )
        .fields(&fields);
    let (restore_backup, shown) = (backup.clone(), target.as_ref().map(|(_, s)| s.clone()));
    let restore = db::run(&runner.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            let restore = Restore::create(
                conn,
                &restore_backup,
                &name,
                &namespaces,
                shown,
                parallel,
                actor,
            )?;
            event.record(conn)?;
            Ok::<_, diesel::result::Error>(restore)
        })
    })
    .await?;
    let name = restore.name.clone();
    let (runner, target) = (runner.clone(), target.map(|(url, _)| url));
    actix_web::rt::spawn(async move {
        runner
            .run_restore(restore, backup, project, target, identity)
            .await
    });
    Ok(name)
}

/// The encryption form as sent (SPEC §10).
#[derive(Clone, Debug, Default)]
pub struct EncryptionRequest {
    pub encrypt: bool,
    /// One `age1…` public key per line.
    pub recipients: String,
    /// `AGE-SECRET-KEY-1…` to keep sealed; blank keeps the kept one.
    pub identity: String,
    /// Turning encryption off must be confirmed.
    pub confirm_off: bool,
}

/// Saves a project's encryption settings; answers what changed, for the flash message. New
/// backups use them; old ones keep the recipients they were sealed to. A kept identity that
/// matches none of the new recipients is forgotten (it could decrypt none of the new backups).
pub async fn set_encryption(
    runner: &Runner,
    actor: UserId,
    project: &Project,
    request: EncryptionRequest,
    by: NewEvent,
) -> Result<String, BackupError> {
    let mut errors = FieldErrors::default();
    let recipients = encryption::parse_recipients(&request.recipients).unwrap_or_else(|message| {
        errors.add("age_recipients", message);
        Vec::new()
    });
    if request.encrypt && recipients.is_empty() && errors.is_empty() {
        errors.add(
            "age_recipients",
            "Add at least one age1… public key to encrypt backups.",
        );
    }
    let identity = match request.identity.trim() {
        "" => None,
        text => match encryption::parse_identity(text) {
            Ok((key, public)) if recipients.contains(&public) => Some(key),
            Ok(_) => {
                errors.add(
                    "age_identity",
                    "This identity matches none of the recipients: it could decrypt none of the \
                     backups.",
                );
                None
            }
            Err(message) => {
                errors.add("age_identity", message);
                None
            }
        },
    };
    let id = project.id;
    let current = db::run(&runner.pool, move |conn| Encryption::find(conn, id)).await?;
    let was_on = current.as_ref().is_some_and(|current| current.enabled);
    if was_on && !request.encrypt && !request.confirm_off {
        errors.add(
            "confirm_off",
            "Confirm that new backups will be stored unencrypted.",
        );
    }
    if !errors.is_empty() {
        return Err(BackupError::Form(errors));
    }
    // The kept identity stays only while it matches a recipient.
    let kept_matches = match &current {
        Some(current) => current
            .open_identity(&runner.keyring, project.organization_id)
            .ok()
            .flatten()
            .and_then(|kept| encryption::parse_identity(&kept).ok())
            .is_some_and(|(_, public)| recipients.contains(&public)),
        None => false,
    };
    let change = match (&identity, kept_matches) {
        (Some(key), _) => Some(Some(key.clone())),
        (None, true) => None,
        (None, false) => Some(None),
    };
    let (action, message) = match (was_on, request.encrypt) {
        (false, true) => (
            "backup.encryption_on",
            "Encryption on: new backups are sealed with age.",
        ),
        (true, false) => (
            "backup.encryption_off",
            "Encryption off: new backups are stored unencrypted.",
        ),
        _ => ("backup.encryption_change", "Encryption settings saved."),
    };
    let mut fields = vec!["encrypt", "age_recipients"];
    if identity.is_some() {
        fields.push("age_identity");
    }
    let event = by.action(action).fields(&fields);
    let (keyring, organization, encrypt) = (
        runner.keyring.clone(),
        project.organization_id,
        request.encrypt,
    );
    db::run(&runner.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            Encryption::save(
                conn,
                &keyring,
                organization,
                id,
                encrypt,
                &recipients,
                change.as_ref().map(|identity| identity.as_deref()),
                actor,
            )
            .map_err(BackupError::Sealing)?;
            event.record(conn)?;
            Ok::<_, BackupError>(())
        })
    })
    .await?;
    Ok(message.to_string())
}

/// Makes a key pair for a project: its recipient added and encryption turned on, the identity
/// kept sealed only when `keep` (else keyhold cannot restore without it being pasted).
/// Answers the identity, to be shown once.
pub async fn generate_key(
    runner: &Runner,
    actor: UserId,
    project: &Project,
    keep: bool,
    by: NewEvent,
) -> Result<(String, String), BackupError> {
    let (identity, recipient) = encryption::generate();
    let id = project.id;
    let current = db::run(&runner.pool, move |conn| Encryption::find(conn, id)).await?;
    let mut recipients = current
        .as_ref()
        .map(Encryption::recipients)
        .unwrap_or_default();
    recipients.push(recipient.clone());
    let fields: &[&str] = if keep {
        &["age_recipients", "keep_identity"]
    } else {
        &["age_recipients"]
    };
    let event = by.action("backup.encryption_generate").fields(fields);
    let (keyring, organization, kept) = (
        runner.keyring.clone(),
        project.organization_id,
        identity.clone(),
    );
    db::run(&runner.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            let identity = if keep {
                Some(Some(kept.as_str()))
            } else {
                None
            };
            Encryption::save(
                conn,
                &keyring,
                organization,
                id,
                true,
                &recipients,
                identity,
                actor,
            )
            .map_err(BackupError::Sealing)?;
            event.record(conn)?;
            Ok::<_, BackupError>(())
        })
    })
    .await?;
    Ok((identity, recipient))
}
