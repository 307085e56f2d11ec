//! Second factors (issue 20, SPEC §12) through the HTTP contract: TOTP set up from the secret
//! the page shows, codes computed by Python's own HMAC (not keyhold's TOTP library), a code
//! accepted once, recovery codes used once, wrong codes throttled like passwords, the
//! half-signed-in state refused by every route, enforcement by a Partner, reset by the CLI.

use reqwest::StatusCode;

use crate::support::{
    Account, Client, TestApp, scalar_i64, scalar_text, spawn_app, spawn_app_with, texts,
    totp_code as code,
};

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .map(|value| value.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// Turns two-step sign-in on for the signed-in `client`; answers the secret and the codes.
async fn enable(client: &Client) -> (String, Vec<String>) {
    let page = client.page("/account/mfa").await;
    let secret = texts(&page, "#totp-secret")[0].clone();
    assert_eq!(
        secret,
        texts(&client.page("/account/mfa").await, "#totp-secret")[0],
        "the same secret on reload"
    );
    assert!(
        page.contains("src=\"data:image/svg+xml;base64,"),
        "a QR code without JavaScript"
    );
    let wrong = client
        .post_from("/account/mfa", "/account/mfa", &[("code", "000000")])
        .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let confirmed = client
        .post_from(
            "/account/mfa",
            "/account/mfa",
            &[("code", &code(&secret, 0))],
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    assert_eq!(confirmed.headers()["cache-control"], "no-store");
    let body = confirmed.text().await.unwrap();
    let codes = texts(&body, "#recovery-codes code");
    assert_eq!(codes.len(), 10, "{body}");
    (secret, codes)
}

/// Signs in with the password only: the answer must send to the code page.
async fn password_only(app: &TestApp, account: &Account) -> Client {
    let client = app.client();
    let response = client.login(&account.email, &account.password).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/login/mfa");
    client
}

async fn send_code(client: &Client, code: &str) -> reqwest::Response {
    client
        .post_from("/login/mfa", "/login/mfa", &[("code", code)])
        .await
}

#[actix_web::test]
async fn two_step_sign_in_takes_a_code_once_and_a_recovery_code_once() {
    let app = spawn_app().await;
    let (partner, account) = app.partner().await;
    let (secret, codes) = enable(&partner).await;
    assert!(
        !scalar_text(&app, "SELECT totp_secret AS value FROM users").contains(&secret),
        "sealed at rest"
    );

    // Half signed in: nothing opens but the code page.
    let client = password_only(&app, &account).await;
    for path in [
        "/",
        "/credentials/backup",
        "/account",
        "/account/mfa",
        "/notifications",
    ] {
        let response = client.get(path).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&response), "/login/mfa", "{path}");
    }
    let wrong = send_code(&client, "123456").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    // The step the setup used was accepted already; the next one (within the window) passes.
    let replayed = send_code(&client, &code(&secret, 0)).await;
    assert_eq!(
        replayed.status(),
        StatusCode::UNAUTHORIZED,
        "a code works once"
    );
    let next = code(&secret, 1);
    let passed = send_code(&client, &next).await;
    assert_eq!(passed.status(), StatusCode::SEE_OTHER);
    assert_eq!(client.get("/").await.status(), StatusCode::OK);

    // The same code again, in another browser: refused.
    let other = password_only(&app, &account).await;
    assert_eq!(
        send_code(&other, &next).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // A recovery code signs in once, warns, and is audited.
    let recovered = send_code(&other, &codes[3].to_uppercase()).await;
    assert_eq!(recovered.status(), StatusCode::SEE_OTHER);
    let home = other.page("/").await;
    assert!(
        texts(&home, ".flash-error")
            .join(" ")
            .contains("recovery code; 9 left")
    );
    let third = password_only(&app, &account).await;
    assert_eq!(
        send_code(&third, &codes[3]).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        scalar_i64(
            &app,
            "SELECT count(*) AS n FROM audit_events WHERE action = 'mfa.recovery_code_used'"
        ),
        1
    );

    // Turning it off takes the password and a current code.
    let refused = client
        .post_from(
            "/account/mfa",
            "/account/mfa/disable",
            &[
                ("password", "not-the-password"),
                ("code", &code(&secret, 1)),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let off = client
        .post_from(
            "/account/mfa",
            "/account/mfa/disable",
            &[("password", &account.password), ("code", &codes[0])],
        )
        .await;
    assert_eq!(off.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.count("recovery_codes"), 0);
    assert_eq!(
        scalar_text(
            &app,
            "SELECT string_agg(action, ',' ORDER BY id) AS value FROM audit_events
             WHERE action LIKE 'mfa.%'"
        ),
        "mfa.enable,mfa.recovery_code_used,mfa.disable"
    );
    let plain = app.client();
    assert_eq!(
        location(&plain.login(&account.email, &account.password).await),
        "/"
    );
}

#[actix_web::test]
async fn wrong_codes_are_throttled_like_wrong_passwords() {
    let app = spawn_app_with(&[("KEYHOLD_LOGIN_ACCOUNT_LIMIT", "3")]).await;
    let (partner, account) = app.partner().await;
    let (secret, _) = enable(&partner).await;
    let client = password_only(&app, &account).await;
    for _ in 0..2 {
        assert_eq!(
            send_code(&client, "111111").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let blocked = send_code(&client, &code(&secret, 1)).await;
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(blocked.headers().contains_key("retry-after"));
}

#[actix_web::test]
async fn every_route_refuses_the_half_signed_in() {
    let app = spawn_app().await;
    let (partner, account) = app.partner().await;
    enable(&partner).await;
    let client = password_only(&app, &account).await;
    let token = client.token("/login/mfa").await;
    let mut checked = 0;
    for (method, pattern) in keyhold::routes::TABLE {
        let open = [
            "/healthz",
            "/readyz",
            "/metrics",
            "/static/{name}",
            "/setup",
            "/login",
            "/login/mfa",
            "/login/mfa/passkey/options",
            "/login/mfa/passkey",
            "/logout",
        ];
        if open.contains(pattern) {
            continue;
        }
        let path = pattern
            .replace("{kind}", "backup")
            .replace("{action}", "lock")
            .replace("{policy_id}", "1")
            .replace("{backup_id}", "1")
            .replace("{id}", "1");
        let response = match *method {
            "get" => client.get(&path).await,
            "post" => {
                client
                    .post(&path, &[("csrf_token", token.as_str()), ("name", "Half")])
                    .await
            }
            other => {
                let method = reqwest::Method::from_bytes(other.to_uppercase().as_bytes()).unwrap();
                client
                    .http
                    .request(method, format!("{}{path}", client.base))
                    .send()
                    .await
                    .unwrap()
            }
        };
        if path.starts_with("/api/") {
            // The API takes bearer tokens only: the half-signed-in cookie is no more than none.
            if path != "/api/v1/openapi.json" {
                assert_eq!(
                    response.status(),
                    StatusCode::UNAUTHORIZED,
                    "{method} {path}"
                );
            }
        } else {
            assert_eq!(response.status(), StatusCode::SEE_OTHER, "{method} {path}");
            assert_eq!(location(&response), "/login/mfa", "{method} {path}");
        }
        checked += 1;
    }
    assert!(checked > 30, "{checked}");
    // Signing out works half signed in.
    let out = client
        .post("/logout", &[("csrf_token", token.as_str())])
        .await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&client.get("/").await), "/login");
}

#[actix_web::test]
async fn a_partner_can_require_a_second_factor_and_the_cli_resets_a_lost_one() {
    let app = spawn_app().await;
    let (partner, _) = app.partner().await;
    let organization = partner.create_organization(&app, "Blue Org").await;
    let manager = partner
        .create_user("mia@blue.example", "manager", Some(organization))
        .await;
    let required = partner
        .post_from(
            "/organizations",
            "/organizations/mfa",
            &[
                ("required", "organization"),
                ("organization_id", &organization.to_string()),
            ],
        )
        .await;
    assert_eq!(required.status(), StatusCode::SEE_OTHER);

    // The Manager is taken to the setup right after the password, and nothing else opens.
    let client = app.client();
    let signed = client.login(&manager.email, &manager.password).await;
    assert_eq!(location(&signed), "/account/mfa");
    for path in ["/", "/credentials/backup", "/projects"] {
        assert_eq!(location(&client.get(path).await), "/account/mfa", "{path}");
    }
    let (secret, _) = enable(&client).await;
    assert_eq!(
        client.get("/credentials/backup").await.status(),
        StatusCode::OK
    );
    let refused_off = client
        .post_from(
            "/account/mfa",
            "/account/mfa/disable",
            &[("password", &manager.password), ("code", &code(&secret, 1))],
        )
        .await;
    assert_eq!(
        refused_off.status(),
        StatusCode::CONFLICT,
        "required: it stays on"
    );

    // Lost phone: the CLI removes the factor and ends the sessions.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_keyhold"))
        .args(["user", "reset-mfa", "--email", &manager.email])
        .env("DATABASE_URL", &app.database_url)
        .env("KEYHOLD_DATA_KEYS", crate::support::test_data_keys())
        .env("KEYHOLD_SESSION_KEY", crate::support::test_session_key())
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Ended sessions are refused as soon as this process hears of it (within moments).
    let mut refused = false;
    for _ in 0..50 {
        if location(&client.get("/").await) == "/login" {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(refused, "the reset ends the person's sessions");
    assert_eq!(
        scalar_i64(
            &app,
            "SELECT count(*) AS n FROM audit_events WHERE action = 'mfa.reset'"
        ),
        1
    );
    // Still required: the next sign-in sets it up again.
    let again = app.client();
    assert_eq!(
        location(&again.login(&manager.email, &manager.password).await),
        "/account/mfa"
    );

    // Another partner account's organization cannot be touched; Managers cannot require.
    let forbidden = again
        .post_from(
            "/account/mfa",
            "/organizations/mfa",
            &[("required", "partner")],
        )
        .await;
    assert_eq!(
        location(&forbidden),
        "/account/mfa",
        "setting up first, then 403"
    );
}

#[actix_web::test]
async fn a_new_requirement_ends_what_a_password_alone_opened() {
    let app = spawn_app().await;
    let (partner, _) = app.partner().await;
    let organization = partner.create_organization(&app, "Blue Org").await;
    let manager = partner
        .create_user("mia@blue.example", "manager", Some(organization))
        .await;
    // Signed in, with an API token, before anything was required.
    let client = app.signed_in(&manager).await;
    let token = crate::api::token(&client, "nightly-export", &["audit:read"]).await;
    let api = reqwest::Client::new();
    let audit = |token: String| {
        let api = api.clone();
        let url = format!("{}/api/v1/audit", app.address);
        async move {
            api.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(audit(token.clone()).await, StatusCode::OK);

    let required = partner
        .post_from(
            "/organizations",
            "/organizations/mfa",
            &[
                ("required", "organization"),
                ("organization_id", &organization.to_string()),
            ],
        )
        .await;
    assert_eq!(location(&required), "/organizations");
    // The session a password alone opened is gone, and so is the token made from it.
    let mut signed_out = false;
    for _ in 0..50 {
        if location(&client.get("/credentials/backup").await).starts_with("/login") {
            signed_out = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(signed_out, "the Manager's session ended");
    assert_eq!(audit(token).await, StatusCode::UNAUTHORIZED);
    // The next sign-in sets the factor up first.
    let again = app.client();
    assert_eq!(
        location(&again.login(&manager.email, &manager.password).await),
        "/account/mfa"
    );
    // The Partner who required it of the whole account, without a factor, sets one up next.
    let everyone = partner
        .post_from(
            "/organizations",
            "/organizations/mfa",
            &[("required", "partner")],
        )
        .await;
    assert_eq!(location(&everyone), "/account/mfa");
    assert_eq!(location(&partner.get("/").await), "/account/mfa");
}

#[actix_web::test]
async fn a_changed_password_ends_the_other_sessions_and_guesses_are_throttled() {
    let app = spawn_app_with(&[("KEYHOLD_LOGIN_ACCOUNT_LIMIT", "3")]).await;
    let (partner, account) = app.partner().await;
    let elsewhere = app.signed_in(&account).await;
    let changed = partner
        .post_from(
            "/account",
            "/account/password",
            &[
                ("current_password", &account.password),
                ("new_password", "a-brand-new-password-2"),
            ],
        )
        .await;
    assert_eq!(changed.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        partner.get("/account").await.status(),
        StatusCode::OK,
        "this session goes on"
    );
    let mut ended = false;
    for _ in 0..50 {
        if location(&elsewhere.get("/").await).starts_with("/login") {
            ended = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ended, "the other session ended");
    // A stolen session cannot guess the password at hashing speed.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let guess = partner
            .post_from(
                "/account",
                "/account/password",
                &[
                    ("current_password", "guess-guess-1"),
                    ("new_password", "another-new-pass-3"),
                ],
            )
            .await;
        statuses.push(guess.status().as_u16());
    }
    assert_eq!(statuses, vec![422, 422, 422, 429]);
}

/// A JSON POST with the session's CSRF token (read from `page`) in its header, as
/// `static/passkey.js` sends it.
async fn post_json(
    client: &Client,
    page: &str,
    path: &str,
    body: serde_json::Value,
) -> reqwest::Response {
    let token = client.token(page).await;
    client
        .http
        .post(format!("{}{path}", client.base))
        .header("X-CSRF-Token", token)
        .json(&body)
        .send()
        .await
        .expect("request")
}

fn execute(app: &TestApp, sql: &str) {
    use diesel::RunQueryDsl;
    app.query(|conn| diesel::sql_query(sql).execute(conn));
}

/// What a passkey's routes refuse over HTTP (registration and sign-in themselves run with
/// Chromium's virtual authenticator in the browser suite): a passkey needs two-step sign-in
/// on; a challenge answers once; an answer that is not a signature is refused and counted
/// like a wrong code; another person's passkey is not found; removal needs the password.
#[actix_web::test]
async fn passkey_routes_refuse_what_they_must() {
    let app = spawn_app_with(&[("KEYHOLD_LOGIN_ACCOUNT_LIMIT", "4")]).await;
    let (partner, account) = app.partner().await;
    let organization = partner.create_organization(&app, "Blue Org").await;
    let manager = partner
        .create_user("mia@blue.example", "manager", Some(organization))
        .await;
    let mia = app.client();
    mia.login(&manager.email, &manager.password).await;

    // Without two-step sign-in on, no passkey.
    let refused = post_json(
        &mia,
        "/account/mfa",
        "/account/passkeys/options",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let detail = refused.json::<serde_json::Value>().await.unwrap()["detail"].to_string();
    assert!(detail.contains("Turn on two-step sign-in"), "{detail}");

    // With it on, the password confirms it (a wrong one is refused like a sign-in)...
    let (secret, _) = enable(&mia).await;
    let unconfirmed = post_json(
        &mia,
        "/account/mfa",
        "/account/passkeys/options",
        serde_json::json!({"password": "not-her-password"}),
    )
    .await;
    assert_eq!(unconfirmed.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // ...and the options name keyhold's relying party (localhost by default) and the person.
    let options = post_json(
        &mia,
        "/account/mfa",
        "/account/passkeys/options",
        serde_json::json!({"password": manager.password}),
    )
    .await;
    assert_eq!(options.status(), StatusCode::OK);
    assert_eq!(options.headers()["cache-control"], "no-store");
    let options: serde_json::Value = options.json().await.unwrap();
    assert_eq!(options["publicKey"]["rp"]["id"], "localhost", "{options}");
    assert_eq!(options["publicKey"]["user"]["name"], manager.email.as_str());
    assert!(options["publicKey"]["challenge"].as_str().unwrap().len() >= 43);
    assert_eq!(
        options["publicKey"]["authenticatorSelection"]["userVerification"],
        "required"
    );
    // An answer that is no attestation is refused, and the challenge is gone after it.
    let forged = serde_json::json!({
        "name": "Forged",
        "credential": {
            "id": "AAAA", "rawId": "AAAA", "type": "public-key",
            "response": {"attestationObject": "AAAA", "clientDataJSON": "AAAA"}
        }
    });
    let answer = post_json(&mia, "/account/mfa", "/account/passkeys", forged.clone()).await;
    assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let again = post_json(&mia, "/account/mfa", "/account/passkeys", forged).await;
    assert_eq!(
        again.status(),
        StatusCode::CONFLICT,
        "a challenge answers once"
    );
    assert_eq!(scalar_i64(&app, "SELECT count(*) AS n FROM passkeys"), 0);
    // Without the CSRF header, the JSON request is refused before anything.
    let bare = mia
        .http
        .post(format!("{}/account/passkeys/options", mia.base))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), StatusCode::FORBIDDEN);

    // A passkey row of Mia's (the key itself is irrelevant to removal).
    let mia_id = scalar_i64(
        &app,
        &format!(
            "SELECT id AS n FROM users WHERE email = '{}'",
            manager.email
        ),
    );
    execute(
        &app,
        &format!(
            "INSERT INTO passkeys (user_id, name, credential_id, credential) \
             VALUES ({mia_id}, 'Mia laptop', 'cred-1', '{{}}')"
        ),
    );
    let key = scalar_i64(&app, "SELECT id AS n FROM passkeys");
    let page = mia.page("/account/mfa").await;
    assert!(page.contains("Mia laptop"), "listed on the page");
    // The Partner cannot remove it (another person's passkey is not found), even with the
    // Partner's own password.
    let theirs = partner
        .post_from(
            "/account/mfa",
            &format!("/account/passkeys/{key}/delete"),
            &[("password", account.password.as_str())],
        )
        .await;
    assert_eq!(theirs.status(), StatusCode::NOT_FOUND);
    // Mia needs her password.
    let wrong = mia
        .post_from(
            "/account/mfa",
            &format!("/account/passkeys/{key}/delete"),
            &[("password", "not-her-password")],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("This is not your password.")
    );
    assert_eq!(scalar_i64(&app, "SELECT count(*) AS n FROM passkeys"), 1);
    let removed = mia
        .post_from(
            "/account/mfa",
            &format!("/account/passkeys/{key}/delete"),
            &[("password", manager.password.as_str())],
        )
        .await;
    assert_eq!(removed.status(), StatusCode::SEE_OTHER);
    assert_eq!(scalar_i64(&app, "SELECT count(*) AS n FROM passkeys"), 0);
    assert_eq!(
        scalar_text(
            &app,
            "SELECT object_label AS value FROM audit_events WHERE action = 'mfa.passkey_remove'"
        ),
        "Mia laptop"
    );

    // Signing in: a person without a passkey is offered none; an answer with no challenge
    // is refused and counted like a wrong code, up to the limit.
    let half = password_only(&app, &manager).await;
    assert!(!half.page("/login/mfa").await.contains("passkey-sign-in"));
    let none = post_json(
        &half,
        "/login/mfa",
        "/login/mfa/passkey/options",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(none.status(), StatusCode::CONFLICT);
    let assertion = serde_json::json!({
        "id": "AAAA", "rawId": "AAAA", "type": "public-key",
        "response": {"authenticatorData": "AAAA", "clientDataJSON": "AAAA", "signature": "AAAA"}
    });
    for _ in 0..3 {
        let refused = post_json(&half, "/login/mfa", "/login/mfa/passkey", assertion.clone()).await;
        assert_eq!(refused.status(), StatusCode::CONFLICT);
    }
    let blocked = post_json(&half, "/login/mfa", "/login/mfa/passkey", assertion).await;
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(blocked.headers().contains_key("retry-after"));
    assert_eq!(
        scalar_i64(
            &app,
            "SELECT count(*) AS n FROM audit_events WHERE action = 'session.sign_in_failed' \
             AND fields @> ARRAY['passkey']"
        ),
        3
    );
    // Signed out entirely, the passkey sign-in has nothing to finish.
    let stranger = app.client();
    let token = stranger.token("/login").await;
    let nobody = stranger
        .http
        .post(format!("{}/login/mfa/passkey/options", stranger.base))
        .header("X-CSRF-Token", token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(nobody.status(), StatusCode::UNAUTHORIZED);
    let _ = secret;
}

/// Turning two-step sign-in on ends the person's other sessions (a password alone opened
/// them); the session that turned it on goes on.
#[actix_web::test]
async fn turning_two_step_sign_in_on_ends_the_other_sessions() {
    let app = spawn_app().await;
    let (partner, account) = app.partner().await;
    let elsewhere = app.client();
    elsewhere.login(&account.email, &account.password).await;
    assert_eq!(elsewhere.get("/").await.status(), StatusCode::OK);
    enable(&partner).await;
    let ended = elsewhere.get("/").await;
    assert_eq!(ended.status(), StatusCode::SEE_OTHER);
    assert!(
        location(&ended).starts_with("/login"),
        "{}",
        location(&ended)
    );
    assert_eq!(partner.get("/").await.status(), StatusCode::OK);
}
