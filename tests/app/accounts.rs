use reqwest::StatusCode;

use crate::support::{Client, TestApp, spawn_app, texts};

/// A partner account with two organizations, a Manager and a User in the first, a Manager in
/// the second, and each person signed in in a browser of their own.
struct World {
    app: TestApp,
    partner: Client,
    manager: Client,
    user: Client,
    other_manager: Client,
    blue: i64,
}

async fn world() -> World {
    let app = spawn_app().await;
    let (partner, _) = app.partner().await;
    let blue = partner.create_organization(&app, "Blue Org").await;
    let green = partner.create_organization(&app, "Green Org").await;
    let signed_in = async |account: crate::support::Account| app.signed_in(&account).await;
    let manager = signed_in(
        partner
            .create_user("mia@blue.example", "manager", Some(blue))
            .await,
    )
    .await;
    let user = signed_in(
        partner
            .create_user("ulf@blue.example", "user", Some(blue))
            .await,
    )
    .await;
    let other_manager = signed_in(
        partner
            .create_user("gus@green.example", "manager", Some(green))
            .await,
    )
    .await;
    World {
        app,
        partner,
        manager,
        user,
        other_manager,
        blue,
    }
}

#[actix_web::test]
async fn only_partners_manage_organizations_and_users_and_users_see_no_audit() {
    let world = world().await;
    let signed_out = world.app.client();
    let cases: [(&Client, &str, StatusCode); 15] = [
        (&world.partner, "/organizations", StatusCode::OK),
        (&world.partner, "/users", StatusCode::OK),
        (&world.partner, "/audit", StatusCode::OK),
        (&world.manager, "/organizations", StatusCode::FORBIDDEN),
        (&world.manager, "/users", StatusCode::FORBIDDEN),
        (&world.manager, "/audit", StatusCode::OK),
        (&world.user, "/organizations", StatusCode::FORBIDDEN),
        (&world.user, "/users", StatusCode::FORBIDDEN),
        (&world.user, "/audit", StatusCode::FORBIDDEN),
        (
            &world.other_manager,
            "/organizations",
            StatusCode::FORBIDDEN,
        ),
        (&world.other_manager, "/users", StatusCode::FORBIDDEN),
        (&world.other_manager, "/audit", StatusCode::OK),
        (&signed_out, "/organizations", StatusCode::SEE_OTHER),
        (&signed_out, "/users", StatusCode::SEE_OTHER),
        (&signed_out, "/audit", StatusCode::SEE_OTHER),
    ];
    for (client, path, expected) in cases {
        assert_eq!(client.get(path).await.status(), expected, "GET {path}");
    }
}

#[actix_web::test]
async fn managers_and_users_cannot_create_organizations_or_people() {
    let world = world().await;
    let (organizations, users) = (world.app.count("organizations"), world.app.count("users"));
    for client in [&world.manager, &world.user] {
        let response = client
            .post_from("/", "/organizations", &[("name", "Sneaky Org")])
            .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let blue = world.blue.to_string();
        let response = client
            .post_from(
                "/",
                "/users",
                &[
                    ("email", "sneaky@blue.example"),
                    ("display_name", "Sneaky"),
                    ("role", "partner"),
                    ("organization_id", &blue),
                    ("password", "sneaky-password-1"),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
    assert_eq!(world.app.count("organizations"), organizations);
    assert_eq!(world.app.count("users"), users);
}

#[actix_web::test]
async fn a_manager_sees_only_the_audit_events_of_their_organization() {
    let world = world().await;
    let blue_audit = world
        .manager
        .get("/audit?sign_ins=1")
        .await
        .text()
        .await
        .unwrap();
    assert!(blue_audit.contains("mia@blue.example"));
    assert!(blue_audit.contains("ulf@blue.example"));
    assert!(
        !blue_audit.contains("gus@green.example"),
        "another organization's person"
    );
    assert!(!blue_audit.contains("Green Org"));

    let green_audit = world.other_manager.page("/audit?sign_ins=1").await;
    assert!(green_audit.contains("gus@green.example"));
    assert!(!green_audit.contains("mia@blue.example"));

    let partner_audit = world
        .partner
        .get("/audit?sign_ins=1")
        .await
        .text()
        .await
        .unwrap();
    for expected in [
        "organization.create",
        "user.create",
        "session.sign_in",
        "Green Org",
        "Blue Org",
    ] {
        assert!(partner_audit.contains(expected), "Partner sees {expected}");
    }

    let dashboard = world.manager.get("/").await.text().await.unwrap();
    assert!(!dashboard.contains("gus@green.example"));
}

#[actix_web::test]
async fn failed_sign_ins_are_audited_for_the_account_owner() {
    let world = world().await;
    world
        .app
        .client()
        .login("mia@blue.example", "wrong-password")
        .await;
    let audit = world
        .manager
        .get("/audit?action=session.sign_in_failed")
        .await
        .text()
        .await
        .unwrap();
    assert!(audit.contains("session.sign_in_failed"));
    assert!(
        !audit.contains("wrong-password"),
        "attempted passwords are never recorded"
    );
}

#[actix_web::test]
async fn a_partner_cannot_attach_people_to_another_partners_organization() {
    let world = world().await;
    let foreign = world.app.query(|conn| {
        use diesel::prelude::*;
        let partner: i64 = diesel::insert_into(keyhold::schema::partners::table)
            .values(keyhold::schema::partners::name.eq("Rival Partner"))
            .returning(keyhold::schema::partners::id)
            .get_result(conn)?;
        diesel::insert_into(keyhold::schema::organizations::table)
            .values((
                keyhold::schema::organizations::partner_id.eq(partner),
                keyhold::schema::organizations::name.eq("Rival Org"),
            ))
            .returning(keyhold::schema::organizations::id)
            .get_result::<i64>(conn)
    });
    let users = world.app.count("users");
    let foreign = foreign.to_string();
    let response = world
        .partner
        .post_from(
            "/users",
            "/users",
            &[
                ("email", "spy@rival.example"),
                ("display_name", "Spy"),
                ("role", "manager"),
                ("organization_id", &foreign),
                ("password", "spy-password-123"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(world.app.count("users"), users);
    let organizations = world.partner.page("/organizations").await;
    assert!(!organizations.contains("Rival Org"));
}

#[actix_web::test]
async fn duplicate_names_and_emails_are_refused_on_the_form() {
    let world = world().await;
    let response = world
        .partner
        .post_from("/organizations", "/organizations", &[("name", "Blue Org")])
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = response.text().await.unwrap();
    assert_eq!(
        texts(&body, "p.error"),
        vec!["Blue Org already exists".to_string()]
    );

    let response = world
        .partner
        .post_from(
            "/users",
            "/users",
            &[
                ("email", "MIA@blue.example"),
                ("display_name", "Mia again"),
                ("role", "user"),
                ("organization_id", &world.blue.to_string()),
                ("password", "another-password"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = response.text().await.unwrap();
    assert!(!body.contains("another-password"));
}

#[actix_web::test]
async fn mutations_without_a_valid_csrf_token_or_from_another_site_change_nothing() {
    let world = world().await;
    let organizations = world.app.count("organizations");
    let partner = &world.partner;
    let url = format!("{}/organizations", partner.base);

    let no_token = partner
        .post("/organizations", &[("name", "No Token Org")])
        .await;
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN);

    let wrong = partner
        .post(
            "/organizations",
            &[("csrf_token", "forged"), ("name", "Forged Org")],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);

    let token = partner.token("/organizations").await;
    let cross_origin = partner
        .http
        .post(&url)
        .header("Origin", "https://evil.example")
        .form(&[("csrf_token", token.as_str()), ("name", "Cross Org")])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_origin.status(), StatusCode::FORBIDDEN);

    let cross_site = partner
        .http
        .post(&url)
        .header("Sec-Fetch-Site", "cross-site")
        .form(&[("csrf_token", token.as_str()), ("name", "Cross Site Org")])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);

    let other_session_token = world.manager.token("/").await;
    let stolen = partner
        .post(
            "/organizations",
            &[("csrf_token", &other_session_token), ("name", "Stolen Org")],
        )
        .await;
    assert_eq!(stolen.status(), StatusCode::FORBIDDEN);

    let header_token = partner
        .http
        .post(&url)
        .header("X-CSRF-Token", "forged")
        .header("HX-Request", "true")
        .form(&[("name", "Header Org")])
        .send()
        .await
        .unwrap();
    assert_eq!(header_token.status(), StatusCode::FORBIDDEN);

    let logout_without_token = partner.post("/logout", &[]).await;
    assert_eq!(logout_without_token.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        partner.get("/").await.status(),
        StatusCode::OK,
        "still signed in"
    );
    assert_eq!(world.app.count("organizations"), organizations);

    let same_origin = partner
        .http
        .post(&url)
        .header("Origin", partner.base.as_str())
        .header("Sec-Fetch-Site", "same-origin")
        .header("X-CSRF-Token", token.as_str())
        .form(&[("name", "Good Org")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        same_origin.status(),
        StatusCode::SEE_OTHER,
        "the header token works for htmx"
    );
    assert_eq!(world.app.count("organizations"), organizations + 1);
}

#[actix_web::test]
async fn a_partner_cannot_tell_whether_an_email_exists_in_another_partner_account() {
    let world = world().await;
    // Another partner account with one person in it.
    let hash =
        keyhold::crypto::password::hash_blocking(&keyhold::crypto::Secret::new("rival-password-1"))
            .unwrap();
    world.app.query(|conn| {
        use diesel::prelude::*;
        let partner: i64 = diesel::insert_into(keyhold::schema::partners::table)
            .values(keyhold::schema::partners::name.eq("Rival Partners"))
            .returning(keyhold::schema::partners::id)
            .get_result(conn)?;
        diesel::insert_into(keyhold::schema::users::table)
            .values((
                keyhold::schema::users::partner_id.eq(partner),
                keyhold::schema::users::email.eq("rita@rival.example"),
                keyhold::schema::users::display_name.eq("Rita"),
                keyhold::schema::users::role.eq("partner"),
                keyhold::schema::users::password_hash.eq(&hash),
            ))
            .execute(conn)
    });
    let users = world.app.count("users");
    let create = async |email: &str| {
        let response = world
            .partner
            .post_from(
                "/users",
                "/users",
                &[
                    ("email", email),
                    ("display_name", "Someone"),
                    ("role", "partner"),
                    ("organization_id", ""),
                    ("password", "someone-password-1"),
                ],
            )
            .await;
        let status = response.status();
        let body = response.text().await.unwrap();
        (status, texts(&body, "p.error"))
    };
    let foreign = create("rita@rival.example").await;
    let own = create("mia@blue.example").await;
    assert_eq!(foreign.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        foreign, own,
        "an address in another partner account is refused exactly like one of this account"
    );
    assert!(
        foreign.1.iter().all(|error| !error.contains("already exists")
            && !error.contains("rita@rival.example")),
        "{foreign:?}"
    );
    assert_eq!(world.app.count("users"), users);
}

#[actix_web::test]
async fn an_origin_of_another_scheme_or_port_is_another_site() {
    let world = world().await;
    let partner = &world.partner;
    let url = format!("{}/organizations", partner.base);
    let token = partner.token("/organizations").await;
    let port = url::Url::parse(&partner.base).unwrap().port().unwrap();
    let organizations = world.app.count("organizations");
    for origin in [
        format!("https://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{}", port + 1),
        "http://127.0.0.1".to_string(),
        "null".to_string(),
    ] {
        let response = partner
            .http
            .post(&url)
            .header("Origin", origin.as_str())
            .form(&[("csrf_token", token.as_str()), ("name", "Scheme Org")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{origin}");
    }
    assert_eq!(world.app.count("organizations"), organizations);
    let same = partner
        .http
        .post(&url)
        .header("Origin", format!("HTTP://127.0.0.1:{port}"))
        .form(&[("csrf_token", token.as_str()), ("name", "Same Org")])
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), StatusCode::SEE_OTHER, "the same site");
}

#[actix_web::test]
async fn the_users_form_starts_at_manager_and_refuses_an_organization_for_a_partner() {
    let app = crate::support::spawn_app().await;
    let (partner, _) = app.partner().await;
    let blue = partner
        .create_organization(&app, "Blue Org")
        .await
        .to_string();
    let page = partner.page("/users").await;
    assert_eq!(texts(&page, "#role option[selected]"), ["Manager"]);
    let users = app.count("users");
    let refused = partner
        .post_from(
            "/users",
            "/users",
            &[
                ("email", "pia@partner.example"),
                ("display_name", "Pia"),
                ("role", "partner"),
                ("organization_id", &blue),
                ("password", "partner-password-2"),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = refused.text().await.unwrap();
    assert!(
        texts(&body, "#organization_id-help")
            .join("")
            .contains("Partners reach every organization"),
        "said, not ignored"
    );
    assert_eq!(app.count("users"), users);
}

#[actix_web::test]
async fn the_dashboard_and_audit_say_what_happened_in_words_and_the_dashboard_skips_sign_ins() {
    let app = crate::support::spawn_app().await;
    let (partner, account) = app.partner().await;
    partner.create_organization(&app, "Blue Org").await;
    let again = app.client();
    again.login(&account.email, &account.password).await;
    let dashboard = partner.page("/").await;
    let what = texts(&dashboard, "td[data-label=What]");
    assert!(
        what.contains(&"Created organization".to_string()),
        "{what:?}"
    );
    assert!(
        !what.iter().any(|w| w.starts_with("Signed")),
        "sign-ins do not flood the dashboard: {what:?}"
    );
    let audit = partner.page("/audit?sign_ins=1").await;
    let actions = texts(&audit, "td[data-label=Action]");
    assert!(actions.contains(&"Signed in".to_string()), "{actions:?}");
    assert!(actions.contains(&"Created organization".to_string()));
}
