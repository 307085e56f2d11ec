//! Edits: refused when stale, verified again, blank secrets kept.

use super::*;

#[actix_web::test]
async fn a_stale_edit_is_refused_instead_of_overwriting() {
    let setup = setup().await;
    let id = add_ai(&setup, &setup.partner, setup.blue, "Edited key").await;
    let form_page = setup
        .partner
        .page(&format!("/credentials/ai/{id}/edit"))
        .await;
    let version = scraper_value(&form_page, "input[name=version]");
    let token = crate::support::csrf_token(&form_page).unwrap();
    let path = format!("/credentials/ai/{id}");
    let save = |name: &'static str| {
        let fields = vec![
            ("csrf_token", token.clone()),
            ("version", version.clone()),
            ("name", name.to_string()),
            ("api_key", String::new()),
            ("base_url", setup.fake.clone()),
        ];
        let request = setup
            .partner
            .http
            .post(format!("{}{path}", setup.partner.base))
            .form(&fields);
        async move { request.send().await.unwrap() }
    };
    let first = save("First edit").await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let second = save("Second edit").await;
    assert_eq!(second.status(), StatusCode::CONFLICT);
    assert!(
        second
            .text()
            .await
            .unwrap()
            .contains("changed by someone else")
    );
    let name = text_column(
        &setup.app,
        &format!("SELECT name AS value FROM credentials WHERE id = {id}"),
    );
    assert_eq!(name, "First edit");
    let audit = text_column(
        &setup.app,
        "SELECT array_to_string(fields, ',') AS value FROM audit_events WHERE action = 'credential.update'",
    );
    assert_eq!(audit, "name", "only the changed field's name is audited");
}

#[actix_web::test]
async fn editing_a_secret_reverifies_and_blank_keeps_it() {
    let setup = setup().await;
    let id = add_ai(&setup, &setup.partner, setup.blue, "Rotating key").await;
    let partner = &setup.partner;
    let edit = |key: &'static str| async move {
        let page = partner.page(&format!("/credentials/ai/{id}/edit")).await;
        let version = scraper_value(&page, "input[name=version]");
        let token = crate::support::csrf_token(&page).unwrap();
        assert!(!page.contains(GOOD), "the edit form never shows the secret");
        partner
            .post(
                &format!("/credentials/ai/{id}"),
                &[
                    ("csrf_token", token.as_str()),
                    ("version", version.as_str()),
                    ("name", "Rotating key"),
                    ("api_key", key),
                    ("base_url", ""),
                ],
            )
            .await
    };
    let wrong = edit("wrong-key").await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        texts(&wrong.text().await.unwrap(), ".verify-box").join(""),
        "Invalid API credentials (HTTP 401)"
    );
    assert_eq!(
        edit("").await.status(),
        StatusCode::SEE_OTHER,
        "blank secret = unchanged, still valid"
    );
}

#[actix_web::test]
async fn a_stale_edit_shows_the_form_again_with_what_was_typed_and_the_reason() {
    let setup = setup().await;
    let id = add_ai(&setup, &setup.partner, setup.blue, "Shared key").await;
    let page = setup
        .partner
        .page(&format!("/credentials/ai/{id}/edit"))
        .await;
    let version = scraper_value(&page, "input[name=version]");
    let token = crate::support::csrf_token(&page).unwrap();
    // Someone else saves it meanwhile.
    let theirs = text_column(
        &setup.app,
        &format!(
            "UPDATE credentials SET version = version + 1, name = 'Their name' WHERE id = {id} RETURNING version::text AS value"
        ),
    );
    let mine = setup
        .partner
        .post(
            &format!("/credentials/ai/{id}"),
            &[
                ("csrf_token", token.as_str()),
                ("version", version.as_str()),
                ("name", "My typed name"),
                ("api_key", GOOD),
                ("base_url", setup.fake.as_str()),
            ],
        )
        .await;
    assert_eq!(mine.status(), StatusCode::CONFLICT);
    let body = mine.text().await.unwrap();
    assert!(
        texts(&body, "#refusal")
            .join("")
            .contains("changed by someone else"),
        "the reason is on the form: {:?}",
        texts(&body, "h1, .flash")
    );
    assert_eq!(scraper_value(&body, "input#name"), "My typed name");
    assert_eq!(
        scraper_value(&body, "input[name=version]"),
        theirs,
        "saving again is a choice made against the stored version"
    );
    assert!(!body.contains(GOOD), "the typed secret is not sent back");
    assert_eq!(
        text_column(
            &setup.app,
            &format!("SELECT name AS value FROM credentials WHERE id = {id}")
        ),
        "Their name",
        "nothing was overwritten"
    );
}

#[actix_web::test]
async fn the_edit_address_of_a_locked_credential_shows_its_page_with_the_way_out() {
    let setup = setup().await;
    let id = add_ai(&setup, &setup.partner, setup.blue, "Locked key").await;
    assert_eq!(
        act(&setup.partner, "ai", id, "lock").await.status(),
        StatusCode::SEE_OTHER
    );
    let response = setup
        .partner
        .get(&format!("/credentials/ai/{id}/edit"))
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body = response.text().await.unwrap();
    assert_eq!(texts(&body, "h1 .badge-locked"), ["Locked"]);
    assert!(
        texts(&body, "#refusal")
            .join("")
            .contains("Locked key is locked: unlock it to edit"),
        "{:?}",
        texts(&body, ".flash")
    );
    assert_eq!(
        texts(
            &body,
            &format!("form[action='/credentials/ai/{id}/unlock'] button")
        ),
        ["Unlock Locked key"]
    );
    assert!(texts(&body, ".error-code").is_empty(), "not an error page");
}

#[actix_web::test]
async fn an_add_form_that_comes_back_asks_for_its_secret_again() {
    let setup = setup().await;
    let blue = setup.blue.to_string();
    let refused = add(
        &setup.partner,
        "ai",
        &[
            ("organization_id", blue.as_str()),
            ("name", "x"),
            ("api_key", GOOD),
            ("base_url", setup.fake.as_str()),
        ],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = refused.text().await.unwrap();
    assert!(!body.contains(GOOD), "the secret is not sent back");
    assert_eq!(
        texts(&body, "#api_key-help .again"),
        ["Enter it again: secrets are never sent back."]
    );
}
