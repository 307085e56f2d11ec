use reqwest::StatusCode;

use crate::support::{spawn_app, spawn_app_with, texts};

#[actix_web::test]
async fn first_run_setup_creates_the_partner_and_then_disappears() {
    let app = spawn_app().await;
    let visitor = app.client();
    let response = visitor.get("/").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let response = visitor.get("/login").await;
    assert_eq!(
        response.headers()["location"],
        "/setup",
        "no account yet: go to setup"
    );

    let (partner, account) = app.partner().await;
    let dashboard = partner.get("/").await;
    assert_eq!(
        dashboard.status(),
        StatusCode::OK,
        "setup signs the Partner in"
    );
    let body = dashboard.text().await.unwrap();
    assert!(body.contains("Pat Partner") && body.contains("Partner"));
    assert_eq!(app.count("partners"), 1);
    assert_eq!(app.count("users"), 1);

    assert_eq!(
        app.client().get("/setup").await.status(),
        StatusCode::NOT_FOUND
    );
    let token = partner.token("/").await;
    let again = partner
        .post(
            "/setup",
            &[
                ("csrf_token", &token),
                ("partner_name", "Intruder"),
                ("display_name", "Mallory"),
                ("email", "mallory@evil.example"),
                ("password", "mallory-password"),
            ],
        )
        .await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.count("users"), 1, "no second first-run");

    let stranger = app.client();
    assert_eq!(
        stranger
            .login(&account.email, &account.password)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
}

#[actix_web::test]
async fn setup_with_invalid_fields_answers_422_and_keeps_values_but_not_the_password() {
    let app = spawn_app().await;
    let visitor = app.client();
    let response = visitor
        .post_from(
            "/setup",
            "/setup",
            &[
                ("partner_name", "Ac"),
                ("display_name", "Pat"),
                ("email", "not-an-email"),
                ("password", "short-pw"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = response.text().await.unwrap();
    let errors = texts(&body, "p.error");
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(body.contains("value=\"not-an-email\""));
    assert!(!body.contains("short-pw"), "passwords are never echoed");
    assert_eq!(app.count("users"), 0);
}

#[actix_web::test]
async fn sign_in_fails_with_the_same_message_for_unknown_email_and_wrong_password() {
    let app = spawn_app().await;
    let (_, account) = app.partner().await;
    let browser = app.client();

    let wrong_password = browser.login(&account.email, "not-the-password").await;
    assert_eq!(wrong_password.status(), StatusCode::UNAUTHORIZED);
    let wrong_password = texts(&wrong_password.text().await.unwrap(), "#login-error");

    let unknown = browser
        .login("nobody@partner.example", "not-the-password")
        .await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let unknown = texts(&unknown.text().await.unwrap(), "#login-error");

    assert_eq!(
        wrong_password,
        vec!["Incorrect email or password.".to_string()]
    );
    assert_eq!(wrong_password, unknown);
    assert_eq!(
        browser.get("/").await.status(),
        StatusCode::SEE_OTHER,
        "still signed out"
    );

    let ok = browser.login(&account.email, &account.password).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(ok.headers()["location"], "/");
    assert_eq!(browser.get("/").await.status(), StatusCode::OK);
}

#[actix_web::test]
async fn unknown_email_and_wrong_password_take_similar_time() {
    let app = spawn_app().await;
    let (_, account) = app.partner().await;
    let browser = app.client();
    let token = browser.token("/login").await;
    let median = |email: &'static str| {
        let (browser, token) = (&browser, token.clone());
        async move {
            let mut timings = Vec::new();
            for _ in 0..5 {
                let started = std::time::Instant::now();
                browser
                    .post(
                        "/login",
                        &[
                            ("csrf_token", token.as_str()),
                            ("email", email),
                            ("password", "wrong-password-x"),
                        ],
                    )
                    .await;
                timings.push(started.elapsed().as_secs_f64());
            }
            timings.sort_by(f64::total_cmp);
            timings[2]
        }
    };
    let known = median("pat@partner.example").await;
    let unknown = median("ghost@partner.example").await;
    let _ = &account;
    assert!(
        unknown > known * 0.5 && unknown < known * 2.0,
        "known {known:.3}s vs unknown {unknown:.3}s"
    );
}

#[actix_web::test]
async fn repeated_failures_for_an_account_are_throttled_with_retry_after() {
    let app = spawn_app().await;
    let (_, account) = app.partner().await;
    let browser = app.client();
    for _ in 0..5 {
        let response = browser.login(&account.email, "wrong-password").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let throttled = browser.login(&account.email, &account.password).await;
    assert_eq!(
        throttled.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    let retry_after: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0 && retry_after <= 300);
    assert_eq!(browser.get("/").await.status(), StatusCode::SEE_OTHER);
}

#[actix_web::test]
async fn repeated_failures_from_one_client_are_throttled_across_accounts_even_with_forged_forwarding()
 {
    let app = spawn_app_with(&[("KEYHOLD_LOGIN_CLIENT_LIMIT", "4")]).await;
    let (_, account) = app.partner().await;
    let browser = app.client();
    for n in 0..4 {
        let token = browser.token("/login").await;
        let response = browser
            .http
            .post(format!("{}/login", browser.base))
            .header("X-Forwarded-For", format!("203.0.113.{n}"))
            .form(&[
                ("csrf_token", token.as_str()),
                ("email", &format!("guess{n}@partner.example")),
                ("password", "guess"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let throttled = browser.login(&account.email, &account.password).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.headers().contains_key("retry-after"));
}

#[actix_web::test]
async fn disabled_people_cannot_sign_in_and_lose_their_sessions() {
    let app = spawn_app().await;
    let (partner, _) = app.partner().await;
    let org = partner.create_organization(&app, "Blue Org").await;
    let manager = partner
        .create_user("mia@blue.example", "manager", Some(org))
        .await;
    let mia = app.client();
    assert_eq!(
        mia.login(&manager.email, &manager.password).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(mia.get("/").await.status(), StatusCode::OK);

    let mia_id = app.query(|conn| {
        use diesel::prelude::*;
        use keyhold::schema::users;
        users::table
            .filter(users::email.eq("mia@blue.example"))
            .select(users::id)
            .first::<i64>(conn)
    });
    let response = partner
        .post_from("/users", &format!("/users/{mia_id}/disable"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);

    assert_eq!(
        mia.get("/").await.status(),
        StatusCode::SEE_OTHER,
        "session revoked"
    );
    // The right password of a disabled account is answered like a wrong one.
    let again = app.client().login(&manager.email, &manager.password).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        texts(&again.text().await.unwrap(), "#login-error"),
        vec!["Incorrect email or password.".to_string()]
    );

    let repeat = partner
        .post_from("/users", &format!("/users/{mia_id}/disable"), &[])
        .await;
    assert_eq!(repeat.status(), StatusCode::CONFLICT, "already disabled");
}

#[actix_web::test]
async fn sign_in_only_redirects_to_paths_on_this_site() {
    let app = spawn_app().await;
    let (_, account) = app.partner().await;
    let browser = app.client();
    let response = browser
        .post_from(
            "/login",
            "/login",
            &[
                ("email", &account.email),
                ("password", &account.password),
                ("next", "//evil.example/x"),
            ],
        )
        .await;
    assert_eq!(response.headers()["location"], "/");
}

#[actix_web::test]
async fn a_burst_of_concurrent_wrong_passwords_is_throttled_like_a_sequence() {
    let app = spawn_app().await;
    let (_, account) = app.partner().await;
    let browser = app.client();
    let token = browser.token("/login").await;
    let form = [
        ("csrf_token", token.as_str()),
        ("email", account.email.as_str()),
        ("password", "wrong-password"),
    ];
    let attempts = (0..40).map(|_| browser.post("/login", &form));
    let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts)
        .await
        .iter()
        .map(reqwest::Response::status)
        .collect();
    let refused = |status| statuses.iter().filter(|s| **s == status).count();
    assert!(
        refused(StatusCode::UNAUTHORIZED) <= 5,
        "at most the account's limit is checked: {statuses:?}"
    );
    assert_eq!(
        refused(StatusCode::UNAUTHORIZED) + refused(StatusCode::TOO_MANY_REQUESTS),
        40,
        "{statuses:?}"
    );
    let right = browser.login(&account.email, &account.password).await;
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(browser.get("/").await.status(), StatusCode::SEE_OTHER);
}

#[actix_web::test]
async fn a_disabled_accounts_right_password_is_answered_like_a_wrong_one() {
    let app = spawn_app().await;
    let (partner, _) = app.partner().await;
    let org = partner.create_organization(&app, "Blue Org").await;
    let manager = partner
        .create_user("mia@blue.example", "manager", Some(org))
        .await;
    let mia_id = app.query(|conn| {
        use diesel::prelude::*;
        use keyhold::schema::users;
        users::table
            .filter(users::email.eq("mia@blue.example"))
            .select(users::id)
            .first::<i64>(conn)
    });
    let disabled = partner
        .post_from("/users", &format!("/users/{mia_id}/disable"), &[])
        .await;
    assert_eq!(disabled.status(), StatusCode::SEE_OTHER);

    let answer = async |password: &str| {
        let response = app.client().login(&manager.email, password).await;
        let status = response.status();
        let body = response.text().await.unwrap();
        (status, texts(&body, "#login-error"))
    };
    let right = answer(&manager.password).await;
    let wrong = answer("not-the-password").await;
    assert_eq!(right, wrong);
    assert_eq!(right.0, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn a_successful_sign_in_clears_the_accounts_failures_and_uncounts_itself_for_the_client() {
    let app = spawn_app_with(&[("KEYHOLD_LOGIN_CLIENT_LIMIT", "6")]).await;
    let (_, account) = app.partner().await;
    let browser = app.client();
    for _ in 0..4 {
        let response = browser.login(&account.email, "wrong-password").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // Four failures and a success from this client: the account starts again, and the client
    // has counted only the four failures.
    let ok = app.client().login(&account.email, &account.password).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    for _ in 0..2 {
        let response = browser.login(&account.email, "wrong-password").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let seventh = browser.login(&account.email, "wrong-password").await;
    assert_eq!(seventh.status(), StatusCode::TOO_MANY_REQUESTS);
}
