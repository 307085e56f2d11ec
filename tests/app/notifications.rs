//! Notifications (issue 16, SPEC §9): channels of an organization receive the events they
//! chose, once each, retried when refused; webhooks are signed; mail goes through a real SMTP
//! server (aiosmtpd) that requires a sign-in; slots missed and credentials about to expire are
//! found and said once. The receivers are Python programs in `peers/` written from the SPEC:
//! the webhook receiver checks each signature with Python's own HMAC.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{World, scalar_i64, scalar_text, texts, world, world_with};

const SECRET: &str = "whsec-0123456789abcdef";

/// A Python peer (webhook receiver or SMTP server) on a loopback port, logging what it
/// received as JSON lines; stopped when dropped.
struct Peer {
    port: u16,
    log: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer {
    async fn start(script: &str, args: &[&str]) -> Peer {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("received.jsonl");
        let port = crate::support::fakes::closed_port();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/app/peers")
            .join(script);
        let mut command = Command::new("python3");
        command.arg(script).arg(port.to_string());
        command.args(args).arg(&log);
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs (scripts/test installs aiosmtpd from PyPI)");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Peer {
            port,
            log,
            child,
            _dir: dir,
        }
    }

    /// A webhook receiver checking signatures with `SECRET`; the first `fail_first` requests
    /// are answered 500.
    async fn webhook(fail_first: u32) -> Peer {
        Peer::start("webhook_receiver.py", &[SECRET, &fail_first.to_string()]).await
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// Waits (30 s at most) until `count` requests or mails arrived; returns them.
    async fn wait_for(&self, count: usize) -> Vec<Value> {
        for _ in 0..300 {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("expected {count} requests, got {:?}", self.received());
    }
}

/// What `world`'s instance says at `/metrics`.
async fn metrics(world: &World) -> String {
    let response = world.app.client().get("/metrics").await;
    response.text().await.unwrap()
}

/// How many looks of `look` (`pass`: each second, `watch`: each five) the delivery loop of
/// `world`'s instance has run, as its `/metrics` says.
async fn looks(world: &World, look: &str) -> u64 {
    let metrics = metrics(world).await;
    let series = format!("keyhold_notification_looks_total{{look=\"{look}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series)?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {metrics}"))
}

/// Waits (30 s at most) until the delivery loop has run `more` looks of `look` after this
/// call began: whatever it would have sent by then, it has sent.
async fn after_looks(world: &World, look: &str, more: u64) {
    let start = looks(world, look).await;
    for _ in 0..300 {
        if looks(world, look).await >= start + more {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the delivery loop ran fewer than {more} {look} looks in 30 s");
}

/// Creates a channel through the form; answers its id.
async fn add_channel(world: &World, fields: &[(&str, &str)]) -> i64 {
    let organization = world.organization.to_string();
    let mut form = vec![("organization_id", organization.as_str())];
    form.extend_from_slice(fields);
    let response = world
        .partner
        .post_from("/notifications", "/notifications", &form)
        .await;
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "{:?}",
        texts(&body, ".error")
    );
    let name = fields.iter().find(|(k, _)| *k == "name").unwrap().1;
    scalar_i64(
        &world.app,
        &format!("SELECT id AS n FROM notification_channels WHERE name = '{name}'"),
    )
}

/// Locks the backup credential, so the next run is Skipped.
async fn lock_storage(world: &World) {
    let response = world
        .partner
        .post_from(
            "/credentials/backup",
            &format!("/credentials/backup/{}/lock", world.credential),
            &[],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

/// A signed webhook channel `name` to `receiver` for skipped backups, then a backup skipped
/// (its storage locked) that it is told of; answers the channel's id.
async fn a_skip_told_to(world: &World, receiver: &Peer, name: &str) -> i64 {
    let channel = add_channel(
        world,
        &[
            ("name", name),
            ("kind", "webhook"),
            ("url", &receiver.url("/")),
            ("secret", SECRET),
            ("events", "backup.skipped"),
        ],
    )
    .await;
    world.add_policy("nightly", "daily", "720h", &["app"]).await;
    lock_storage(world).await;
    world.backup_now(world.policy_id("nightly")).await;
    channel
}

/// `sql`'s text (its column `value`) once `done` says it is (5 s at most); the last one read.
async fn text_when(world: &World, sql: &str, done: impl Fn(&str) -> bool) -> String {
    let mut text = scalar_text(&world.app, sql);
    for _ in 0..50 {
        if done(&text) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        text = scalar_text(&world.app, sql);
    }
    text
}

#[actix_web::test]
async fn a_skipped_backup_reaches_a_signed_webhook_once_with_what_the_spec_names() {
    let world = world().await;
    let receiver = Peer::webhook(0).await;
    let url = receiver.url("/hooks/keyhold?token=t0ps3cret");
    let channel = add_channel(
        &world,
        &[
            ("name", "Ops webhook"),
            ("kind", "webhook"),
            ("url", &url),
            ("secret", SECRET),
            ("events", "backup.skipped"),
            ("events", "backup.failed"),
        ],
    )
    .await;
    // The channel's page never shows the URL's path and token or the secret.
    let page = world
        .partner
        .page(&format!("/notifications/{channel}"))
        .await;
    assert!(!page.contains("t0ps3cret") && !page.contains("/hooks/keyhold"));
    assert!(!page.contains(SECRET));
    assert!(page.contains(&format!("http://127.0.0.1:{}/…", receiver.port)));
    assert!(
        !scalar_text(&world.app, "SELECT url AS value FROM notification_channels")
            .contains("t0ps3cret"),
        "sealed at rest"
    );

    world.add_policy("nightly", "daily", "720h", &["app"]).await;
    lock_storage(&world).await;
    let (backup, phase, reason) = world.backup_now(world.policy_id("nightly")).await;
    assert_eq!(
        (phase.as_str(), reason.as_str()),
        ("Skipped", "credentials locked")
    );

    let received = receiver.wait_for(1).await;
    let hit = &received[0];
    assert_eq!(hit["method"], "POST");
    assert_eq!(hit["path"], "/hooks/keyhold?token=t0ps3cret");
    assert_eq!(hit["event"], "backup.skipped");
    assert_eq!(hit["content_type"], "application/json");
    assert_eq!(hit["signature_valid"], true, "{hit}");
    let body: Value = serde_json::from_str(hit["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["event"], "backup.skipped");
    assert_eq!(body["organization"]["name"], "Blue Org");
    assert_eq!(body["organization"]["id"], world.organization);
    assert_eq!(body["project"]["name"], "shop");
    assert_eq!(body["policy"]["name"], "nightly");
    assert_eq!(body["backup"]["id"], backup);
    assert_eq!(body["backup"]["phase"], "Skipped");
    assert_eq!(body["backup"]["reason"], "credentials locked");
    assert_eq!(body["credential"], Value::Null);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("was skipped: credentials locked")
    );
    chrono::DateTime::parse_from_rfc3339(body["at"].as_str().unwrap()).expect("at is RFC 3339");

    // Delivered once: the log says so, and nothing more arrives.
    after_looks(&world, "pass", 3).await;
    assert_eq!(receiver.received().len(), 1);
    let log = world
        .partner
        .page(&format!("/notifications/{channel}"))
        .await;
    let cells = texts(&log, "#deliveries td");
    assert!(cells.iter().any(|c| c.contains("✓ Delivered")), "{cells:?}");
    assert!(cells.iter().any(|c| c == "HTTP 200"), "{cells:?}");
}

#[actix_web::test]
async fn a_refused_delivery_is_retried_with_the_same_delivery_id_until_taken() {
    let world = world_with(&[("KEYHOLD_NOTIFY_RETRY_SECONDS", "1")]).await;
    let receiver = Peer::webhook(2).await;
    let channel = a_skip_told_to(&world, &receiver, "Flaky").await;
    let received = receiver.wait_for(3).await;
    let answers: Vec<i64> = received
        .iter()
        .map(|r| r["answered"].as_i64().unwrap())
        .collect();
    assert_eq!(answers, vec![500, 500, 200]);
    let ids: Vec<&str> = received
        .iter()
        .map(|r| r["delivery"].as_str().unwrap())
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0] && !id.is_empty()),
        "{ids:?}"
    );
    // The signed body names the same delivery, so a replay cannot pass as a new one.
    for request in &received {
        let body: serde_json::Value =
            serde_json::from_str(request["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["delivery"], request["delivery"], "{body}");
        assert_eq!(request["signature_valid"], true);
    }
    text_when(
        &world,
        "SELECT state AS value FROM notification_deliveries",
        |state| state == "delivered",
    )
    .await;
    assert_eq!(
        scalar_text(
            &world.app,
            &format!(
                "SELECT state || ' ' || attempts || ' ' || last_status AS value
                 FROM notification_deliveries WHERE channel_id = {channel}"
            )
        ),
        "delivered 3 200"
    );
}

#[actix_web::test]
async fn a_delivery_refused_for_an_hour_is_given_up_by_the_database_clock() {
    let world = world_with(&[("KEYHOLD_NOTIFY_RETRY_SECONDS", "1")]).await;
    let receiver = Peer::webhook(1000).await;
    let channel = a_skip_told_to(&world, &receiver, "Down").await;
    receiver.wait_for(1).await;
    let state = format!(
        "SELECT state || ' ' || attempts AS value FROM notification_deliveries
         WHERE channel_id = {channel}"
    );
    assert_eq!(
        text_when(&world, &state, |state| state == "pending 1").await,
        "pending 1",
        "retried after the first refusal"
    );
    // The event is now (by the database's clock) just under an hour old: the second refusal's
    // retry (2 s later) would come after the hour, so it is the last attempt.
    world.app.query(move |conn| {
        use diesel::RunQueryDsl;
        diesel::sql_query(format!(
            "UPDATE notification_deliveries SET created_at = now() - interval '3599 seconds'
             WHERE channel_id = {channel}"
        ))
        .execute(conn)
    });
    receiver.wait_for(2).await;
    assert_eq!(
        text_when(&world, &state, |state| state.starts_with("failed")).await,
        "failed 2"
    );
    after_looks(&world, "pass", 3).await;
    assert_eq!(receiver.received().len(), 2, "no attempt after giving up");
}

#[actix_web::test]
async fn slack_gets_text_and_email_goes_through_a_real_smtp_server_that_checks_the_login() {
    let world = world().await;
    let slack = Peer::webhook(0).await;
    add_channel(
        &world,
        &[
            ("name", "Team Slack"),
            ("kind", "slack"),
            ("url", &slack.url("/services/T000/B000/XXXX")),
            ("events", "backup.skipped"),
        ],
    )
    .await;
    let mailbox = Peer::start("smtp_server.py", &["keyhold", "mail-pass-1"]).await;
    let port = mailbox.port.to_string();
    let email = add_channel(
        &world,
        &[
            ("name", "Ops mail"),
            ("kind", "email"),
            ("smtp_host", "127.0.0.1"),
            ("smtp_port", &port),
            ("smtp_tls", "none"),
            ("smtp_username", "keyhold"),
            ("smtp_password", "mail-pass-1"),
            ("email_from", "keyhold@example.com"),
            ("email_to", "ops@example.com, oncall@example.com"),
            ("events", "backup.skipped"),
        ],
    )
    .await;
    world.add_policy("nightly", "daily", "720h", &["app"]).await;
    lock_storage(&world).await;
    world.backup_now(world.policy_id("nightly")).await;

    let posted = slack.wait_for(1).await;
    let text: Value = serde_json::from_str(posted[0]["body"].as_str().unwrap()).unwrap();
    assert!(
        text["text"].as_str().unwrap().contains("backup.skipped")
            && text["text"]
                .as_str()
                .unwrap()
                .contains("credentials locked"),
        "{text}"
    );
    let mails = mailbox.wait_for(1).await;
    assert_eq!(mails[0]["from"], "keyhold@example.com");
    assert_eq!(
        mails[0]["to"],
        serde_json::json!(["ops@example.com", "oncall@example.com"])
    );
    let content = mails[0]["content"].as_str().unwrap();
    assert!(
        content.contains("Subject: [keyhold] backup.skipped"),
        "{content}"
    );
    assert!(content.contains("credentials locked"), "{content}");

    // A wrong password: the test says what the server answered, and the log keeps it.
    let response = world
        .partner
        .post_from(
            &format!("/notifications/{email}"),
            &format!("/notifications/{email}"),
            &[
                ("name", "Ops mail"),
                ("smtp_host", "127.0.0.1"),
                ("smtp_port", &port),
                ("smtp_tls", "none"),
                ("smtp_username", "keyhold"),
                ("smtp_password", "wrong-password"),
                ("email_from", "keyhold@example.com"),
                ("email_to", "ops@example.com"),
                ("events", "backup.skipped"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let tested = world
        .partner
        .post_from(
            &format!("/notifications/{email}"),
            &format!("/notifications/{email}/test"),
            &[],
        )
        .await;
    assert_eq!(tested.status(), StatusCode::SEE_OTHER);
    let page = world.partner.page(&format!("/notifications/{email}")).await;
    let flash = texts(&page, ".flash-error").join(" ");
    assert!(flash.contains("535"), "{flash}");
    assert_eq!(
        mailbox.received().len(),
        1,
        "nothing sent with a refused login"
    );
    let cells = texts(&page, "#deliveries td");
    assert!(cells.iter().any(|c| c.contains("✗ Gave up")), "{cells:?}");
}

#[actix_web::test]
async fn a_saved_smtp_password_is_not_sent_to_another_server_unless_typed_again() {
    let world = world().await;
    let saved_for = Peer::start("smtp_server.py", &["keyhold", "mail-pass-1"]).await;
    // Another server, which would take the password it is given.
    let elsewhere = Peer::start("smtp_server.py", &["keyhold", "mail-pass-1"]).await;
    let (port, other_port) = (saved_for.port.to_string(), elsewhere.port.to_string());
    let channel = add_channel(
        &world,
        &[
            ("name", "Ops mail"),
            ("kind", "email"),
            ("smtp_host", "127.0.0.1"),
            ("smtp_port", &port),
            ("smtp_tls", "none"),
            ("smtp_username", "keyhold"),
            ("smtp_password", "mail-pass-1"),
            ("email_from", "keyhold@example.com"),
            ("email_to", "ops@example.com"),
            ("events", "backup.skipped"),
        ],
    )
    .await;
    let page = format!("/notifications/{channel}");
    let update = |port: String, password: &'static str, name: &'static str| {
        let (world, page) = (&world, page.clone());
        async move {
            world
                .partner
                .post_from(
                    &page,
                    &page,
                    &[
                        ("name", name),
                        ("smtp_host", "127.0.0.1"),
                        ("smtp_port", &port),
                        ("smtp_tls", "none"),
                        ("smtp_username", "keyhold"),
                        ("smtp_password", password),
                        ("email_from", "keyhold@example.com"),
                        ("email_to", "ops@example.com"),
                        ("events", "backup.skipped"),
                    ],
                )
                .await
        }
    };

    // Pointing the channel at another server with the password left blank is refused: the
    // saved password would be handed to that server at the next sign-in.
    let moved = update(other_port.clone(), "", "Ops mail").await;
    assert_eq!(moved.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let errors = texts(&moved.text().await.unwrap(), "p.error").join(" | ");
    assert!(errors.contains("Enter the password again"), "{errors}");
    assert_eq!(
        scalar_i64(
            &world.app,
            &format!(
                "SELECT smtp_port::bigint AS n FROM notification_channels WHERE id = {channel}"
            )
        ),
        i64::from(saved_for.port)
    );
    let tested = world
        .partner
        .post_from(&page, &format!("{page}/test"), &[])
        .await;
    assert_eq!(tested.status(), StatusCode::SEE_OTHER);
    saved_for.wait_for(1).await;
    assert!(
        elsewhere.received().is_empty(),
        "{:?}",
        elsewhere.received()
    );

    // Other edits keep it when left blank; typed again, it may go to the new server.
    let renamed = update(port.clone(), "", "Ops mail 2").await;
    assert_eq!(renamed.status(), StatusCode::SEE_OTHER);
    let retyped = update(other_port, "mail-pass-1", "Ops mail 2").await;
    assert_eq!(retyped.status(), StatusCode::SEE_OTHER);
    world
        .partner
        .post_from(&page, &format!("{page}/test"), &[])
        .await;
    elsewhere.wait_for(1).await;
}

#[actix_web::test]
async fn send_test_reaches_the_channel_and_forms_refuse_what_they_must() {
    let world = world().await;
    let receiver = Peer::webhook(0).await;
    let channel = add_channel(
        &world,
        &[
            ("name", "Tested"),
            ("kind", "webhook"),
            ("url", &receiver.url("/t")),
            ("secret", SECRET),
            ("events", "drill.failed"),
        ],
    )
    .await;
    let response = world
        .partner
        .post_from(
            &format!("/notifications/{channel}"),
            &format!("/notifications/{channel}/test"),
            &[],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let page = world
        .partner
        .page(&format!("/notifications/{channel}"))
        .await;
    assert!(
        texts(&page, ".flash-success")
            .join(" ")
            .contains("answered HTTP 200"),
        "{:?}",
        texts(&page, ".flash")
    );
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0]["event"], "test");
    assert_eq!(received[0]["signature_valid"], true);

    // Refusals keep what was typed (never the secrets) and say why, field by field.
    let organization = world.organization.to_string();
    let refused = world
        .partner
        .post_from(
            "/notifications",
            "/notifications",
            &[
                ("organization_id", &organization),
                ("name", "Tested"),
                ("kind", "webhook"),
                ("url", "http://169.254.169.254/latest/meta-data"),
                ("secret", "short"),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = refused.text().await.unwrap();
    let errors = texts(&body, "p.error").join(" | ");
    assert!(errors.contains("169.254.169.254"), "{errors}");
    assert!(errors.contains("Use at least 16 characters."), "{errors}");
    assert!(errors.contains("Choose at least one event."), "{errors}");
    assert!(
        !body.contains("169.254.169.254/latest"),
        "the URL is not shown again"
    );
    let name_taken = world
        .partner
        .post_from(
            "/notifications",
            "/notifications",
            &[
                ("organization_id", &organization),
                ("name", "Tested"),
                ("kind", "slack"),
                ("url", &receiver.url("/other")),
                ("events", "drill.failed"),
            ],
        )
        .await;
    assert_eq!(name_taken.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        texts(&name_taken.text().await.unwrap(), "p.error")
            .join(" ")
            .contains("Tested already exists")
    );

    // Deleting takes the channel and its log, and is audited.
    let deleted = world
        .partner
        .post_from(
            &format!("/notifications/{channel}"),
            &format!("/notifications/{channel}/delete"),
            &[],
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    assert_eq!(world.app.count("notification_channels"), 0);
    assert_eq!(world.app.count("notification_deliveries"), 0);
    assert_eq!(
        scalar_text(
            &world.app,
            "SELECT string_agg(action, ',' ORDER BY id) AS value FROM audit_events
             WHERE action LIKE 'notification.%'"
        ),
        "notification.create,notification.test,notification.delete"
    );
}

#[actix_web::test]
async fn a_missed_slot_and_a_coming_expiry_are_each_said_once() {
    let world = world().await;
    let receiver = Peer::webhook(0).await;
    add_channel(
        &world,
        &[
            ("name", "Watch"),
            ("kind", "webhook"),
            ("url", &receiver.url("/w")),
            ("secret", SECRET),
            ("events", "backup.missed"),
            ("events", "credential.expiring"),
        ],
    )
    .await;
    world.add_policy("nightly", "daily", "720h", &["app"]).await;
    // Every instance was down: the slot is an hour late.
    world.app.query(|conn| {
        diesel::RunQueryDsl::execute(
            diesel::sql_query("UPDATE backup_policies SET next_run_at = now() - interval '1 hour'"),
            conn,
        )
    });
    world.app.query(|conn| {
        diesel::RunQueryDsl::execute(
            diesel::sql_query("UPDATE credentials SET expires_on = current_date + 10"),
            conn,
        )
    });
    // The delivery loop looks every 5 s; later looks find the same slot and expiry again.
    let received = receiver.wait_for(2).await;
    let mut events: Vec<&str> = received
        .iter()
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    events.sort();
    assert_eq!(events, vec!["backup.missed", "credential.expiring"]);
    let expiring = received
        .iter()
        .find(|r| r["event"] == "credential.expiring")
        .unwrap();
    let body: Value = serde_json::from_str(expiring["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["credential"]["name"], "Blue storage");
    assert_eq!(body["credential"]["kind"], "backup");
    assert!(body["message"].as_str().unwrap().contains("in 10 days"));
    after_looks(&world, "watch", 2).await;
    assert_eq!(receiver.received().len(), 2, "each said once");
    assert_eq!(
        scalar_i64(&world.app, "SELECT count(*) AS n FROM notification_events"),
        2
    );
    let metrics = metrics(&world).await;
    assert!(
        metrics.contains("keyhold_backups_missed_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "keyhold_credential_expiry_timestamp_seconds{organization=\"Blue Org\",kind=\"backup\",credential=\"Blue storage\"}"
        ),
        "{metrics}"
    );
}

#[actix_web::test]
async fn heartbeats_metrics_and_last_used_follow_each_run() {
    let world = world().await;
    let checks = Peer::webhook(0).await;
    let response = world
        .partner
        .post_from(
            &world.path(""),
            &world.path("/policies"),
            &[
                ("name", "nightly"),
                ("cron", "daily"),
                ("timezone", "UTC"),
                ("retention", "720h"),
                ("namespaces", "app"),
                ("heartbeat_url", &checks.url("/ping/abc-123?rid=7")),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let schedules = world.partner.page(&world.path("?tab=schedules")).await;
    assert!(schedules.contains(&format!("heartbeat: http://127.0.0.1:{}", checks.port)));
    assert!(
        !schedules.contains("abc-123"),
        "the heartbeat's token is not shown"
    );

    let (_, phase, reason) = world.backup_now(world.policy_id("nightly")).await;
    assert_eq!(phase, "Completed", "{reason}");
    let pinged = checks.wait_for(1).await;
    assert_eq!(
        (pinged[0]["method"].as_str(), pinged[0]["path"].as_str()),
        (Some("GET"), Some("/ping/abc-123?rid=7"))
    );
    lock_storage(&world).await;
    let (_, phase, _) = world.backup_now(world.policy_id("nightly")).await;
    assert_eq!(phase, "Skipped");
    let pinged = checks.wait_for(2).await;
    assert_eq!(pinged[1]["path"], "/ping/abc-123/fail?rid=7");

    let metrics = metrics(&world).await;
    for line in [
        "keyhold_backup_runs_total{outcome=\"completed\"} 1",
        "keyhold_backup_runs_total{outcome=\"skipped\"} 1",
        "keyhold_backup_duration_seconds_count 1",
        "keyhold_backup_last_size_bytes{organization=\"Blue Org\",project=\"shop\",policy=\"nightly\"}",
        "keyhold_backup_last_success_timestamp_seconds{organization=\"Blue Org\",project=\"shop\",policy=\"nightly\"}",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }

    let detail = world
        .partner
        .fragment(&format!("/credentials/backup/{}", world.credential))
        .await;
    let last_used = texts(&detail, "dd").join(" | ");
    assert!(
        last_used.contains("just now: backup nightly") && last_used.contains("of project shop"),
        "{last_used}"
    );
}

#[actix_web::test]
async fn the_dashboard_shows_backup_health_and_flags_a_dump_that_shrank() {
    let world = world().await;
    world.add_policy("nightly", "daily", "720h", &["app"]).await;
    let (_, phase, reason) = world.backup_now(world.policy_id("nightly")).await;
    assert_eq!(phase, "Completed", "{reason}");
    let dashboard = world.partner.page("/").await;
    let row = texts(&dashboard, "#backup-health tbody td");
    assert_eq!(row[0], "shopBlue Org", "{row:?}");
    assert_eq!(row[1], "✓ OK");
    assert_eq!(row[2], "just now");
    assert_eq!(row[3], "never", "no restore verified yet");
    assert!(row[4].starts_with("in "), "{row:?}");
    assert!(row[5].starts_with("Sizes of the last 1 dumps"), "{row:?}");
    assert!(!dashboard.contains("<polyline"));

    // Ten dumps of about the real size, then one a fifth of it: the line is drawn and the
    // short dump is flagged, though it "completed".
    let real = scalar_i64(&world.app, "SELECT size_bytes AS n FROM backups");
    let policy = world.policy_id("nightly");
    world.app.query(move |conn| {
        diesel::RunQueryDsl::execute(
            diesel::sql_query(format!(
                "INSERT INTO backups (project_id, policy_id, policy_name, name, scheduled_for,
                     phase, namespaces, size_bytes, started_at, finished_at)
                 SELECT project_id, policy_id, policy_name, 'old-' || n,
                     now() - n * interval '1 day', 'Completed', namespaces,
                     CASE WHEN n = 0 THEN {real} / 5 ELSE {real} END,
                     now() - n * interval '1 day' - interval '1 minute',
                     now() - n * interval '1 day' + interval '1 second'
                 FROM backups, generate_series(0, 10) n WHERE policy_id = {policy} AND name NOT LIKE 'old-%'"
            )),
            conn,
        )
    });
    let dashboard = world.partner.page("/").await;
    let state = texts(&dashboard, "#backup-health tbody td")[1].clone();
    assert!(state.contains("✗ Needs attention"), "{state}");
    assert!(
        state.contains("80 % smaller than the median of the 10 before it"),
        "{state}"
    );
    assert!(
        dashboard.contains("<polyline points=\"0.0,"),
        "the sizes are drawn"
    );
    assert!(
        texts(&dashboard, "#backup-health svg title")[0].starts_with("Sizes of the last 12 dumps")
    );
}

#[actix_web::test]
async fn an_event_storm_is_delivered_once_each_by_three_instances_while_pages_stay_fast() {
    let world = world().await;
    let receiver = Peer::webhook(0).await;
    let channel = add_channel(
        &world,
        &[
            ("name", "Storm"),
            ("kind", "webhook"),
            ("url", &receiver.url("/storm")),
            ("secret", SECRET),
            ("events", "backup.failed"),
        ],
    )
    .await;
    // Two more keyhold processes on the same database deliver beside the test's own.
    let _second = crate::instances::instance_with(&world.app.database_url, &[]).await;
    let _third = crate::instances::instance_with(&world.app.database_url, &[]).await;
    // 100 failing projects at once, as the runner records them.
    let organization = world.organization;
    world.app.query(move |conn| {
        for n in 0..100 {
            let message = format!("Backup {n} of project p{n} failed: S3 answered 500");
            keyhold::notifications::Event {
                kind: keyhold::notifications::EventKind::BackupFailed,
                subject: keyhold::notifications::Subject {
                    organization: Some(keyhold::accounts::model::OrganizationId(organization)),
                    ..Default::default()
                },
                message: &message,
                once: None,
            }
            .record(conn)?;
        }
        Ok::<_, diesel::result::Error>(())
    });
    let started = std::time::Instant::now();
    let page = world
        .partner
        .get(&format!("/notifications/{channel}"))
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let received = receiver.wait_for(100).await;
    after_looks(&world, "pass", 2).await;
    let received_after = receiver.received();
    assert_eq!(
        received_after.len(),
        100,
        "nothing sent twice by three instances"
    );
    let mut ids: Vec<&str> = received
        .iter()
        .map(|r| r["delivery"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100);
    assert!(received.iter().all(|r| r["signature_valid"] == true));
}

#[actix_web::test]
async fn a_credential_that_stops_verifying_is_said_once_even_by_two_checks_read_before_it() {
    let world = world().await;
    let id = keyhold::credentials::model::CredentialId(world.credential);
    // Two checks that both read the credential while it still verified, ending one after the
    // other: the second finds it failed already.
    world.app.query(move |conn| {
        let first = keyhold::credentials::model::Credential::find_any(conn, id)?;
        let second = keyhold::credentials::model::Credential::find_any(conn, id)?;
        let failed = keyhold::credentials::verify::Outcome::Failed("Invalid S3 credentials".into());
        first.record_verification(conn, &failed)?;
        second.record_verification(conn, &failed)
    });
    assert_eq!(
        scalar_i64(
            &world.app,
            "SELECT count(*) AS n FROM notification_events WHERE kind = 'credential.verify_failed'"
        ),
        1
    );
}
