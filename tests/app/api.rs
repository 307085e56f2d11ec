//! API tokens (`/tokens`) and the JSON API (`/api/v1`): tokens shown once and stored hashed,
//! the credentials use cases through the API, refusals as problem+json, the OpenAPI document.

use chrono::{Duration as Days, Utc};
use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::fakes::{GOOD, S3_ACCESS_KEY};
use crate::support::{
    Client, TestApp, scalar_i64, scalar_text, spawn_app, spawn_app_with, texts, world,
};

/// A date `days` from today, as the token form takes it.
pub fn in_days(days: i64) -> String {
    (Utc::now().date_naive() + Days::days(days)).to_string()
}

/// Creates a token on the tokens page; answers the page's status and the token shown.
pub async fn try_token(client: &Client, fields: &[(&str, &str)]) -> (StatusCode, String, String) {
    let response = client.post_from("/tokens", "/tokens", fields).await;
    let status = response.status();
    let body = response.text().await.unwrap();
    let token = texts(&body, "#new-token")
        .into_iter()
        .next()
        .unwrap_or_default();
    (status, token, body)
}

/// A token of `client` named `name` with `scopes`, valid for 30 days.
pub async fn token(client: &Client, name: &str, scopes: &[&str]) -> String {
    let expires = in_days(30);
    let mut fields = vec![("name", name), ("expires_on", expires.as_str())];
    fields.extend(scopes.iter().map(|scope| ("scopes", *scope)));
    let (status, token, body) = try_token(client, &fields).await;
    assert_eq!(status, StatusCode::OK, "{:?}", texts(&body, "p.error"));
    assert!(token.starts_with("kh_"), "token shown: {token:?}");
    token
}

/// A client of the API, with no cookies.
pub struct Api {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(app: &TestApp, token: &str) -> Api {
        Api {
            base: app.address.clone(),
            token: token.to_string(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let text = response.text().await.unwrap();
        if status.is_client_error() || status.is_server_error() {
            assert_eq!(content_type, "application/problem+json", "{path}: {text}");
        }
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        documented(method.as_str(), path, status, &body);
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send("get", path, None).await
    }
}

/// The OpenAPI document, as keyhold serves it.
fn document() -> &'static Value {
    static DOCUMENT: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| {
        use utoipa::OpenApi;
        serde_json::to_value(keyhold::api::openapi::ApiDoc::openapi()).unwrap()
    })
}

/// Checks an API answer against the document: its operation exists, the status is one it
/// documents, and a problem or a documented body's properties are those its schema names.
pub fn documented(method: &str, path: &str, status: StatusCode, body: &Value) {
    let document = document();
    let path = path.split('?').next().unwrap();
    let segments: Vec<&str> = path.split('/').collect();
    let found = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(template, _)| {
            let parts: Vec<&str> = template.split('/').collect();
            parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(part, segment)| part.starts_with('{') || part == segment)
        });
    let Some((template, item)) = found else {
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{path} is not in the OpenAPI document"
        );
        return;
    };
    let operation = &item[method.to_lowercase()];
    if operation.is_null() {
        // A method the route does not answer (405) is not an operation.
        assert_eq!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {template}"
        );
        return;
    }
    let response = &operation["responses"][status.as_str()];
    assert!(
        !response.is_null(),
        "{method} {template} answered {status}, which the document does not list"
    );
    let schema = response["content"]
        .as_object()
        .and_then(|content| content.values().next())
        .map(|media| media["schema"].clone())
        .unwrap_or(Value::Null);
    conforms(&schema, body, &format!("{method} {template} {status}"));
}

/// The properties a schema names (following `$ref`s), if it is an object schema.
fn properties(schema: &Value) -> Option<&serde_json::Map<String, Value>> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap();
        return properties(&document()["components"]["schemas"][name]);
    }
    if let Some(variants) = schema["oneOf"].as_array() {
        return variants.iter().find_map(properties);
    }
    schema["properties"].as_object()
}

/// Every member of `body` is a property of `schema`, one level into objects and arrays.
fn conforms(schema: &Value, body: &Value, what: &str) {
    let Some(properties) = properties(schema) else {
        return;
    };
    let Some(object) = body.as_object() else {
        return;
    };
    for (key, value) in object {
        let property = properties
            .get(key)
            .unwrap_or_else(|| panic!("{what}: `{key}` is not in the document's schema"));
        let inner = if property["items"].is_object() {
            &property["items"]
        } else {
            property
        };
        match value {
            Value::Array(items) => items.iter().for_each(|item| conforms(inner, item, what)),
            Value::Object(_) => conforms(inner, value, what),
            _ => {}
        }
    }
}

#[actix_web::test]
async fn a_token_is_shown_once_stored_as_a_hash_and_listed_with_its_prefix() {
    let app = spawn_app().await;
    let (partner, _) = app.partner().await;
    let secret = token(
        &partner,
        "terraform-ci",
        &["credentials:read", "audit:read"],
    )
    .await;
    assert!(secret.len() >= 3 + 43, "32 random bytes at least");
    let stored = scalar_text(&app, "SELECT token_hash AS value FROM api_tokens");
    assert_ne!(stored, secret);
    assert_eq!(stored, keyhold::crypto::sha256_hex(&secret));
    let list = partner.page("/tokens").await;
    assert!(!list.contains(&secret), "the token is shown once only");
    assert!(texts(&list, "#new-token").is_empty());
    assert!(list.contains(&secret[..11]), "its prefix is listed");
    assert!(list.contains("terraform-ci"));
    assert!(list.contains("credentials:read, audit:read"));
    assert!(list.contains("never"), "not used yet");

    let api = Api::new(&app, &secret);
    assert_eq!(api.get("/api/v1/audit").await.0, StatusCode::OK);
    let list = partner.page("/tokens").await;
    assert!(list.contains("from 127.0.0.1"), "last use and its address");
    let audit = scalar_text(
        &app,
        "SELECT string_agg(action, ',' ORDER BY id) AS value FROM audit_events WHERE object_kind = 'token'",
    );
    assert_eq!(audit, "token.create");
}

#[actix_web::test]
async fn the_token_form_refuses_what_it_must() {
    let app = spawn_app().await;
    let (partner, _) = app.partner().await;
    let organization = partner.create_organization(&app, "Blue Org").await;
    let tomorrow = in_days(1);
    let too_far = in_days(400);
    for (fields, field) in [
        (
            vec![
                ("name", "ci"),
                ("scopes", "audit:read"),
                ("expires_on", tomorrow.as_str()),
            ],
            "name",
        ),
        (
            vec![("name", "robot"), ("expires_on", tomorrow.as_str())],
            "scopes",
        ),
        (
            vec![
                ("name", "robot"),
                ("scopes", "root"),
                ("expires_on", tomorrow.as_str()),
            ],
            "scopes",
        ),
        (
            vec![("name", "robot"), ("scopes", "audit:read")],
            "expires_on",
        ),
        (
            vec![
                ("name", "robot"),
                ("scopes", "audit:read"),
                ("expires_on", too_far.as_str()),
            ],
            "expires_on",
        ),
        (
            vec![
                ("name", "robot"),
                ("scopes", "audit:read"),
                ("expires_on", tomorrow.as_str()),
                ("allowed_ips", "10.0.0.0/8, 300.1.1.1"),
            ],
            "allowed_ips",
        ),
    ] {
        let (status, token, body) = try_token(&partner, &fields).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{fields:?}");
        assert!(token.is_empty());
        assert_eq!(
            texts(&body, &format!("#{field}-help.error")).len(),
            1,
            "{fields:?}"
        );
    }
    assert_eq!(app.count("api_tokens"), 0);

    // Users may create read-only tokens only.
    let user = app
        .signed_in(
            &partner
                .create_user("ulf@blue.example", "user", Some(organization))
                .await,
        )
        .await;
    let (status, _, _) = try_token(
        &user,
        &[
            ("name", "robot"),
            ("scopes", "projects:write"),
            ("expires_on", tomorrow.as_str()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    token(&user, "reader", &["projects:read"]).await;
}

#[actix_web::test]
async fn partners_see_and_revoke_their_accounts_tokens_and_managers_only_their_own() {
    let app = spawn_app().await;
    let (partner, _) = app.partner().await;
    let organization = partner.create_organization(&app, "Blue Org").await;
    let manager = app
        .signed_in(
            &partner
                .create_user("mia@blue.example", "manager", Some(organization))
                .await,
        )
        .await;
    let managers = token(&manager, "mia-robot", &["credentials:read"]).await;
    let partners = token(&partner, "partner-robot", &["credentials:read"]).await;
    let partner_token = scalar_i64(
        &app,
        "SELECT id AS n FROM api_tokens WHERE name = 'partner-robot'",
    );
    let manager_token = scalar_i64(
        &app,
        "SELECT id AS n FROM api_tokens WHERE name = 'mia-robot'",
    );
    assert!(partner.page("/tokens").await.contains("mia-robot"));
    assert!(!manager.page("/tokens").await.contains("partner-robot"));

    let refused = manager
        .post_from("/tokens", &format!("/tokens/{partner_token}/revoke"), &[])
        .await;
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    let revoked = partner
        .post_from("/tokens", &format!("/tokens/{manager_token}/revoke"), &[])
        .await;
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    let again = partner
        .post_from("/tokens", &format!("/tokens/{manager_token}/revoke"), &[])
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);

    let (status, problem) = Api::new(&app, &managers)
        .get("/api/v1/credentials/backup")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(problem["detail"], "This token has been revoked.");
    let (status, _) = Api::new(&app, &partners)
        .get("/api/v1/credentials/backup")
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[actix_web::test]
async fn credentials_are_listed_created_and_changed_through_the_api_like_on_the_pages() {
    let world = world().await;
    let app = &world.app;
    let secret = token(
        &world.partner,
        "terraform",
        &["credentials:read", "credentials:write", "audit:read"],
    )
    .await;
    let api = Api::new(app, &secret);

    let (status, list) = api.get("/api/v1/credentials/backup?q=blue").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 1);
    assert_eq!(list["page"], 1);
    assert_eq!(list["next"], Value::Null);
    let item = &list["items"][0];
    assert_eq!(item["name"], "Blue storage");
    assert_eq!(item["is_default"], true);
    assert_eq!(item["projects"], json!(["shop"]));
    assert!(
        !list.to_string().contains(GOOD),
        "secrets are never answered"
    );

    let s3 = item["fields"]["endpoint"].as_str().unwrap().to_string();
    let organization = world.organization.to_string();
    let new = json!({
        "organization_id": organization,
        "name": "Robot storage",
        "access_key_id": S3_ACCESS_KEY,
        "secret_access_key": GOOD,
        "endpoint": s3,
        "region": "us-east-1",
    });
    let (status, created) = api
        .send("post", "/api/v1/credentials/backup", Some(new.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["verification"]["state"], "ok");
    assert!(!created.to_string().contains(GOOD));
    let id = created["credential"]["id"].as_i64().unwrap();

    let (status, problem) = api
        .send("post", "/api/v1/credentials/backup", Some(new.clone()))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"]["name"], "Robot storage already exists");
    let mut wrong = new.clone();
    wrong["name"] = json!("Wrong storage");
    wrong["secret_access_key"] = json!("not-the-secret");
    let (status, problem) = api
        .send("post", "/api/v1/credentials/backup", Some(wrong.clone()))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["detail"], "Invalid S3 credentials");
    let (status, checked) = api
        .send("post", "/api/v1/credentials/backup/verify", Some(wrong))
        .await;
    assert_eq!(
        (status, checked["state"].as_str()),
        (StatusCode::OK, Some("failed"))
    );
    let (status, checked) = api
        .send(
            "post",
            "/api/v1/credentials/backup/verify",
            Some(json!({"credential_id": id})),
        )
        .await;
    assert_eq!(
        (status, checked["state"].as_str()),
        (StatusCode::OK, Some("ok")),
        "{checked}"
    );

    let path = format!("/api/v1/credentials/backup/{id}");
    let (status, locked) = api.send("post", &format!("{path}/lock"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(locked["credential"]["is_locked"], true);
    let (status, problem) = api.send("post", &format!("{path}/lock"), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["detail"], "Robot storage is already locked");
    let (status, _) = api.send("delete", &path, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "a locked credential stays");
    assert_eq!(
        api.send("post", &format!("{path}/unlock"), None).await.0,
        StatusCode::OK
    );

    let (status, made) = api.send("post", &format!("{path}/default"), None).await;
    assert_eq!(status, StatusCode::OK, "{made}");
    assert_eq!(made["credential"]["is_default"], true);
    let before = format!("/api/v1/credentials/backup/{}", world.credential);
    assert_eq!(
        api.get(&before).await.1["is_default"],
        false,
        "one default a kind"
    );
    let (status, problem) = api.send("post", &format!("{path}/default"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(
        api.send("post", &format!("{path}/delete"), None).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, updated) = api
        .send("patch", &path, Some(json!({"name": "Robot storage 2"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["credential"]["name"], "Robot storage 2");
    assert_eq!(
        updated["credential"]["fields"]["access_key_id_hint"],
        item["fields"]["access_key_id_hint"]
    );
    let stale = json!({"name": "Robot storage 3", "version": created["credential"]["version"]});
    assert_eq!(
        api.send("patch", &path, Some(stale)).await.0,
        StatusCode::CONFLICT
    );

    let used = format!("/api/v1/credentials/backup/{}", world.credential);
    let (status, problem) = api.send("delete", &used, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        problem["detail"].as_str().unwrap().contains("shop"),
        "{problem}"
    );
    assert_eq!(api.send("delete", &path, None).await.0, StatusCode::OK);
    assert_eq!(api.get(&path).await.0, StatusCode::NOT_FOUND);

    let (status, audit) = api.get("/api/v1/audit").await;
    assert_eq!(status, StatusCode::OK);
    let actors: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["action"].as_str().unwrap().starts_with("credential."))
        .map(|event| event["actor"].as_str().unwrap())
        .collect();
    assert!(actors.len() >= 5, "{audit}");
    assert!(
        actors
            .iter()
            .take(5)
            .all(|actor| actor.ends_with("(token terraform)")),
        "every API change names its token: {actors:?}"
    );
}

#[actix_web::test]
async fn the_api_refuses_as_problem_json_what_the_token_or_person_may_not_do() {
    let world = world().await;
    let app = &world.app;
    let reader = token(&world.partner, "reader", &["projects:read"]).await;
    let api = Api::new(app, &reader);
    let (status, problem) = api.get("/api/v1/credentials/backup").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        problem["detail"],
        "This token does not carry the scope credentials:read."
    );
    assert_eq!(problem["title"], "Forbidden");
    assert_eq!(problem["status"], 403);

    // A session cookie alone never authorizes the API.
    let response = world.partner.get("/api/v1/audit").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let (status, _) = Api::new(app, "kh_not-a-token").get("/api/v1/audit").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, problem) = api.get("/api/v1/nothing-here").await;
    assert_eq!(
        (status, problem["status"].as_i64()),
        (StatusCode::NOT_FOUND, Some(404))
    );

    // Expired.
    let expiring = token(&world.partner, "expiring", &["audit:read"]).await;
    app.query(|conn| {
        diesel::sql_query(
            "UPDATE api_tokens SET expires_on = current_date - 1 WHERE name = 'expiring'",
        )
        .execute(conn)
    });
    let (status, problem) = Api::new(app, &expiring).get("/api/v1/audit").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("This token expired on")
    );

    // From an address outside its allowlist.
    let expires = in_days(10);
    let (_, fenced, _) = try_token(
        &world.partner,
        &[
            ("name", "fenced"),
            ("scopes", "audit:read"),
            ("expires_on", &expires),
            ("allowed_ips", "203.0.113.0/24"),
        ],
    )
    .await;
    let (status, problem) = Api::new(app, &fenced).get("/api/v1/audit").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        problem["detail"],
        "This token may not be used from 127.0.0.1."
    );
    let (_, open, _) = try_token(
        &world.partner,
        &[
            ("name", "local"),
            ("scopes", "audit:read"),
            ("expires_on", &expires),
            ("allowed_ips", "127.0.0.1"),
        ],
    )
    .await;
    assert_eq!(
        Api::new(app, &open).get("/api/v1/audit").await.0,
        StatusCode::OK
    );

    // A disabled person's tokens answer nothing.
    let account = world
        .partner
        .create_user("mia@blue.example", "manager", Some(world.organization))
        .await;
    let manager = app.signed_in(&account).await;
    let managers = token(&manager, "mia", &["credentials:read"]).await;
    assert_eq!(
        Api::new(app, &managers)
            .get("/api/v1/credentials/backup")
            .await
            .0,
        StatusCode::OK
    );
    let mia = scalar_i64(
        app,
        "SELECT id AS n FROM users WHERE email = 'mia@blue.example'",
    );
    let disabled = world
        .partner
        .post_from("/users", &format!("/users/{mia}/disable"), &[])
        .await;
    assert_eq!(disabled.status(), StatusCode::SEE_OTHER);
    let (status, problem) = Api::new(app, &managers)
        .get("/api/v1/credentials/backup")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        problem["detail"],
        "The person this token acts as is disabled."
    );
}

#[actix_web::test]
async fn a_token_over_its_rate_waits() {
    let app = spawn_app_with(&[("KEYHOLD_API_REQUESTS_PER_MINUTE", "3")]).await;
    let (partner, _) = app.partner().await;
    let secret = token(&partner, "busy", &["audit:read"]).await;
    let api = Api::new(&app, &secret);
    for _ in 0..3 {
        assert_eq!(api.get("/api/v1/audit").await.0, StatusCode::OK);
    }
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/audit", app.address))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Another token of the same person has its own rate.
    let other = token(&partner, "quiet", &["audit:read"]).await;
    assert_eq!(
        Api::new(&app, &other).get("/api/v1/audit").await.0,
        StatusCode::OK
    );
}

#[actix_web::test]
async fn the_openapi_document_lists_exactly_the_api_routes_of_the_table() {
    let app = spawn_app().await;
    let response = reqwest::get(format!("{}/api/v1/openapi.json", app.address))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let mut documented: Vec<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, operations)| {
            operations
                .as_object()
                .unwrap()
                .keys()
                .map(|method| (method.clone(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut routed: Vec<(String, String)> = keyhold::routes::TABLE
        .iter()
        .filter(|(_, path)| path.starts_with("/api/"))
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    documented.sort();
    routed.sort();
    assert_eq!(documented, routed);
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

/// Polls `path` until its `phase` has ended; answers the last answer.
pub async fn until_ended(api: &Api, path: &str) -> Value {
    for _ in 0..600 {
        let (status, answer) = api.get(path).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        if !matches!(answer["phase"].as_str(), Some("New" | "InProgress")) {
            return answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{path} did not end");
}

#[actix_web::test]
async fn projects_policies_backups_and_restores_work_through_the_api() {
    let world = world().await;
    let app = &world.app;
    let secret = token(
        &world.partner,
        "ops",
        &[
            "projects:read",
            "projects:write",
            "backups:read",
            "backups:write",
        ],
    )
    .await;
    let api = Api::new(app, &secret);
    let (status, projects) = api.get("/api/v1/projects").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(projects["items"][0]["name"], "shop");
    assert_eq!(projects["items"][0]["backup_enabled"], true);
    assert!(
        !projects.to_string().contains(&world.data.url),
        "the database address stays"
    );
    let project = format!("/api/v1/projects/{}", world.project);
    assert_eq!(
        api.get(&project).await.1["backup_credential"],
        "Blue storage"
    );

    // A project of the same database in the same organization, backup off, then on.
    let (status, created) = api
        .send(
            "post",
            "/api/v1/projects",
            Some(json!({
                "organization_id": world.organization,
                "name": "api-shop",
                "database_url": world.data.url,
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["backup_enabled"], false);
    let (status, problem) = api
        .send(
            "post",
            "/api/v1/projects",
            Some(json!({"organization_id": world.organization, "name": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(problem["errors"]["name"].is_string() && problem["errors"]["database_url"].is_string());
    let other = format!("/api/v1/projects/{}", created["id"]);
    let (status, enabled) = api
        .send(
            "post",
            &format!("{other}/backup/enable"),
            Some(json!({"backup_credential_id": world.credential, "bucket": ""})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{enabled}");
    assert_eq!(enabled["item"]["backup_enabled"], true);
    let (status, _) = api
        .send(
            "post",
            &format!("{other}/backup/enable"),
            Some(json!({"backup_credential_id": world.credential})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Policies; backup now and poll; restore; delete.
    let nightly = json!({"name": "nightly", "cron": "daily", "timezone": "UTC", "retention": "720h", "namespaces": ["app"], "heartbeat_url": "http://127.0.0.1:9/ping/hc-secret-uuid"});
    let (status, policy) = api
        .send(
            "post",
            &format!("{project}/policies"),
            Some(nightly.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{policy}");
    // The heartbeat's URL may carry a token: only its origin is answered.
    assert_eq!(policy["item"]["heartbeat_origin"], "http://127.0.0.1:9");
    assert!(!policy.to_string().contains("hc-secret-uuid"), "{policy}");
    let policy_id = policy["item"]["id"].as_i64().unwrap();
    let (status, problem) = api
        .send("post", &format!("{project}/policies"), Some(nightly))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"]["name"], "nightly already exists");
    assert_eq!(api.get(&format!("{project}/policies")).await.1["total"], 1);
    let (status, problem) = api
        .send("post", &format!("{project}/backup/disable"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");

    let (status, started) = api
        .send("post", &format!("{project}/policies/{policy_id}/run"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let backup_id = started["item"]["id"].as_i64().unwrap();
    let backup = until_ended(&api, &format!("{project}/backups/{backup_id}")).await;
    assert_eq!(backup["phase"], "Completed", "{backup}");
    assert!(backup["size"].as_i64().unwrap() > 0);
    assert_eq!(backup["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(api.get(&format!("{project}/backups")).await.1["total"], 1);

    let (status, restore) = api
        .send(
            "post",
            &format!("{project}/backups/{backup_id}/restore"),
            Some(json!({"restore_name": "api-restore", "namespaces": ["app"]})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{restore}");
    assert_eq!(restore["item"]["name"], "api-restore");
    let mut restores = Value::Null;
    for _ in 0..600 {
        restores = api.get(&format!("{project}/restores")).await.1;
        if !matches!(
            restores["items"][0]["phase"].as_str(),
            Some("New" | "InProgress")
        ) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(restores["items"][0]["phase"], "Completed", "{restores}");

    let (status, _) = api
        .send("delete", &format!("{project}/backups/{backup_id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api
        .send("delete", &format!("{project}/policies/{policy_id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let audit = scalar_text(
        app,
        "SELECT string_agg(DISTINCT actor_label, ',') AS value FROM audit_events
         WHERE id > (SELECT id FROM audit_events WHERE action = 'token.create')
           AND action NOT LIKE 'token.%'",
    );
    assert_eq!(
        audit, "pat@partner.example (token ops)",
        "every API change names its token"
    );
}

#[actix_web::test]
async fn lists_are_paged_with_a_total_and_the_next_page() {
    let app = spawn_app().await;
    let (partner, _) = app.partner().await;
    let organization = partner.create_organization(&app, "Blue Org").await;
    crate::support::seed_credentials(
        &app,
        organization,
        keyhold::credentials::provider::Kind::Ai,
        60,
        |n| {
            (
                format!("key-{n:03}"),
                vec![("base_url", "https://ai.example".to_string())],
                vec![("api_key", format!("secret-{n}"))],
            )
        },
    );
    let secret = token(&partner, "pager", &["credentials:read"]).await;
    let api = Api::new(&app, &secret);
    let (status, first) = api.get("/api/v1/credentials/ai?sort=name&dir=desc").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["total"], 60);
    assert_eq!(first["items"].as_array().unwrap().len(), 50);
    assert_eq!(first["items"][0]["name"], "key-059");
    let next = first["next"].as_str().unwrap();
    assert!(
        next.starts_with("/api/v1/credentials/ai?") && next.contains("page=2"),
        "{next}"
    );
    assert!(next.contains("dir=desc"), "the query is kept: {next}");
    let (_, second) = api.get(next).await;
    assert_eq!(second["page"], 2);
    assert_eq!(second["items"].as_array().unwrap().len(), 10);
    assert_eq!(second["items"][9]["name"], "key-000");
    assert_eq!(second["next"], Value::Null);
    assert!(!first.to_string().contains("secret-"));
}

/// Lists read whole (a project's policies, a scope's projects) are answered in pages of 50
/// too, with the total and the next page's address.
#[actix_web::test]
async fn policies_and_projects_are_answered_in_pages() {
    let world = crate::support::world().await;
    world.app.query(|conn| {
        use diesel::RunQueryDsl;
        diesel::sql_query(format!(
            "INSERT INTO backup_policies (project_id, name, cron, timezone, retention_secs, \
             namespaces, next_run_at) SELECT {}, 'policy-' || lpad(n::text, 3, '0'), \
             '0 2 * * *', 'UTC', 2592000, ARRAY['app'], now() + interval '1 day' \
             FROM generate_series(1, 55) n",
            world.project
        ))
        .execute(conn)
    });
    let secret = token(&world.partner, "pager", &["backups:read", "projects:read"]).await;
    let api = Api::new(&world.app, &secret);
    let path = format!("/api/v1/projects/{}/policies", world.project);
    let (status, first) = api.get(&path).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["total"], 55);
    assert_eq!(first["page"], 1);
    assert_eq!(first["items"].as_array().unwrap().len(), 50);
    let next = first["next"].as_str().unwrap().to_string();
    assert_eq!(next, format!("{path}?page=2"));
    let (_, second) = api.get(&next).await;
    assert_eq!(second["items"].as_array().unwrap().len(), 5);
    assert!(second["next"].is_null(), "{second}");
    let (_, projects) = api.get("/api/v1/projects?q=shop&page=1").await;
    assert_eq!(projects["page"], 1, "{projects}");
    assert!(projects["next"].is_null(), "{projects}");
}
