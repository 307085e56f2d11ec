//! keyhold against S3 implementations it did not write (issue 15). moto (PyPI `moto[server]`,
//! installed by `scripts/test`) plays AWS: region rules, AWS's error codes, and keys scoped by
//! IAM policies (`INITIAL_NO_AUTH_ACTION_COUNT`: the harness sets up IAM unauthenticated, then
//! every request is authenticated and authorized).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;

use crate::support::{
    Client, DataDb, TestApp, add_policy, backup_now, restore_outcome, scalar_i64, scalar_text,
    spawn_app_with, texts,
};

/// An access key of a moto IAM user.
#[derive(Clone, Debug)]
pub struct Key {
    pub id: String,
    pub secret: String,
}

/// A moto server on a loopback port with three IAM users: one that may do anything in S3, one
/// denied `s3:DeleteObject`, one denied `s3:CreateBucket`. Stopped when dropped.
pub struct Moto {
    pub endpoint: String,
    pub full: Key,
    pub no_delete: Key,
    pub no_create: Key,
    child: Child,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// IAM calls the harness makes before authentication starts (three per user).
const SETUP_ACTIONS: usize = 9;

impl Moto {
    pub async fn start() -> Moto {
        let port = crate::support::fakes::closed_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", SETUP_ACTIONS.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server runs (bash scripts/test installs moto[server] from PyPI)");
        let endpoint = format!("http://127.0.0.1:{port}");
        // Ready when it accepts connections (a request would count as an action).
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let http = reqwest::Client::new();
        let user = async |name: &str, deny: Option<&str>| -> Key {
            let statement = match deny {
                Some(action) => {
                    format!(r#",{{"Effect":"Deny","Action":"{action}","Resource":"*"}}"#)
                }
                None => String::new(),
            };
            let policy = format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:*","Resource":"*"}}{statement}]}}"#
            );
            let mut answer = String::new();
            for form in [
                vec![("Action", "CreateUser"), ("UserName", name)],
                vec![
                    ("Action", "PutUserPolicy"),
                    ("UserName", name),
                    ("PolicyName", "s3"),
                    ("PolicyDocument", &policy),
                ],
                vec![("Action", "CreateAccessKey"), ("UserName", name)],
            ] {
                let mut form = form;
                form.push(("Version", "2010-05-08"));
                answer = http
                    .post(&endpoint)
                    // moto routes by the credential scope; the signature is not checked yet.
                    .header(
                        "authorization",
                        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
                    )
                    .form(&form)
                    .send()
                    .await
                    .expect("moto answers")
                    .text()
                    .await
                    .unwrap();
            }
            let element = |tag: &str| {
                let start = answer.find(&format!("<{tag}>")).expect(tag) + tag.len() + 2;
                let end = answer[start..].find('<').unwrap() + start;
                answer[start..end].to_string()
            };
            Key {
                id: element("AccessKeyId"),
                secret: element("SecretAccessKey"),
            }
        };
        let full = user("full", None).await;
        let no_delete = user("no-delete", Some("s3:DeleteObject")).await;
        let no_create = user("no-create", Some("s3:CreateBucket")).await;
        Moto {
            endpoint,
            full,
            no_delete,
            no_create,
            child,
        }
    }
}

/// A Partner of a fresh app with one organization, whose id is returned.
async fn partner_with_organization(app: &TestApp) -> (Client, i64) {
    let (partner, _) = app.partner().await;
    let organization = partner.create_organization(app, "Blue Org").await;
    (partner, organization)
}

/// Adds a backup credential; returns its id, or the form's errors.
async fn add_credential(
    app: &TestApp,
    partner: &Client,
    organization: i64,
    name: &str,
    endpoint: &str,
    region: &str,
    key: &Key,
) -> Result<i64, Vec<String>> {
    let response = partner
        .post_from(
            "/credentials/backup/new",
            "/credentials/backup",
            &[
                ("organization_id", &organization.to_string()),
                ("name", name),
                ("access_key_id", &key.id),
                ("secret_access_key", &key.secret),
                ("endpoint", endpoint),
                ("region", region),
            ],
        )
        .await;
    if response.status() != StatusCode::SEE_OTHER {
        return Err(texts(&response.text().await.unwrap(), "p.error"));
    }
    Ok(scalar_i64(
        app,
        &format!("SELECT id AS n FROM credentials WHERE name = '{name}'"),
    ))
}

/// What the form's "Verify" answers for these settings (the verification box's text).
async fn verify(
    partner: &Client,
    organization: i64,
    endpoint: &str,
    region: &str,
    key: &Key,
) -> String {
    let response = partner
        .post_from(
            "/credentials/backup/new",
            "/credentials/backup/verify",
            &[
                ("organization_id", &organization.to_string()),
                ("name", "checked"),
                ("access_key_id", &key.id),
                ("secret_access_key", &key.secret),
                ("endpoint", endpoint),
                ("region", region),
            ],
        )
        .await;
    texts(&response.text().await.unwrap(), ".verify-box").join(" ")
}

/// Creates a project with backup enabled on `credential` and `bucket`; the status and errors.
async fn add_project(
    partner: &Client,
    organization: i64,
    name: &str,
    database_url: &str,
    credential: i64,
    bucket: &str,
) -> (StatusCode, Vec<String>) {
    crate::support::post_project(
        partner,
        organization,
        name,
        database_url,
        Some((credential, bucket)),
    )
    .await
}

#[actix_web::test]
async fn moto_keeps_keyhold_to_aws_rules_and_iam_scoped_keys() {
    let moto = Moto::start().await;
    // Parts above 4 MiB are spooled and signed by keyhold: that path meets this server too;
    // restores download in ranged GETs of 1 MiB, four at once.
    let app = spawn_app_with(&[
        ("KEYHOLD_SCHEDULER", "false"),
        ("KEYHOLD_BACKUP_MEMORY_PART_MB", "4"),
        ("KEYHOLD_RESTORE_DOWNLOAD_PART_KB", "1024"),
    ])
    .await;
    let (partner, organization) = partner_with_organization(&app).await;
    let data = DataDb::with_orders(100);
    let endpoint = moto.endpoint.clone();

    // Verification: a good key; a wrong secret.
    let full = add_credential(
        &app,
        &partner,
        organization,
        "aws-east",
        &endpoint,
        "us-east-1",
        &moto.full,
    )
    .await
    .expect("the full key is verified");
    let wrong = Key {
        secret: "not-the-secret".into(),
        ..moto.full.clone()
    };
    let answer = verify(&partner, organization, &endpoint, "us-east-1", &wrong).await;
    assert!(answer.contains("Invalid S3 credentials"), "{answer}");

    // us-east-1: CreateBucket without a LocationConstraint (AWS refuses one there).
    let (status, errors) = add_project(&partner, organization, "shop", &data.url, full, "").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{errors:?}");
    // Another region: the constraint is sent, the bucket is made there.
    let west = add_credential(
        &app,
        &partner,
        organization,
        "aws-west",
        &endpoint,
        "eu-west-1",
        &moto.full,
    )
    .await
    .expect("verified");
    let west_data = DataDb::with_orders(1);
    let (status, errors) =
        add_project(&partner, organization, "west", &west_data.url, west, "").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{errors:?}");

    // A key that may not delete: enabling backup says so (retention needs it), with S3's code.
    let no_delete = add_credential(
        &app,
        &partner,
        organization,
        "no-delete",
        &endpoint,
        "us-east-1",
        &moto.no_delete,
    )
    .await
    .expect("verified");
    let other = DataDb::with_orders(1);
    let (status, errors) =
        add_project(&partner, organization, "keeper", &other.url, no_delete, "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        errors.iter().any(
            |e| e.contains("delete denied on bucket keyhold-blue-org-keeper")
                && e.contains("AccessDenied")
        ),
        "{errors:?}"
    );
    // A key that may not create buckets: create it first, or use another key.
    let no_create = add_credential(
        &app,
        &partner,
        organization,
        "no-create",
        &endpoint,
        "us-east-1",
        &moto.no_create,
    )
    .await
    .expect("verified");
    let (status, errors) =
        add_project(&partner, organization, "fresh", &other.url, no_create, "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        errors.iter().any(
            |e| e.contains("create the bucket keyhold-blue-org-fresh first")
                && e.contains("AccessDenied")
        ),
        "{errors:?}"
    );
    // …but it may use a bucket that exists.
    let (status, errors) = add_project(
        &partner,
        organization,
        "existing",
        &other.url,
        no_create,
        "keyhold-blue-org-shop",
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{errors:?}");

    // Backup now (a dump of two parts, the second spooled), restore into a fresh database,
    // delete the backup.
    {
        use diesel::prelude::*;
        let mut conn = diesel::PgConnection::establish(&data.url).unwrap();
        diesel::sql_query(
            "CREATE TABLE app.blobs AS SELECT n, md5(random()::text) || md5(random()::text)
                 || md5(random()::text) || md5(random()::text) AS body
             FROM generate_series(1, 150000) n",
        )
        .execute(&mut conn)
        .unwrap();
    }
    let project = scalar_i64(&app, "SELECT id AS n FROM projects WHERE name = 'shop'");
    let page = format!("/projects/{project}");
    let response = add_policy(&partner, project, "nightly", "daily", "720h", &["app"]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let policy = scalar_i64(
        &app,
        &format!("SELECT id AS n FROM backup_policies WHERE project_id = {project}"),
    );
    let (backup, phase, reason) = backup_now(&app, &partner, project, policy).await;
    assert_eq!((phase.as_str(), reason.as_str()), ("Completed", ""));
    assert!(
        scalar_i64(
            &app,
            &format!("SELECT size_bytes AS n FROM backups WHERE id = {backup}")
        ) > 8 * 1024 * 1024,
        "the dump took two parts"
    );

    let fresh = DataDb::empty();
    let response = partner
        .post_from(
            &format!("{page}?tab=backups"),
            &format!("{page}/backups/{backup}/restore"),
            &[
                ("restore_name", "to-fresh"),
                ("target_database_url", &fresh.url),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let outcome = restore_outcome(&app, "to-fresh").await;
    assert!(outcome.starts_with("Completed"), "{outcome}");
    assert_eq!(
        fresh.scalar("SELECT count(*)::text AS value FROM app.orders"),
        "100"
    );
    assert_eq!(
        fresh.scalar("SELECT count(*)::text AS value FROM app.blobs"),
        "150000"
    );

    let response = partner
        .post_from(
            &format!("{page}?tab=backups"),
            &format!("{page}/backups/{backup}/delete"),
            &[],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(scalar_i64(&app, "SELECT count(*) AS n FROM backups"), 0);

    // Uploads a killed keyhold opened but never recorded are aborted when the scheduler starts;
    // one a run has recorded (another instance, uploading) is left alone.
    let storage = keyhold::storage::Storage::open(
        &keyhold::outbound::Outbound::new(Duration::from_secs(5), true),
        &keyhold::storage::S3Settings {
            endpoint: endpoint.clone(),
            region: "us-east-1".into(),
            access_key: moto.full.id.clone(),
            secret_key: moto.full.secret.clone(),
            addressing: keyhold::storage::Addressing::Path,
        },
        "keyhold-blue-org-shop",
    )
    .await
    .unwrap();
    let _orphan = storage
        .begin_upload("shop/nightly/orphan.dump", "t")
        .await
        .unwrap();
    let running = storage
        .begin_upload("shop/nightly/running.dump", "t")
        .await
        .unwrap();
    app.query(|conn| {
        use diesel::prelude::*;
        diesel::sql_query(format!(
            "INSERT INTO backups (project_id, policy_name, name, scheduled_for, phase, namespaces,
                                  upload_key, upload_id)
             VALUES ({project}, 'nightly', 'running', now(), 'InProgress', '{{}}',
                     'shop/nightly/running.dump', '{running}')"
        ))
        .execute(conn)
    });
    let runner = crate::support::test_runner(&app);
    assert_eq!(runner.abort_forgotten_uploads(Duration::ZERO).await, Ok(1));
    assert_eq!(
        runner.abort_forgotten_uploads(Duration::ZERO).await,
        Ok(0),
        "the orphan is gone, the recorded upload stays"
    );
}

/// A single-node Garage (crates.io `garage`, installed by `scripts/test`) in a temporary
/// directory, laid out and keyed by the harness: `full` may create buckets, `limited` may not
/// (and reaches only the bucket `existing`, with read and write). Stopped when dropped.
pub struct Garage {
    pub endpoint: String,
    pub full: Key,
    pub limited: Key,
    config: std::path::PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `garage` binary: on PATH, or where `cargo install` puts it.
fn garage_binary() -> std::path::PathBuf {
    let installed = std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default())
        .join(".cargo/bin/garage");
    if installed.exists() {
        installed
    } else {
        "garage".into()
    }
}

impl Garage {
    pub async fn start() -> Garage {
        let dir = tempfile::tempdir().unwrap();
        let (rpc, s3, admin) = (
            crate::support::fakes::closed_port(),
            crate::support::fakes::closed_port(),
            crate::support::fakes::closed_port(),
        );
        let secret = hex::encode(keyhold::crypto::random_bytes(32));
        let config = dir.path().join("garage.toml");
        std::fs::write(
            &config,
            format!(
                r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
"#,
                meta = dir.path().join("meta").display(),
                data = dir.path().join("data").display(),
            ),
        )
        .unwrap();
        let child = Command::new(garage_binary())
            .arg("-c")
            .arg(&config)
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("garage runs (bash scripts/test installs it with cargo install garage)");
        let mut garage = Garage {
            endpoint: format!("http://127.0.0.1:{s3}"),
            full: Key {
                id: String::new(),
                secret: String::new(),
            },
            limited: Key {
                id: String::new(),
                secret: String::new(),
            },
            config,
            child,
            _dir: dir,
        };
        let mut node = String::new();
        for _ in 0..100 {
            if let Ok(id) = garage.cli(&["node", "id", "-q"]) {
                node = id.trim().split('@').next().unwrap_or_default().to_string();
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(!node.is_empty(), "garage answers");
        garage
            .cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node])
            .unwrap();
        garage.cli(&["layout", "apply", "--version", "1"]).unwrap();
        garage.full = garage.key("keyhold-full");
        garage
            .cli(&["key", "allow", "--create-bucket", "keyhold-full"])
            .unwrap();
        garage.limited = garage.key("keyhold-limited");
        garage.cli(&["bucket", "create", "existing"]).unwrap();
        garage
            .cli(&[
                "bucket",
                "allow",
                "--read",
                "--write",
                "existing",
                "--key",
                "keyhold-limited",
            ])
            .unwrap();
        garage
    }

    /// Runs the `garage` command line against this node; its output, or its error output.
    fn cli(&self, args: &[&str]) -> Result<String, String> {
        let output = Command::new(garage_binary())
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .map_err(|error| error.to_string())?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).to_string())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).to_string())
        }
    }

    /// Creates a key named `name`; its id and secret.
    fn key(&self, name: &str) -> Key {
        let out = self.cli(&["key", "create", name]).expect("key created");
        let field = |label: &str| {
            out.lines()
                .find(|line| line.trim_start().starts_with(label))
                .and_then(|line| line.split(':').nth(1))
                .map(|value| value.trim().to_string())
                .unwrap_or_else(|| panic!("{label} in {out}"))
        };
        Key {
            id: field("Key ID"),
            secret: field("Secret key"),
        }
    }
}

#[actix_web::test]
async fn garage_runs_the_whole_backup_scenario() {
    let garage = Garage::start().await;
    // Parts above 4 MiB are spooled and signed by keyhold: that path meets this server too;
    // restores download in ranged GETs of 1 MiB, four at once.
    let app = spawn_app_with(&[
        ("KEYHOLD_SCHEDULER", "false"),
        ("KEYHOLD_BACKUP_MEMORY_PART_MB", "4"),
        ("KEYHOLD_RESTORE_DOWNLOAD_PART_KB", "1024"),
    ])
    .await;
    let (partner, organization) = partner_with_organization(&app).await;
    let endpoint = garage.endpoint.clone();
    let data = DataDb::with_orders(100);

    // Verify: a good key, a wrong secret.
    let full = add_credential(
        &app,
        &partner,
        organization,
        "garage",
        &endpoint,
        "garage",
        &garage.full,
    )
    .await
    .expect("verified");
    let wrong = Key {
        secret: "0".repeat(64),
        ..garage.full.clone()
    };
    let answer = verify(&partner, organization, &endpoint, "garage", &wrong).await;
    assert!(answer.contains("Invalid S3 credentials"), "{answer}");

    // Enable: bucket missing (created); a key that may not create buckets; a bucket present.
    let (status, errors) = add_project(&partner, organization, "shop", &data.url, full, "").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{errors:?}");
    let limited = add_credential(
        &app,
        &partner,
        organization,
        "limited",
        &endpoint,
        "garage",
        &garage.limited,
    )
    .await
    .expect("verified (listing is allowed)");
    let other = DataDb::with_orders(1);
    let (status, errors) =
        add_project(&partner, organization, "fresh", &other.url, limited, "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("create the bucket keyhold-blue-org-fresh first")),
        "{errors:?}"
    );
    let (status, errors) = add_project(
        &partner,
        organization,
        "present",
        &other.url,
        limited,
        "existing",
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{errors:?}");

    // Backup now (a dump of several parts), restores, retention, delete.
    {
        use diesel::prelude::*;
        let mut conn = diesel::PgConnection::establish(&data.url).unwrap();
        diesel::sql_query(
            "CREATE TABLE app.blobs AS SELECT n, md5(random()::text) || md5(random()::text)
                 || md5(random()::text) || md5(random()::text) AS body
             FROM generate_series(1, 150000) n",
        )
        .execute(&mut conn)
        .unwrap();
    }
    let project = scalar_i64(&app, "SELECT id AS n FROM projects WHERE name = 'shop'");
    let page = format!("/projects/{project}");
    for (name, namespaces) in [("all", vec!["app", "reporting"]), ("app", vec!["app"])] {
        let response = add_policy(&partner, project, name, "daily", "720h", &namespaces).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{name}");
    }
    let policy = scalar_i64(
        &app,
        &format!(
            "SELECT id AS n FROM backup_policies WHERE project_id = {project} AND name = 'all'"
        ),
    );
    let mut backups = Vec::new();
    for _ in 0..2 {
        let (backup, phase, reason) = backup_now(&app, &partner, project, policy).await;
        assert_eq!((phase.as_str(), reason.as_str()), ("Completed", ""));
        backups.push(backup);
    }
    assert!(
        scalar_i64(
            &app,
            &format!(
                "SELECT size_bytes AS n FROM backups WHERE id = {}",
                backups[0]
            )
        ) > 8 * 1024 * 1024,
        "the dump took several parts"
    );
    let restore = async |name: &str, fields: &[(&str, &str)]| {
        let mut form = vec![("restore_name", name)];
        form.extend_from_slice(fields);
        let response = partner
            .post_from(
                &format!("{page}?tab=backups"),
                &format!("{page}/backups/{}/restore", backups[0]),
                &form,
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{name}");
        restore_outcome(&app, name).await
    };
    let everything = DataDb::empty();
    let outcome = restore("everything", &[("target_database_url", &everything.url)]).await;
    assert!(outcome.starts_with("Completed"), "{outcome}");
    assert_eq!(
        everything.scalar("SELECT count(*)::text AS value FROM app.blobs"),
        "150000"
    );
    let chosen = DataDb::empty();
    let outcome = restore(
        "chosen",
        &[("namespaces", "app"), ("target_database_url", &chosen.url)],
    )
    .await;
    assert!(outcome.starts_with("Completed"), "{outcome}");
    assert_eq!(
        chosen.scalar("SELECT count(*)::text AS value FROM app.orders"),
        "100"
    );
    {
        use diesel::prelude::*;
        let mut conn = diesel::PgConnection::establish(&data.url).unwrap();
        diesel::sql_query("DELETE FROM app.orders WHERE id > 50")
            .execute(&mut conn)
            .unwrap();
    }
    let outcome = restore("in-place", &[]).await;
    assert!(outcome.starts_with("Completed"), "{outcome}");
    assert_eq!(
        data.scalar("SELECT count(*)::text AS value FROM app.orders"),
        "100"
    );

    // Retention deletes the expired one (and only it); a person deletes the other.
    app.query(|conn| {
        use diesel::prelude::*;
        diesel::sql_query(format!(
            "UPDATE backups SET expires_at = now() - interval '1 second' WHERE id = {}",
            backups[0]
        ))
        .execute(conn)
    });
    let runner = crate::support::test_runner(&app);
    let deleted = keyhold::backup::scheduler::apply_retention(&runner, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    // The expired object is gone from the bucket; the other is still there.
    let storage = keyhold::storage::Storage::open(
        &keyhold::outbound::Outbound::new(Duration::from_secs(5), true),
        &keyhold::storage::S3Settings {
            endpoint: endpoint.clone(),
            region: "garage".into(),
            access_key: garage.full.id.clone(),
            secret_key: garage.full.secret.clone(),
            addressing: keyhold::storage::Addressing::Path,
        },
        "keyhold-blue-org-shop",
    )
    .await
    .unwrap();
    let key_of = |backup: i64| {
        scalar_text(
            &app,
            &format!("SELECT object_key AS value FROM backups WHERE id = {backup}"),
        )
    };
    let (expired, kept) = (key_of(backups[0]), key_of(backups[1]));
    assert_eq!(storage.size(&expired, "checking").await.unwrap(), None);
    assert!(storage.size(&kept, "checking").await.unwrap().is_some());
    let response = partner
        .post_from(
            &format!("{page}?tab=backups"),
            &format!("{page}/backups/{}/delete", backups[1]),
            &[],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        scalar_i64(
            &app,
            "SELECT count(*) AS n FROM backups WHERE deleted_at IS NULL"
        ),
        0
    );
    assert_eq!(storage.size(&kept, "checking").await.unwrap(), None);

    // The key is deleted at Garage: the next run stops at its pre-flight check, before
    // pg_dump, and the credential reads failed at once (not at its daily check).
    garage
        .cli(&["key", "delete", "--yes", "keyhold-full"])
        .unwrap();
    let (_, phase, reason) = backup_now(&app, &partner, project, policy).await;
    assert_eq!(phase, "Failed");
    assert!(reason.contains("Invalid S3 credentials"), "{reason}");
    assert_eq!(
        scalar_text(
            &app,
            &format!("SELECT verify_state AS value FROM credentials WHERE id = {full}")
        ),
        "failed"
    );
}
