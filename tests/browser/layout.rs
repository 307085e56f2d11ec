
#[actix_web::test]
async fn a_row_action_refused_shows_in_its_row_with_the_row_as_it_stands() {
    let (app, _s3, driver) = start().await;
    let (partner, account) = app.partner().await;
    let organization = partner.create_organization(&app, ORGANIZATION).await;
    helpers::seed_credentials(
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
    let id = crate::scalar(&app, "SELECT min(id) AS n FROM credentials");
    let browser = driver.browser(true, PHONE.0, PHONE.1).await;
    sign_in(&browser, &app.address, &account.email, &account.password).await;
    browser
        .goto(&format!("{}/credentials/backup", app.address))
        .await;
    // Someone else locks it after this page was shown.
    app.query(move |conn| {
        use diesel::RunQueryDsl;
        diesel::sql_query(format!("UPDATE credentials SET is_locked = true WHERE id = {id}"))
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
