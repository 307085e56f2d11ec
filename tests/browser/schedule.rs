//! The policy form's schedule select with JavaScript: a preset fills the cron field and its
//! preview; a typed period turns the select to the preset it is, or to Custom.

use reqwest::StatusCode;

use crate::support;
use crate::support::fakes::{GOOD, S3_ACCESS_KEY};
use crate::support::{DataDb, scalar_i64};
use crate::{DESKTOP, sign_in, start};

#[actix_web::test]
async fn the_schedule_select_fills_the_cron_field_and_follows_what_is_typed() {
    let (app, s3, driver) = start().await;
    let (partner, account) = app.partner().await;
    let organization = partner.create_organization(&app, "Blue Org").await;
    support::seed_credentials(
        &app,
        organization,
        keyhold::credentials::provider::Kind::Backup,
        1,
        |_| {
            (
                "blue-backups".to_string(),
                vec![
                    ("access_key_id", S3_ACCESS_KEY.to_string()),
                    ("endpoint", s3.endpoint.clone()),
                    ("region", "us-east-1".to_string()),
                ],
                vec![("secret_access_key", GOOD.to_string())],
            )
        },
    );
    let data = DataDb::with_orders(1);
    let credential = scalar_i64(&app, "SELECT id AS n FROM credentials").to_string();
    let organization = organization.to_string();
    let created = partner
        .post_from(
            "/projects/new",
            "/projects",
            &[
                ("name", "shop"),
                ("organization_id", &organization),
                ("database_url", &data.url),
                ("backup_enabled", "on"),
                ("backup_credential_id", &credential),
            ],
        )
        .await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER, "project created");
    let project = scalar_i64(&app, "SELECT id AS n FROM projects");

    let browser = driver.browser(true, DESKTOP.0, DESKTOP.1).await;
    sign_in(&browser, &app.address, &account.email, &account.password).await;
    browser
        .goto(&format!("{}/projects/{project}?tab=schedules", app.address))
        .await;
    let chosen = async || {
        browser
            .script("return document.getElementById('cron_preset').value;")
            .await
    };
    let cron = async || {
        browser
            .script("return document.getElementById('cron').value;")
            .await
    };
    assert_eq!(
        chosen().await,
        "daily",
        "the blank form's period is Daily's"
    );

    browser.select("#cron_preset", "weekly").await;
    assert_eq!(cron().await, "0 0 * * 0");
    browser.wait_for_text("#cron-preview", "Sun", 5).await;

    browser.fill("#cron", "30 2 * * 1-5").await;
    assert_eq!(chosen().await, "custom");
    browser.wait_for_text("#cron-preview", "02:30", 5).await;
    browser.fill("#cron", "0 * * * *").await;
    assert_eq!(chosen().await, "hourly");
    browser.close().await;
}
