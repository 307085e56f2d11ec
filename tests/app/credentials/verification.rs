//! Every kind is checked against its API before it is saved, and what the check found is shown.

use super::*;

#[actix_web::test]
async fn backup_credentials_are_verified_against_a_real_s3_server_before_saving() {
    let setup = setup().await;
    let s3 = fakes::start_s3().await;
    let blue = setup.blue.to_string();
    let partner = &setup.partner;

    let wrong = add(
        partner,
        "backup",
        &s3_fields(
            &blue,
            "Wrong secret",
            &s3.endpoint,
            S3_ACCESS_KEY,
            "not-the-secret",
        ),
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = wrong.text().await.unwrap();
    assert_eq!(
        texts(&body, ".verify-box"),
        vec!["Invalid S3 credentials".to_string()]
    );
    assert!(!body.contains("not-the-secret"), "secrets are never echoed");
    assert!(
        body.contains("value=\"Wrong secret\""),
        "other values are kept"
    );
    assert_eq!(setup.app.count("credentials"), 0, "nothing saved");

    let unreachable = format!("http://127.0.0.1:{}", fakes::closed_port());
    let down = add(
        partner,
        "backup",
        &s3_fields(&blue, "Down", &unreachable, S3_ACCESS_KEY, GOOD),
    )
    .await;
    assert_eq!(down.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let message = texts(&down.text().await.unwrap(), ".verify-box").join("");
    assert!(
        message.starts_with(&format!("could not reach {unreachable}")),
        "{message}"
    );

    let ok = add(
        partner,
        "backup",
        &s3_fields(&blue, "Main backups", &s3.endpoint, S3_ACCESS_KEY, GOOD),
    )
    .await;
    assert_eq!(
        ok.status(),
        StatusCode::SEE_OTHER,
        "{:?}",
        texts(&ok.text().await.unwrap(), ".verify-box, p.error")
    );
    let limited = add(
        partner,
        "backup",
        &s3_fields(&blue, "Limited", &s3.endpoint, S3_LIMITED_KEY, GOOD),
    )
    .await;
    assert_eq!(
        limited.status(),
        StatusCode::SEE_OTHER,
        "AccessDenied with a valid signature is saved"
    );
    let page = partner.page("/credentials/backup").await;
    assert!(
        page.contains("Warning: the signature is valid, but listing buckets is denied"),
        "warning shown"
    );
    assert!(
        page.contains("Main backups")
            && page.contains(S3_ACCESS_KEY)
            && page.contains(&s3.endpoint)
    );

    // Stored sealed: neither column holds the secret, and the row verifies on demand.
    let id = setup.credential_id("Main backups");
    let row = text_column(
        &setup.app,
        &format!("SELECT row_to_json(c)::text AS value FROM credentials c WHERE id = {id}"),
    );
    assert!(!row.contains(GOOD), "no plaintext secret in the row");
    let verified = partner
        .post_from(
            "/credentials/backup",
            &format!("/credentials/backup/{id}/verify"),
            &[],
        )
        .await;
    assert_eq!(verified.status(), StatusCode::SEE_OTHER);
    let page = partner.page("/credentials/backup").await;
    assert!(page.contains("Main backups verified"), "flash after verify");
}

#[actix_web::test]
async fn billing_and_showback_are_verified_against_a_real_prometheus() {
    let setup = setup().await;
    let prometheus = fakes::start_prometheus().await;
    let blue = setup.blue.to_string();
    for (kind, name) in [("billing", "Billing prom"), ("showback", "Showback prom")] {
        let wrong = add(
            &setup.partner,
            kind,
            &[
                ("organization_id", &blue),
                ("name", name),
                ("username", &prometheus.user),
                ("password", "wrong"),
                ("url", &prometheus.url),
            ],
        )
        .await;
        assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY, "{kind}");
        let message = texts(&wrong.text().await.unwrap(), ".verify-box").join("");
        assert_eq!(message, "Invalid Prometheus credentials (HTTP 401)");
        let ok = add(
            &setup.partner,
            kind,
            &[
                ("organization_id", &blue),
                ("name", name),
                ("username", &prometheus.user),
                ("password", GOOD),
                ("url", &prometheus.url),
            ],
        )
        .await;
        assert_eq!(ok.status(), StatusCode::SEE_OTHER, "{kind}");
    }
    assert_eq!(setup.app.count("credentials"), 2);
}

#[actix_web::test]
async fn ai_keys_are_checked_and_redirects_and_metadata_addresses_are_refused() {
    let setup = setup().await;
    let blue = setup.blue.to_string();
    let cases = [
        ("Bad key", setup.fake.clone(), "wrong-key", "Invalid API credentials (HTTP 401)".to_string()),
        (
            "Redirected",
            format!("{}/redirect", setup.fake),
            GOOD,
            format!("{} answered with a redirect (HTTP 302), which keyhold does not follow: check the URL", setup.fake),
        ),
        (
            "Metadata",
            "http://169.254.169.254".to_string(),
            GOOD,
            "http://169.254.169.254 resolves to 169.254.169.254, an address keyhold does not connect to".to_string(),
        ),
        (
            "Metadata hex",
            "http://0xA9FEA9FE".to_string(),
            GOOD,
            "http://169.254.169.254 resolves to 169.254.169.254, an address keyhold does not connect to".to_string(),
        ),
    ];
    for (name, url, key, expected) in cases {
        let response = add(
            &setup.partner,
            "ai",
            &[
                ("organization_id", &blue),
                ("name", name),
                ("api_key", key),
                ("base_url", &url),
            ],
        )
        .await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name}"
        );
        assert_eq!(
            texts(&response.text().await.unwrap(), ".verify-box").join(""),
            expected,
            "{name}"
        );
    }
    let ok = add(
        &setup.partner,
        "ai",
        &[
            ("organization_id", &blue),
            ("name", "Good key"),
            ("api_key", GOOD),
            ("base_url", &setup.fake),
        ],
    )
    .await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
}

#[actix_web::test]
async fn a_key_whose_project_id_says_only_is_verified_without_a_warning() {
    let setup = setup().await;
    let mut fields = cloud_forms(&setup.fake, &|_| GOOD.to_string())
        .into_iter()
        .find(|(provider, _)| *provider == "gcp")
        .unwrap()
        .1;
    for (key, value) in &mut fields {
        if key == "config_json" {
            *value = value.replace("keyhold-demo", "readonly-analytics");
        }
    }
    let response = add_cloud(&setup.partner, setup.blue, "gcp", "gcp-readonly", &fields).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);

    let page = setup.partner.page("/credentials/cloud?provider=gcp").await;
    assert!(page.contains("readonly-analytics"), "the key's project id");
    assert_eq!(
        texts(&page, "span.verify"),
        vec!["✓ Verified".to_string()],
        "the check passed without a warning, whatever words its message holds"
    );
}

#[actix_web::test]
async fn invalid_cloud_forms_answer_422_with_messages_next_to_the_fields() {
    let setup = setup().await;
    let forms: HashMap<_, _> = cloud_forms(&setup.fake, &|_| GOOD.to_string())
        .into_iter()
        .collect();
    let mut aws = forms["aws"].clone();
    aws.retain(|(k, _)| k != "az_count");
    aws.push(("az_count".into(), "4".into()));
    let response = add_cloud(&setup.partner, setup.blue, "aws", "bad name!", &aws).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = response.text().await.unwrap();
    assert_eq!(
        texts(&body, "#name-help"),
        vec!["only letters, digits and -".to_string()]
    );
    assert_eq!(
        texts(&body, "#az_count-help"),
        vec!["Enter a number from 1 to 3.".to_string()]
    );
    assert!(!body.contains(GOOD), "secret fields are never echoed");

    let mut gcp = forms["gcp"].clone();
    gcp.push(("import_project".into(), "on".into()));
    let response = add_cloud(&setup.partner, setup.blue, "gcp", "gcp-import", &gcp).await;
    let body = response.text().await.unwrap();
    assert_eq!(
        texts(&body, "#folder_id-help"),
        vec!["Leave empty when importing a project.".to_string()]
    );

    let mut proxmox = forms["proxmox"].clone();
    for (k, v) in proxmox.iter_mut() {
        if k == "public_gateway" {
            *v = "10.9.9.1".into();
        }
        if k == "private_netmask" {
            *v = "33".into();
        }
    }
    let response = add_cloud(&setup.partner, setup.blue, "proxmox", "pve", &proxmox).await;
    let body = response.text().await.unwrap();
    assert_eq!(
        texts(&body, "#public_gateway-help"),
        vec!["Must be inside 10.0.0.0/24.".to_string()]
    );
    assert_eq!(
        texts(&body, "#private_netmask-help"),
        vec!["Enter a number from 1 to 32.".to_string()]
    );

    // Tanzu's port has one source: a URL naming another port than Port is refused beside
    // Port, not silently overridden.
    let mut tanzu = forms["tanzu"].clone();
    for (k, v) in tanzu.iter_mut() {
        if k == "port" {
            *v = "9443".into();
        }
    }
    let response = add_cloud(
        &setup.partner,
        setup.blue,
        "tanzu",
        "tanzu-two-ports",
        &tanzu,
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = response.text().await.unwrap();
    let message = texts(&body, "#port-help").join("");
    assert!(
        message.contains("Port says 9443") && message.contains("take the port out of the URL"),
        "{message}"
    );
    assert_eq!(setup.app.count("credentials"), 0);
}

#[actix_web::test]
async fn an_expired_credential_reads_expired_and_fails_verification_with_its_date() {
    let setup = setup().await;
    let fields = cloud_forms(&setup.fake, &|_| GOOD.to_string())
        .into_iter()
        .find(|(provider, _)| *provider == "gcp")
        .unwrap()
        .1;
    let response = add_cloud(&setup.partner, setup.blue, "gcp", "gcp-old", &fields).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let page = setup.partner.page("/credentials/cloud?provider=gcp").await;
    assert_eq!(texts(&page, "span.verify"), vec!["✓ Verified".to_string()]);

    // Its expiry date passes (set behind keyhold's back): never "Verified" again.
    setup.app.query(|conn| {
        use diesel::RunQueryDsl;
        diesel::sql_query("UPDATE credentials SET expires_on = current_date - 1").execute(conn)
    });
    let page = setup.partner.page("/credentials/cloud?provider=gcp").await;
    assert_eq!(texts(&page, "span.verify"), vec!["✗ Expired".to_string()]);
    assert!(
        !page.contains("Expires soon"),
        "an expired credential does not expire soon"
    );
    let id = setup.app.query(|conn| {
        use diesel::RunQueryDsl;
        use diesel::dsl::sql;
        diesel::select(sql::<diesel::sql_types::BigInt>(
            "(SELECT id FROM credentials WHERE name = 'gcp-old')",
        ))
        .get_result::<i64>(conn)
    });
    let verified = setup
        .partner
        .post_from(
            "/credentials/cloud",
            &format!("/credentials/cloud/{id}/verify"),
            &[],
        )
        .await;
    assert_eq!(verified.status(), StatusCode::SEE_OTHER);
    let yesterday = (chrono::Utc::now().date_naive() - chrono::Days::new(1)).to_string();
    let page = setup.partner.page("/credentials/cloud?provider=gcp").await;
    assert!(
        page.contains(&format!("credentials expired on {yesterday}")),
        "the reason carries the date"
    );
    assert_eq!(texts(&page, "span.verify"), vec!["✗ Expired".to_string()]);
}

/// The `<time>` of a row's status cell: its text, `datetime` and title.
fn verified_time(page: &str, id: i64) -> Option<(String, String, String)> {
    let html = scraper::Html::parse_document(page);
    let selector = scraper::Selector::parse(&format!("#credential-{id} td time")).unwrap();
    html.select(&selector).next().map(|time| {
        let attr = |name: &str| time.value().attr(name).unwrap_or_default().to_string();
        (
            time.text().collect::<String>(),
            attr("datetime"),
            attr("title"),
        )
    })
}

#[actix_web::test]
async fn the_tables_show_when_each_credential_was_last_verified() {
    let setup = setup().await;
    let id = add_ai(&setup, &setup.partner, setup.blue, "Timed key").await;
    let page = setup.partner.page("/credentials/ai").await;
    let (ago, datetime, title) = verified_time(&page, id).expect("a time in the status cell");
    assert_eq!(ago, "just now");
    let at = chrono::DateTime::parse_from_rfc3339(&datetime).expect("RFC 3339");
    assert!((chrono::Utc::now() - at.to_utc()).num_seconds().abs() < 60);
    assert_eq!(title, at.format("%Y-%m-%d %H:%M:%S UTC").to_string());
    assert_eq!(
        texts(&page, &format!("#credential-{id} span.verify")),
        vec!["✓ Verified".to_string()],
        "in the same cell, beside the state"
    );

    // Checked three hours ago (behind keyhold's back): said so, with the exact time.
    setup.app.query(move |conn| {
        use diesel::RunQueryDsl;
        diesel::sql_query(format!(
            "UPDATE credentials SET verified_at = now() - interval '3 hours 5 seconds'
             WHERE id = {id}"
        ))
        .execute(conn)
    });
    let page = setup.partner.page("/credentials/ai").await;
    let (ago, datetime, title) = verified_time(&page, id).unwrap();
    assert_eq!(ago, "3 hours ago");
    let at = chrono::DateTime::parse_from_rfc3339(&datetime)
        .unwrap()
        .to_utc();
    assert_eq!(title, at.format("%Y-%m-%d %H:%M:%S UTC").to_string());
    let stored = text_column(
        &setup.app,
        &format!(
            "SELECT to_char(verified_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS value
             FROM credentials WHERE id = {id}"
        ),
    );
    assert_eq!(
        title,
        format!("{stored} UTC"),
        "the stored time, to the second"
    );

    // Verified again from the table (htmx): the row it answers with says so.
    let token = setup.partner.token("/credentials/ai").await;
    let row = setup
        .partner
        .http
        .post(format!("{}/credentials/ai/{id}/verify", setup.partner.base))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", token.as_str())
        .form(&[("back", "")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // (A row parses as HTML only inside a table.)
    let row = format!("<table>{row}</table>");
    assert_eq!(verified_time(&row, id).unwrap().0, "just now");

    // Never verified (a re-verification claimed it, no result yet): no time.
    setup.app.query(move |conn| {
        use diesel::RunQueryDsl;
        diesel::sql_query(format!(
            "UPDATE credentials SET verify_ok = NULL, verify_state = NULL WHERE id = {id}"
        ))
        .execute(conn)
    });
    let page = setup.partner.page("/credentials/ai").await;
    assert_eq!(
        texts(&page, &format!("#credential-{id} span.verify")),
        vec!["Not verified".to_string()]
    );
    assert_eq!(verified_time(&page, id), None);
}

#[actix_web::test]
async fn a_pasted_storj_block_fills_the_empty_fields_without_javascript_and_is_never_echoed() {
    let setup = setup().await;
    let s3 = fakes::start_s3().await;
    let blue = setup.blue.to_string();
    let form = setup.partner.page("/credentials/backup/new").await;
    assert_eq!(
        texts(&form, "label[for=paste]").len(),
        1,
        "the add form offers the box"
    );
    assert!(form.contains("data-paste=\"access key id|"), "{form}");

    // A refused block (wrong secret): the form again with the key and endpoint it gave, the
    // box empty and the secret nowhere.
    let wrong = format!(
        "Access Key ID: {S3_ACCESS_KEY}\r\nSecret Key   : never-echoed-secret\r\nEndpoint     : {}\r\n",
        s3.endpoint
    );
    let refused = add(
        &setup.partner,
        "backup",
        &[
            ("organization_id", &blue),
            ("name", "Pasted"),
            ("region", "us-east-1"),
            ("paste", &wrong),
        ],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = refused.text().await.unwrap();
    assert_eq!(texts(&body, ".verify-box"), ["Invalid S3 credentials"]);
    assert!(
        !body.contains("never-echoed-secret"),
        "secrets are never echoed"
    );
    assert!(
        body.contains(&format!("value=\"{S3_ACCESS_KEY}\"")),
        "{body}"
    );
    assert!(
        body.contains(&format!("value=\"{}\"", s3.endpoint)),
        "{body}"
    );

    // The right block, as Storj shows it: saved with what it gave. A value typed in a field
    // wins over the block's.
    let right = format!(
        "========== GATEWAY CREDENTIALS ==========\r\n  Access Key ID:  wrong-key  \r\nSecret Key   : {GOOD}\r\nEndpoint     : {}\r\n",
        s3.endpoint
    );
    let saved = add(
        &setup.partner,
        "backup",
        &[
            ("organization_id", &blue),
            ("name", "Pasted"),
            ("access_key_id", S3_ACCESS_KEY),
            ("region", "us-east-1"),
            ("paste", &right),
        ],
    )
    .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    let id = setup.credential_id("Pasted");
    let detail = setup
        .partner
        .page(&format!("/credentials/backup/{id}"))
        .await;
    assert!(
        detail.contains(S3_ACCESS_KEY) && detail.contains(&s3.endpoint),
        "{detail}"
    );
    assert!(!detail.contains("wrong-key") && !detail.contains(GOOD));
}
