//! Who reaches which credential: roles, tabs and organizations.

use super::*;

#[actix_web::test]
async fn roles_and_organizations_decide_who_reaches_which_credential() {
    let setup = setup().await;
    let blue_key = add_ai(&setup, &setup.partner, setup.blue, "Blue key").await;
    let green_key = add_ai(&setup, &setup.partner, setup.green, "Green key").await;
    let manager = setup.manager("mia@blue.example", setup.blue).await;
    let other = setup.manager("gus@green.example", setup.green).await;
    let user = setup
        .signed_in(
            setup
                .partner
                .create_user("ulf@blue.example", "user", Some(setup.blue))
                .await,
        )
        .await;

    for path in [
        "/credentials",
        "/credentials/cloud",
        "/credentials/ai",
        "/credentials/ai/new",
        &format!("/credentials/ai/{blue_key}"),
        &format!("/credentials/ai/{blue_key}/edit"),
    ] {
        assert_eq!(
            user.get(path).await.status(),
            StatusCode::FORBIDDEN,
            "User GET {path}"
        );
    }
    assert_eq!(
        act(&user, "ai", blue_key, "lock").await.status(),
        StatusCode::FORBIDDEN
    );

    assert_eq!(
        manager.get("/credentials/billing").await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        setup.partner.get("/credentials/billing").await.status(),
        StatusCode::OK
    );
    let tabs = texts(
        &manager.get("/credentials/ai").await.text().await.unwrap(),
        "nav.tabs a",
    );
    assert_eq!(tabs, vec!["Cloud", "Backup", "Showback", "AI"]);

    let list = manager.get("/credentials/ai").await.text().await.unwrap();
    assert!(list.contains("Blue key") && !list.contains("Green key"));
    let foreign = [
        format!("/credentials/ai/{green_key}"),
        format!("/credentials/ai/{green_key}/edit"),
    ];
    for path in &foreign {
        assert_eq!(
            manager.get(path).await.status(),
            StatusCode::NOT_FOUND,
            "Manager GET {path}"
        );
    }
    for action in ["lock", "unlock", "default", "verify", "delete"] {
        assert_eq!(
            act(&manager, "ai", green_key, action).await.status(),
            StatusCode::NOT_FOUND,
            "{action} foreign"
        );
    }
    let update = manager
        .post_from(
            "/credentials/ai",
            &format!("/credentials/ai/{green_key}"),
            &[("version", "1"), ("name", "Stolen")],
        )
        .await;
    assert_eq!(update.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        act(&other, "ai", blue_key, "lock").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        setup
            .partner
            .get(&format!("/credentials/backup/{blue_key}"))
            .await
            .status(),
        StatusCode::NOT_FOUND,
        "wrong kind"
    );

    // A Manager's credentials always belong to their own organization, whatever the form says.
    let green = setup.green.to_string();
    let response = add(
        &manager,
        "ai",
        &[
            ("organization_id", &green),
            ("name", "Sneaky"),
            ("api_key", GOOD),
            ("base_url", &setup.fake),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let owner = text_column(
        &setup.app,
        "SELECT organization_id::text AS value FROM credentials WHERE name = 'Sneaky'",
    );
    assert_eq!(owner, setup.blue.to_string());

    // Proxmox and Tanzu: only Partners add them; Managers view, edit and lock them.
    assert_eq!(
        manager
            .get("/credentials/cloud/new?provider=proxmox")
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let choices = texts(
        &manager.page("/credentials/cloud/new").await,
        ".provider-grid a",
    );
    assert!(
        !choices.contains(&"Proxmox".to_string())
            && !choices.contains(&"Tanzu".to_string())
            && choices.contains(&"AWS".to_string())
    );
    let forms: HashMap<_, _> = cloud_forms(&setup.fake, &|_| GOOD.to_string())
        .into_iter()
        .collect();
    let refused = add_cloud(&manager, setup.blue, "tanzu", "tanzu-m", &forms["tanzu"]).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        add_cloud(
            &setup.partner,
            setup.blue,
            "proxmox",
            "pve-blue",
            &forms["proxmox"]
        )
        .await
        .status(),
        StatusCode::SEE_OTHER
    );
    let pve = setup.credential_id("pve-blue");
    assert_eq!(
        manager
            .get(&format!("/credentials/cloud/{pve}/edit"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        act(&manager, "cloud", pve, "lock").await.status(),
        StatusCode::SEE_OTHER
    );
}
