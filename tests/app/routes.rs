use reqwest::StatusCode;

use crate::support::spawn_app;

/// Routes anyone may use without signing in.
const PUBLIC: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/static/{name}",
    "/setup",
    "/login",
    "/api/v1/openapi.json",
];

fn concrete(pattern: &str) -> String {
    let mut path = String::new();
    let mut in_param = false;
    for c in pattern.chars() {
        match c {
            '{' => in_param = true,
            '}' => {
                in_param = false;
                path.push('1');
            }
            _ if !in_param => path.push(c),
            _ => {}
        }
    }
    path
}

#[actix_web::test]
async fn every_route_but_the_public_ones_requires_sign_in() {
    let app = spawn_app().await;
    app.partner().await;
    let visitor = app.client();
    let token = visitor.token("/login").await;
    for (method, pattern) in keyhold::routes::TABLE {
        if PUBLIC.contains(pattern) {
            continue;
        }
        let path = concrete(pattern);
        // The API, and the passkey sign-in requests `static/passkey.js` sends, answer 401
        // (problem+json), never a sign-in page.
        if pattern.starts_with("/api/") || pattern.starts_with("/login/mfa/passkey") {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = visitor
                .http
                .request(method.clone(), format!("{}{path}", visitor.base))
                .header("X-CSRF-Token", token.as_str())
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {pattern}"
            );
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json",
                "{method} {pattern}"
            );
            continue;
        }
        let response = match *method {
            "get" => visitor.get(&path).await,
            "post" => visitor.post(&path, &[("csrf_token", token.as_str())]).await,
            other => panic!("route table has method {other}: extend this test"),
        };
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "{method} {pattern}"
        );
        let location = response.headers()["location"].to_str().unwrap();
        assert!(
            location.starts_with("/login"),
            "{method} {pattern} -> {location}"
        );
    }
}

#[actix_web::test]
async fn public_routes_answer_signed_out() {
    let app = spawn_app().await;
    let visitor = app.client();
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/static/htmx.min.js",
        "/setup",
    ] {
        assert_eq!(visitor.get(path).await.status(), StatusCode::OK, "{path}");
    }
}
