//! Two keyhold processes on one database: sessions, locks and defaults are shared, and their
//! schedulers run every due slot exactly once between them.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use keyhold::session_cache::SessionCache;
use reqwest::StatusCode;

use crate::support::fakes::{self, GOOD, S3_ACCESS_KEY};
use crate::support::{Client, DataDb, scalar_i64, spawn_app_with};

/// A `keyhold serve` process, killed when dropped.
pub struct Instance {
    pub child: Child,
    pub base: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn instance(database_url: &str) -> Instance {
    instance_with(database_url, &[]).await
}

/// Starts `keyhold serve` on a free port with the test keys and extra variables.
pub async fn instance_with(database_url: &str, extra: &[(&str, &str)]) -> Instance {
    let port = fakes::closed_port();
    let child = Command::new(env!("CARGO_BIN_EXE_keyhold"))
        .envs(extra.iter().copied())
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env("KEYHOLD_BIND", format!("127.0.0.1:{port}"))
        .env("KEYHOLD_SESSION_KEY", crate::support::test_session_key())
        .env("KEYHOLD_DATA_KEYS", crate::support::test_data_keys())
        .env("KEYHOLD_SCHEDULER_INTERVAL_SECONDS", "1")
        .env("KEYHOLD_WORKERS", "1")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("keyhold starts");
    let instance = Instance {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..100 {
        let ready = reqwest::get(format!("{}/readyz", instance.base)).await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            return instance;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("keyhold on {} did not become ready", instance.base);
}

/// The same browser (cookie jar), pointed at another instance.
pub fn via(client: &Client, base: &str) -> Client {
    Client {
        base: base.to_string(),
        http: client.http.clone(),
    }
}

#[actix_web::test]
async fn two_instances_share_sessions_locks_defaults_and_schedules() {
    // The test app only provides a migrated database and its pool; the instances are processes.
    let app = spawn_app_with(&[("KEYHOLD_SCHEDULER", "false")]).await;
    let s3 = fakes::start_s3().await;
    let first = instance(&app.database_url).await;
    let second = instance(&app.database_url).await;

    let on_first = via(&app.client(), &first.base);
    let token = on_first.token("/setup").await;
    let setup = on_first
        .post(
            "/setup",
            &[
                ("csrf_token", token.as_str()),
                ("partner_name", "Acme"),
                ("display_name", "Pat"),
                ("email", "pat@acme.example"),
                ("password", "partner-password-1"),
            ],
        )
        .await;
    assert_eq!(setup.status(), StatusCode::SEE_OTHER);

    // A session made on one instance works on the other (the cookie host is the same).
    let on_second = via(&on_first, &second.base);
    assert_eq!(
        on_second.get("/").await.status(),
        StatusCode::OK,
        "session shared"
    );

    let organization = on_first
        .create_organization(&app, "Blue Org")
        .await
        .to_string();
    for n in 0..4 {
        let response = on_second
            .post_from(
                "/credentials/backup/new",
                "/credentials/backup",
                &[
                    ("organization_id", &organization),
                    ("name", &format!("store-{n}")),
                    ("access_key_id", S3_ACCESS_KEY),
                    ("secret_access_key", GOOD),
                    ("endpoint", &s3.endpoint),
                    ("region", "us-east-1"),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
    }
    let first_id = scalar_i64(
        &app,
        "SELECT id AS n FROM credentials WHERE name = 'store-0'",
    );

    // A lock done through one is seen by the other at once.
    assert_eq!(
        on_first
            .post_from(
                "/credentials/backup",
                &format!("/credentials/backup/{first_id}/lock"),
                &[]
            )
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let seen = on_second
        .page(&format!("/credentials/backup/{first_id}"))
        .await;
    assert!(
        seen.contains("badge-locked"),
        "the other instance shows the lock"
    );
    let again = on_second
        .post_from(
            "/credentials/backup",
            &format!("/credentials/backup/{first_id}/lock"),
            &[],
        )
        .await;
    assert_eq!(
        again.status(),
        StatusCode::CONFLICT,
        "already locked, whichever instance is asked"
    );
    on_second
        .post_from(
            "/credentials/backup",
            &format!("/credentials/backup/{first_id}/unlock"),
            &[],
        )
        .await;

    // Concurrent make-default through both leaves one default.
    let ids: Vec<i64> = (0..4)
        .map(|n| {
            scalar_i64(
                &app,
                &format!("SELECT id AS n FROM credentials WHERE name = 'store-{n}'"),
            )
        })
        .collect();
    let token = on_first.token("/credentials/backup").await;
    let requests = ids.iter().enumerate().map(|(n, id)| {
        let base = if n % 2 == 0 {
            &first.base
        } else {
            &second.base
        };
        on_first
            .http
            .post(format!("{base}/credentials/backup/{id}/default"))
            .form(&[("csrf_token", token.as_str())])
            .send()
    });
    for response in futures_util::future::join_all(requests).await {
        let status = response.unwrap().status();
        assert!(
            status == StatusCode::SEE_OTHER || status == StatusCode::CONFLICT,
            "{status}"
        );
    }
    assert_eq!(app.count("credentials WHERE is_default"), 1);

    // 50 due slots produce exactly 50 backups between the two schedulers.
    let data = DataDb::with_orders(20);
    let response = on_first
        .post_from(
            "/projects/new",
            "/projects",
            &[
                ("organization_id", &organization),
                ("name", "shop"),
                ("database_url", &data.url),
                ("backup_enabled", "on"),
                ("backup_credential_id", &ids[1].to_string()),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let project =
        keyhold::projects::model::ProjectId(scalar_i64(&app, "SELECT id AS n FROM projects"));
    let schedule = keyhold::backup::policy::Schedule::parse("0 * * * *", "UTC").unwrap();
    let since = chrono::Utc::now() - chrono::Duration::hours(2);
    app.query(|conn| {
        for n in 0..50 {
            keyhold::backup::model::BackupPolicy::create(
                conn,
                &keyhold::backup::model::NewPolicy {
                    project_id: project,
                    name: &format!("slot-{n:02}"),
                    schedule: &schedule,
                    retention_secs: 3600,
                    namespaces: &["app".to_string()],
                    drill: keyhold::backup::drill::DrillSchedule::Off,
                    heartbeat_url: None,
                    created_by: keyhold::accounts::model::UserId(1),
                },
                since,
            )?;
        }
        Ok(())
    });
    for _ in 0..600 {
        if app.count("backups WHERE phase NOT IN ('New', 'InProgress')") == 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // a further pass of both schedulers
    assert_eq!(app.count("backups"), 50, "one backup per due slot");
    assert_eq!(app.count("backups WHERE phase = 'Completed'"), 50);
    assert_eq!(
        scalar_i64(&app, "SELECT count(DISTINCT policy_id) AS n FROM backups"),
        50
    );

    // Each instance keeps the sessions it serves in memory: one signed out on the first is
    // refused by the second once it hears of the deleted row (within milliseconds; allowed a
    // second here).
    let browser = via(&app.client(), &first.base);
    // Both instances (and the test app) listen for session notices.
    let listeners = || {
        scalar_i64(
            &app,
            &format!(
                "SELECT count(*) AS n FROM pg_stat_activity
                 WHERE datname = current_database() AND application_name = '{}'",
                keyhold::notices::application_name::<SessionCache>()
            ),
        )
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while listeners() < 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(listeners(), 3, "every instance listens");
    let signed_in = browser
        .login("pat@acme.example", "partner-password-1")
        .await;
    let cookie = browser.session_cookie(&signed_in).await.expect("a cookie");
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let on_second_with_cookie = || async {
        raw.get(format!("{}/audit", second.base))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(on_second_with_cookie().await, StatusCode::OK);
    assert_eq!(on_second_with_cookie().await, StatusCode::OK, "kept");
    let out = browser.post_from("/", "/logout", &[]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    // Within a second: well before the 5 s an entry may live without a notice.
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    let mut status = on_second_with_cookie().await;
    while status == StatusCode::OK && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        status = on_second_with_cookie().await;
    }
    assert_eq!(status, StatusCode::SEE_OTHER, "signed out everywhere");
}
