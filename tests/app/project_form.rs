//! The project form offers the chosen organization's credentials only.

use crate::backups::world;
use crate::helpers::texts;

#[actix_web::test]
async fn the_project_forms_lists_follow_the_organization() {
    let world = world().await;
    let navy = world
        .partner
        .create_organization(&world.app, "Navy Org")
        .await;
    crate::helpers::seed_credentials(
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
                vec![("secret_access_key", crate::fakes::GOOD.to_string())],
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
