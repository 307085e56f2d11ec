//! Secrets at rest: sealed, resealed under a new key, and never shown.

use super::*;

#[actix_web::test]
async fn key_rotation_reseals_every_secret_and_the_old_key_can_go() {
    let setup = setup().await;
    let id = add_ai(&setup, &setup.partner, setup.blue, "Rotated key").await;
    let old = crate::support::test_data_keys();
    let new = format!(
        "t2:{}",
        base64::engine::general_purpose::STANDARD.encode([9u8; 32])
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_keyhold"))
        .args(["keys", "rotate", "--batch", "1"])
        .env("DATABASE_URL", &setup.app.database_url)
        .env("KEYHOLD_DATA_KEYS", format!("{old},{new}"))
        .env("KEYHOLD_DATA_KEY_ACTIVE", "t2")
        .env("KEYHOLD_SESSION_KEY", crate::support::test_session_key())
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("re-sealed 1 credential"));
    assert_eq!(
        text_column(
            &setup.app,
            &format!("SELECT key_id AS value FROM credentials WHERE id = {id}")
        ),
        "t2"
    );

    // An instance holding only the new key still opens it.
    let only_new = spawn_app_with(&[
        ("DATABASE_URL", setup.app.database_url.as_str()),
        ("KEYHOLD_DATA_KEYS", new.as_str()),
    ])
    .await;
    let partner = only_new.client();
    partner
        .login("pat@partner.example", "partner-password-1")
        .await;
    let _ = setup.fake.as_str();
    let verified = act(&partner, "ai", id, "verify").await;
    assert_eq!(verified.status(), StatusCode::SEE_OTHER);
    let page = partner.get("/credentials/ai").await.text().await.unwrap();
    assert!(
        page.contains("Rotated key verified"),
        "{:?}",
        texts(&page, ".flash")
    );
    drop(only_new); // shares the database of `setup`, which drops it
}

#[actix_web::test]
async fn no_page_fragment_header_or_audit_row_ever_contains_a_stored_secret() {
    let setup = setup().await;
    let s3 = fakes::start_s3().await;
    let prometheus = fakes::start_prometheus().await;
    let blue = setup.blue.to_string();
    let partner = &setup.partner;

    for (provider, fields) in every_cloud_form(&setup.fake, &marked) {
        let response = add_cloud(
            partner,
            setup.blue,
            provider,
            &format!("{provider}-marked"),
            &fields,
        )
        .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{provider}");
    }
    let s3_secret = marked("secret_access_key");
    assert_eq!(
        add(
            partner,
            "backup",
            &s3_fields(&blue, "Marked S3", &s3.endpoint, S3_MARKED_KEY, &s3_secret)
        )
        .await
        .status(),
        StatusCode::SEE_OTHER
    );
    let prometheus_password = marked("password");
    for kind in ["billing", "showback"] {
        let response = add(
            partner,
            kind,
            &[
                ("organization_id", &blue),
                ("name", "Marked prom"),
                ("username", "marked"),
                ("password", &prometheus_password),
                ("url", &prometheus.url),
            ],
        )
        .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{kind}");
    }
    let api_key = marked("api_key");
    assert_eq!(
        add(
            partner,
            "ai",
            &[
                ("organization_id", &blue),
                ("name", "Marked AI"),
                ("api_key", &api_key),
                ("base_url", &setup.fake)
            ]
        )
        .await
        .status(),
        StatusCode::SEE_OTHER
    );

    // Notification channels keep secrets too: a URL carrying a token, a signing secret, an
    // SMTP password.
    for fields in [
        vec![
            ("kind", "webhook".to_string()),
            (
                "url",
                format!("{}/hooks/{}", setup.fake, marked("webhook_url")),
            ),
            ("secret", marked("webhook_secret")),
        ],
        vec![
            ("kind", "email".to_string()),
            ("smtp_host", "127.0.0.1".to_string()),
            ("smtp_port", "2525".to_string()),
            ("smtp_tls", "none".to_string()),
            ("smtp_username", "keyhold".to_string()),
            ("smtp_password", marked("smtp_password")),
            ("email_from", "keyhold@example.com".to_string()),
            ("email_to", "ops@example.com".to_string()),
        ],
    ] {
        let name = format!("Marked {}", fields[0].1);
        let mut form: Vec<(&str, &str)> = vec![
            ("organization_id", &blue),
            ("name", &name),
            ("events", "backup.failed"),
        ];
        form.extend(fields.iter().map(|(k, v)| (*k, v.as_str())));
        let response = partner
            .post_from("/notifications", "/notifications", &form)
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{name}");
    }
    let channels: Vec<i64> = setup.app.query(|conn| {
        use diesel::prelude::*;
        keyhold::schema::notification_channels::table
            .select(keyhold::schema::notification_channels::id)
            .load(conn)
    });

    let manager = setup.manager("mia@blue.example", setup.blue).await;
    let other = setup.manager("gus@green.example", setup.green).await;
    let user = setup
        .signed_in(
            partner
                .create_user("ulf@blue.example", "user", Some(setup.blue))
                .await,
        )
        .await;
    let ids: Vec<(String, i64)> = setup.app.query(|conn| {
        use diesel::prelude::*;
        use keyhold::schema::credentials;
        credentials::table
            .select((credentials::kind, credentials::id))
            .load(conn)
    });

    let secrets: Vec<String> = [
        "secret_access_key",
        "client_secret",
        "config_json",
        "password",
        "token_secret",
        "pull_secret",
        "kubeconfig",
        "api_token",
        "api_key",
        "webhook_url",
        "webhook_secret",
        "smtp_password",
    ]
    .iter()
    .map(|field| marked(field))
    .collect();
    let forbidden: Vec<String> = std::iter::once(MARKER.to_string())
        .chain(secrets.iter().flat_map(|secret| {
            [
                url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>(),
                base64::engine::general_purpose::STANDARD.encode(secret),
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
                hex::encode(secret),
            ]
        }))
        .collect();
    let check = |what: &str, response_text: &str| {
        for needle in &forbidden {
            assert!(
                !response_text.contains(needle.as_str()),
                "{what} leaks a secret ({needle})"
            );
        }
    };

    let mut pages = vec![
        "/".to_string(),
        "/audit".into(),
        "/users".into(),
        "/organizations".into(),
        "/credentials".into(),
        "/notifications".into(),
    ];
    for channel in &channels {
        pages.push(format!("/notifications/{channel}"));
    }
    for kind in ["cloud", "backup", "billing", "showback", "ai"] {
        pages.push(format!("/credentials/{kind}"));
        pages.push(format!("/credentials/{kind}?q=marked"));
        pages.push(format!("/credentials/{kind}/new"));
    }
    for (kind, id) in &ids {
        pages.push(format!("/credentials/{kind}/{id}"));
        pages.push(format!("/credentials/{kind}/{id}/edit"));
    }
    let mut fetched = 0;
    for client in [partner, &manager, &other, &user] {
        for path in &pages {
            for htmx in [false, true] {
                let response = if htmx {
                    client.get_htmx(path).await
                } else {
                    client.get(path).await
                };
                let headers = format!("{:?}", response.headers());
                let body = response.text().await.unwrap();
                check(&format!("GET {path} (htmx {htmx}) headers"), &headers);
                check(&format!("GET {path} (htmx {htmx})"), &body);
                fetched += 1;
            }
        }
        for (kind, id) in &ids {
            let token = client.token("/").await;
            for action in ["verify", "lock", "unlock"] {
                for htmx in [false, true] {
                    let mut request = client
                        .http
                        .post(format!("{}/credentials/{kind}/{id}/{action}", client.base))
                        .form(&[("csrf_token", token.as_str())]);
                    if htmx {
                        request = request.header("HX-Request", "true");
                    }
                    let response = request.send().await.unwrap();
                    let headers = format!("{:?}", response.headers());
                    check(&format!("POST {action} {kind}/{id} headers"), &headers);
                    check(
                        &format!("POST {action} {kind}/{id}"),
                        &response.text().await.unwrap(),
                    );
                }
            }
            // The edit form's "Verify only" merges the stored secrets without JS.
            let response = client
                .post(
                    &format!("/credentials/{kind}/verify"),
                    &[
                        ("csrf_token", token.as_str()),
                        ("credential_id", &id.to_string()),
                    ],
                )
                .await;
            check(
                &format!("verify form {kind}/{id}"),
                &response.text().await.unwrap(),
            );
        }
    }
    // The same through the API, with tokens of every scope.
    for client in [partner, &manager] {
        let token = crate::api::token(
            client,
            "secrets",
            &["credentials:read", "credentials:write", "audit:read"],
        )
        .await;
        let api = crate::api::Api::new(&setup.app, &token);
        let mut answers = vec![api.get("/api/v1/audit").await];
        for kind in ["cloud", "backup", "billing", "showback", "ai"] {
            answers.push(api.get(&format!("/api/v1/credentials/{kind}")).await);
            answers.push(
                api.get(&format!("/api/v1/credentials/{kind}?q=marked"))
                    .await,
            );
        }
        for (kind, id) in &ids {
            let path = format!("/api/v1/credentials/{kind}/{id}");
            answers.push(api.get(&path).await);
            for action in ["verify", "lock", "unlock"] {
                answers.push(api.send("post", &format!("{path}/{action}"), None).await);
            }
            let stored = serde_json::json!({ "credential_id": id });
            let verify = format!("/api/v1/credentials/{kind}/verify");
            answers.push(api.send("post", &verify, Some(stored)).await);
        }
        for (status, answer) in answers {
            check(&format!("API answer {status}"), &answer.to_string());
            fetched += 1;
        }
    }
    assert!(fetched > 200, "crawled {fetched} pages");
    let audit = text_column(
        &setup.app,
        "SELECT coalesce(string_agg(row_to_json(a)::text, ' '), '') AS value FROM audit_events a",
    );
    check("audit rows", &audit);
    let stored = text_column(
        &setup.app,
        "SELECT string_agg(row_to_json(c)::text, ' ') AS value FROM credentials c",
    );
    check("credential rows (sealed at rest)", &stored);

    // A dump of keyhold's own database holds no secret either (sessions and audit included).
    let dump = std::process::Command::new("pg_dump")
        .args(["--format=plain", "--no-owner", &setup.app.database_url])
        .output()
        .expect("pg_dump runs");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout).to_string();
    assert!(
        dump.contains("COPY public.credentials"),
        "the dump holds the credentials table"
    );
    check("pg_dump of keyhold's database", &dump);
}

#[actix_web::test]
async fn key_rotation_under_load_keeps_every_secret_usable() {
    let fake = fakes::start_cloud_fake().await;
    let old = crate::support::test_data_keys();
    let new = format!(
        "t2:{}",
        base64::engine::general_purpose::STANDARD.encode([9u8; 32])
    );
    let both = format!("{old},{new}");
    // Every instance knows both keys and writes with the new one while the old rows are re-sealed.
    let app = spawn_app_with(&[
        ("KEYHOLD_DATA_KEYS", both.as_str()),
        ("KEYHOLD_DATA_KEY_ACTIVE", "t2"),
    ])
    .await;
    let (partner, account) = app.partner().await;
    let organization = partner.create_organization(&app, "Blue Org").await;
    seed_ai_at(&app, organization, "old", 30, &fake);
    let ids: Vec<i64> = app.query(|conn| {
        use diesel::prelude::*;
        keyhold::schema::credentials::table
            .select(keyhold::schema::credentials::id)
            .load(conn)
    });
    assert_eq!(app.count("credentials WHERE key_id = 't1'"), 30);

    let database_url = app.database_url.clone();
    let (old_key, new_key) = (old.clone(), new.clone());
    let rotation = std::thread::spawn(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_keyhold"))
            .args(["keys", "rotate", "--batch", "3"])
            .env("DATABASE_URL", database_url)
            .env("KEYHOLD_DATA_KEYS", format!("{old_key},{new_key}"))
            .env("KEYHOLD_DATA_KEY_ACTIVE", "t2")
            .env("KEYHOLD_SESSION_KEY", crate::support::test_session_key())
            .env("RUST_LOG", "error")
            .output()
            .unwrap()
    });
    // Load while the rotation runs: verify every credential (opens its secret) and list them.
    let token = partner.token("/credentials/ai").await;
    for round in 0..3 {
        for id in &ids {
            let response = partner
                .http
                .post(format!("{}/credentials/ai/{id}/verify", partner.base))
                .header("HX-Request", "true")
                .form(&[("csrf_token", token.as_str())])
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::OK,
                "round {round}, credential {id}"
            );
            let body = response.text().await.unwrap();
            assert!(
                body.contains("verified:"),
                "round {round}, credential {id}: {}",
                texts(&body, ".flash").join(" ")
            );
        }
        assert_eq!(
            partner.get("/credentials/ai").await.status(),
            StatusCode::OK
        );
    }
    let output = rotation.join().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        app.count("credentials WHERE key_id = 't2'"),
        30,
        "every secret re-sealed"
    );

    // The old key can go: an instance with only the new key opens every secret.
    let only_new = spawn_app_with(&[
        ("DATABASE_URL", app.database_url.as_str()),
        ("KEYHOLD_DATA_KEYS", new.as_str()),
    ])
    .await;
    let browser = only_new.client();
    browser.login(&account.email, &account.password).await;
    let token = browser.token("/credentials/ai").await;
    for id in &ids {
        let response = browser
            .http
            .post(format!("{}/credentials/ai/{id}/verify", browser.base))
            .header("HX-Request", "true")
            .form(&[("csrf_token", token.as_str())])
            .send()
            .await
            .unwrap();
        assert!(
            response.text().await.unwrap().contains("verified:"),
            "credential {id} opens with the new key alone"
        );
    }
    drop(only_new); // shares `app`'s database, which `app` drops
}
