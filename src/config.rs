//! Settings, read once from the environment at start-up (a `.env` file is read in development).
//!
//! Variables (all optional unless `KEYHOLD_ENV=production`):
//! - `DATABASE_URL`: PostgreSQL URL; default `postgres://postgres@127.0.0.1:5432/keyhold`.
//! - `KEYHOLD_BIND`: address to listen on; default `127.0.0.1:8080`.
//! - `KEYHOLD_ENV`: `development` (default) or `production`.
//! - `KEYHOLD_SESSION_KEY`: 64 random bytes, base64; signs and encrypts the session cookie.
//! - `KEYHOLD_DATA_KEYS`: keyring for secrets at rest, `id:base64-32-bytes[,id:…]`.
//! - `KEYHOLD_DATA_KEY_ACTIVE`: id of the key new secrets are sealed with; default the first.
//! - `KEYHOLD_KEY_DIR`: where development keys are generated and kept; default `.keyhold`.
//! - `KEYHOLD_COOKIE_SECURE`: `true`/`false`; default `true` in production, `false` otherwise.
//! - `KEYHOLD_SESSION_IDLE_MINUTES` (default 30), `KEYHOLD_SESSION_ABSOLUTE_HOURS` (default 12).
//! - `KEYHOLD_LOGIN_ACCOUNT_LIMIT` (5), `KEYHOLD_LOGIN_CLIENT_LIMIT` (20): failures per
//!   `KEYHOLD_LOGIN_WINDOW_SECONDS` (900) before sign-in is refused for
//!   `KEYHOLD_LOGIN_BLOCK_SECONDS` (300).
//! - `KEYHOLD_TRUSTED_PROXIES`: comma-separated proxy addresses whose `X-Forwarded-For` is believed.
//! - `KEYHOLD_METRICS_TOKEN`: when set, `/metrics` answers only requests with
//!   `Authorization: Bearer <token>` (compared in constant time; 401 otherwise). Unset, it is
//!   open in development and off (404) in production: its counters are nobody's business.
//! - `KEYHOLD_HASH_CONCURRENCY`: password hashes computed at once; default 2.
//! - `KEYHOLD_DB_POOL_SIZE`: database connections; default twice the cores (at least 4). More
//!   connections than that only add backends and threads competing for the same cores: with 10
//!   on 2 cores, the credentials tab's p99 under a sign-in storm was 282 ms; with 4, 24 ms.
//! - `KEYHOLD_WORKERS`: HTTP worker threads; default the number of cores.
//! - `KEYHOLD_PAGE_CACHE`: keep what the busiest pages read in memory until a notice says its
//!   tables changed (`page_cache`); default `true`.
//! - `KEYHOLD_OUTBOUND_TIMEOUT_SECONDS`: timeout of verification requests; default 5.
//! - `KEYHOLD_OUTBOUND_ALLOW_PRIVATE`: let verification reach private and loopback addresses
//!   (on-premises S3, Proxmox); default `true`. Link-local and metadata addresses never.
//! - `KEYHOLD_DATA_SOURCE_ALLOW_TRUST`: let project data sources and restore targets be servers
//!   that let keyhold in without checking a password (trust, peer). Unsafe: keyhold would lend
//!   its own access to whoever types a URL. Default `true` in development, `false` in production.
//! - `KEYHOLD_DATA_SOURCE_NETWORKS`: comma-separated CIDRs; when set, every address of a data
//!   source's or restore target's host must be in one of them. Default: any address the
//!   outbound rules allow.
//! - `KEYHOLD_AWS_STS_ENDPOINT`: where AWS keys are checked; default `https://sts.amazonaws.com`.
//! - `KEYHOLD_AZURE_AUTHORITY`: where Azure keys are checked; default
//!   `https://login.microsoftonline.com`.
//! - `KEYHOLD_SCHEDULER`: run the backup scheduler inside `serve`; default `true` (turn off
//!   when a separate `keyhold worker` runs it).
//! - `KEYHOLD_SCHEDULER_INTERVAL_SECONDS`: how often due schedules are looked for; default 15.
//! - `KEYHOLD_BACKUP_CONCURRENCY`: backups run at once per process; default 2.
//! - `KEYHOLD_BACKUP_STALE_SECONDS`: silence after which a running backup's process counts as
//!   dead and the run as Failed (interrupted); default 60.
//! - `KEYHOLD_BACKUP_TRANSFER_TIMEOUT_SECONDS`: deadline of one S3 request during backups and
//!   restores (a part upload gets a second more per MiB) and of a download that stalls; default 60.
//! - `KEYHOLD_BACKUP_MEMORY_PART_MB`: upload parts up to this size are held in memory, larger
//!   ones (parts grow in dumps of more than about 24 GB) are spooled to a temporary file;
//!   default 16 (memory stays at about two parts).
//! - `KEYHOLD_MISSED_GRACE_MINUTES`: a policy whose slot passed this long ago without a run
//!   (every instance down, the scheduler off or stuck) is shown as missed; default 15.
//! - `KEYHOLD_RESTORE_DIRECTORY`: where a restore downloads its object before checking it and
//!   handing it to `pg_restore`; default the system's temporary directory.
//! - `KEYHOLD_RESTORE_KEEP_FREE_MB`: free space a restore leaves on that disk beside the
//!   download (refused with a message otherwise); default 64.
//! - `KEYHOLD_RESTORE_JOBS`: `pg_restore --jobs` of restores into an empty database and of
//!   parallel restores; default the number of cores, at most 4.
//! - `KEYHOLD_RESTORE_DOWNLOAD_STREAMS`: ranged GETs a restore's download runs at once, as
//!   S3's own tools download large objects; default 4 (1: one stream).
//! - `KEYHOLD_RESTORE_DOWNLOAD_PART_KB`: the size of each of those GETs; default 8192 (8 MiB).
//!   Memory holds at most streams × part.
//! - `KEYHOLD_REVERIFY_HOURS`: every credential is verified again when its last check is this
//!   old (a few per scheduler pass, spread over the day); default 24, 0 turns it off.
//! - `KEYHOLD_DRILL_DATABASE_URL`: a database on the server where restore drills create and
//!   drop their scratch databases (its user needs CREATEDB); default: the project database's
//!   own server.
//! - `KEYHOLD_NOTIFY_RETRY_SECONDS`: wait before a notification that was not taken is sent
//!   again (doubling, at most 15 minutes, for an hour); default 10.
//! - `KEYHOLD_API_REQUESTS_PER_MINUTE`: requests one API token may make per minute before it
//!   is answered 429 with `Retry-After`; default 600.
//! - `KEYHOLD_PUBLIC_URL`: the address people open keyhold at (scheme, host, port). Passkeys
//!   are bound to its host (WebAuthn's relying party: a domain name or `localhost`, never an IP
//!   address); default `http://localhost:<the port of KEYHOLD_BIND>`.
//! - `RUST_LOG`: log filter; default `info`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::crypto::{Keyring, Secret};

/// The database used when `DATABASE_URL` is not set.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/keyhold";

/// Everything keyhold reads from its environment.
#[derive(Clone)]
pub struct Settings {
    pub database_url: String,
    pub bind: String,
    pub production: bool,
    pub session_key: Vec<u8>,
    pub keyring: Keyring,
    pub cookie_secure: bool,
    pub session_idle: Duration,
    pub session_absolute: Duration,
    pub login: LoginLimits,
    pub trusted_proxies: Vec<IpAddr>,
    pub metrics_token: Option<Secret>,
    pub hash_concurrency: usize,
    pub db_pool_size: u32,
    pub workers: usize,
    pub page_cache: bool,
    pub outbound_timeout: Duration,
    pub outbound_allow_private: bool,
    pub data_source_allow_trust: bool,
    pub data_source_networks: Vec<ipnet::IpNet>,
    pub aws_sts_endpoint: String,
    pub azure_authority: String,
    pub scheduler: bool,
    pub scheduler_interval: Duration,
    pub backup_concurrency: usize,
    pub backup_stale_after: Duration,
    pub backup_transfer_timeout: Duration,
    pub reverify_every: Duration,
    pub backup_memory_part: usize,
    pub missed_grace: Duration,
    pub restore_directory: PathBuf,
    pub restore_keep_free_mb: u64,
    pub restore_jobs: u32,
    pub restore_download_streams: usize,
    pub restore_download_part_kb: u64,
    pub notify_retry: Duration,
    pub drill_database_url: Option<String>,
    pub api_requests_per_minute: i32,
    pub public_url: url::Url,
}

/// How many failed sign-ins are tolerated before the client or account must wait.
#[derive(Clone, Copy, Debug)]
pub struct LoginLimits {
    pub account_failures: i32,
    pub client_failures: i32,
    pub window: Duration,
    pub block: Duration,
}

impl Settings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> anyhow::Result<Settings> {
        let _ = dotenvy::dotenv();
        Settings::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, so tests can pass their own variables.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Settings> {
        let var = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let production = match var("KEYHOLD_ENV").as_deref() {
            None | Some("development") => false,
            Some("production") => true,
            Some(other) => bail!("KEYHOLD_ENV must be development or production, not {other:?}"),
        };
        let key_dir = PathBuf::from(var("KEYHOLD_KEY_DIR").unwrap_or_else(|| ".keyhold".into()));

        let session_key = match var("KEYHOLD_SESSION_KEY") {
            Some(value) => parse_session_key(&value)?,
            None if production => bail!("KEYHOLD_SESSION_KEY is required in production"),
            None => development_secret(&key_dir.join("session.key"), "KEYHOLD_SESSION_KEY", || {
                BASE64.encode(crate::crypto::random_bytes(64))
            })
            .and_then(|value| parse_session_key(&value))?,
        };

        let keyring_text = match var("KEYHOLD_DATA_KEYS") {
            Some(value) => value,
            None if production => bail!("KEYHOLD_DATA_KEYS is required in production"),
            None => development_secret(&key_dir.join("data.keys"), "KEYHOLD_DATA_KEYS", || {
                format!("k1:{}", BASE64.encode(crate::crypto::random_bytes(32)))
            })?,
        };
        let keyring = Keyring::parse(&keyring_text, var("KEYHOLD_DATA_KEY_ACTIVE").as_deref())
            .context("KEYHOLD_DATA_KEYS")?;

        let bind = var("KEYHOLD_BIND").unwrap_or_else(|| "127.0.0.1:8080".into());
        let public_url = match var("KEYHOLD_PUBLIC_URL") {
            Some(text) => url::Url::parse(text.trim())
                .ok()
                .filter(|url| {
                    matches!(url.scheme(), "http" | "https")
                        && url.host_str().is_some()
                        && url.path() == "/"
                        && url.query().is_none()
                })
                .ok_or_else(|| {
                    anyhow!(
                        "KEYHOLD_PUBLIC_URL must be an http(s) address without a path, \
                         e.g. https://keyhold.example.com, not {text:?}"
                    )
                })?,
            None => {
                let port = bind.rsplit(':').next().unwrap_or("8080");
                url::Url::parse(&format!("http://localhost:{port}"))
                    .context("KEYHOLD_BIND's port")?
            }
        };

        Ok(Settings {
            database_url: var("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into()),
            bind,
            production,
            session_key,
            keyring,
            cookie_secure: parse_or(&var, "KEYHOLD_COOKIE_SECURE", production)?,
            session_idle: Duration::from_secs(
                60 * parse_or(&var, "KEYHOLD_SESSION_IDLE_MINUTES", 30u64)?,
            ),
            session_absolute: Duration::from_secs(
                3600 * parse_or(&var, "KEYHOLD_SESSION_ABSOLUTE_HOURS", 12u64)?,
            ),
            login: LoginLimits {
                account_failures: parse_or(&var, "KEYHOLD_LOGIN_ACCOUNT_LIMIT", 5)?,
                client_failures: parse_or(&var, "KEYHOLD_LOGIN_CLIENT_LIMIT", 20)?,
                window: Duration::from_secs(parse_or(&var, "KEYHOLD_LOGIN_WINDOW_SECONDS", 900)?),
                block: Duration::from_secs(parse_or(&var, "KEYHOLD_LOGIN_BLOCK_SECONDS", 300)?),
            },
            trusted_proxies: match var("KEYHOLD_TRUSTED_PROXIES") {
                None => Vec::new(),
                Some(list) => list
                    .split(',')
                    .map(|ip| ip.trim().parse())
                    .collect::<Result<_, _>>()
                    .context(
                        "KEYHOLD_TRUSTED_PROXIES must be a comma-separated list of IP addresses",
                    )?,
            },
            metrics_token: var("KEYHOLD_METRICS_TOKEN").map(|token| Secret::new(token.trim())),
            hash_concurrency: parse_or(&var, "KEYHOLD_HASH_CONCURRENCY", 2usize)?.max(1),
            db_pool_size: parse_or(&var, "KEYHOLD_DB_POOL_SIZE", default_pool_size())?.max(2),
            workers: parse_or(&var, "KEYHOLD_WORKERS", default_workers())?.max(1),
            page_cache: parse_or(&var, "KEYHOLD_PAGE_CACHE", true)?,
            outbound_timeout: Duration::from_secs(
                parse_or(&var, "KEYHOLD_OUTBOUND_TIMEOUT_SECONDS", 5u64)?.max(1),
            ),
            outbound_allow_private: parse_or(&var, "KEYHOLD_OUTBOUND_ALLOW_PRIVATE", true)?,
            data_source_allow_trust: parse_or(
                &var,
                "KEYHOLD_DATA_SOURCE_ALLOW_TRUST",
                !production,
            )?,
            data_source_networks: match var("KEYHOLD_DATA_SOURCE_NETWORKS") {
                None => Vec::new(),
                Some(list) => list
                    .split(',')
                    .map(|net| net.trim().parse())
                    .collect::<Result<_, _>>()
                    .context("KEYHOLD_DATA_SOURCE_NETWORKS must be comma-separated CIDRs")?,
            },
            aws_sts_endpoint: var("KEYHOLD_AWS_STS_ENDPOINT")
                .unwrap_or_else(|| "https://sts.amazonaws.com".into()),
            azure_authority: var("KEYHOLD_AZURE_AUTHORITY")
                .unwrap_or_else(|| "https://login.microsoftonline.com".into()),
            scheduler: parse_or(&var, "KEYHOLD_SCHEDULER", true)?,
            scheduler_interval: Duration::from_secs(
                parse_or(&var, "KEYHOLD_SCHEDULER_INTERVAL_SECONDS", 15u64)?.max(1),
            ),
            backup_concurrency: parse_or(&var, "KEYHOLD_BACKUP_CONCURRENCY", 2usize)?.max(1),
            backup_stale_after: Duration::from_secs(
                parse_or(&var, "KEYHOLD_BACKUP_STALE_SECONDS", 60u64)?.max(2),
            ),
            backup_transfer_timeout: Duration::from_secs(
                parse_or(&var, "KEYHOLD_BACKUP_TRANSFER_TIMEOUT_SECONDS", 60u64)?.max(1),
            ),
            reverify_every: Duration::from_secs(
                3600 * parse_or(&var, "KEYHOLD_REVERIFY_HOURS", 24u64)?,
            ),
            backup_memory_part: parse_or(&var, "KEYHOLD_BACKUP_MEMORY_PART_MB", 16usize)?
                .clamp(1, 5 * 1024)
                * 1024
                * 1024,
            missed_grace: Duration::from_secs(
                60 * parse_or(&var, "KEYHOLD_MISSED_GRACE_MINUTES", 15u64)?,
            ),
            restore_directory: var("KEYHOLD_RESTORE_DIRECTORY")
                .map_or_else(std::env::temp_dir, PathBuf::from),
            restore_keep_free_mb: parse_or(&var, "KEYHOLD_RESTORE_KEEP_FREE_MB", 64u64)?,
            restore_jobs: parse_or(
                &var,
                "KEYHOLD_RESTORE_JOBS",
                default_workers().min(4) as u32,
            )?
            .clamp(1, 64),
            restore_download_streams: parse_or(&var, "KEYHOLD_RESTORE_DOWNLOAD_STREAMS", 4usize)?
                .clamp(1, 16),
            restore_download_part_kb: parse_or(&var, "KEYHOLD_RESTORE_DOWNLOAD_PART_KB", 8192u64)?
                .clamp(4, 1024 * 1024),
            drill_database_url: var("KEYHOLD_DRILL_DATABASE_URL"),
            notify_retry: Duration::from_secs(
                parse_or(&var, "KEYHOLD_NOTIFY_RETRY_SECONDS", 10u64)?.max(1),
            ),
            api_requests_per_minute: parse_or(&var, "KEYHOLD_API_REQUESTS_PER_MINUTE", 600)?.max(1),
            public_url,
        })
    }
}

fn default_pool_size() -> u32 {
    (2 * default_workers() as u32).max(4)
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn parse_or<T: std::str::FromStr>(
    var: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
) -> anyhow::Result<T> {
    match var(name) {
        None => Ok(default),
        Some(value) => value
            .trim()
            .parse()
            .map_err(|_| anyhow!("{name} has an invalid value {value:?}")),
    }
}

fn parse_session_key(value: &str) -> anyhow::Result<Vec<u8>> {
    let bytes = BASE64
        .decode(value.trim())
        .map_err(|_| anyhow!("KEYHOLD_SESSION_KEY must be base64 (64 random bytes)"))?;
    if bytes.len() < 64 {
        bail!(
            "KEYHOLD_SESSION_KEY must hold at least 64 bytes, it holds {}",
            bytes.len()
        );
    }
    Ok(bytes)
}

/// Reads a development key from `path`, creating it with `generate` the first time.
fn development_secret(
    path: &Path,
    variable: &str,
    generate: impl FnOnce() -> String,
) -> anyhow::Result<String> {
    if let Ok(value) = std::fs::read_to_string(path) {
        return Ok(value.trim().to_string());
    }
    let value = generate();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_private(path, &value).with_context(|| format!("cannot write {}", path.display()))?;
    tracing::warn!(
        "{variable} is not set: generated a development key in {} (set {variable} in production)",
        path.display()
    );
    Ok(value)
}

#[cfg(unix)]
fn write_private(path: &Path, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(value.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, value: &str) -> std::io::Result<()> {
    std::fs::write(path, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn production_without_session_key_names_the_variable() {
        let error = settings(&[("KEYHOLD_ENV", "production")])
            .err()
            .expect("must fail");
        assert_eq!(
            error.to_string(),
            "KEYHOLD_SESSION_KEY is required in production"
        );
    }

    #[test]
    fn production_with_malformed_data_keys_names_the_variable() {
        let session = BASE64.encode([7u8; 64]);
        let error = settings(&[
            ("KEYHOLD_ENV", "production"),
            ("KEYHOLD_SESSION_KEY", &session),
            ("KEYHOLD_DATA_KEYS", "k1:not-base64!"),
        ])
        .err()
        .expect("must fail");
        assert!(
            format!("{error:#}").starts_with("KEYHOLD_DATA_KEYS"),
            "{error:#}"
        );
    }

    #[test]
    fn short_session_key_is_refused() {
        let error = settings(&[("KEYHOLD_SESSION_KEY", &BASE64.encode([1u8; 16]))])
            .err()
            .expect("must fail");
        assert!(error.to_string().contains("KEYHOLD_SESSION_KEY"));
    }

    #[test]
    fn development_keys_are_generated_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("keyhold-keys-{}", std::process::id()));
        let dir_text = dir.to_string_lossy().to_string();
        let first = settings(&[("KEYHOLD_KEY_DIR", &dir_text)]).expect("settings");
        let second = settings(&[("KEYHOLD_KEY_DIR", &dir_text)]).expect("settings");
        assert_eq!(first.session_key, second.session_key);
        assert_eq!(first.bind, "127.0.0.1:8080");
        assert_eq!(first.database_url, DEFAULT_DATABASE_URL);
        assert!(!first.cookie_secure);
        assert_eq!(first.public_url.as_str(), "http://localhost:8080/");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn the_public_url_follows_the_port_or_is_given_whole() {
        let bound = settings(&[("KEYHOLD_BIND", "0.0.0.0:9000")]).expect("settings");
        assert_eq!(bound.public_url.as_str(), "http://localhost:9000/");
        let given =
            settings(&[("KEYHOLD_PUBLIC_URL", "https://keyhold.example.com")]).expect("settings");
        assert_eq!(given.public_url.as_str(), "https://keyhold.example.com/");
        for wrong in [
            "keyhold.example.com",
            "ftp://x.example",
            "https://x.example/app",
        ] {
            let error = settings(&[("KEYHOLD_PUBLIC_URL", wrong)])
                .err()
                .expect(wrong);
            assert!(error.to_string().contains("KEYHOLD_PUBLIC_URL"), "{error}");
        }
    }
}
