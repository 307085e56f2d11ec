use reqwest::StatusCode;

use crate::support::{spawn_app, texts};

fn assert_security_headers(response: &reqwest::Response, what: &str) {
    let headers = response.headers();
    let csp = headers
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no CSP"))
        .to_str()
        .unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{what}: {csp}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
    assert!(headers.contains_key("referrer-policy"), "{what}");
    assert!(headers.contains_key("x-request-id"), "{what}");
}

#[actix_web::test]
async fn every_page_and_error_carries_the_security_headers() {
    let app = spawn_app().await;
    let visitor = app.client();
    for path in [
        "/setup",
        "/login",
        "/healthz",
        "/readyz",
        "/metrics",
        "/static/app.css",
        "/nope",
    ] {
        let response = visitor.get(path).await;
        assert_security_headers(&response, path);
    }
    let (partner, _) = app.partner().await;
    for path in [
        "/",
        "/organizations",
        "/users",
        "/audit",
        "/setup",
        "/users/1/frobnicate",
    ] {
        let response = partner.get(path).await;
        assert_security_headers(&response, path);
    }
    let refused = partner.post("/organizations", &[("name", "x")]).await;
    assert_security_headers(&refused, "403 CSRF");
}

#[actix_web::test]
async fn pages_load_only_same_origin_scripts_and_no_inline_code() {
    let app = spawn_app().await;
    let (partner, _) = app.partner().await;
    let body = partner.get("/users").await.text().await.unwrap();
    assert!(!body.contains("<script>") && !body.contains("style=\"") && !body.contains(" onclick"));
    let htmx = partner.get("/static/htmx.min.js").await;
    assert_eq!(htmx.status(), StatusCode::OK);
    assert!(
        htmx.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert!(htmx.text().await.unwrap().contains("htmx"));
}

#[actix_web::test]
async fn errors_are_full_pages_and_htmx_fragments() {
    let app = spawn_app().await;
    let (partner, _) = app.partner().await;

    let page = partner.get("/no/such/page").await;
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    let body = page.text().await.unwrap();
    assert!(body.contains("<html") && body.contains("Not Found"));
    assert_eq!(texts(&body, ".error-code"), vec!["404".to_string()]);

    let fragment = partner.get_htmx("/no/such/page").await;
    assert_eq!(fragment.status(), StatusCode::NOT_FOUND);
    assert_eq!(fragment.headers()["hx-retarget"], "#messages");
    let body = fragment.text().await.unwrap();
    assert!(!body.contains("<html") && body.contains("404"));

    let manager_403 = {
        let org = partner.create_organization(&app, "Blue Org").await;
        let account = partner
            .create_user("mia@blue.example", "manager", Some(org))
            .await;
        let mia = app.client();
        mia.login(&account.email, &account.password).await;
        mia.get_htmx("/users").await
    };
    assert_eq!(manager_403.status(), StatusCode::FORBIDDEN);
    assert!(!manager_403.text().await.unwrap().contains("<html"));

    let conflict = partner.post_from("/", "/users/1/disable", &[]).await;
    assert_eq!(
        conflict.status(),
        StatusCode::CONFLICT,
        "cannot disable yourself"
    );
    assert!(conflict.text().await.unwrap().contains("own account"));
}

#[actix_web::test]
async fn htmx_requests_without_a_session_are_told_to_go_to_sign_in() {
    let app = spawn_app().await;
    app.partner().await;
    let response = app.client().get_htmx("/audit").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["hx-redirect"], "/login");
}

#[actix_web::test]
async fn bad_input_gets_a_clear_4xx_and_never_a_500() {
    let app = spawn_app().await;
    let (partner, _) = app.partner().await;
    let token = partner.token("/").await;
    let url = format!("{}/organizations", partner.base);

    let oversize = partner
        .http
        .post(&url)
        .header("X-CSRF-Token", &token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("name={}", "a".repeat(300 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(oversize.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let missing_field = partner
        .http
        .post(&url)
        .header("X-CSRF-Token", &token)
        .form(&[("nam", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        missing_field.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "a missing field is reported next to it"
    );

    let invalid_utf8 = partner
        .http
        .post(&url)
        .header("X-CSRF-Token", &token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'n', b'a', b'm', b'e', b'=', 0xff, 0xfe])
        .send()
        .await
        .unwrap();
    assert!(
        invalid_utf8.status().is_client_error(),
        "{}",
        invalid_utf8.status()
    );

    let json = partner
        .http
        .post(&url)
        .header("X-CSRF-Token", &token)
        .json(&serde_json::json!({"name": "Json Org"}))
        .send()
        .await
        .unwrap();
    assert!(json.status().is_client_error(), "{}", json.status());

    let wrong_method = partner
        .http
        .delete(&url)
        .header("X-CSRF-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);

    for path in [
        "/audit?page=-5",
        "/audit?page=99999999999999999999",
        "/audit?page=abc",
        "/users/abc/disable",
    ] {
        let status = if path.starts_with("/users") {
            partner.post_from("/", path, &[]).await.status()
        } else {
            partner.get(path).await.status()
        };
        assert!(
            status.is_success() || status.is_client_error(),
            "{path}: {status}"
        );
    }
    assert_eq!(app.count("organizations"), 0);
}

#[actix_web::test]
async fn a_nul_character_in_any_text_field_answers_422_naming_the_field() {
    let app = spawn_app().await;
    let visitor = app.client();
    let nul = |response: reqwest::Response, field: &'static str| async move {
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = response.text().await.unwrap();
        assert!(
            body.contains(&format!(
                "The field &#34;{field}&#34; contains a NUL character"
            )) || body.contains(&format!(
                "The field &quot;{field}&quot; contains a NUL character"
            )),
            "{body}"
        );
    };
    let setup = visitor
        .post_from(
            "/setup",
            "/setup",
            &[
                ("partner_name", "Acme\0Partners"),
                ("display_name", "Pat"),
                ("email", "pat@partner.example"),
                ("password", "partner-password-1"),
            ],
        )
        .await;
    nul(setup, "partner_name").await;
    assert_eq!(app.count("users"), 0);

    let (partner, _) = app.partner().await;
    let login = app.client().login("pat@partner.example\0", "x").await;
    nul(login, "email").await;

    let organization = partner
        .post_from("/organizations", "/organizations", &[("name", "Blue\0Org")])
        .await;
    nul(organization, "name").await;
    // A search with one is a search that finds nothing (hostile_query_parameters…).
    let search = partner.get("/credentials/backup?q=a%00b").await;
    assert_eq!(search.status(), StatusCode::OK);
    assert_eq!(app.count("organizations"), 0);
}
