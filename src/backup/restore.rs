//! Restores (SPEC §5): a backup's object downloaded to a private file (free disk checked
//! first), its size and SHA-256 compared, an encrypted one decrypted wholly into a second
//! file, and only then `pg_restore` on the file, so a corrupted or replaced object, a wrong key
//! or a short disk never touches the target. Drills (`drill.rs`) use the same two steps.

use crate::backup::encryption::{self, Encryption};
use crate::backup::model::{Backup, Restore};
use crate::backup::runner::{Runner, denied_or, tail};
use crate::backup::spool::Spool;
use crate::db;
use crate::projects::data_source::{Checked, DataSource};
use crate::projects::model::{Project, SourceUse};
use crate::projects::phase::Phase;

impl Runner {
    /// Restores `backup` into `target` (the project database when `None`), recording the outcome.
    pub async fn run_restore(
        &self,
        restore: Restore,
        backup: Backup,
        project: Project,
        target: Option<String>,
        identity: Option<String>,
    ) {
        let id = restore.id;
        let heartbeat = self.beat(move |conn| Restore::heartbeat(conn, id));
        let outcome = self
            .restore(&restore, &backup, &project, target, identity)
            .await;
        heartbeat.abort();
        let (phase, warnings) = match outcome {
            Ok(warnings) => (Phase::Completed, warnings),
            Err(reason) => (Phase::Failed, Some(reason)),
        };
        tracing::info!(restore = id.0, "restore {phase}");
        let _ = db::run(&self.pool, move |conn| {
            Restore::end(conn, id, phase, warnings.as_deref())
        })
        .await;
    }

    /// Restores into the checked target: the object fetched and checked first
    /// (`fetch_checked`), then applied (`apply`), so a corrupted or replaced object, a wrong
    /// key or a short disk never touches the target.
    async fn restore(
        &self,
        restore: &Restore,
        backup: &Backup,
        project: &Project,
        target: Option<String>,
        identity: Option<String>,
    ) -> Result<Option<String>, String> {
        let source = match target {
            Some(url) => {
                self.check_source(
                    &DataSource::parse(&url)?,
                    SourceUse::RestoreTarget(project.id),
                )
                .await?
            }
            None => self.check_project_source(project).await?,
        };
        let started = std::time::Instant::now();
        let file = self.fetch_checked(backup, project, identity).await?;
        let fetched = started.elapsed();
        let applied = self
            .apply(source, restore.namespaces(), file, restore.parallel)
            .await;
        tracing::info!(
            restore = restore.id.0,
            fetch_seconds = fetched.as_secs_f64(),
            apply_seconds = (started.elapsed() - fetched).as_secs_f64(),
            "restore steps timed"
        );
        applied
    }

    /// Downloads a backup's object to a private file (free disk checked first), checks its
    /// size and SHA-256 and decrypts an encrypted one wholly into a second file, with
    /// `identity` or the one the project keeps: a file `pg_restore` may read.
    pub(crate) async fn fetch_checked(
        &self,
        backup: &Backup,
        project: &Project,
        identity: Option<String>,
    ) -> Result<tempfile::NamedTempFile, String> {
        let (Some(key), Some(size)) = (backup.object_key.clone(), backup.size_bytes) else {
            return Err("the backup has no stored object".into());
        };
        let Some((storage, credential)) = self.storage_of(backup).await? else {
            return Err("the backup has no stored object".into());
        };
        if credential.is_locked {
            return Err("credentials locked".into());
        }
        // An encrypted backup is decrypted with the identity given for this restore, else the
        // one the project keeps.
        let identity = match (backup.encrypted_to(), identity) {
            (None, _) => None,
            (Some(_), Some(given)) => Some(given),
            (Some(recipients), None) => {
                let (project_id, organization) = (project.id, project.organization_id);
                let kept = db::run(&self.pool, move |conn| Encryption::find(conn, project_id))
                    .await
                    .map_err(|error| format!("could not read the encryption settings: {error}"))?
                    .map(|encryption| encryption.open_identity(&self.keyring, organization))
                    .transpose()
                    .map_err(|_| {
                        "the project's age identity cannot be opened with the configured keys"
                            .to_string()
                    })?
                    .flatten();
                Some(kept.ok_or_else(|| {
                    format!(
                        "this backup is encrypted and keyhold keeps no key for it: paste the age \
                         identity of {} on the restore form",
                        recipients
                            .iter()
                            .map(|r| encryption::short(r))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    )
                })?)
            }
        };
        let directory = &self.restores.directory;
        let free = free_bytes(directory);
        // An encrypted download is decrypted into a second file beside it.
        let copies = if identity.is_some() { 2 } else { 1 };
        let needed = copies * size as u64 + self.restores.keep_free;
        if free.is_some_and(|free| free < needed) {
            return Err(format!(
                "not enough free disk in {} for the download: {} MiB needed, {} MiB free; \
                 the target database was not changed",
                directory.display(),
                needed.div_ceil(1024 * 1024),
                free.unwrap_or_default() / (1024 * 1024)
            ));
        }
        let file = tempfile::Builder::new()
            .prefix("keyhold-restore-")
            .tempfile_in(directory)
            .map_err(|error| format!("could not create the download file: {error}"))?;
        let writer = file
            .reopen()
            .map_err(|error| format!("could not open the download file: {error}"))?;
        // Hashed and written on a thread of its own, so the ranged GETs go on meanwhile.
        let mut writer = Spool::new(writer);
        let transfer = crate::storage::Transfer {
            streams: self.restores.download_streams,
            part: self.restores.download_part,
            stall: self.transfer_timeout,
        };
        let downloading = std::time::Instant::now();
        storage
            .download_ranges(
                &key,
                size as u64,
                &mut writer,
                transfer,
                &format!("downloading {key} from bucket {}", storage.name()),
            )
            .await
            .map_err(|failure| {
                denied_or(
                    &failure,
                    &format!("read denied on bucket {}", storage.name()),
                )
            })?;
        let written = writer
            .finish()
            .await
            .map_err(|error| format!("could not write the download: {error}"))?;
        let seconds = downloading.elapsed().as_secs_f64();
        tracing::info!(
            backup = backup.id.0,
            bytes = written.bytes,
            seconds,
            megabytes_per_second = written.bytes as f64 / 1e6 / seconds.max(1e-3),
            "download timed"
        );
        if written.bytes != size as u64 || backup.sha256.as_deref() != Some(written.digest.as_str())
        {
            return Err(format!(
                "checksum mismatch: the stored object ({} bytes) differs from what was backed \
                 up ({size} bytes); the target database was not changed",
                written.bytes
            ));
        }
        // Decrypted wholly before anything touches the target: age authenticates every chunk,
        // so a wrong key, a cut or a changed byte is refused here.
        let file = match identity {
            None => file,
            Some(identity) => {
                let plain = tempfile::Builder::new()
                    .prefix("keyhold-restore-")
                    .tempfile_in(directory)
                    .map_err(|error| format!("could not create the decryption file: {error}"))?;
                let (input, output) = (file.path().to_path_buf(), plain.path().to_path_buf());
                tokio::task::spawn_blocking(move || {
                    encryption::decrypt_file(&input, &output, &identity)
                })
                .await
                .map_err(|_| "the decryption stopped".to_string())?
                .map_err(|failure| format!("{failure}; the target database was not changed"))?;
                drop(file);
                plain
            }
        };
        Ok(file)
    }

    /// `pg_restore` of a fetched and checked `file` into `source`: schemas of `namespaces`
    /// created, one transaction into a database holding data unless `parallel`, `--jobs` into
    /// an empty one. Answers pg_restore's warnings.
    pub(crate) async fn apply(
        &self,
        source: Checked,
        namespaces: Vec<String>,
        file: tempfile::NamedTempFile,
        parallel: bool,
    ) -> Result<Option<String>, String> {
        let preparing = namespaces.clone();
        let (source, held) = tokio::task::spawn_blocking(move || {
            source
                .prepare_restore(&preparing)
                .map(|held| (source, held))
        })
        .await
        .map_err(|_| "could not prepare the target database".to_string())??;
        // Into a database that holds data: all or nothing, unless a parallel restore was asked
        // for. Into an empty one, jobs speed it up and a failure leaves only part of a copy.
        let jobs = (parallel || held == 0).then_some(self.restores.jobs);
        let mut child = source
            .pg_restore(&namespaces, file.path(), jobs)
            .spawn()
            .map_err(|error| format!("could not start pg_restore: {error}"))?;
        let stderr = child
            .stderr
            .take()
            .ok_or("pg_restore has no error output")?;
        let errors = actix_web::rt::spawn(tail(stderr));
        let status = child
            .wait()
            .await
            .map_err(|error| format!("pg_restore did not finish: {error}"))?;
        let errors = errors.await.unwrap_or_default();
        drop(file);
        if status.success() {
            Ok((!errors.is_empty()).then_some(errors))
        } else if errors.contains("errors ignored on restore") {
            Ok(Some(errors))
        } else {
            let left = match (jobs, held) {
                (None, _) => "nothing was changed (one transaction)",
                (Some(_), 0) => {
                    "the target held no tables before; what was restored before the \
                                 failure is left in it"
                }
                (Some(_), _) => {
                    "parallel restore: what was restored before the failure is left \
                                 in the target"
                }
            };
            Err(format!("pg_restore failed ({status}): {errors}; {left}"))
        }
    }
}

/// Free bytes on the file system of `directory`, when the system says.
fn free_bytes(directory: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(directory.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid C string and `stat` a writable statvfs.
    let answer = unsafe { libc::statvfs(path.as_ptr(), &mut stat) };
    (answer == 0).then(|| stat.f_bavail as u64 * stat.f_frsize as u64)
}
