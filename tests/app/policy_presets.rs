//! The policy form's schedule select (Hourly, Daily, Weekly, Monthly, Custom): without
//! JavaScript the server reads it (`cron_preset`), and the typed `cron` only for Custom; a post
//! with only `cron` is read as before.

use reqwest::StatusCode;

use crate::support::{World, scalar_text, texts, world};

/// Adds policy `name` from the Schedules tab with `fields` besides name, zone, retention and
/// namespace; answers the status.
async fn add(world: &World, name: &str, fields: &[(&str, &str)]) -> StatusCode {
    let mut form = vec![
        ("name", name),
        ("timezone", "UTC"),
        ("retention", "72h"),
        ("namespaces", "app"),
    ];
    form.extend_from_slice(fields);
    world
        .partner
        .post_from(&world.path(""), &world.path("/policies"), &form)
        .await
        .status()
}

fn cron_of(world: &World, name: &str) -> String {
    scalar_text(
        &world.app,
        &format!("SELECT cron AS value FROM backup_policies WHERE name = '{name}'"),
    )
}

#[actix_web::test]
async fn the_schedule_select_sets_the_cron_period_unless_it_says_custom() {
    let world = world().await;
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 6] = [
        (
            "hourly-one",
            &[("cron_preset", "hourly"), ("cron", "")],
            "0 * * * *",
        ),
        (
            "preset-wins",
            &[("cron_preset", "weekly"), ("cron", "5 4 * * *")],
            "0 0 * * 0",
        ),
        (
            "custom-one",
            &[("cron_preset", "custom"), ("cron", "30 2 * * 1-5")],
            "30 2 * * 1-5",
        ),
        ("monthly-one", &[("cron_preset", "Monthly")], "0 0 1 * *"),
        // Without the select, as before: a preset's name or five fields.
        ("only-cron", &[("cron", "daily")], "0 0 * * *"),
        ("only-fields", &[("cron", "15 3 * * *")], "15 3 * * *"),
    ];
    for (name, fields, cron) in cases {
        assert_eq!(
            add(&world, name, fields).await,
            StatusCode::SEE_OTHER,
            "{name}"
        );
        assert_eq!(cron_of(&world, name), cron, "{name}");
    }
    let refused = add(
        &world,
        "custom-empty",
        &[("cron_preset", "custom"), ("cron", "")],
    )
    .await;
    assert_eq!(refused, StatusCode::UNPROCESSABLE_ENTITY);
}

#[actix_web::test]
async fn the_form_offers_the_presets_and_keeps_the_choice() {
    let world = world().await;
    let tab = world.partner.page(&world.path("?tab=schedules")).await;
    assert_eq!(
        texts(&tab, "#cron_preset option"),
        [
            "Hourly (0 * * * *)",
            "Daily (0 0 * * *)",
            "Weekly (0 0 * * 0)",
            "Monthly (0 0 1 * *)",
            "Custom"
        ]
    );
    assert_eq!(
        texts(&tab, "#cron_preset option[selected]"),
        ["Custom"],
        "a blank form reads the typed period"
    );

    // Refused for its name, the form comes back with the preset chosen and its period.
    let response = world
        .partner
        .post_from(
            &world.path(""),
            &world.path("/policies"),
            &[
                ("name", "x"),
                ("cron_preset", "weekly"),
                ("timezone", "UTC"),
                ("retention", "72h"),
                ("namespaces", "app"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = response.text().await.unwrap();
    assert_eq!(
        texts(&body, "#cron_preset option[selected]"),
        ["Weekly (0 0 * * 0)"]
    );
    assert!(body.contains("value=\"0 0 * * 0\""));
    assert!(texts(&body, "#cron-preview").join("").contains("Next runs"));

    // The preview without JavaScript reads the select too.
    let previewed = world
        .partner
        .post_from(
            &world.path(""),
            &world.path("/policies/preview"),
            &[
                ("name", "nightly"),
                ("cron_preset", "daily"),
                ("timezone", "UTC"),
            ],
        )
        .await;
    assert_eq!(previewed.status(), StatusCode::OK);
    let body = previewed.text().await.unwrap();
    assert_eq!(
        texts(&body, "#cron_preset option[selected]"),
        ["Daily (0 0 * * *)"]
    );
    let preview = texts(&body, "#cron-preview").join("");
    assert!(
        preview.contains("Next runs") && preview.contains("00:00"),
        "{preview}"
    );
}
