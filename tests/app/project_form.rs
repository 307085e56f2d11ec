//! The project form offers the chosen organization's credentials only.

use crate::support::{texts, world};

#[actix_web::test]
async fn the_project_forms_lists_follow_the_organization() {
    let world = world().await;
    let navy = world
        .partner
        .create_organization(&world.app, "Navy Org")
        .await;
    crate::support::seed_credentials(
        &world.app,
        navy,
        keyhold::credentials::provider::Kind::Backup,
        1,
        |_| {
            (
                "Navy storage".to_string(),
                vec![
                    ("access_key_id", "AKIANAVY".to_string()),
                    ("endpoint", world.s3.endpoint.clone()),
                    ("region", "us-east-1".to_string()),
                ],
                vec![("secret_access_key", crate::support::fakes::GOOD.to_string())],
            )
        },
    );
    let options = |page: &str| texts(page, "#backup_credential_id option");
    let blue = world
        .partner
        .page(&format!(
            "/projects/new?organization_id={}",
            world.organization
        ))
        .await;
    assert_eq!(
        options(&blue),
        ["— choose —", "Blue storage (default) — Blue Org"]
    );
    assert_eq!(
        texts(&blue, "#backup_credential_id option[selected]"),
        ["Blue storage (default) — Blue Org"],
        "its default pre-selected"
    );
    let navy_page = world
        .partner
        .page(&format!("/projects/new?organization_id={navy}"))
        .await;
    assert_eq!(
        options(&navy_page),
        ["— choose —", "Navy storage — Navy Org"]
    );
    assert_eq!(
        texts(&navy_page, "#backup_credential_id option[selected]"),
        ["— choose —"],
        "no other organization's default stays selected"
    );
    assert!(
        navy_page.contains("hx-select-oob=\"#credential-choices,#backup-choices\""),
        "htmx takes the lists from this page when the organization changes"
    );
}

/// The data source's password has a field of its own: the URL is shown as typed (without a
/// password) after a refusal, the password never, with "enter it again"; the saved project
/// keeps the password, which its edit form then treats as write-only.
#[actix_web::test]
async fn the_data_source_password_is_a_field_of_its_own() {
    let world = world().await;
    let data = crate::support::DataDb::with_orders(3);
    let bare = data.url.clone();
    let organization = world.organization.to_string();
    let form = |name: &'static str| {
        vec![
            ("name", name.to_string()),
            ("organization_id", organization.clone()),
            ("database_url", bare.clone()),
            ("database_password", "pw-Marker-7731".to_string()),
        ]
    };
    let post = async |fields: Vec<(&str, String)>| {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        world
            .partner
            .post_from("/projects/new", "/projects", &fields)
            .await
    };
    let refused = post(form("x")).await;
    assert_eq!(refused.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    let page = refused.text().await.unwrap();
    assert!(
        !page.contains("pw-Marker-7731"),
        "the password is never sent back"
    );
    assert!(
        page.contains(&format!("value=\"{bare}\"")),
        "the URL is kept"
    );
    assert!(page.contains("Enter it again"), "{page}");

    let saved = post(form("with-password")).await;
    assert_eq!(saved.status(), reqwest::StatusCode::SEE_OTHER);
    let id = crate::support::scalar_i64(
        &world.app,
        "SELECT id AS n FROM projects WHERE name = 'with-password'",
    );
    let edit = world.partner.page(&format!("/projects/{id}/edit")).await;
    assert!(!edit.contains("pw-Marker-7731"));
    assert!(
        edit.contains("unchanged if left blank"),
        "a password is stored: {edit}"
    );
}
