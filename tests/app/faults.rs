//! Faults: PostgreSQL stopped and started again under a running keyhold (a private cluster of
//! the test's own, so other tests keep their server), and keyhold killed during a backup.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;

use crate::support::fakes;
use crate::support::walk;

const BIN: &str = "/usr/lib/postgresql/15/bin";

/// A PostgreSQL cluster in a temporary directory, run as the `postgres` user on its own port.
pub struct Cluster {
    dir: PathBuf,
    pub port: u16,
}

fn as_postgres(args: &[&str]) -> std::process::Output {
    Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .args(args)
        .output()
        .expect("runuser runs")
}

impl Cluster {
    /// A cluster that trusts every connection.
    pub fn start() -> Cluster {
        Cluster::start_with(None)
    }

    /// A cluster whose `postgres` user must give `password` (SCRAM) when one is given.
    pub fn start_with(password: Option<&str>) -> Cluster {
        let dir = std::env::temp_dir().join(format!(
            "keyhold-pg-{}-{}",
            std::process::id(),
            fakes::closed_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let owned = Command::new("chown")
            .args(["postgres:postgres", dir.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(owned.success());
        let data = dir.join("data");
        let mut args = vec![
            format!("{BIN}/initdb"),
            "-D".into(),
            data.to_str().unwrap().into(),
            "-U".into(),
            "postgres".into(),
        ];
        match password {
            None => args.push("--auth=trust".into()),
            Some(password) => {
                let file = dir.join("password");
                std::fs::write(&file, password).unwrap();
                let owned = Command::new("chown")
                    .args(["postgres:postgres", file.to_str().unwrap()])
                    .status()
                    .unwrap();
                assert!(owned.success());
                args.push("--auth=scram-sha-256".into());
                args.push(format!("--pwfile={}", file.display()));
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let init = as_postgres(&args);
        assert!(
            init.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let cluster = Cluster {
            dir,
            port: fakes::closed_port(),
        };
        cluster.up();
        cluster
    }

    fn ctl(&self, action: &str) {
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        let output = as_postgres(&[
            &format!("{BIN}/pg_ctl"),
            "-D",
            data.to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-o",
            &options,
            "-m",
            "fast",
            "-w",
            action,
        ]);
        assert!(
            output.status.success(),
            "pg_ctl {action}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn up(&self) {
        self.ctl("start");
    }

    fn down(&self) {
        self.ctl("stop");
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/keyhold", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = as_postgres(&[
            &format!("{BIN}/pg_ctl"),
            "-D",
            data.to_str().unwrap(),
            "-m",
            "immediate",
            "stop",
        ]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[actix_web::test]
async fn a_database_outage_answers_503_and_keyhold_recovers_without_a_restart() {
    let cluster = Cluster::start();
    let app = crate::instances::instance_with(&cluster.url(), &[]).await; // creates and migrates the database itself
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let status = |path: &'static str| {
        let (client, base) = (client.clone(), app.base.clone());
        async move { client.get(format!("{base}{path}")).send().await.unwrap() }
    };
    assert_eq!(status("/readyz").await.status(), StatusCode::OK);
    assert_eq!(status("/setup").await.status(), StatusCode::OK);
    // A browser signed in before the outage sends its session cookie through it.
    let partner = crate::support::Client {
        base: app.base.clone(),
        http: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    };
    let token = partner.token("/setup").await;
    let set_up = partner
        .post(
            "/setup",
            &[
                ("csrf_token", token.as_str()),
                ("partner_name", "Outage Partners"),
                ("display_name", "Pat"),
                ("email", "pat@outage.example"),
                ("password", "partner-password-1"),
            ],
        )
        .await;
    assert_eq!(set_up.status(), StatusCode::SEE_OTHER);
    assert_eq!(partner.get("/").await.status(), StatusCode::OK);

    cluster.down();
    let ready = status("/readyz").await;
    assert_eq!(
        ready.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "readiness fails during the outage"
    );
    assert!(ready.headers().contains_key("retry-after"));
    let page = status("/login").await;
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.headers().contains_key("retry-after"));
    assert!(
        page.headers().contains_key("content-security-policy"),
        "error pages keep the security headers"
    );
    let body = page.text().await.unwrap();
    assert!(body.contains("cannot reach its database"), "{body}");
    assert_eq!(
        status("/healthz").await.status(),
        StatusCode::OK,
        "the process itself is alive"
    );

    for path in ["/", "/audit", "/organizations"] {
        let page = partner.get(path).await;
        assert_eq!(
            page.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{path} with a session cookie"
        );
        assert!(page.headers().contains_key("retry-after"), "{path}");
        assert!(page.headers().contains_key("content-security-policy"));
        let body = page.text().await.unwrap();
        assert!(body.contains("cannot reach its database"), "{path}: {body}");
    }
    let signed_in_health = partner.get("/healthz").await;
    assert_eq!(
        signed_in_health.status(),
        StatusCode::OK,
        "/healthz reads no session"
    );
    assert_eq!(signed_in_health.text().await.unwrap(), "ok");

    cluster.up();
    let mut recovered = false;
    for _ in 0..50 {
        if status("/readyz").await.status() == StatusCode::OK
            && partner.get("/").await.status() == StatusCode::OK
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        recovered,
        "keyhold works again without a restart, still signed in"
    );
}

#[actix_web::test]
async fn keyhold_killed_during_a_backup_leaves_a_failed_run_and_no_object_and_the_schedule_goes_on()
{
    use crate::instances::{instance_with, via};
    use crate::support::{DataDb, scalar_i64, scalar_text, world};

    let world = world().await;
    let big = DataDb::with_orders(2_000_000);
    let org = world.organization.to_string();
    let response = world
        .partner
        .post_from(
            "/projects/new",
            "/projects",
            &[
                ("organization_id", &org),
                ("name", "big"),
                ("database_url", &big.url),
                ("backup_enabled", "on"),
                ("backup_credential_id", &world.credential.to_string()),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let project = scalar_i64(
        &world.app,
        "SELECT id AS n FROM projects WHERE name = 'big'",
    );
    let page = format!("/projects/{project}");
    crate::support::add_policy(
        &world.partner,
        project,
        "nightly",
        "daily",
        "720h",
        &["app"],
    )
    .await;
    let policy = scalar_i64(
        &world.app,
        &format!("SELECT id AS n FROM backup_policies WHERE project_id = {project}"),
    );
    let stale = [
        ("KEYHOLD_BACKUP_STALE_SECONDS", "3"),
        ("KEYHOLD_SCHEDULER_INTERVAL_SECONDS", "1"),
    ];

    let mut doomed = instance_with(&world.app.database_url, &stale).await;
    let on_doomed = via(&world.partner, &doomed.base);
    let run = on_doomed
        .post_from(&page, &format!("{page}/policies/{policy}/run"), &[])
        .await;
    assert_eq!(run.status(), StatusCode::SEE_OTHER);
    let phase = || {
        scalar_text(
            &world.app,
            &format!(
                "SELECT phase || ':' || coalesce(reason, '') AS value FROM backups WHERE policy_id = {policy} ORDER BY id DESC LIMIT 1"
            ),
        )
    };
    for _ in 0..100 {
        if phase() == "InProgress:" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Killed once keyhold has recorded the multipart upload it opened.
    let open = || {
        scalar_i64(
            &world.app,
            "SELECT count(*) AS n FROM backups WHERE upload_id IS NOT NULL",
        )
    };
    for _ in 0..200 {
        if open() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(open(), 1, "the upload is open");
    assert!(!crate::storage_faults::unfinished_uploads(&world).is_empty());
    assert_eq!(
        phase(),
        "InProgress:",
        "the backup is running when keyhold is killed"
    );
    doomed.child.kill().unwrap(); // SIGKILL
    doomed.child.wait().unwrap();

    let stored: Vec<_> = walk(
        &world
            .s3
            .root
            .path()
            .join("keyhold-blue-org-big")
            .join("big"),
    );
    assert!(
        stored.is_empty(),
        "no object looks complete after the kill: {stored:?}"
    );

    let survivor = instance_with(&world.app.database_url, &stale).await;
    let mut reaped = String::new();
    for _ in 0..150 {
        reaped = phase();
        if reaped.starts_with("Failed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        reaped,
        "Failed:interrupted: the keyhold process running it stopped"
    );
    // The survivor's scheduler aborts the upload the killed process left open.
    for _ in 0..100 {
        if crate::storage_faults::unfinished_uploads(&world).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        crate::storage_faults::unfinished_uploads(&world),
        Vec::<String>::new(),
        "no parts left behind"
    );

    // The schedule goes on: the next run completes.
    let on_survivor = via(&world.partner, &survivor.base);
    let again = on_survivor
        .post_from(&page, &format!("{page}/policies/{policy}/run"), &[])
        .await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    let mut last = String::new();
    for _ in 0..600 {
        last = phase();
        if !last.starts_with("New") && !last.starts_with("InProgress") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last, "Completed:");
    assert_eq!(
        walk(
            &world
                .s3
                .root
                .path()
                .join("keyhold-blue-org-big")
                .join("big")
        )
        .len(),
        1
    );
}
