//! Every page fits its viewport: at 1280×800 and 390×844, with and without JavaScript, and
//! with long realistic values (30-character names, long endpoints, 50 rows of every list), no
//! page is wider than the window; opened row menus, details and the restore dialog included.

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::fakes::{GOOD, S3_ACCESS_KEY};
use crate::support::{self, DataDb, TestApp, scalar_i64};
use crate::webdriver::Browser;
use crate::{DESKTOP, PHONE, click_if_closed, errors, screenshots, sign_in, start};

/// Thirty characters each, as long as names may be.
const ORGANIZATION: &str = "Northwind Interplanetary Group";
const PROJECT: &str = "northwind-analytics-prod-eu-01";
const POLICY: &str = "nightly-full-dump-of-analytics";

fn long_name(prefix: &str, n: usize) -> String {
    let name = format!("{prefix}-{n:04}-eu-central-storage-account");
    name.chars().take(30).collect()
}

/// Fifty credentials of every kind, each value as long as real ones get.
fn seed_every_kind(app: &TestApp, organization: i64, endpoint: &str) {
    use keyhold::credentials::provider::Kind;
    support::seed_credentials(app, organization, Kind::Backup, 50, |n| {
        (
            long_name("backup", n),
            vec![
                ("access_key_id", format!("AKIAIOSFODNN7EX{n:05}")),
                (
                    "endpoint",
                    format!(
                        "https://objectstorage-{n:02}.eu-central-1.example-cloud-provider.com:9443/tenant/very-long-path"
                    ),
                ),
                ("region", "eu-central-1".to_string()),
            ],
            vec![("secret_access_key", GOOD.to_string())],
        )
    });
    // The one backups are enabled with: reachable, with the S3 server's keys.
    support::seed_credentials(app, organization, Kind::Backup, 1, |_| {
        (
            "zz-working-backup-credential".to_string(),
            vec![
                ("access_key_id", S3_ACCESS_KEY.to_string()),
                ("endpoint", endpoint.to_string()),
                ("region", "us-east-1".to_string()),
            ],
            vec![("secret_access_key", GOOD.to_string())],
        )
    });
    support::seed_credentials(app, organization, Kind::Cloud, 50, |n| {
        (
            long_name("cloud", n),
            vec![
                ("region", "ap-southeast-4".to_string()),
                ("az_count", "3".to_string()),
            ],
            vec![
                ("access_key_id", format!("AKIAIOSFODNN7EX{n:05}")),
                ("secret_access_key", GOOD.to_string()),
            ],
        )
    });
    for kind in [Kind::Billing, Kind::Showback] {
        support::seed_credentials(app, organization, kind, 50, |n| {
            (
                long_name(kind.key(), n),
                vec![
                    (
                        "username",
                        format!("prometheus-readonly-service-account-{n:04}"),
                    ),
                    (
                        "url",
                        format!(
                            "https://prometheus-{n:02}.monitoring.internal.example-cloud-provider.com:9090/prometheus"
                        ),
                    ),
                ],
                vec![("password", GOOD.to_string())],
            )
        });
    }
    support::seed_credentials(app, organization, Kind::Ai, 50, |n| {
        (
            long_name("ai", n),
            vec![(
                "base_url",
                format!(
                    "https://inference-gateway-{n:02}.ai.example-cloud-provider.com/openai/v1beta"
                ),
            )],
            vec![("api_key", format!("sk-proj-{GOOD}"))],
        )
    });
}

/// A project with backup on, a policy, 50 backups and 50 restores with long values.
async fn seed_project(
    app: &TestApp,
    partner: &support::Client,
    organization: i64,
    data: &DataDb,
) -> i64 {
    let credential = scalar_i64(
        app,
        "SELECT id AS n FROM credentials WHERE name = 'zz-working-backup-credential'",
    )
    .to_string();
    let organization = organization.to_string();
    let created = partner
        .post_from(
            "/projects/new",
            "/projects",
            &[
                ("name", PROJECT),
                ("organization_id", &organization),
                ("database_url", &data.url),
                ("backup_enabled", "on"),
                ("backup_credential_id", &credential),
            ],
        )
        .await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER, "project created");
    let project = scalar_i64(app, "SELECT id AS n FROM projects");
    let path = format!("/projects/{project}");
    let added = partner
        .post_from(
            &path,
            &format!("{path}/policies"),
            &[
                ("name", POLICY),
                ("cron", "15 2 * * 1-5"),
                ("timezone", "America/Argentina/Buenos_Aires"),
                ("retention", "2160h"),
                ("namespaces", "app"),
            ],
        )
        .await;
    assert_eq!(added.status(), StatusCode::SEE_OTHER, "policy added");
    let sql = format!(
        "INSERT INTO backups (project_id, policy_id, policy_name, name, scheduled_for, phase, \
           reason, credential_id, bucket, object_key, namespaces, size_bytes, sha256, started_at, \
           finished_at, expires_at, created_at) \
         SELECT p.id, pol.id, pol.name, pol.name || '-' || to_char(now() - n * interval '1 day', \
           'YYYYMMDD-HH24MISS'), now() - n * interval '1 day', \
           CASE WHEN n % 7 = 3 THEN 'Failed' ELSE 'Completed' END, \
           CASE WHEN n % 7 = 3 THEN 'pg_dump: error: connection to server at \
             \"analytics-primary.db.internal.example.com\" (10.20.30.40), port 5432 failed: \
             FATAL: password authentication failed for user \"analytics_backup_reader\"' END, \
           p.backup_credential_id, p.bucket, \
           '{PROJECT}/{POLICY}/' || n || '.dump', '{{app}}', 123456789012 + n, \
           repeat('ab', 32), now() - n * interval '1 day', now() - n * interval '1 day' \
           + interval '3 minutes', now() + interval '90 days', now() - n * interval '1 day' \
         FROM projects p JOIN backup_policies pol ON pol.project_id = p.id, \
           generate_series(1, 50) n"
    );
    app.query(move |conn| {
        use diesel::RunQueryDsl;
        diesel::sql_query(sql).execute(conn)
    });
    let sql = "INSERT INTO restores (project_id, backup_id, backup_name, name, namespaces, \
         target_url, phase, warnings, started_at, finished_at, created_at, parallel) \
       SELECT b.project_id, b.id, b.name, 'restore-into-staging-' || b.id, '{app}', \
         'postgres://analytics_restore@analytics-staging-replica.db.internal.example.com:5432/analytics_staging', \
         'Completed', 'pg_restore: warning: errors ignored on restore: 2 (role \
           \"analytics_owner_with_a_long_name\" does not exist)', b.finished_at, \
         b.finished_at + interval '5 minutes', b.finished_at, n % 2 = 0 \
       FROM backups b, generate_series(1, 1) n ORDER BY b.id LIMIT 50"
        .to_string();
    app.query(move |conn| {
        use diesel::RunQueryDsl;
        diesel::sql_query(sql).execute(conn)
    });
    project
}

/// The document's width against the window's, and the widest element that sticks out.
async fn overflow(browser: &Browser) -> (i64, i64, String) {
    let found = browser
        .script(
            "const doc = document.documentElement, width = window.innerWidth;
             let worst = '';
             if (doc.scrollWidth > width) {
               let right = width;
               for (const el of document.querySelectorAll('body *')) {
                 const r = el.getBoundingClientRect();
                 if (r.right > right + 0.5) {
                   right = r.right;
                   worst = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
                     (el.className && el.className.baseVal === undefined ? '.' + el.className.split(' ').join('.') : '') +
                     ' right=' + Math.round(r.right);
                 }
               }
             }
             return [doc.scrollWidth, width, worst];",
        )
        .await;
    (
        found[0].as_i64().unwrap_or(i64::MAX),
        found[1].as_i64().unwrap_or(0),
        found[2].as_str().unwrap_or_default().to_string(),
    )
}

/// Checks the page at both sizes; answers what was too wide.
async fn fits(browser: &Browser, what: &str, shot: Option<&str>) -> Vec<String> {
    let mut wide = Vec::new();
    for (size, (width, height)) in [("desktop", DESKTOP), ("phone", PHONE)] {
        browser.set_window(width, height).await;
        // Reading the widths lays the page out again; the pause lets the window settle.
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let (document, window, worst) = overflow(browser).await;
        println!("{what} at {size}: document {document} px, window {window} px {worst}");
        if document > window {
            wide.push(format!(
                "{what} at {size}: document {document} px > window {window} px ({worst})"
            ));
        }
        if let Some(name) = shot {
            // The part worth seeing: an opened menu, else a project's Backup tabs.
            browser
                .script(
                    "const t = document.querySelector('details.menu[open]') || document.querySelector('#backup-tab');
                     if (t) t.scrollIntoView({block: 'start'}); return true;",
                )
                .await;
            browser
                .screenshot(&screenshots().join(format!("{name}-{size}.png")))
                .await;
        }
    }
    browser.set_window(DESKTOP.0, DESKTOP.1).await;
    wide
}

#[actix_web::test]
async fn no_page_is_wider_than_the_window_with_long_values_at_either_size() {
    let (app, s3, driver) = start().await;
    let (partner, account) = app.partner().await;
    let organization = partner.create_organization(&app, ORGANIZATION).await;
    for n in 0..6 {
        partner
            .create_user(
                &format!("firstname.lastname-{n}@northwind-interplanetary.example"),
                if n % 2 == 0 { "manager" } else { "user" },
                Some(organization),
            )
            .await;
    }
    seed_every_kind(&app, organization, &s3.endpoint);
    let data = DataDb::with_orders(5);
    let project = seed_project(&app, &partner, organization, &data).await;
    let backup = scalar_i64(
        &app,
        "SELECT max(id) AS n FROM backups WHERE phase = 'Completed'",
    );
    let credential = scalar_i64(
        &app,
        "SELECT min(id) AS n FROM credentials WHERE kind = 'backup'",
    );
    let person = scalar_i64(&app, "SELECT max(id) AS n FROM users");

    // A notification channel with long values, and its delivery log.
    let organization_text = organization.to_string();
    let url = format!(
        "{}/hooks/services/T0123456789/B0123456789/{}",
        s3.endpoint,
        "x".repeat(48)
    );
    let channel_name = long_name("channel", 1);
    let channel_created = partner
        .post_from(
            "/notifications",
            "/notifications",
            &[
                ("organization_id", organization_text.as_str()),
                ("name", channel_name.as_str()),
                ("kind", "webhook"),
                ("url", url.as_str()),
                ("secret", "0123456789abcdef0123"),
                ("events", "backup.failed"),
                ("events", "backup.missed"),
                ("events", "drill.failed"),
                ("events", "credential.verify_failed"),
            ],
        )
        .await;
    assert_eq!(channel_created.status(), StatusCode::SEE_OTHER);
    let channel = scalar_i64(&app, "SELECT max(id) AS n FROM notification_channels");
    partner
        .post_from(
            &format!("/notifications/{channel}"),
            &format!("/notifications/{channel}/test"),
            &[],
        )
        .await;

    let pages: Vec<(String, Option<&str>)> = vec![
        ("/".into(), Some("layout-dashboard")),
        ("/notifications".into(), Some("layout-notifications")),
        (
            format!("/notifications/{channel}"),
            Some("layout-notification-channel"),
        ),
        ("/account".into(), None),
        ("/account/mfa".into(), Some("layout-account-mfa")),
        ("/tokens".into(), None),
        (
            "/credentials/cloud".into(),
            Some("layout-credentials-cloud"),
        ),
        ("/credentials/cloud?provider=aws".into(), None),
        (
            "/credentials/backup".into(),
            Some("layout-credentials-backup"),
        ),
        ("/credentials/billing".into(), None),
        ("/credentials/showback".into(), None),
        ("/credentials/ai".into(), None),
        ("/credentials/backup/new".into(), None),
        (format!("/credentials/backup/{credential}/edit"), None),
        (format!("/credentials/backup/{credential}"), None),
        ("/audit".into(), Some("layout-audit")),
        ("/users".into(), Some("layout-users")),
        ("/organizations".into(), None),
        ("/projects".into(), None),
        ("/projects?q=northwind".into(), None),
        ("/projects/new".into(), Some("layout-project-form")),
        (
            format!("/projects/{project}/edit"),
            Some("layout-project-edit"),
        ),
        (format!("/projects/{project}/delete"), None),
        (format!("/organizations/{organization}/edit"), None),
        (format!("/organizations/{organization}/delete"), None),
        (format!("/users/{person}/edit"), Some("layout-person")),
        (format!("/users/{person}/delete"), None),
        (
            format!("/projects/{project}?tab=schedules"),
            Some("layout-schedules"),
        ),
        (
            format!("/projects/{project}?tab=backups"),
            Some("layout-backups"),
        ),
        (
            format!("/projects/{project}?tab=restores"),
            Some("layout-restores"),
        ),
        (format!("/projects/{project}/backups/{backup}"), None),
        (
            format!("/projects/{project}/backups/{backup}/restore"),
            Some("layout-restore-form"),
        ),
    ];
    let mut wide = Vec::new();
    for javascript in [true, false] {
        let browser = driver.browser(javascript, DESKTOP.0, DESKTOP.1).await;
        sign_in(&browser, &app.address, &account.email, &account.password).await;
        for (path, shot) in &pages {
            browser.goto(&format!("{}{path}", app.address)).await;
            let what = format!(
                "{path} (JavaScript {})",
                if javascript { "on" } else { "off" }
            );
            let shot = shot.filter(|_| javascript);
            wide.extend(fits(&browser, &what, shot).await);
        }

        // Opened: a row's menu and details, on a wide tab.
        browser
            .goto(&format!("{}/credentials/backup", app.address))
            .await;
        let first = format!("#credential-{credential}");
        click_if_closed(&browser, &format!("{first} details.menu")).await;
        click_if_closed(&browser, &format!("{first} td.name details")).await;
        if javascript {
            browser
                .wait_for_text(&format!("{first} .detail-body"), "Created by", 5)
                .await;
        }
        let shot = javascript.then_some("layout-credentials-opened");
        wide.extend(fits(&browser, "an opened credential row", shot).await);

        // The restore dialog of the last row of the Backups tab.
        browser
            .goto(&format!("{}/projects/{project}?tab=backups", app.address))
            .await;
        let row = format!("#backup-{backup}");
        click_if_closed(&browser, &format!("{row} details.menu")).await;
        click_if_closed(&browser, &format!("{row} details.restore")).await;
        if javascript {
            browser
                .find(&format!("{row} .restore-body input[name=restore_name]"))
                .await;
            // The dialog lies inside the window at both sizes.
            for (width, height) in [DESKTOP, PHONE] {
                browser.set_window(width, height).await;
                let inside = browser
                    .script(&format!(
                        "const r = document.querySelector('{row} .restore-body').getBoundingClientRect();
                         return r.left >= 0 && r.top >= 0 && r.right <= window.innerWidth && r.bottom <= window.innerHeight;"
                    ))
                    .await;
                assert_eq!(
                    inside,
                    Value::Bool(true),
                    "the restore dialog lies inside {width}×{height}"
                );
            }
        }
        let shot = javascript.then_some("layout-restore-dialog");
        wide.extend(fits(&browser, "an opened restore dialog", shot).await);

        let reported = errors(browser.console().await);
        assert!(reported.is_empty(), "{reported:?}");
        browser.close().await;
    }
    assert!(
        wide.is_empty(),
        "pages wider than the window:\n{}",
        wide.join("\n")
    );
}

#[actix_web::test]
async fn a_row_action_refused_shows_in_its_row_with_the_row_as_it_stands() {
    let (app, _s3, driver) = start().await;
    let (partner, account) = app.partner().await;
    let organization = partner.create_organization(&app, ORGANIZATION).await;
    support::seed_credentials(
        &app,
        organization,
        keyhold::credentials::provider::Kind::Backup,
        3,
        |n| {
            (
                long_name("stale", n),
                vec![
                    ("access_key_id", format!("AKIAIOSFODNN7EX{n:05}")),
                    ("endpoint", "https://s3.example.com".to_string()),
                    ("region", "eu-central-1".to_string()),
                ],
                vec![("secret_access_key", GOOD.to_string())],
            )
        },
    );
    let id = scalar_i64(&app, "SELECT min(id) AS n FROM credentials");
    let browser = driver.browser(true, PHONE.0, PHONE.1).await;
    sign_in(&browser, &app.address, &account.email, &account.password).await;
    browser
        .goto(&format!("{}/credentials/backup", app.address))
        .await;
    // Someone else locks it after this page was shown.
    app.query(move |conn| {
        use diesel::RunQueryDsl;
        diesel::sql_query(format!(
            "UPDATE credentials SET is_locked = true WHERE id = {id}"
        ))
        .execute(conn)
    });
    let row = format!("#credential-{id}");
    click_if_closed(&browser, &format!("{row} details.menu")).await;
    browser
        .click(&format!("{row} button[formaction$='/lock']"))
        .await;
    browser
        .wait_for_text(&format!("#row-error-{id}"), "is already locked", 5)
        .await;
    browser
        .wait_for_text(&format!("{row} .badge-locked"), "Locked", 5)
        .await;
    // The row tells the truth now: its button unlocks, and focus stayed in the row.
    assert!(
        browser
            .try_find(&format!("{row} button[formaction$='/unlock']"))
            .await
            .is_some()
    );
    let focus_in_row = browser
        .script(&format!(
            "return !!document.activeElement && !!document.activeElement.closest('{row}');"
        ))
        .await;
    assert_eq!(focus_in_row, Value::Bool(true), "focus stays in the row");
    let (document, window, worst) = overflow(&browser).await;
    assert!(document <= window, "{document} > {window}: {worst}");
    let reported = errors(browser.console().await);
    assert!(reported.is_empty(), "{reported:?}");
    browser.close().await;
}
