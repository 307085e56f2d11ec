//! Running backups (restores: `restore.rs`, drills: `drill.rs`). A backup streams `pg_dump` (custom format) through a SHA-256
//! counter into a bounded multipart upload, never holding the dump in memory, then checks the
//! stored object's size.
//!
//! Over 600 lines because one backup run is one flow read top to bottom (slot, pre-flight,
//! snapshot and row counts, pg_dump, encryption, upload, checks, completion) beside the
//! runner's settings; restores, buckets and drills live in files of their own.

use std::collections::HashSet;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use chrono::Utc;
use diesel::Connection as _;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

pub(crate) use crate::backup::bucket::denied_or;
pub use crate::backup::bucket::{prepare_bucket, s3_settings};
use crate::backup::drill::BackupTable;
use crate::backup::encryption::{self, Encryption};
use crate::backup::model::Backup;
use crate::credentials::model::Credential;
use crate::credentials::verify::{Outcome, VerifyState};
use crate::crypto::Keyring;
use crate::db::{self, DbPool};
use crate::ids::BackupId;
use crate::outbound::Outbound;
use crate::projects::data_source::{Checked, DataSource, SourceRules, TableRows};
use crate::projects::model::{Project, SourceUse};
use crate::projects::phase::Phase;
use crate::storage::{MAX_PARTS, MEMORY_PART, S3Settings, Storage, UploadFailure};

/// How long `pg_dump` may give nothing before the backup is treated as stuck (it may wait for
/// a lock that long).
const DUMP_SILENCE: Duration = Duration::from_secs(30 * 60);
/// How long a run may stay silent before the scheduler declares its process dead (the runner
/// beats four times as often).
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(60);

/// Counts and hashes what is read through it (and adds the count to `progress`, when given, for
/// the run's beats to record).
pub(crate) struct Hashing<T> {
    inner: T,
    hasher: Sha256,
    pub(crate) bytes: u64,
    progress: Option<Arc<AtomicU64>>,
}

impl<T> Hashing<T> {
    pub(crate) fn new(inner: T) -> Hashing<T> {
        Hashing {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
            progress: None,
        }
    }

    /// The same, adding what passes to `progress` too.
    pub(crate) fn counting(mut self, progress: Arc<AtomicU64>) -> Hashing<T> {
        self.progress = Some(progress);
        self
    }

    pub(crate) fn digest(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Hashing<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            let new = &buf.filled()[before..];
            let read = new.len() as u64;
            self.hasher.update(new);
            self.bytes += read;
            if let Some(progress) = &self.progress {
                progress.fetch_add(read, Ordering::Relaxed);
            }
        }
        poll
    }
}

/// The last lines of a tool's error output, on one line.
pub(crate) async fn tail(mut stderr: impl AsyncRead + Unpin) -> String {
    let mut text = String::new();
    let mut buffer = vec![0u8; 8192];
    while let Ok(n) = stderr.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buffer[..n]));
        if text.len() > 64 * 1024 {
            text.drain(..text.len() - 16 * 1024);
        }
    }
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

/// An S3 object key part: letters, digits, `.`, `_` and `-` only.
fn key_part(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// `<project>/<policy>/<timestamp>.dump`; slots on whole seconds read plainly, "backup now"
/// runs keep their microseconds so two of them never share a key.
pub fn object_key(project: &str, policy: &str, slot: chrono::DateTime<Utc>) -> String {
    use chrono::Timelike;
    let timestamp = if slot.nanosecond() == 0 {
        slot.format("%Y%m%dT%H%M%SZ").to_string()
    } else {
        slot.format("%Y%m%dT%H%M%S%.6fZ").to_string()
    };
    format!(
        "{}/{}/{timestamp}.dump",
        key_part(project),
        key_part(policy)
    )
}

/// Runs backups and restores for the pages and the scheduler.
#[derive(Clone)]
pub struct Runner {
    pub pool: DbPool,
    pub keyring: Keyring,
    pub outbound: Outbound,
    /// What data sources and restore targets must satisfy (SPEC §13).
    pub sources: SourceRules,
    /// Backups run at once by this process (`KEYHOLD_BACKUP_CONCURRENCY`), scheduled or not.
    permits: Arc<tokio::sync::Semaphore>,
    /// Backups running in this process (for graceful shutdown).
    in_flight: Arc<Mutex<HashSet<BackupId>>>,
    /// Deadline of one S3 request, and of a stalled download (`KEYHOLD_BACKUP_TRANSFER_TIMEOUT_SECONDS`).
    pub(crate) transfer_timeout: Duration,
    /// Parts of one object at most (S3's limit; lowered by tests).
    max_parts: u32,
    /// Parts larger than this are spooled to disk (`storage::MEMORY_PART`; lowered by tests).
    memory_part: usize,
    /// Silence after which a run counts as dead (`KEYHOLD_BACKUP_STALE_SECONDS`).
    pub stale_after: Duration,
    /// Where restores download their object, and how they run `pg_restore`.
    pub(crate) restores: RestoreSettings,
    /// The server drills restore on (`KEYHOLD_DRILL_DATABASE_URL`); the project's own if unset.
    pub(crate) drill_server: Option<String>,
}

/// How restores run: where the object is downloaded (`KEYHOLD_RESTORE_DIRECTORY`), the free
/// space left on that disk beside the download (`KEYHOLD_RESTORE_KEEP_FREE_MB`), the
/// `pg_restore --jobs` of a parallel restore (`KEYHOLD_RESTORE_JOBS`), and how the download is
/// spread: `download_streams` ranged GETs of `download_part` bytes at once
/// (`KEYHOLD_RESTORE_DOWNLOAD_STREAMS`, `KEYHOLD_RESTORE_DOWNLOAD_PART_KB`).
#[derive(Clone, Debug)]
pub struct RestoreSettings {
    pub directory: std::path::PathBuf,
    pub keep_free: u64,
    pub jobs: u32,
    pub download_streams: usize,
    pub download_part: u64,
}

impl Default for RestoreSettings {
    fn default() -> RestoreSettings {
        RestoreSettings {
            directory: std::env::temp_dir(),
            keep_free: 64 * 1024 * 1024,
            jobs: 2,
            download_streams: 4,
            download_part: 8 * 1024 * 1024,
        }
    }
}

/// What a run stored: the object's key, size and SHA-256, and the rows of each table in it.
struct Dumped {
    key: String,
    size: u64,
    sha256: String,
    tables: Vec<TableRows>,
}

/// Why a backup ended without completing: its phase and reason.
struct Ended(Phase, String);

impl Runner {
    pub fn new(pool: DbPool, keyring: Keyring, outbound: Outbound, sources: SourceRules) -> Runner {
        Runner {
            pool,
            keyring,
            outbound,
            sources,
            permits: Arc::new(tokio::sync::Semaphore::new(2)),
            in_flight: Arc::new(Mutex::new(HashSet::new())),
            transfer_timeout: Duration::from_secs(60),
            max_parts: MAX_PARTS,
            memory_part: MEMORY_PART,
            stale_after: DEFAULT_STALE_AFTER,
            restores: RestoreSettings::default(),
            drill_server: None,
        }
    }

    /// The same runner, restoring drills on the server of `url` (a database on it).
    pub fn with_drill_server(mut self, url: Option<String>) -> Runner {
        self.drill_server = url;
        self
    }

    /// The same runner, restoring with `settings`.
    pub fn with_restores(mut self, settings: RestoreSettings) -> Runner {
        self.restores = settings;
        self
    }

    /// The same runner, giving S3 `timeout` per request and splitting objects into at most
    /// `max_parts` parts.
    pub fn with_transfers(mut self, timeout: Duration, max_parts: u32) -> Runner {
        self.transfer_timeout = timeout.max(Duration::from_secs(1));
        self.max_parts = max_parts.max(1);
        self
    }

    /// The same runner, spooling upload parts larger than `bytes` to disk.
    pub fn with_memory_part(mut self, bytes: usize) -> Runner {
        self.memory_part = bytes;
        self
    }

    /// The same runner, running at most `concurrency` backups at once.
    pub fn with_concurrency(mut self, concurrency: usize) -> Runner {
        self.permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        self
    }

    /// Beats for run `id` every quarter of the stale limit until the returned task is aborted.
    pub(crate) fn beat<F>(&self, beat: F) -> actix_web::rt::task::JoinHandle<()>
    where
        F: Fn(&mut diesel::PgConnection) -> diesel::QueryResult<()> + Send + Clone + 'static,
    {
        let pool = self.pool.clone();
        // At least every 5 s: a backup's beat also records its progress.
        let every = (self.stale_after / 4).min(Duration::from_secs(5));
        actix_web::rt::spawn(async move {
            let mut interval = actix_web::rt::time::interval(every);
            loop {
                interval.tick().await;
                let beat = beat.clone();
                let _ = db::run(&pool, beat).await;
            }
        })
    }

    /// The same runner, declaring runs dead after `stale_after` of silence.
    pub fn with_stale_after(mut self, stale_after: Duration) -> Runner {
        self.stale_after = stale_after.max(Duration::from_secs(2));
        self
    }

    /// Applies every rule to `source` (address, authentication, keyhold's own database) and
    /// refuses a database that `usage` excludes.
    pub async fn check_source(
        &self,
        source: &DataSource,
        usage: SourceUse,
    ) -> Result<Checked, String> {
        let checked = source.check(&self.outbound, &self.sources).await?;
        let identity = checked.identity.identity.clone();
        let refused = db::run(&self.pool, move |conn| usage.refused(conn, &identity))
            .await
            .map_err(|error| format!("could not check the database's other uses: {error}"))?;
        if refused {
            return Err(usage.message(&checked.display()));
        }
        Ok(checked)
    }

    /// Checks a project's own data source and records which database it is.
    pub async fn check_project_source(&self, project: &Project) -> Result<Checked, String> {
        let url = project.open_database_url(&self.keyring).map_err(|_| {
            "the project's database URL cannot be opened with the configured keys".to_string()
        })?;
        let source = DataSource::parse(&url)?;
        let checked = self
            .check_source(
                &source,
                SourceUse::DataSource {
                    organization: project.organization_id,
                    project: Some(project.id),
                },
            )
            .await?;
        let (id, identity, schemas) = (
            project.id,
            checked.identity.identity.clone(),
            checked.schemas.clone(),
        );
        db::run(&self.pool, move |conn| {
            Project::record_source(conn, id, &identity, &schemas)
        })
        .await
        .map_err(|error| format!("could not record the data source: {error}"))?;
        Ok(checked)
    }

    /// Runs a New backup to its end, recording the outcome; never panics. It first waits for
    /// one of the process's slots, beating meanwhile (waiting is not dying).
    pub async fn run_backup(&self, id: BackupId) {
        if let Ok(mut running) = self.in_flight.lock() {
            running.insert(id);
        }
        let waiting = self.beat(move |conn| Backup::heartbeat(conn, id, None));
        let permit = self.permits.clone().acquire_owned().await;
        waiting.abort();
        let outcome = self.backup(id).await;
        drop(permit);
        let ended = match outcome {
            Ok(completed) => completed.then_some(true),
            Err(Ended(phase, reason)) => {
                tracing::warn!(backup = id.0, "backup {phase}: {reason}");
                let _ = db::run(&self.pool, move |conn| {
                    Backup::end(conn, id, phase, &reason)
                })
                .await;
                Some(false)
            }
        };
        if let Some(completed) = ended {
            self.heartbeat(id, completed).await;
        }
        if let Ok(mut running) = self.in_flight.lock() {
            running.remove(&id);
        }
    }

    /// Runs the backup; `Ok(true)` when this process completed it, `Ok(false)` when it was not
    /// this process's to run (another claimed it, or it had ended).
    async fn backup(&self, id: BackupId) -> Result<bool, Ended> {
        let failed = |reason: String| Ended(Phase::Failed, reason);
        let (backup, project, credential, encryption) = db::run(&self.pool, move |conn| {
            let backup = Backup::find_any(conn, id)?;
            let project = Project::find_any(conn, backup.project_id)?;
            let credential = match project.backup_credential_id {
                Some(credential) => Some(Credential::find_any(conn, credential)?),
                None => None,
            };
            let encryption = Encryption::find(conn, project.id)?;
            Ok::<_, diesel::result::Error>((backup, project, credential, encryption))
        })
        .await
        .map_err(|error| failed(format!("could not load the backup: {error}")))?;
        if backup.phase != Phase::New {
            return Ok(false);
        }
        let Some(credential) = credential.filter(|_| project.backup_enabled) else {
            return Err(Ended(
                Phase::Skipped,
                "backup is disabled for this project".into(),
            ));
        };
        if credential.is_locked {
            return Err(Ended(Phase::Skipped, "credentials locked".into()));
        }
        if let Some(date) = credential.expires_on.filter(|_| credential.expired()) {
            return Err(failed(format!("credentials expired on {date}")));
        }
        let bucket_name = project.bucket.clone().unwrap_or_default();
        let (credential_id, claim_bucket) = (credential.id, bucket_name.clone());
        let claimed = db::run(&self.pool, move |conn| {
            Backup::claim(conn, id, Some(credential_id), Some(&claim_bucket))
        })
        .await
        .map_err(|error| failed(format!("could not start: {error}")))?;
        let Some(backup) = claimed else {
            return Ok(false); // another process runs it
        };

        let recipients = encryption
            .filter(|encryption| encryption.enabled)
            .map(|encryption| encryption.recipients());
        // The beats record what is stored so far, for the Backups tab.
        let progress = Arc::new(AtomicU64::new(0));
        let stored = progress.clone();
        let heartbeat = self.beat(move |conn| {
            Backup::heartbeat(conn, id, Some(stored.load(Ordering::Relaxed) as i64))
        });
        let result = self
            .dump_and_upload(
                &backup,
                &project,
                &credential,
                &bucket_name,
                recipients.as_deref(),
                progress,
            )
            .await;
        heartbeat.abort();
        let Dumped {
            key,
            size,
            sha256,
            tables,
        } = result.map_err(failed)?;
        let expires_at = backup.started_at.unwrap_or_else(Utc::now)
            + chrono::Duration::seconds(self.retention_of(&backup).await);
        db::run(&self.pool, move |conn| {
            conn.transaction(|conn| {
                Backup::complete(
                    conn,
                    id,
                    &key,
                    size as i64,
                    &sha256,
                    expires_at,
                    recipients.as_deref(),
                )?;
                BackupTable::record(conn, id, &tables)
            })
        })
        .await
        .map_err(|error| failed(format!("uploaded, but could not record it: {error}")))?;
        tracing::info!(backup = id.0, bytes = size, "backup completed");
        self.drill_after_backup(id).await;
        Ok(true)
    }

    /// Calls the policy's heartbeat URL, if it has one: `<url>` after a completed backup,
    /// `<url>/fail` after one that failed or was skipped. Through the outbound rules; a
    /// heartbeat that does not answer is logged, never retried (the next run calls again).
    async fn heartbeat(&self, id: BackupId, completed: bool) {
        let url = db::run(&self.pool, move |conn| {
            let backup = Backup::find_any(conn, id)?;
            let Some(policy) = backup.policy_id else {
                return Ok(None);
            };
            crate::backup::model::BackupPolicy::find(conn, backup.project_id, policy)
                .map(|policy| policy.heartbeat_url)
        })
        .await;
        let Ok(Some(url)) = url else {
            return;
        };
        let Ok(mut url) = url::Url::parse(&url) else {
            return;
        };
        if !completed {
            // `/fail` goes on the path, before any query string.
            let path = format!("{}/fail", url.path().trim_end_matches('/'));
            url.set_path(&path);
        }
        let called = match self.outbound.check_target(&url).await {
            Ok(()) => self
                .outbound
                .client
                .get(url.clone())
                .send()
                .await
                .map_err(|error| error.to_string())
                .and_then(|response| {
                    response
                        .error_for_status()
                        .map(|_| ())
                        .map_err(|error| error.to_string())
                }),
            Err(reason) => Err(reason),
        };
        if let Err(reason) = called {
            tracing::warn!(
                backup = id.0,
                "heartbeat {} not taken: {reason}",
                crate::outbound::origin(&url)
            );
        }
    }

    /// The retention of the backup's policy (a deleted policy's backups keep 720h).
    async fn retention_of(&self, backup: &Backup) -> i64 {
        let (project, policy) = (backup.project_id, backup.policy_id);
        let found = match policy {
            Some(policy) => db::run(&self.pool, move |conn| {
                crate::backup::model::BackupPolicy::find(conn, project, policy)
            })
            .await
            .ok()
            .map(|policy| policy.retention_secs),
            None => None,
        };
        found.unwrap_or(720 * 3600)
    }

    async fn dump_and_upload(
        &self,
        backup: &Backup,
        project: &Project,
        credential: &Credential,
        bucket_name: &str,
        recipients: Option<&[String]>,
        progress: Arc<AtomicU64>,
    ) -> Result<Dumped, String> {
        let settings = s3_settings(credential, &self.keyring)?;
        let storage = self.storage(&settings, bucket_name).await?;
        self.preflight(backup.id, &storage, credential).await?;
        let source = self.check_project_source(project).await?;
        let mut key = object_key(&project.name, &backup.policy_name, backup.scheduled_for);
        if recipients.is_some() {
            key.push_str(".age");
        }
        // pg_dump dumps the snapshot of a transaction of keyhold's, which counts the rows of
        // every table in that same snapshot meanwhile: the counts describe the dump exactly.
        let (source, mut snapshot) =
            tokio::task::spawn_blocking(move || source.snapshot().map(|taken| (source, taken)))
                .await
                .map_err(|_| "could not take a snapshot".to_string())??;
        let mut child = source
            .pg_dump(&backup.namespaces(), Some(&snapshot.id))
            .spawn()
            .map_err(|error| format!("could not start pg_dump: {error}"))?;
        let counted = backup.namespaces();
        let counting = tokio::task::spawn_blocking(move || {
            let tables = snapshot.count(&counted);
            (snapshot, tables)
        });
        let stdout = child.stdout.take().ok_or("pg_dump has no output")?;
        let stderr = child.stderr.take().ok_or("pg_dump has no error output")?;
        let errors = actix_web::rt::spawn(tail(stderr));
        // Encrypted, the dump passes through age on its own task into a pipe the upload reads;
        // size and SHA-256 are of the stored (encrypted) bytes.
        let (mut reader, sealing): (Hashing<Box<dyn AsyncRead + Unpin + Send>>, _) =
            match recipients {
                Some(recipients) => {
                    let (writer, pipe) = tokio::io::duplex(256 * 1024);
                    let recipients = recipients.to_vec();
                    let sealing = actix_web::rt::spawn(async move {
                        encryption::encrypt(&recipients, stdout, writer).await
                    });
                    (
                        Hashing::new(Box::new(pipe) as Box<_>).counting(progress),
                        Some(sealing),
                    )
                }
                None => (
                    Hashing::new(Box::new(stdout) as Box<_>).counting(progress),
                    None,
                ),
            };
        let (pool, id, upload_key) = (&self.pool, backup.id, key.as_str());
        let opened = async |upload: Option<String>| {
            let key = upload_key.to_string();
            let _ = db::run(pool, move |conn| {
                Backup::set_upload(conn, id, upload.as_deref().map(|u| (key.as_str(), u)))
            })
            .await;
        };
        let upload = storage
            .upload(
                &key,
                &mut reader,
                DUMP_SILENCE,
                &format!("uploading {key} to bucket {bucket_name}"),
                opened,
            )
            .await;
        if upload.is_err() {
            // A failed upload ends the dump too (and its PostgreSQL backend with it).
            let _ = child.start_kill();
        }
        let (bytes, digest) = (reader.bytes, reader.digest());
        drop(reader); // an encryption still writing into the pipe stops
        let sealed = match sealing {
            Some(task) => task
                .await
                .unwrap_or_else(|_| Err("the encryption stopped".into())),
            None => Ok(()),
        };
        let status = child
            .wait()
            .await
            .map_err(|error| format!("pg_dump did not finish: {error}"))?;
        let errors = errors.await.unwrap_or_default();
        // The snapshot's transaction ends only once pg_dump has ended.
        let tables = match counting.await {
            Ok((snapshot, tables)) => {
                drop(snapshot);
                tables
            }
            Err(_) => Err("the row count stopped".to_string()),
        };
        let remove_partial = || async {
            let _ = storage.delete(&key, "removing a partial object").await;
        };
        match upload {
            Ok(_) => {}
            Err(UploadFailure::Source(reason)) if status.success() => return Err(reason),
            Err(UploadFailure::Source(_)) => {
                return Err(format!("pg_dump failed ({status}): {errors}"));
            }
            Err(UploadFailure::Storage(failure)) => {
                return Err(denied_or(
                    &failure,
                    &format!("write denied on bucket {bucket_name}"),
                ));
            }
        }
        if !status.success() {
            remove_partial().await;
            return Err(format!("pg_dump failed ({status}): {errors}"));
        }
        if let Err(reason) = sealed {
            remove_partial().await;
            return Err(reason);
        }
        let tables = match tables {
            Ok(tables) => tables,
            Err(reason) => {
                remove_partial().await;
                return Err(reason);
            }
        };
        let stored = storage
            .size(
                &key,
                &format!("reading back {key} from bucket {bucket_name}"),
            )
            .await
            .map_err(|failure| {
                denied_or(
                    &failure,
                    &format!("the uploaded object in {bucket_name} cannot be read back"),
                )
            })?;
        if stored != Some(bytes) {
            remove_partial().await;
            return Err(format!(
                "the stored object has {stored:?} bytes where {bytes} were sent"
            ));
        }
        Ok(Dumped {
            key,
            size: bytes,
            sha256: digest,
            tables,
        })
    }

    /// Checks, before `pg_dump` starts, that the bucket is there and the key reaches it, and
    /// records what it found on the backup. A key S3 refuses also marks its credential failed
    /// (the Credentials tab tells before the next backup fails), and a failed credential that
    /// works again is marked verified. A key that may write but not list goes on, noted.
    async fn preflight(
        &self,
        id: BackupId,
        storage: &Storage,
        credential: &Credential,
    ) -> Result<(), String> {
        let bucket = storage.name().to_string();
        let (found, verdict) = match storage.bucket_exists().await {
            Ok(true) => {
                let found = format!("bucket {bucket} reached with {}", credential.name);
                let outcome = Outcome::Ok(format!("a backup's pre-flight check: {found}"));
                (Ok(found), Some(outcome))
            }
            Ok(false) => (
                Err(format!(
                    "bucket {bucket} no longer exists: create it, or disable and enable backup \
                     again so keyhold creates it"
                )),
                None,
            ),
            Err(failure) if failure.bad_credentials() => {
                let outcome = Outcome::Failed(format!(
                    "a backup's pre-flight check: {failure} ({})",
                    failure.answer()
                ));
                (Err(failure.to_string()), Some(outcome))
            }
            Err(failure) if failure.denied() => (
                Ok(format!(
                    "listing bucket {bucket} is denied ({}); the backup goes on",
                    failure.answer()
                )),
                None,
            ),
            Err(failure) => (Err(failure.to_string()), None),
        };
        let record = match &found {
            Ok(found) => found.clone(),
            Err(reason) => reason.clone(),
        };
        // Only a change of verdict is written: a passing check keeps a warning's words.
        let verdict = verdict.filter(|outcome| {
            let was_failed = credential.verification() == Some(VerifyState::Failed);
            matches!(outcome, Outcome::Failed(_)) || was_failed
        });
        let credential = credential.clone();
        let _ = db::run(&self.pool, move |conn| {
            Backup::set_preflight(conn, id, &record)?;
            if let Some(outcome) = &verdict {
                credential.record_verification(conn, outcome)?;
            }
            Ok::<_, diesel::result::Error>(())
        })
        .await;
        found.map(|_| ())
    }

    /// A handle on `bucket` with this runner's transfer deadline and part limit.
    async fn storage(&self, settings: &S3Settings, bucket: &str) -> Result<Storage, String> {
        Ok(Storage::open(&self.outbound, settings, bucket)
            .await?
            .with_transfers(self.transfer_timeout, self.max_parts)
            .with_memory_part(self.memory_part))
    }

    /// The storage a backup was written to, opened (its credential must still exist).
    pub(crate) async fn storage_of(
        &self,
        backup: &Backup,
    ) -> Result<Option<(Storage, Credential)>, String> {
        let (Some(credential_id), Some(bucket_name)) = (backup.credential_id, &backup.bucket)
        else {
            return Ok(None);
        };
        let credential = db::run(&self.pool, move |conn| {
            Credential::find_any(conn, credential_id)
        })
        .await
        .map_err(|_| "the backup credential of this backup no longer exists".to_string())?;
        let settings = s3_settings(&credential, &self.keyring)?;
        Ok(Some((
            self.storage(&settings, bucket_name).await?,
            credential,
        )))
    }

    /// Aborts the multipart upload an ended run left open (its process died, or S3 could not
    /// take the abort then); true when nothing is left to abort.
    pub async fn abort_upload(&self, backup: &Backup, key: &str, upload: &str) -> bool {
        match self.storage_of(backup).await {
            Ok(Some((storage, _))) => storage.abort(key, upload).await,
            // The credential is gone: nothing keyhold can reach is left to abort.
            Ok(None) | Err(_) => true,
        }
    }

    /// Aborts, in every bucket projects back up to, the multipart uploads older than
    /// `older_than` that no run of this database knows: what a keyhold killed between opening
    /// an upload and recording it left behind. Returns how many were aborted.
    pub async fn abort_forgotten_uploads(&self, older_than: Duration) -> Result<usize, String> {
        let (buckets, keep) = db::run(&self.pool, |conn| {
            Ok::<_, diesel::result::Error>((
                Project::backup_buckets(conn)?,
                Backup::open_upload_ids(conn)?,
            ))
        })
        .await
        .map_err(|error| error.to_string())?;
        let mut aborted = 0;
        for (credential, bucket) in buckets {
            let found = db::run(&self.pool, move |conn| {
                Credential::find_any(conn, credential)
            })
            .await;
            let Ok(credential) = found else { continue };
            let storage = match s3_settings(&credential, &self.keyring) {
                Ok(settings) => self.storage(&settings, &bucket).await,
                Err(reason) => Err(reason),
            };
            match storage {
                Ok(storage) => match storage.abort_forgotten_uploads(older_than, &keep).await {
                    Ok(n) => aborted += n,
                    Err(failure) => tracing::warn!("{failure}"),
                },
                Err(reason) => tracing::warn!("bucket {bucket}: {reason}"),
            }
        }
        Ok(aborted)
    }

    /// Deletes a backup's object (one already gone counts as deleted).
    pub async fn delete_object(&self, backup: &Backup) -> Result<(), String> {
        let Some(key) = &backup.object_key else {
            return Ok(());
        };
        let Some((storage, _)) = self.storage_of(backup).await? else {
            return Ok(());
        };
        storage
            .delete(
                key,
                &format!("deleting {key} from bucket {}", storage.name()),
            )
            .await
            .map_err(|failure| {
                denied_or(
                    &failure,
                    &format!("delete denied on bucket {}", storage.name()),
                )
            })
    }

    /// Waits up to `grace` for running backups, then marks what is left as interrupted.
    pub async fn shutdown(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let left: Vec<BackupId> = self
                .in_flight
                .lock()
                .map(|r| r.iter().copied().collect())
                .unwrap_or_default();
            if left.is_empty() {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                for id in left {
                    let _ = db::run(&self.pool, move |conn| {
                        Backup::end(
                            conn,
                            id,
                            Phase::Failed,
                            "interrupted: keyhold was stopped during the upload",
                        )
                    })
                    .await;
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_follow_project_policy_and_slot() {
        use chrono::TimeZone;
        let slot = Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 0).unwrap();
        assert_eq!(
            object_key("shop", "nightly run", slot),
            "shop/nightly-run/20261122T020000Z.dump"
        );
        let now = slot + chrono::Duration::microseconds(1234);
        assert_eq!(
            object_key("shop", "n", now),
            "shop/n/20261122T020000.001234Z.dump"
        );
    }

    #[tokio::test]
    async fn hashing_counts_and_hashes_what_it_reads() {
        let mut reader = Hashing::new(&b"hello world"[..]);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).await.unwrap();
        assert_eq!(reader.bytes, 11);
        assert_eq!(
            reader.digest(),
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
    }
}
