//! Injection: markup in every text field is shown escaped wherever it appears (tables, expanded
//! rows, flash messages, the audit log, error pages), and hostile query parameters change
//! nothing and never cause a 500.

use reqwest::StatusCode;

use crate::support::world;

/// Fits the 30-character limit of credential names.
const PAYLOAD: &str = "<img src=x onerror=alert(1)>";

fn assert_escaped(what: &str, body: &str) {
    assert!(
        !body.contains(PAYLOAD),
        "{what} shows the payload unescaped"
    );
    assert!(
        !body.contains("<img src=x"),
        "{what} shows the payload unescaped"
    );
}

#[actix_web::test]
async fn markup_in_every_text_field_is_escaped_everywhere() {
    let world = world().await;
    let partner = &world.partner;
    let organization = world.organization.to_string();

    // An organization, a person, a credential, a policy and a search, all carrying markup.
    let response = partner
        .post_from(
            "/organizations",
            "/organizations",
            &[("name", &format!("Org {PAYLOAD}"))],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let response = partner
        .post_from(
            "/users",
            "/users",
            &[
                ("email", "x@evil.example"),
                ("display_name", PAYLOAD),
                ("role", "manager"),
                ("organization_id", &organization),
                ("password", "manager-password-1"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let response = partner
        .post_from(
            "/credentials/backup/new",
            "/credentials/backup",
            &[
                ("organization_id", &organization),
                ("name", PAYLOAD),
                ("access_key_id", crate::support::fakes::S3_ACCESS_KEY),
                ("secret_access_key", crate::support::fakes::GOOD),
                ("endpoint", &world.s3.endpoint),
                ("region", "us-east-1"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let page = format!("/projects/{}", world.project);
    let response = partner
        .post_from(
            &page,
            &format!("{page}/policies"),
            &[
                ("name", PAYLOAD),
                ("cron", "daily"),
                ("timezone", "UTC"),
                ("retention", "72h"),
                ("namespaces", "app"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let credential = crate::support::scalar_i64(&world.app, "SELECT max(id) AS n FROM credentials");

    let encoded: String = url::form_urlencoded::byte_serialize(PAYLOAD.as_bytes()).collect();
    let pages = [
        "/".to_string(),
        "/organizations".into(),
        "/users".into(),
        "/audit".into(),
        "/credentials/backup".into(),
        format!("/credentials/backup?q={encoded}"),
        format!("/credentials/backup/{credential}"),
        format!("/credentials/backup/{credential}/edit"),
        format!("/credentials/backup/{credential}/delete"),
        page.clone(),
        format!("{page}?tab=backups"),
        format!("{page}?cron={encoded}&timezone={encoded}"),
        format!("{page}/policies/preview?cron={encoded}&timezone={encoded}"),
        format!("/no/such/{encoded}"),
    ];
    for path in &pages {
        for htmx in [false, true] {
            let response = if htmx {
                partner.get_htmx(path).await
            } else {
                partner.get(path).await
            };
            assert!(
                !response.status().is_server_error(),
                "{path}: {}",
                response.status()
            );
            assert_escaped(path, &response.text().await.unwrap());
        }
    }
    // Flash messages and 409 pages carry names too.
    let locked = partner
        .post_from(
            "/credentials/backup",
            &format!("/credentials/backup/{credential}/lock"),
            &[],
        )
        .await;
    assert_eq!(locked.status(), StatusCode::SEE_OTHER);
    assert_escaped("flash", &partner.page("/credentials/backup").await);
    let conflict = partner
        .post_from(
            "/credentials/backup",
            &format!("/credentials/backup/{credential}/lock"),
            &[],
        )
        .await;
    assert_eq!(conflict.status(), StatusCode::CONFLICT);
    let body = conflict.text().await.unwrap();
    assert_escaped("409 page", &body);
    let line: Vec<&str> = body
        .lines()
        .filter(|l| l.contains("already locked"))
        .collect();
    assert!(
        line.iter()
            .any(|l| l.contains("&#60;img src=x onerror=alert(1)&#62;")),
        "the name is there, escaped: {line:?}"
    );
}

#[actix_web::test]
async fn hostile_query_parameters_change_nothing_and_never_cause_a_500() {
    let world = world().await;
    let before = crate::support::scalar_text(
        &world.app,
        "SELECT md5(string_agg(c::text, ',' ORDER BY id)) AS value FROM credentials c",
    );
    let hostile = [
        "'",
        "\"",
        "' OR '1'='1",
        "1; DROP TABLE credentials; --",
        "name desc; --",
        "%00",
        "\\",
        "%",
        "_",
        "(SELECT pg_sleep(5))",
        "1 UNION SELECT password_hash FROM users",
        "../../etc/passwd",
        "99999999999999999999",
        "-1",
        "🙂",
        "\u{0}",
    ];
    for value in hostile {
        let encoded: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
        for path in [
            format!("/credentials/backup?q={encoded}"),
            format!("/credentials/backup?sort={encoded}&dir={encoded}"),
            format!("/credentials/backup?org={encoded}&page={encoded}"),
            format!("/credentials/cloud?provider={encoded}"),
            format!("/audit?page={encoded}"),
            format!("/projects/{}?tab={encoded}", world.project),
            format!("/projects/{encoded}"),
            format!("/credentials/{encoded}/1"),
        ] {
            let started = std::time::Instant::now();
            let response = world.partner.get(&path).await;
            assert!(
                !response.status().is_server_error(),
                "{path}: {}",
                response.status()
            );
            assert!(
                started.elapsed().as_secs() < 4,
                "{path} took {:?}: injected sleep?",
                started.elapsed()
            );
        }
    }
    let after = crate::support::scalar_text(
        &world.app,
        "SELECT md5(string_agg(c::text, ',' ORDER BY id)) AS value FROM credentials c",
    );
    assert_eq!(before, after);
    assert_eq!(world.app.count("users"), 1);
}
