//! Refusals keep the person on the page they came from: the reason beside the field or the
//! action, what they typed kept (never a secret), and the status of the refusal.

use reqwest::StatusCode;

use crate::support::{World, texts, world};

fn value(body: &str, selector: &str) -> Option<String> {
    let html = scraper::Html::parse_document(body);
    let selector = scraper::Selector::parse(selector).unwrap();
    html.select(&selector)
        .next()
        .and_then(|e| e.value().attr("value").map(str::to_string))
}

fn present(body: &str, selector: &str) -> bool {
    let html = scraper::Html::parse_document(body);
    let selector = scraper::Selector::parse(selector).unwrap();
    html.select(&selector).next().is_some()
}

/// A completed backup of the world's project (a policy `nightly` and "Backup now").
async fn completed_backup(world: &World) -> i64 {
    assert_eq!(
        world
            .add_policy("nightly", "daily", "72h", &["app"])
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let (id, phase, reason) = world.backup_now(world.policy_id("nightly")).await;
    assert_eq!(phase, "Completed", "{reason}");
    id
}

#[actix_web::test]
async fn enabling_backup_with_a_bad_bucket_shows_the_project_page_with_the_reason_at_the_bucket() {
    let world = world().await;
    let disabled = world
        .partner
        .post_from(&world.path(""), &world.path("/backup/disable"), &[])
        .await;
    assert_eq!(disabled.status(), StatusCode::SEE_OTHER);
    let credential = world.credential.to_string();
    let refused = world
        .partner
        .post_from(
            &world.path(""),
            &world.path("/backup/enable"),
            &[
                ("backup_credential_id", &credential),
                ("bucket", "Not_A_Bucket!"),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = refused.text().await.unwrap();
    assert_eq!(texts(&body, "h1"), ["shop"], "the project's page");
    assert_eq!(
        texts(&body, "#bucket-help.error").len(),
        1,
        "beside the bucket"
    );
    assert_eq!(
        value(&body, "#enable-form #bucket").as_deref(),
        Some("Not_A_Bucket!")
    );
    assert_eq!(
        value(&body, "#backup_credential_id option[selected]"),
        Some(credential),
        "the credential stays chosen"
    );
    assert_eq!(world.app.count("projects WHERE backup_enabled"), 0);
}

#[actix_web::test]
async fn disabling_backup_while_policies_exist_says_so_beside_the_button() {
    let world = world().await;
    assert_eq!(
        world
            .add_policy("hourly", "hourly", "72h", &["app"])
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let refused = world
        .partner
        .post_from(&world.path(""), &world.path("/backup/disable"), &[])
        .await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let body = refused.text().await.unwrap();
    assert_eq!(texts(&body, "h1"), ["shop"], "the project's page");
    assert!(
        texts(&body, "#disable-error")
            .join("")
            .contains("delete the backup policies first"),
        "{:?}",
        texts(&body, ".error")
    );
    assert!(present(
        &body,
        "#disable-form button[aria-describedby=disable-error]"
    ));
    assert_eq!(world.app.count("projects WHERE backup_enabled"), 1);
}

#[actix_web::test]
async fn a_refused_restore_shows_its_form_again_with_the_reason_and_what_was_typed() {
    let world = world().await;
    let backup = completed_backup(&world).await;
    let path = world.path(&format!("/backups/{backup}/restore"));
    let target = format!("{}-never-echoed", world.data.url);
    let form = [
        ("restore_name", "ab"),
        ("namespaces", "app"),
        ("parallel", "on"),
        ("target_database_url", target.as_str()),
    ];

    // Without JavaScript: the restore page again.
    let refused = world.partner.post_from(&path, &path, &form).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = refused.text().await.unwrap();
    assert!(
        texts(&body, "h1")[0].starts_with("Restore "),
        "{:?}",
        texts(&body, "h1")
    );
    // The reason is beside the name, which points to it.
    assert!(
        texts(&body, &format!("#restore-name-help-{backup}.error"))
            .join("")
            .contains("3 to 40 characters"),
        "{:?}",
        texts(&body, ".error")
    );
    assert!(present(
        &body,
        "input[name=restore_name][aria-invalid=true]"
    ));
    assert!(present(&body, &format!("#restore-refusal-{backup}")));
    assert_eq!(
        value(&body, "input[name=restore_name]").as_deref(),
        Some("ab")
    );
    assert!(present(&body, "input[name=namespaces][value=app][checked]"));
    assert!(present(&body, "input[name=parallel][checked]"));
    assert!(
        !body.contains("never-echoed"),
        "the target URL is not sent back"
    );
    assert_eq!(world.app.count("restores"), 0);

    // With htmx: the form in place of itself, not the tab.
    let token = world.partner.token(&path).await;
    let mut fields = vec![("csrf_token", token.as_str())];
    fields.extend_from_slice(&form);
    let refused = world
        .partner
        .http
        .post(format!("{}{path}", world.partner.base))
        .header("HX-Request", "true")
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        refused.headers()["hx-retarget"],
        format!("#restore-form-{backup}").as_str()
    );
    assert_eq!(refused.headers()["hx-reswap"], "outerHTML");
    let fragment = refused.text().await.unwrap();
    assert!(!fragment.contains("<html"), "a fragment");
    assert!(present(&fragment, &format!("form#restore-form-{backup}")));
    assert_eq!(
        value(&fragment, "input[name=restore_name]").as_deref(),
        Some("ab")
    );
    assert!(
        texts(&fragment, &format!("#restore-name-help-{backup}.error"))
            .join("")
            .contains("3 to 40 characters"),
        "the reason is beside the field, not a flash: {fragment}"
    );
    assert!(!fragment.contains("class=\"flash"), "{fragment}");
    assert_eq!(world.app.count("restores"), 0);
}

/// Posts `form` to `path` as htmx does (the session's token in the form).
async fn post_htmx(world: &World, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    let token = world.partner.token(path).await;
    let mut fields = vec![("csrf_token", token.as_str())];
    fields.extend_from_slice(form);
    world
        .partner
        .http
        .post(format!("{}{path}", world.partner.base))
        .header("HX-Request", "true")
        .form(&fields)
        .send()
        .await
        .unwrap()
}

#[actix_web::test]
async fn a_restore_from_the_page_into_the_project_database_asks_first_after_the_server_checked_it()
{
    let world = world().await;
    let backup = completed_backup(&world).await;
    let path = world.path(&format!("/backups/{backup}/restore"));
    let form = world.partner.page(&path).await;
    // Only keyhold's own form carries the field that asks first.
    assert_eq!(
        value(&form, "input[name=confirm_in_place]").as_deref(),
        Some("ask")
    );
    assert!(
        !form.contains("hx-confirm"),
        "no dialog before the server checked"
    );

    // Without JavaScript: a page that repeats the choices and says what is replaced.
    let asked = world
        .partner
        .post_from(
            &path,
            &path,
            &[
                ("restore_name", "put-back"),
                ("namespaces", "app"),
                ("confirm_in_place", "ask"),
            ],
        )
        .await;
    assert_eq!(asked.status(), StatusCode::OK);
    let body = asked.text().await.unwrap();
    assert!(
        texts(&body, "h1")[0].contains("into the project database?"),
        "{body}"
    );
    assert!(
        body.contains("put-back") && body.contains("the namespace app is replaced"),
        "{body}"
    );
    assert_eq!(world.app.count("restores"), 0, "nothing started yet");
    // The project's own database typed as "another database" is the same restore in place.
    let typed_own = world
        .partner
        .post_from(
            &path,
            &path,
            &[
                ("restore_name", "typed-own"),
                ("target_database_url", &world.data.url),
                ("confirm_in_place", "ask"),
            ],
        )
        .await;
    assert_eq!(typed_own.status(), StatusCode::OK);
    let typed_own = typed_own.text().await.unwrap();
    assert!(
        texts(&typed_own, "h1")[0].contains("into the project database?"),
        "{typed_own}"
    );
    assert_eq!(
        world.app.count("restores"),
        0,
        "asked first, nothing started"
    );
    let confirm = format!("form#restore-form-{backup}");
    assert_eq!(
        value(&body, &format!("{confirm} input[name=confirm_in_place]")).as_deref(),
        Some("yes")
    );
    assert_eq!(
        value(&body, &format!("{confirm} input[name=restore_name]")).as_deref(),
        Some("put-back")
    );
    assert_eq!(
        value(&body, &format!("{confirm} input[name=namespaces]")).as_deref(),
        Some("app")
    );
    assert!(
        present(&body, &format!("{confirm} a[href$='?tab=backups']")),
        "Cancel"
    );

    // Confirm posts the same fields with the answer: the restore starts.
    let confirmed = world
        .partner
        .post_from(
            &path,
            &path,
            &[
                ("restore_name", "put-back"),
                ("namespaces", "app"),
                ("confirm_in_place", "yes"),
            ],
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::SEE_OTHER);
    assert_eq!(world.app.count("restores"), 1);

    // With htmx: the question takes the place of the form; the tab is not swapped yet.
    let asked = post_htmx(
        &world,
        &path,
        &[("restore_name", "again"), ("confirm_in_place", "ask")],
    )
    .await;
    assert_eq!(asked.status(), StatusCode::OK);
    assert_eq!(
        asked.headers()["hx-retarget"],
        format!("#restore-form-{backup}").as_str()
    );
    let fragment = asked.text().await.unwrap();
    assert!(!fragment.contains("<html"), "a fragment");
    assert!(present(
        &fragment,
        &format!("{confirm}[hx-post][hx-target='#backup-tab']")
    ));
    assert_eq!(world.app.count("restores"), 1, "nothing started yet");

    // A form the server refuses never asks: the reason is beside its field.
    let refused = post_htmx(
        &world,
        &path,
        &[
            ("restore_name", "x".repeat(41).as_str()),
            ("confirm_in_place", "ask"),
        ],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let fragment = refused.text().await.unwrap();
    assert!(
        !fragment.contains("into the project database?"),
        "{fragment}"
    );
    assert!(present(
        &fragment,
        &format!("#restore-name-help-{backup}.error")
    ));

    // Tools post SPEC §6's fields without the page's extra one: the restore starts at once.
    let direct = world
        .partner
        .post_from(&path, &path, &[("restore_name", "tool")])
        .await;
    assert_eq!(direct.status(), StatusCode::SEE_OTHER);
    assert_eq!(world.app.count("restores"), 2);
}

#[actix_web::test]
async fn deleting_a_backup_without_javascript_asks_first() {
    let world = world().await;
    let backup = completed_backup(&world).await;
    let tab = world.partner.page(&world.path("?tab=backups")).await;
    let link = format!("/projects/{}/backups/{backup}/delete", world.project);
    assert!(
        present(&tab, &format!("a[href='{link}'][hx-post][hx-confirm]")),
        "{tab}"
    );
    let question = world.partner.get(&link).await;
    assert_eq!(question.status(), StatusCode::OK);
    let body = question.text().await.unwrap();
    assert!(texts(&body, "h1")[0].starts_with("Delete "), "{body}");
    assert!(present(
        &body,
        &format!("form#delete-form[action='{link}']")
    ));
    assert_eq!(
        world.app.count("backups WHERE deleted_at IS NULL"),
        1,
        "nothing deleted"
    );
}

#[actix_web::test]
async fn previewing_a_schedule_without_javascript_is_a_post_that_keeps_the_form() {
    let world = world().await;
    let page = world.partner.page(&world.path("")).await;
    assert!(
        present(
            &page,
            &format!(
                "#policy-form button[formaction='/projects/{}/policies/preview']",
                world.project
            )
        ) && !present(&page, "#policy-form button[formmethod=get]"),
        "the preview button posts (no token or field in the address)"
    );
    let previewed = world
        .partner
        .post_from(
            &world.path(""),
            &world.path("/policies/preview"),
            &[
                ("name", "weekday-nights"),
                ("cron", "30 2 * * 1-5"),
                ("timezone", "Europe/Berlin"),
                ("retention", "96h"),
                ("namespaces", "app"),
            ],
        )
        .await;
    assert_eq!(previewed.status(), StatusCode::OK);
    let body = previewed.text().await.unwrap();
    assert_eq!(
        value(&body, "#policy-name").as_deref(),
        Some("weekday-nights")
    );
    assert_eq!(value(&body, "#retention").as_deref(), Some("96h"));
    assert_eq!(value(&body, "#cron").as_deref(), Some("30 2 * * 1-5"));
    assert!(present(
        &body,
        "#policy-form input[name=namespaces][value=app][checked]"
    ));
    assert!(
        texts(&body, "#cron-preview").join("").contains("Next runs"),
        "{:?}",
        texts(&body, "#cron-preview")
    );
    assert_eq!(world.app.count("backup_policies"), 0, "nothing saved");
}

#[actix_web::test]
async fn deleting_a_policy_asks_first_without_javascript_too() {
    let world = world().await;
    assert_eq!(
        world
            .add_policy("hourly", "hourly", "72h", &["app"])
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let page = world.partner.page(&world.path("?tab=schedules")).await;
    let policy = world.policy_id("hourly");
    // The delete button is inside a closed details: a first click only asks.
    assert!(present(
        &page,
        &format!(
            "details.confirm:not([open]) form[action$='/policies/{policy}/delete'] button.danger"
        )
    ));
    assert_eq!(
        texts(&page, "details.confirm > summary"),
        ["Delete… hourly"]
    );
}

#[actix_web::test]
async fn a_wrong_cron_and_a_wrong_zone_are_both_said_once_beside_their_fields() {
    let world = world().await;
    let refused = world
        .partner
        .post_from(
            &world.path(""),
            &world.path("/policies"),
            &[
                ("name", "nightly"),
                ("cron", "not a cron"),
                ("timezone", "Mars/Olympus"),
                ("retention", "72h"),
                ("namespaces", "app"),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = refused.text().await.unwrap();
    assert_eq!(
        texts(&body, "#cron-help.error"),
        ["expected a valid cron period"]
    );
    assert_eq!(
        texts(&body, "#timezone-help.error"),
        ["expected an IANA time zone such as Europe/Berlin"]
    );
    assert_eq!(
        body.matches("expected a valid cron period").count(),
        1,
        "said once"
    );
}

#[actix_web::test]
async fn without_javascript_the_project_page_reloads_itself_while_something_runs() {
    let world = world().await;
    let page = world.partner.page(&world.path("?tab=backups")).await;
    assert!(!page.contains("http-equiv=\"refresh\""), "nothing runs");
    assert_eq!(
        world
            .add_policy("nightly", "daily", "72h", &["app"])
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let policy = world.policy_id("nightly");
    world.app.query(move |conn| {
        use diesel::RunQueryDsl;
        diesel::sql_query(format!(
            "INSERT INTO backups (project_id, policy_id, policy_name, name, scheduled_for, phase, \
               namespaces, created_at) \
             SELECT project_id, id, name, 'running-one', now(), 'InProgress', '{{app}}', now() \
             FROM backup_policies WHERE id = {policy}"
        ))
        .execute(conn)
    });
    let page = world.partner.page(&world.path("?tab=backups")).await;
    assert!(
        page.contains("<noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>"),
        "the page reloads itself without JavaScript"
    );
}
