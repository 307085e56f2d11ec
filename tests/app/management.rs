//! The management pages of issue 19: editing and deleting projects, searching and filtering
//! the projects list, renaming and deleting organizations, and changing, resetting and
//! deleting people. Each refusal keeps the person on the page they came from, with the reason
//! beside the field or the button.

use diesel::prelude::*;
use keyhold::credentials::provider::Kind;
use reqwest::StatusCode;

use crate::support::fakes::GOOD;
use crate::support::{
    Client, DataDb, World, scalar_i64, scalar_text, seed_credentials, test_keyring, texts, world,
};

fn value(body: &str, selector: &str) -> Option<String> {
    let html = scraper::Html::parse_document(body);
    let selector = scraper::Selector::parse(selector).unwrap();
    html.select(&selector)
        .next()
        .and_then(|e| e.value().attr("value").map(str::to_string))
}

fn selected(body: &str, select: &str) -> Vec<String> {
    texts(body, &format!("#{select} option[selected]"))
}

/// The stored data source of a project, opened.
fn stored_url(world: &World, project: i64) -> String {
    world.app.query(move |conn| {
        let project = keyhold::projects::model::Project::find_any(
            conn,
            keyhold::projects::model::ProjectId(project),
        )?;
        Ok(project.open_database_url(&test_keyring()).unwrap())
    })
}

fn audit_count(world: &World, action: &str) -> i64 {
    scalar_i64(
        &world.app,
        &format!("SELECT count(*) AS n FROM audit_events WHERE action = '{action}'"),
    )
}

/// A cloud (AWS) credential of `organization`, straight through the model.
fn cloud_credential(world: &World, organization: i64, name: &str) -> i64 {
    let owned = name.to_string();
    seed_credentials(&world.app, organization, Kind::Cloud, 1, move |_| {
        (
            owned.clone(),
            vec![
                ("region", "eu-central-1".to_string()),
                ("az_count", "1".to_string()),
            ],
            vec![
                ("access_key_id", "AKIAIOSFODNN7EXAMPLE".to_string()),
                ("secret_access_key", GOOD.to_string()),
            ],
        )
    });
    scalar_i64(
        &world.app,
        &format!("SELECT id AS n FROM credentials WHERE name = '{name}'"),
    )
}

/// The world's URL with a password (the test server trusts, so any password is let in).
fn with_password(url: &str, password: &str) -> String {
    let mut url = url::Url::parse(url).unwrap();
    url.set_password(Some(password)).unwrap();
    url.to_string()
}

/// A Manager and a User of Blue, and a Manager of Green (another organization).
struct People {
    manager: Client,
    user: Client,
    other_manager: Client,
    green: i64,
}

async fn people(world: &World) -> People {
    let green = world
        .partner
        .create_organization(&world.app, "Green Org")
        .await;
    let manager = world
        .partner
        .create_user("mia@blue.example", "manager", Some(world.organization))
        .await;
    let user = world
        .partner
        .create_user("ulf@blue.example", "user", Some(world.organization))
        .await;
    let other = world
        .partner
        .create_user("gus@green.example", "manager", Some(green))
        .await;
    People {
        manager: world.app.signed_in(&manager).await,
        user: world.app.signed_in(&user).await,
        other_manager: world.app.signed_in(&other).await,
        green,
    }
}

#[actix_web::test]
async fn a_manager_edits_a_project_and_its_data_source_password_stays_write_only() {
    let world = world().await;
    let people = people(&world).await;
    let url = with_password(&world.data.url, "kept-pass-4711");
    let org = world.organization.to_string();
    let created = world
        .partner
        .post_from(
            "/projects/new",
            "/projects",
            &[
                ("organization_id", &org),
                ("name", "catalog"),
                ("database_url", &url),
            ],
        )
        .await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let project = scalar_i64(
        &world.app,
        "SELECT id AS n FROM projects WHERE name = 'catalog'",
    );
    let cloud = cloud_credential(&world, world.organization, "blue-aws");
    let edit = format!("/projects/{project}/edit");

    // The form shows the URL without its password, and the password nowhere.
    let page = people.manager.page(&edit).await;
    assert!(!page.contains("kept-pass-4711"));
    let shown = value(&page, "#database_url").unwrap();
    assert!(
        url::Url::parse(&shown).unwrap().password().is_none(),
        "{shown}"
    );
    assert_eq!(value(&page, "input[name=version]").as_deref(), Some("1"));
    assert_eq!(selected(&page, "cloud_credential_id"), ["— none —"]);

    // A blank password keeps the stored one.
    let cloud_text = cloud.to_string();
    let saved = people
        .manager
        .post_from(
            &edit,
            &format!("/projects/{project}"),
            &[
                ("name", "catalog-eu"),
                ("cloud_credential_id", &cloud_text),
                ("ai_credential_id", ""),
                ("database_url", &shown),
                ("database_password", ""),
                ("version", "1"),
            ],
        )
        .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        scalar_text(
            &world.app,
            &format!(
                "SELECT name || ' ' || cloud_credential_id || ' ' || version AS value FROM projects WHERE id = {project}"
            )
        ),
        format!("catalog-eu {cloud} 2")
    );
    assert!(stored_url(&world, project).contains("kept-pass-4711"));
    assert_eq!(
        scalar_text(
            &world.app,
            "SELECT array_to_string(fields, ',') AS value FROM audit_events WHERE action = 'project.update'"
        ),
        "name,cloud_credential_id"
    );

    // Another host with a blank password: asked again, what was typed kept, no password shown.
    let elsewhere = shown.replace("127.0.0.1", "localhost");
    let refused = people
        .manager
        .post_from(
            &edit,
            &format!("/projects/{project}"),
            &[
                ("name", "catalog-eu"),
                ("cloud_credential_id", &cloud_text),
                ("database_url", &elsewhere),
                ("database_password", ""),
                ("version", "2"),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = refused.text().await.unwrap();
    assert!(
        texts(&body, "#database_password-help.error")
            .join("")
            .contains("Enter the password again"),
        "{:?}",
        texts(&body, ".error")
    );
    assert_eq!(
        value(&body, "#database_url").as_deref(),
        Some(elsewhere.as_str())
    );
    assert!(!body.contains("kept-pass-4711"));
    assert!(stored_url(&world, project).contains("127.0.0.1"));

    // A typed password replaces it; the changed source is checked again.
    let replaced = people
        .manager
        .post_from(
            &edit,
            &format!("/projects/{project}"),
            &[
                ("name", "catalog-eu"),
                ("cloud_credential_id", &cloud_text),
                ("database_url", &shown),
                ("database_password", "typed-again-0815"),
                ("version", "2"),
            ],
        )
        .await;
    let status = replaced.status();
    let body = replaced.text().await.unwrap();
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "{:?}",
        texts(&body, ".error")
    );
    let stored = stored_url(&world, project);
    assert!(stored.contains("typed-again-0815") && !stored.contains("kept-pass-4711"));
}

#[actix_web::test]
async fn an_edit_keeps_a_locked_credential_but_refuses_another_organization_s_and_a_taken_name() {
    let world = world().await;
    let people = people(&world).await;
    let blue = cloud_credential(&world, world.organization, "blue-aws");
    let green = cloud_credential(&world, people.green, "green-aws");
    let path = world.path("");
    let edit = world.path("/edit");
    let blue_text = blue.to_string();
    let saved = world
        .partner
        .post_from(
            &edit,
            &path,
            &[
                ("name", "shop"),
                ("cloud_credential_id", &blue_text),
                ("database_url", &world.data.url),
            ],
        )
        .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    world.app.query(move |conn| {
        diesel::sql_query(format!(
            "UPDATE credentials SET is_locked = true WHERE id = {blue}"
        ))
        .execute(conn)
    });

    // Locked since: still the project's, shown as such, and kept by a save.
    let page = world.partner.page(&edit).await;
    assert_eq!(
        selected(&page, "cloud_credential_id"),
        ["blue-aws (locked)"]
    );
    let kept = world
        .partner
        .post_from(
            &edit,
            &path,
            &[
                ("name", "shop-renamed"),
                ("cloud_credential_id", &blue_text),
                ("database_url", &world.data.url),
            ],
        )
        .await;
    assert_eq!(kept.status(), StatusCode::SEE_OTHER);

    // Another organization's credential, and a name its organization already has.
    let org = world.organization.to_string();
    let other = DataDb::empty();
    let second = world
        .partner
        .post_from(
            "/projects/new",
            "/projects",
            &[
                ("organization_id", &org),
                ("name", "taken"),
                ("database_url", &other.url),
            ],
        )
        .await;
    assert_eq!(second.status(), StatusCode::SEE_OTHER);
    let green_text = green.to_string();
    let refused = people
        .manager
        .post_from(
            &edit,
            &path,
            &[
                ("name", "taken"),
                ("cloud_credential_id", &green_text),
                ("database_url", &world.data.url),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = refused.text().await.unwrap();
    assert_eq!(texts(&body, "h1"), ["Edit shop-renamed"]);
    assert_eq!(texts(&body, "#name-help.error"), ["taken already exists"]);
    assert_eq!(
        texts(&body, "#cloud_credential_id-help.error"),
        ["Choose an unlocked credential of the project's organization."]
    );
    assert_eq!(value(&body, "#name").as_deref(), Some("taken"));
    assert!(
        !body.contains("green-aws"),
        "Green's credential is not offered"
    );
    assert_eq!(
        scalar_text(
            &world.app,
            &format!(
                "SELECT name AS value FROM projects WHERE id = {}",
                world.project
            )
        ),
        "shop-renamed"
    );
}

#[actix_web::test]
async fn an_edit_saved_by_someone_else_meanwhile_shows_the_form_again_with_what_was_typed() {
    let world = world().await;
    let edit = world.path("/edit");
    let version = value(&world.partner.page(&edit).await, "input[name=version]").unwrap();
    world.app.query(|conn| {
        diesel::sql_query("UPDATE projects SET name = 'shop-other', version = version + 1")
            .execute(conn)
    });
    let refused = world
        .partner
        .post_from(
            &edit,
            &world.path(""),
            &[
                ("name", "shop-mine"),
                ("database_url", &world.data.url),
                ("version", &version),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let body = refused.text().await.unwrap();
    assert!(
        texts(&body, "#refusal")
            .join("")
            .contains("Someone else changed shop-other"),
        "{:?}",
        texts(&body, "#refusal")
    );
    assert_eq!(value(&body, "#name").as_deref(), Some("shop-mine"));
    let stored_version = (version.parse::<i64>().unwrap() + 1).to_string();
    assert_eq!(
        value(&body, "input[name=version]").as_deref(),
        Some(stored_version.as_str()),
        "saving again is a choice made knowingly"
    );
    assert_eq!(
        scalar_text(&world.app, "SELECT name AS value FROM projects"),
        "shop-other"
    );
}

#[actix_web::test]
async fn users_may_not_edit_or_delete_projects_and_other_organizations_do_not_find_them() {
    let world = world().await;
    let people = people(&world).await;
    let before = scalar_text(&world.app, "SELECT name || version AS value FROM projects");
    for (client, status) in [
        (&people.user, StatusCode::FORBIDDEN),
        (&people.other_manager, StatusCode::NOT_FOUND),
    ] {
        for path in [world.path("/edit"), world.path("/delete")] {
            assert_eq!(client.get(&path).await.status(), status, "GET {path}");
        }
        for path in [world.path(""), world.path("/delete")] {
            let answer = client
                .post_from(
                    "/",
                    &path,
                    &[("name", "stolen"), ("database_url", &world.data.url)],
                )
                .await;
            assert_eq!(answer.status(), status, "POST {path}");
        }
    }
    assert_eq!(
        scalar_text(&world.app, "SELECT name || version AS value FROM projects"),
        before
    );
    assert_eq!(
        people.manager.get(&world.path("/edit")).await.status(),
        StatusCode::OK
    );
}

#[actix_web::test]
async fn a_project_is_deleted_only_once_backup_is_off_and_its_backups_are_gone() {
    let world = world().await;
    let delete = world.path("/delete");
    let confirm = world.partner.page(&delete).await;
    assert_eq!(texts(&confirm, "h1"), ["Delete shop?"]);
    assert!(
        texts(&confirm, "#delete-error")
            .join("")
            .contains("while its backup is on"),
        "said up front"
    );

    let refused = world.partner.post_from(&delete, &delete, &[]).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let body = refused.text().await.unwrap();
    assert_eq!(texts(&body, "h1"), ["Delete shop?"], "the same page");
    assert!(
        texts(&body, "#delete-error")
            .join("")
            .contains("delete its backup policies and disable backup first")
    );
    assert_eq!(
        texts(&body, "#delete-form button[aria-describedby=delete-error]").len(),
        1
    );

    // A completed backup, then backup off: the backup still keeps it.
    let project = world.project;
    world.app.query(move |conn| {
        diesel::sql_query(format!(
            "INSERT INTO backups (project_id, policy_name, name, scheduled_for, phase, finished_at)
             VALUES ({project}, 'nightly', 'nightly-1', now(), 'Completed', now()),
                    ({project}, 'nightly', 'nightly-0', now() - interval '1 day', 'Failed', now())"
        ))
        .execute(conn)
    });
    let disabled = world
        .partner
        .post_from(&world.path(""), &world.path("/backup/disable"), &[])
        .await;
    assert_eq!(disabled.status(), StatusCode::SEE_OTHER);
    let refused = world.partner.post_from(&delete, &delete, &[]).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert!(
        texts(&refused.text().await.unwrap(), "#delete-error")
            .join("")
            .contains("while it has backups (1)")
    );
    assert_eq!(world.app.count("projects"), 1);

    // Its backup deleted (the row stays as a record), but a restore from it still running.
    world.app.query(move |conn| {
        diesel::sql_query("UPDATE backups SET deleted_at = now() WHERE phase = 'Completed'")
            .execute(conn)?;
        diesel::sql_query(format!(
            "INSERT INTO restores (project_id, backup_name, name, phase)
             VALUES ({project}, 'nightly-1', 'into-staging', 'InProgress')"
        ))
        .execute(conn)
    });
    let refused = world.partner.post_from(&delete, &delete, &[]).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert!(
        texts(&refused.text().await.unwrap(), "#delete-error")
            .join("")
            .contains("while a restore or a restore check runs")
    );

    // Once it ended, the project goes, with its records.
    world
        .app
        .query(|conn| diesel::sql_query("UPDATE restores SET phase = 'Completed'").execute(conn));
    let deleted = world.partner.post_from(&delete, &delete, &[]).await;
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    assert_eq!(deleted.headers()["location"], "/projects");
    assert_eq!(world.app.count("projects"), 0);
    assert_eq!(world.app.count("backups"), 0);
    assert_eq!(world.app.count("restores"), 0);
    assert_eq!(audit_count(&world, "project.delete"), 1);
    assert_eq!(
        world.partner.get(&world.path("")).await.status(),
        StatusCode::NOT_FOUND
    );
    let list = world.partner.page("/projects").await;
    assert!(
        texts(&list, ".flash")
            .join("")
            .contains("Project shop deleted.")
    );
}

#[actix_web::test]
async fn the_projects_list_is_searched_and_filtered_by_organization() {
    let world = world().await;
    let people = people(&world).await;
    let green_data = DataDb::empty();
    let green = people.green.to_string();
    let created = world
        .partner
        .post_from(
            "/projects/new",
            "/projects",
            &[
                ("organization_id", &green),
                ("name", "green-app"),
                ("database_url", &green_data.url),
            ],
        )
        .await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let names = |body: &str| texts(body, "#results td[data-label=Name]");

    assert_eq!(
        names(&world.partner.page("/projects").await),
        ["green-app", "shop"]
    );
    assert_eq!(
        names(&world.partner.page("/projects?q=SHO").await),
        ["shop"]
    );
    // Organization and credential names are searched too; wildcards are only characters.
    assert_eq!(
        names(&world.partner.page("/projects?q=blue+storage").await),
        ["shop"]
    );
    assert!(names(&world.partner.page("/projects?q=%25").await).is_empty());
    let filtered = world
        .partner
        .page(&format!("/projects?org={}", people.green))
        .await;
    assert_eq!(names(&filtered), ["green-app"]);
    assert_eq!(
        selected(&filtered, "org"),
        ["Green Org"],
        "the filter shows what it kept"
    );
    let none = world.partner.page("/projects?q=nothing-like-it").await;
    assert!(
        texts(&none, ".empty")
            .join("")
            .contains("No project matches")
    );

    // htmx gets the results alone.
    let fragment = world.partner.fragment("/projects?q=green").await;
    assert!(!fragment.contains("<form id=\"filters\""));
    assert_eq!(texts(&fragment, "td[data-label=Name]"), ["green-app"]);
    assert_eq!(texts(&fragment, "#count"), ["1 project found"]);

    // A Manager's list stays inside their organization whatever `org` says.
    let own = people
        .manager
        .page(&format!("/projects?org={}", people.green))
        .await;
    assert_eq!(names(&own), ["shop"]);
    assert!(
        texts(&own, "#org").is_empty(),
        "no organization filter for Managers"
    );
}

#[actix_web::test]
async fn a_partner_renames_an_organization_and_deletes_it_only_when_empty() {
    let world = world().await;
    let people = people(&world).await;
    let green = people.green;
    let edit = format!("/organizations/{green}/edit");

    let taken = world
        .partner
        .post_from(
            &edit,
            &format!("/organizations/{green}"),
            &[("name", "Blue Org")],
        )
        .await;
    assert_eq!(taken.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = taken.text().await.unwrap();
    assert_eq!(
        texts(&body, "#name-help.error"),
        ["Blue Org already exists"]
    );
    assert_eq!(value(&body, "#name").as_deref(), Some("Blue Org"));

    let renamed = world
        .partner
        .post_from(
            &edit,
            &format!("/organizations/{green}"),
            &[("name", "Teal Org")],
        )
        .await;
    assert_eq!(renamed.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        scalar_text(
            &world.app,
            &format!("SELECT name AS value FROM organizations WHERE id = {green}")
        ),
        "Teal Org"
    );
    assert_eq!(
        scalar_text(
            &world.app,
            "SELECT object_label AS value FROM audit_events WHERE action = 'organization.rename'"
        ),
        "Teal Org (was Green Org)"
    );

    // Blue holds people, credentials and a project: refused, saying what.
    let blue = world.organization;
    let delete = format!("/organizations/{blue}/delete");
    let refused = world.partner.post_from(&delete, &delete, &[]).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let body = refused.text().await.unwrap();
    assert_eq!(texts(&body, "h1"), ["Delete Blue Org?"]);
    let reason = texts(&body, "#delete-error").join("");
    assert!(
        reason.contains("2 people")
            && reason.contains("1 credential")
            && reason.contains("1 project"),
        "{reason}"
    );

    // An empty one goes; its audit rows stay, with their words.
    let empty = world
        .partner
        .create_organization(&world.app, "Empty Org")
        .await;
    let delete = format!("/organizations/{empty}/delete");
    assert_eq!(world.partner.get(&delete).await.status(), StatusCode::OK);
    let deleted = world.partner.post_from(&delete, &delete, &[]).await;
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        world
            .app
            .count(&format!("organizations WHERE id = {empty}")),
        0
    );
    assert_eq!(
        world
            .app
            .count("audit_events WHERE object_label = 'Empty Org' AND organization_id IS NULL"),
        2,
        "created and deleted, both kept"
    );
    assert_eq!(
        world
            .partner
            .get(&format!("/organizations/{empty}/edit"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    // Managers may not.
    for path in [edit.clone(), format!("/organizations/{green}/delete")] {
        assert_eq!(
            people.manager.get(&path).await.status(),
            StatusCode::FORBIDDEN
        );
    }
}

#[actix_web::test]
async fn a_partner_changes_a_person_s_role_and_their_sessions_end() {
    let world = world().await;
    let people = people(&world).await;
    let mia = scalar_i64(
        &world.app,
        "SELECT id AS n FROM users WHERE email = 'mia@blue.example'",
    );
    let edit = format!("/users/{mia}/edit");
    let page = world.partner.page(&edit).await;
    assert_eq!(selected(&page, "role"), ["Manager"]);
    assert_eq!(selected(&page, "organization_id"), ["Blue Org"]);

    // A Partner with an organization: said, not ignored.
    let org = world.organization.to_string();
    let refused = world
        .partner
        .post_from(
            &edit,
            &format!("/users/{mia}"),
            &[("role", "partner"), ("organization_id", &org)],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = refused.text().await.unwrap();
    assert_eq!(texts(&body, "#organization_id-help.error").len(), 1);
    assert_eq!(selected(&body, "role"), ["Partner"], "what was typed");

    let green = people.green.to_string();
    let moved = world
        .partner
        .post_from(
            &edit,
            &format!("/users/{mia}"),
            &[("role", "user"), ("organization_id", &green)],
        )
        .await;
    assert_eq!(moved.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        scalar_text(
            &world.app,
            &format!("SELECT role || ' ' || organization_id AS value FROM users WHERE id = {mia}")
        ),
        format!("user {}", people.green)
    );
    let signed_out = people.manager.get("/projects").await;
    assert_eq!(
        signed_out.status(),
        StatusCode::SEE_OTHER,
        "her session ended"
    );
    assert!(
        signed_out.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login")
    );
    assert_eq!(audit_count(&world, "user.update"), 1);
}

#[actix_web::test]
async fn the_last_partner_can_be_neither_demoted_nor_deleted() {
    let world = world().await;
    let pat = scalar_i64(
        &world.app,
        "SELECT id AS n FROM users WHERE role = 'partner'",
    );
    let org = world.organization.to_string();
    let edit = format!("/users/{pat}/edit");
    let refused = world
        .partner
        .post_from(
            &edit,
            &format!("/users/{pat}"),
            &[("role", "manager"), ("organization_id", &org)],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let body = refused.text().await.unwrap();
    assert!(
        texts(&body, "#role-help.error")
            .join("")
            .contains("is the last Partner"),
        "{:?}",
        texts(&body, ".error")
    );
    let delete = format!("/users/{pat}/delete");
    let refused = world.partner.post_from(&delete, &delete, &[]).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert!(
        texts(&refused.text().await.unwrap(), "#delete-error")
            .join("")
            .contains("is the last Partner")
    );
    assert_eq!(world.app.count("users WHERE role = 'partner'"), 1);

    // With a second Partner, the first may step down (and signs in again).
    world
        .partner
        .create_user("paula@partner.example", "partner", None)
        .await;
    let stepped_down = world
        .partner
        .post_from(
            &edit,
            &format!("/users/{pat}"),
            &[("role", "manager"), ("organization_id", &org)],
        )
        .await;
    assert_eq!(stepped_down.status(), StatusCode::SEE_OTHER);
    assert_eq!(stepped_down.headers()["location"], "/login");
}

#[actix_web::test]
async fn a_partner_sets_a_new_password_which_ends_the_person_s_sessions() {
    let world = world().await;
    let people = people(&world).await;
    let mia = scalar_i64(
        &world.app,
        "SELECT id AS n FROM users WHERE email = 'mia@blue.example'",
    );
    let edit = format!("/users/{mia}/edit");
    let path = format!("/users/{mia}/password");
    let short = world
        .partner
        .post_from(&edit, &path, &[("password", "short")])
        .await;
    assert_eq!(short.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        texts(&short.text().await.unwrap(), "#password-help.error").len(),
        1
    );

    let reset = world
        .partner
        .post_from(&edit, &path, &[("password", "brand-new-password-9")])
        .await;
    assert_eq!(reset.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        people.manager.get("/projects").await.status(),
        StatusCode::SEE_OTHER,
        "signed out everywhere"
    );
    let fresh = world.app.client();
    assert_eq!(
        fresh
            .login("mia@blue.example", "manager-password-123")
            .await
            .status(),
        StatusCode::UNAUTHORIZED,
        "the old password no longer works"
    );
    assert_eq!(
        fresh
            .login("mia@blue.example", "brand-new-password-9")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        scalar_text(
            &world.app,
            "SELECT array_to_string(fields, ',') AS value FROM audit_events WHERE action = 'user.password_reset'"
        ),
        "password"
    );

    // Their own password: from the account page, which asks for the current one.
    let pat = scalar_i64(
        &world.app,
        "SELECT id AS n FROM users WHERE role = 'partner'",
    );
    let own = world
        .partner
        .post_from(
            "/users",
            &format!("/users/{pat}/password"),
            &[("password", "brand-new-password-9")],
        )
        .await;
    assert_eq!(own.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Another Partner's: refused too (one Partner could then sign in as the other).
    let other = world
        .partner
        .create_user("paula@blue.example", "partner", None)
        .await;
    let paula = scalar_i64(
        &world.app,
        "SELECT id AS n FROM users WHERE email = 'paula@blue.example'",
    );
    let theirs = world
        .partner
        .post_from(
            "/users",
            &format!("/users/{paula}/password"),
            &[("password", "brand-new-password-9")],
        )
        .await;
    assert_eq!(theirs.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        theirs
            .text()
            .await
            .unwrap()
            .contains("changed only by that Partner")
    );
    let still = world.app.client();
    let signed_in = still.login(&other.email, &other.password).await;
    assert_eq!(
        signed_in.headers()["location"],
        "/",
        "her own password still works"
    );
}

#[actix_web::test]
async fn a_deleted_person_is_signed_out_and_the_audit_log_keeps_their_name() {
    let world = world().await;
    let people = people(&world).await;
    let mia = scalar_i64(
        &world.app,
        "SELECT id AS n FROM users WHERE email = 'mia@blue.example'",
    );
    // Something she made: an edit of the project.
    let saved = people
        .manager
        .post_from(
            &world.path("/edit"),
            &world.path(""),
            &[("name", "shop-by-mia"), ("database_url", &world.data.url)],
        )
        .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    crate::api::token(&people.manager, "mia-token", &["projects:read"]).await;
    let hers = world
        .app
        .count("audit_events WHERE actor_label = 'mia@blue.example'");
    assert!(hers >= 2, "her sign-in and her edit");

    let delete = format!("/users/{mia}/delete");
    let confirm = world.partner.page(&delete).await;
    assert_eq!(texts(&confirm, "h1"), ["Delete mia@blue.example?"]);
    let deleted = world.partner.post_from(&delete, &delete, &[]).await;
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    assert_eq!(world.app.count(&format!("users WHERE id = {mia}")), 0);
    assert_eq!(world.app.count("api_tokens"), 0, "her token went with her");
    assert_eq!(
        world
            .app
            .count("audit_events WHERE actor_label = 'mia@blue.example'"),
        hers,
        "every row of hers is kept"
    );
    assert_eq!(
        world
            .app
            .count("projects WHERE updated_by IS NULL AND name = 'shop-by-mia'"),
        1
    );
    assert_eq!(audit_count(&world, "user.delete"), 1);
    assert_eq!(
        people.manager.get("/projects").await.status(),
        StatusCode::SEE_OTHER,
        "signed out"
    );
    // The audit rows cannot be changed by anyone otherwise.
    let refused = world.app.query_unheard(|conn| {
        Ok::<_, diesel::result::Error>(
            diesel::sql_query("UPDATE audit_events SET actor_id = NULL").execute(conn),
        )
    });
    assert!(refused.is_err(), "audit_events stays append-only");
    // Nor from inside a trigger of someone's (`setup` runs first): only the link to a deleted
    // person is cleared.
    let nested_update = |setup: &'static str| {
        world.app.query_unheard(move |conn| {
            use diesel::connection::SimpleConnection;
            let attempt = conn.batch_execute(&format!(
                "BEGIN;
                 {setup}
                 CREATE TEMP TABLE nudge (x int);
                 CREATE FUNCTION pg_temp.hide() RETURNS trigger AS $$
                 BEGIN
                     UPDATE audit_events SET actor_id = NULL WHERE actor_id IS NOT NULL;
                     RETURN NEW;
                 END $$ LANGUAGE plpgsql;
                 CREATE TRIGGER hide AFTER INSERT ON nudge FOR EACH ROW EXECUTE FUNCTION pg_temp.hide();
                 INSERT INTO nudge VALUES (1);"
            ));
            conn.batch_execute("ROLLBACK")?;
            Ok::<_, diesel::result::Error>(attempt)
        })
    };
    let nested = nested_update("").expect_err("a nested update of live links is refused");
    assert!(nested.to_string().contains("append-only"), "{nested}");
    // Nor with an empty temporary `users` standing in for the real one.
    let shadowed = nested_update("CREATE TEMP TABLE users (id bigint);")
        .expect_err("a temporary users table changes nothing");
    assert!(shadowed.to_string().contains("append-only"), "{shadowed}");

    // Users and Managers may not; another organization's Manager neither.
    for client in [&people.user, &people.other_manager] {
        assert_eq!(
            client.get(&format!("/users/{mia}/edit")).await.status(),
            StatusCode::FORBIDDEN
        );
    }
}

#[actix_web::test]
async fn projects_are_edited_deleted_and_searched_through_the_api_as_on_the_pages() {
    let world = world().await;
    let secret = crate::api::token(
        &world.partner,
        "ops",
        &["projects:read", "projects:write", "backups:write"],
    )
    .await;
    let api = crate::api::Api::new(&world.app, &secret);
    let path = format!("/api/v1/projects/{}", world.project);

    // Only the fields given change; the data source stays, and is never answered.
    let (status, answer) = api
        .send(
            "patch",
            &path,
            Some(serde_json::json!({"name": "shop-api"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["name"], "shop-api");
    assert!(!answer.to_string().contains("postgres://"));
    let (status, answer) = api
        .send(
            "patch",
            &path,
            Some(serde_json::json!({"name": "x", "version": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "version 1 is stale: {answer}");
    let (status, answer) = api
        .send("patch", &path, Some(serde_json::json!({"name": "x"})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer["errors"]["name"].is_string(), "{answer}");

    let (status, answer) = api.get("/api/v1/projects?q=api").await;
    assert_eq!(
        (status, answer["total"].as_i64()),
        (StatusCode::OK, Some(1))
    );
    let (_, answer) = api.get("/api/v1/projects?q=nothing-like-it").await;
    assert_eq!(answer["total"], 0);

    let (status, answer) = api.send("delete", &path, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        answer["detail"]
            .as_str()
            .unwrap()
            .contains("while its backup is on"),
        "{answer}"
    );
    let (status, _) = api
        .send("post", &format!("{path}/backup/disable"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = api.send("delete", &path, None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(world.app.count("projects"), 0);
    assert_eq!(api.get(&path).await.0, StatusCode::NOT_FOUND);
}
