use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::StatusCode;

use crate::support::{spawn_app, spawn_app_with};

#[actix_web::test]
async fn health_readiness_and_metrics_answer() {
    let app = spawn_app().await;
    let client = app.client();
    assert_eq!(client.get("/healthz").await.text().await.unwrap(), "ok");
    let ready = client.get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::OK);
    client.get("/nope").await;
    let metrics = client.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("keyhold_http_requests_total{method=\"GET\",status=\"404\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("keyhold_http_request_duration_seconds_count"));
    assert!(metrics.contains("keyhold_db_connections{state=\"idle\"}"));
}

#[actix_web::test]
async fn metrics_need_the_bearer_token_when_one_is_set() {
    let app = spawn_app_with(&[("KEYHOLD_METRICS_TOKEN", "metrics-token-1")]).await;
    let client = app.client();
    let url = format!("{}/metrics", client.base);
    let with = |authorization: Option<&'static str>| {
        let request = client.http.get(&url);
        let request = match authorization {
            Some(value) => request.header("Authorization", value),
            None => request,
        };
        async move { request.send().await.unwrap() }
    };
    for refused in [
        None,
        Some("Bearer wrong-token"),
        Some("Bearer metrics-token-"),
        Some("Basic bWV0cmljcy10b2tlbi0x"),
        Some("metrics-token-1"),
    ] {
        let response = with(refused).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{refused:?}");
        assert!(
            !response
                .text()
                .await
                .unwrap()
                .contains("keyhold_http_requests_total"),
            "{refused:?}"
        );
    }
    let allowed = with(Some("Bearer metrics-token-1")).await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert!(
        allowed
            .text()
            .await
            .unwrap()
            .contains("keyhold_http_requests_total")
    );

    // In production, /metrics without a token is off.
    let production = spawn_app_with(&[("KEYHOLD_ENV", "production")]).await;
    let response = production.client().get("/metrics").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(
        !response
            .text()
            .await
            .unwrap()
            .contains("keyhold_http_requests_total")
    );
}

fn keyhold(envs: &[(&str, &str)], args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyhold"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "error")
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("keyhold runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[actix_web::test]
async fn the_command_line_creates_the_first_partner_and_then_managers() {
    let app = spawn_app().await;
    let key_dir = std::env::temp_dir().join(format!("keyhold-cli-{}", std::process::id()));
    let key_dir = key_dir.to_string_lossy().to_string();
    let envs = [
        ("DATABASE_URL", app.database_url.as_str()),
        ("KEYHOLD_KEY_DIR", key_dir.as_str()),
    ];
    let output = keyhold(
        &envs,
        &[
            "user",
            "create",
            "--email",
            "cli@partner.example",
            "--role",
            "partner",
        ],
        "cli-password-123\n",
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("created Partner cli@partner.example")
    );

    let output = keyhold(
        &envs,
        &[
            "user",
            "create",
            "--email",
            "m@x.example",
            "--role",
            "manager",
            "--organization",
            "Nope",
        ],
        "cli-password-123\n",
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
    assert!(stderr.contains("no organization \"Nope\""), "{stderr}");
    // An address in use is refused by the same code as the Users page's, and nothing is added.
    let output = keyhold(
        &envs,
        &[
            "user",
            "create",
            "--email",
            "CLI@partner.example",
            "--role",
            "partner",
        ],
        "cli-password-123\n",
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(app.count("users"), 1);

    let browser = app.client();
    let response = browser
        .login("cli@partner.example", "cli-password-123")
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.client().get("/setup").await.status(),
        StatusCode::NOT_FOUND
    );
    std::fs::remove_dir_all(&key_dir).ok();
}

#[test]
fn an_unreachable_database_stops_start_up_with_one_clear_line() {
    let output = keyhold(
        &[
            (
                "DATABASE_URL",
                "postgres://keyhold:hunter2@127.0.0.1:1/keyhold",
            ),
            ("KEYHOLD_KEY_DIR", "/tmp/keyhold-unreachable-keys"),
        ],
        &["serve"],
        "",
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("keyhold: cannot reach PostgreSQL"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn production_without_keys_stops_start_up_naming_the_variable() {
    let output = keyhold(&[("KEYHOLD_ENV", "production")], &["serve"], "");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.trim(),
        "keyhold: KEYHOLD_SESSION_KEY is required in production"
    );
}

#[test]
fn openssl_is_found_to_skip_its_cleanup_at_exit() {
    // libpq brings libcrypto into every keyhold process (this one too); if the lookup ever
    // failed, OpenSSL's clean-up at exit would silently stay on.
    // SAFETY: a symbol lookup only.
    let symbol = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"OPENSSL_init_crypto".as_ptr()) };
    assert!(!symbol.is_null());
    keyhold::db::skip_openssl_cleanup_at_exit();
}
