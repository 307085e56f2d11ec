//! Names, lock, unlock, make default and delete: the rules, their races, their htmx answers.

use super::*;

#[actix_web::test]
async fn names_are_unique_per_organization_and_kind() {
    let setup = setup().await;
    for organization in [setup.blue, setup.green] {
        let org = organization.to_string();
        let response = add(
            &setup.partner,
            "ai",
            &[
                ("organization_id", &org),
                ("name", "Shared name"),
                ("api_key", GOOD),
                ("base_url", &setup.fake),
            ],
        )
        .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
    }
    let blue = setup.blue.to_string();
    let again = add(
        &setup.partner,
        "ai",
        &[
            ("organization_id", &blue),
            ("name", "Shared name"),
            ("api_key", GOOD),
            ("base_url", &setup.fake),
        ],
    )
    .await;
    assert_eq!(again.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        texts(&again.text().await.unwrap(), "#name-help"),
        vec!["Shared name already exists".to_string()]
    );
}

#[actix_web::test]
async fn lock_unlock_default_and_delete_follow_the_rules() {
    let setup = setup().await;
    let partner = &setup.partner;
    let first = add_ai(&setup, partner, setup.blue, "First key").await;
    let second = add_ai(&setup, partner, setup.blue, "Second key").await;

    assert_eq!(
        act(partner, "ai", first, "lock").await.status(),
        StatusCode::SEE_OTHER
    );
    let again = act(partner, "ai", first, "lock").await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert!(again.text().await.unwrap().contains("already locked"));
    assert_eq!(
        partner
            .get(&format!("/credentials/ai/{first}/edit"))
            .await
            .status(),
        StatusCode::CONFLICT
    );
    assert_eq!(
        act(partner, "ai", first, "delete").await.status(),
        StatusCode::CONFLICT
    );
    assert_eq!(
        act(partner, "ai", first, "default").await.status(),
        StatusCode::CONFLICT,
        "locked cannot become default"
    );
    assert_eq!(
        act(partner, "ai", first, "unlock").await.status(),
        StatusCode::SEE_OTHER
    );
    let again = act(partner, "ai", first, "unlock").await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert!(again.text().await.unwrap().contains("already unlocked"));

    assert_eq!(
        act(partner, "ai", first, "default").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        act(partner, "ai", second, "default").await.status(),
        StatusCode::SEE_OTHER
    );
    let defaults = text_column(
        &setup.app,
        "SELECT string_agg(name, ',') AS value FROM credentials WHERE is_default",
    );
    assert_eq!(
        defaults, "Second key",
        "making one default clears the other"
    );
    let page = partner.get("/credentials/ai").await.text().await.unwrap();
    assert_eq!(
        texts(&page, "tr.row-default .badge-default"),
        vec!["Default".to_string()]
    );

    assert_eq!(
        act(partner, "ai", first, "delete").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(setup.app.count("credentials"), 1);
    assert_eq!(
        act(partner, "ai", first, "delete").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        act(partner, "ai", second, "frobnicate").await.status(),
        StatusCode::NOT_FOUND
    );

    let audit = partner.get("/audit").await.text().await.unwrap();
    for action in [
        "credential.create",
        "credential.lock",
        "credential.unlock",
        "credential.default",
        "credential.delete",
    ] {
        assert!(audit.contains(action), "{action} audited");
    }
}

#[actix_web::test]
async fn showback_credentials_have_no_default() {
    let setup = setup().await;
    let prometheus = fakes::start_prometheus().await;
    let blue = setup.blue.to_string();
    let response = add(
        &setup.partner,
        "showback",
        &[
            ("organization_id", &blue),
            ("name", "Showback"),
            ("url", &prometheus.url),
            ("username", &prometheus.user),
            ("password", GOOD),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let id = setup.credential_id("Showback");
    assert_eq!(
        act(&setup.partner, "showback", id, "default")
            .await
            .status(),
        StatusCode::CONFLICT
    );
}

#[actix_web::test]
async fn concurrent_make_default_leaves_exactly_one_default() {
    let setup = setup().await;
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(add_ai(&setup, &setup.partner, setup.blue, &format!("Key {n}")).await);
    }
    let token = setup.partner.token("/credentials/ai").await;
    let requests = ids.iter().map(|id| {
        setup
            .partner
            .http
            .post(format!(
                "{}/credentials/ai/{id}/default",
                setup.partner.base
            ))
            .form(&[("csrf_token", token.as_str())])
            .send()
    });
    let responses = futures_util::future::join_all(requests).await;
    for response in responses {
        let status = response.unwrap().status();
        assert!(
            status == StatusCode::SEE_OTHER || status == StatusCode::CONFLICT,
            "{status}"
        );
    }
    assert_eq!(setup.app.count("credentials WHERE is_default"), 1);
}

#[actix_web::test]
async fn htmx_actions_answer_with_the_changed_row_or_table() {
    let setup = setup().await;
    let id = add_ai(&setup, &setup.partner, setup.blue, "Htmx key").await;
    let token = setup.partner.token("/credentials/ai").await;
    let post = |action: &'static str| {
        setup
            .partner
            .http
            .post(format!(
                "{}/credentials/ai/{id}/{action}",
                setup.partner.base
            ))
            .header("HX-Request", "true")
            .header("X-CSRF-Token", token.as_str())
            .form(&[("back", "q=Htmx")])
            .send()
    };
    let locked = post("lock").await.unwrap();
    assert_eq!(locked.status(), StatusCode::OK);
    let body = locked.text().await.unwrap();
    // The row first (so it parses as a table row), the message as an out-of-band template.
    assert!(
        body.trim_start()
            .starts_with(&format!("<tr id=\"credential-{id}\"")),
        "{body}"
    );
    assert!(
        body.contains("<template><div id=\"messages\" hx-swap-oob"),
        "{body}"
    );
    assert!(
        body.contains(&format!("<tr id=\"credential-{id}\""))
            && body.contains("Locked")
            && !body.contains("<html")
    );
    // A refusal belongs in its row, the row shown as it now stands, its menu open.
    let conflict = post("lock").await.unwrap();
    assert_eq!(conflict.status(), StatusCode::CONFLICT);
    assert_eq!(
        conflict.headers()["hx-retarget"],
        format!("#credential-{id}").as_str()
    );
    assert_eq!(conflict.headers()["hx-reswap"], "outerHTML");
    let refused = conflict.text().await.unwrap();
    assert!(
        refused
            .trim_start()
            .starts_with(&format!("<tr id=\"credential-{id}\"")),
        "{refused}"
    );
    assert_eq!(
        texts(&refused, &format!("#row-error-{id}")),
        ["Htmx key is already locked"]
    );
    assert_eq!(texts(&refused, ".badge-locked"), ["Locked"]);
    assert!(refused.contains("<details class=\"menu\" open>"));
    post("unlock").await.unwrap();
    let default = post("default").await.unwrap().text().await.unwrap();
    assert!(
        default.contains("<table") && default.contains("Default"),
        "the whole table when the default moves"
    );
    // A delete leaving other rows: the message and the new count, out of band.
    let other = add_ai(&setup, &setup.partner, setup.blue, "Htmx other").await;
    let deleted = setup
        .partner
        .http
        .post(format!(
            "{}/credentials/ai/{other}/delete",
            setup.partner.base
        ))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", token.as_str())
        .form(&[("back", "q=Htmx")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!deleted.contains("<tr") && deleted.contains("is deleted"));
    assert!(
        deleted.contains(
            "<p class=\"muted small count\" id=\"count\" hx-swap-oob=\"true\">1 credential</p>"
        ),
        "{deleted}"
    );
    // The last row of the page: the whole table, saying it is empty (and no "Page 1").
    let last = post("delete").await.unwrap();
    assert_eq!(last.headers()["hx-retarget"], "#results");
    let last = last.text().await.unwrap();
    assert!(!last.contains("<tr") && last.contains("is deleted"));
    assert_eq!(texts(&last, "p.count"), ["0 credentials"]);
    assert!(
        texts(&last, ".empty")
            .join("")
            .contains("No AI credentials here")
    );
    assert!(!last.contains("Page 1"));
}

#[actix_web::test]
async fn verify_only_with_htmx_puts_each_fields_message_beside_it() {
    let setup = setup().await;
    let token = setup.partner.token("/credentials/ai/new").await;
    let answer = setup
        .partner
        .http
        .post(format!("{}/credentials/ai/verify", setup.partner.base))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", token.as_str())
        .form(&[("provider", "openai"), ("name", "x"), ("api_key", "")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        texts(&answer, ".verify-box"),
        ["Correct the highlighted fields first."]
    );
    let html = scraper::Html::parse_fragment(&answer);
    let swapped = scraper::Selector::parse("p.error[hx-swap-oob=outerHTML]").unwrap();
    let ids: Vec<&str> = html
        .select(&swapped)
        .filter_map(|p| p.value().attr("id"))
        .collect();
    assert!(
        ids.contains(&"name-help") && ids.contains(&"api_key-help"),
        "{answer}"
    );
}
