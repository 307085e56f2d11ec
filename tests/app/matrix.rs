//! The authorization matrix: every route of `keyhold::routes::TABLE` × every method it answers ×
//! six personas. A route missing from `ACCESS` fails the test, so no route ships untested. Every
//! refusal is checked for its status and for leaving the database unchanged.

use std::time::Duration;

use diesel::prelude::*;
use reqwest::StatusCode;

use crate::support::{Account, Client, scalar_i64, scalar_text, world};

/// Who may use a route.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Access {
    /// Anyone, signed in or not.
    Public,
    /// Anyone signed in, Users included (they get their own scope).
    Everyone,
    /// Partners and Managers; Users are refused (403).
    Managers,
    /// Partners only (403 for Managers and Users).
    Partners,
}

/// Every route: (method, pattern, who may use it, whether the path names an object of the
/// first partner's Blue organization — then other scopes get 404, not 403).
const ACCESS: &[(&str, &str, Access, bool)] = &[
    ("get", "/healthz", Access::Public, false),
    ("get", "/readyz", Access::Public, false),
    ("get", "/metrics", Access::Public, false),
    ("get", "/static/{name}", Access::Public, false),
    ("get", "/setup", Access::Public, false),
    ("post", "/setup", Access::Public, false),
    ("get", "/login", Access::Public, false),
    ("post", "/login", Access::Public, false),
    ("get", "/login/mfa", Access::Public, false),
    ("post", "/login/mfa", Access::Public, false),
    ("post", "/login/mfa/passkey/options", Access::Public, false),
    ("post", "/login/mfa/passkey", Access::Public, false),
    ("get", "/account", Access::Everyone, false),
    ("post", "/account/password", Access::Everyone, false),
    ("get", "/account/mfa", Access::Everyone, false),
    ("post", "/account/mfa", Access::Everyone, false),
    ("post", "/account/mfa/disable", Access::Everyone, false),
    ("post", "/account/passkeys/options", Access::Everyone, false),
    ("post", "/account/passkeys", Access::Everyone, false),
    (
        "post",
        "/account/passkeys/{id}/delete",
        Access::Everyone,
        false,
    ),
    ("post", "/organizations/mfa", Access::Partners, false),
    ("post", "/logout", Access::Everyone, false),
    ("get", "/", Access::Everyone, false),
    ("get", "/organizations", Access::Partners, false),
    ("post", "/organizations", Access::Partners, false),
    ("post", "/organizations/{id}", Access::Partners, true),
    ("get", "/organizations/{id}/edit", Access::Partners, true),
    ("get", "/organizations/{id}/delete", Access::Partners, true),
    ("post", "/organizations/{id}/delete", Access::Partners, true),
    ("get", "/users", Access::Partners, false),
    ("post", "/users", Access::Partners, false),
    ("post", "/users/{id}", Access::Partners, true),
    ("get", "/users/{id}/edit", Access::Partners, true),
    ("post", "/users/{id}/password", Access::Partners, true),
    ("get", "/users/{id}/delete", Access::Partners, true),
    ("post", "/users/{id}/delete", Access::Partners, true),
    ("post", "/users/{id}/{action}", Access::Partners, true),
    ("get", "/audit", Access::Managers, false),
    ("get", "/audit.csv", Access::Managers, false),
    ("get", "/audit.ndjson", Access::Managers, false),
    ("get", "/notifications", Access::Managers, false),
    ("post", "/notifications", Access::Managers, false),
    ("get", "/notifications/{id}", Access::Managers, true),
    ("post", "/notifications/{id}", Access::Managers, true),
    (
        "post",
        "/notifications/{id}/{action}",
        Access::Managers,
        true,
    ),
    ("get", "/tokens", Access::Everyone, false),
    ("post", "/tokens", Access::Everyone, false),
    ("post", "/tokens/{id}/revoke", Access::Everyone, true),
    ("get", "/credentials", Access::Managers, false),
    ("get", "/credentials/{kind}", Access::Managers, false),
    ("post", "/credentials/{kind}", Access::Managers, false),
    ("get", "/credentials/{kind}/new", Access::Managers, false),
    (
        "post",
        "/credentials/{kind}/verify",
        Access::Managers,
        false,
    ),
    ("get", "/credentials/{kind}/{id}", Access::Managers, true),
    ("post", "/credentials/{kind}/{id}", Access::Managers, true),
    (
        "get",
        "/credentials/{kind}/{id}/edit",
        Access::Managers,
        true,
    ),
    (
        "get",
        "/credentials/{kind}/{id}/{action}",
        Access::Managers,
        true,
    ),
    (
        "post",
        "/credentials/{kind}/{id}/{action}",
        Access::Managers,
        true,
    ),
    ("get", "/projects", Access::Everyone, false),
    ("post", "/projects", Access::Managers, false),
    ("get", "/projects/new", Access::Managers, false),
    ("get", "/projects/{id}", Access::Everyone, true),
    ("post", "/projects/{id}", Access::Managers, true),
    ("get", "/projects/{id}/edit", Access::Managers, true),
    ("get", "/projects/{id}/delete", Access::Managers, true),
    ("post", "/projects/{id}/delete", Access::Managers, true),
    (
        "post",
        "/projects/{id}/backup/enable",
        Access::Managers,
        true,
    ),
    (
        "post",
        "/projects/{id}/backup/disable",
        Access::Managers,
        true,
    ),
    (
        "post",
        "/projects/{id}/backup/encryption",
        Access::Managers,
        true,
    ),
    (
        "post",
        "/projects/{id}/backup/encryption/generate",
        Access::Managers,
        true,
    ),
    ("post", "/projects/{id}/policies", Access::Managers, true),
    (
        "get",
        "/projects/{id}/policies/preview",
        Access::Managers,
        true,
    ),
    (
        "post",
        "/projects/{id}/policies/preview",
        Access::Managers,
        true,
    ),
    (
        "post",
        "/projects/{id}/policies/{policy_id}/{action}",
        Access::Managers,
        true,
    ),
    (
        "get",
        "/projects/{id}/backups/{backup_id}",
        Access::Everyone,
        true,
    ),
    (
        "get",
        "/projects/{id}/backups/{backup_id}/{action}",
        Access::Managers,
        true,
    ),
    (
        "post",
        "/projects/{id}/backups/{backup_id}/{action}",
        Access::Managers,
        true,
    ),
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Persona {
    SignedOut,
    User,
    Manager,
    OtherManager,
    Partner,
    OtherPartner,
}

/// What `persona` must get from a route; `None` when the request is allowed (its outcome is
/// the business of the functional tests).
fn expected(
    persona: Persona,
    access: Access,
    blue_object: bool,
    method: &str,
) -> Option<StatusCode> {
    use Persona::*;
    if access == Access::Public {
        return None;
    }
    if persona == SignedOut {
        return Some(StatusCode::SEE_OTHER); // to /login
    }
    let role_allowed = match access {
        Access::Public | Access::Everyone => true,
        Access::Managers => persona != User,
        Access::Partners => matches!(persona, Partner | OtherPartner),
    };
    if !role_allowed {
        return Some(StatusCode::FORBIDDEN);
    }
    if blue_object && matches!(persona, OtherManager | OtherPartner) {
        return Some(StatusCode::NOT_FOUND);
    }
    let _ = method;
    None
}

/// A digest of every row that matters (not sessions, throttles or the audit log of refusals).
fn fingerprint(app: &crate::support::TestApp) -> String {
    scalar_text(
        app,
        "SELECT md5(concat_ws('|',
            (SELECT string_agg(t::text, ',' ORDER BY id) FROM partners t),
            (SELECT string_agg(t::text, ',' ORDER BY id) FROM organizations t),
            (SELECT string_agg(t::text, ',' ORDER BY id) FROM users t),
            (SELECT string_agg(t::text, ',' ORDER BY id) FROM credentials t),
            (SELECT string_agg(t::text, ',' ORDER BY id) FROM projects t),
            (SELECT string_agg(t::text, ',' ORDER BY id) FROM backup_policies t),
            (SELECT string_agg(t::text, ',' ORDER BY id) FROM backups t),
            (SELECT string_agg(t::text, ',' ORDER BY id) FROM restores t),
            (SELECT string_agg(t::text, ',' ORDER BY project_id) FROM project_encryption t),
            (SELECT string_agg(t::text, ',' ORDER BY id) FROM drills t),
            (SELECT string_agg(t::text, ',' ORDER BY id) FROM notification_channels t),
            (SELECT string_agg(t::text, ',' ORDER BY id) FROM notification_deliveries t),
            (SELECT string_agg(t::text, ',' ORDER BY id) FROM passkeys t),
            (SELECT string_agg((t.id, t.name, t.scopes, t.expires_on, t.revoked_at)::text, ','
                ORDER BY id) FROM api_tokens t)))
            AS value",
    )
}

/// The world of the matrices: the first partner's Blue organization with a backup credential,
/// a project, a policy and a completed backup; a Manager and a User of Blue, a Manager of
/// another organization, a Partner of another partner account; a token of the Partner.
struct Cast {
    world: crate::support::World,
    policy: i64,
    backup: i64,
    manager_id: i64,
    manager: Client,
    user: Client,
    other_manager: Client,
    other_partner: Client,
    partner_token: i64,
    channel: i64,
}

async fn cast() -> Cast {
    let world = world().await;
    world
        .partner
        .post_from(
            &format!("/projects/{}", world.project),
            &format!("/projects/{}/policies", world.project),
            &[
                ("name", "nightly"),
                ("cron", "daily"),
                ("timezone", "UTC"),
                ("retention", "720h"),
                ("namespaces", "app"),
            ],
        )
        .await;
    let policy = scalar_i64(&world.app, "SELECT id AS n FROM backup_policies");
    world
        .partner
        .post_from(
            "/projects",
            &format!("/projects/{}/policies/{policy}/run", world.project),
            &[],
        )
        .await;
    for _ in 0..200 {
        if scalar_text(&world.app, "SELECT phase AS value FROM backups") == "Completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let backup = scalar_i64(&world.app, "SELECT id AS n FROM backups");
    let organization = world.organization.to_string();
    let channel_created = world
        .partner
        .post_from(
            "/notifications",
            "/notifications",
            &[
                ("organization_id", organization.as_str()),
                ("name", "Blue hook"),
                ("kind", "slack"),
                ("url", "http://127.0.0.1:9/hook"),
                ("events", "backup.failed"),
            ],
        )
        .await;
    assert_eq!(channel_created.status(), StatusCode::SEE_OTHER);
    let channel = scalar_i64(&world.app, "SELECT id AS n FROM notification_channels");
    let green = world
        .partner
        .create_organization(&world.app, "Green Org")
        .await;
    let signed_in = async |account: Account| world.app.signed_in(&account).await;
    let manager_account = world
        .partner
        .create_user("mia@blue.example", "manager", Some(world.organization))
        .await;
    let manager_id = scalar_i64(
        &world.app,
        "SELECT id AS n FROM users WHERE email = 'mia@blue.example'",
    );
    let manager = signed_in(manager_account).await;
    let user = signed_in(
        world
            .partner
            .create_user("ulf@blue.example", "user", Some(world.organization))
            .await,
    )
    .await;
    let other_manager = signed_in(
        world
            .partner
            .create_user("gus@green.example", "manager", Some(green))
            .await,
    )
    .await;
    // A second partner account, with its own Partner.
    let hash =
        keyhold::crypto::password::hash_blocking(&keyhold::crypto::Secret::new("rival-password-1"))
            .unwrap();
    world.app.query(|conn| {
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
    let other_partner = signed_in(Account {
        email: "rita@rival.example".into(),
        password: "rival-password-1".into(),
    })
    .await;
    crate::api::token(&world.partner, "matrix", &["audit:read"]).await;
    let partner_token = scalar_i64(&world.app, "SELECT id AS n FROM api_tokens");
    Cast {
        world,
        policy,
        backup,
        manager_id,
        manager,
        user,
        other_manager,
        other_partner,
        partner_token,
        channel,
    }
}

#[actix_web::test]
async fn every_route_refuses_every_persona_it_must_and_changes_nothing_when_it_does() {
    // The table covers exactly the pages keyhold registers (the API has its own matrix,
    // `api_matrix`).
    let mut registered: Vec<(&str, &str)> = keyhold::routes::TABLE
        .iter()
        .filter(|(_, path)| !path.starts_with("/api/"))
        .copied()
        .collect();
    let mut listed: Vec<(&str, &str)> = ACCESS.iter().map(|(m, p, _, _)| (*m, *p)).collect();
    registered.sort();
    listed.sort();
    assert_eq!(registered, listed, "every route needs its line in ACCESS");

    let Cast {
        world,
        policy,
        backup,
        manager_id,
        manager,
        user,
        other_manager,
        other_partner,
        partner_token,
        channel,
    } = cast().await;
    let signed_out = world.app.client();
    let personas: [(Persona, &Client); 6] = [
        (Persona::SignedOut, &signed_out),
        (Persona::User, &user),
        (Persona::Manager, &manager),
        (Persona::OtherManager, &other_manager),
        (Persona::Partner, &world.partner),
        (Persona::OtherPartner, &other_partner),
    ];

    let concrete = |pattern: &str| -> String {
        let credential = world.credential.to_string();
        let project = world.project.to_string();
        let mut path = pattern
            .replace("{name}", "app.css")
            .replace("{kind}", "backup");
        path = if pattern.starts_with("/credentials") {
            path.replace("{id}", &credential)
                .replace("{action}", "lock")
        } else if pattern.starts_with("/notifications") {
            path.replace("{id}", &channel.to_string())
                .replace("{action}", "delete")
        } else if pattern.starts_with("/tokens") {
            path.replace("{id}", &partner_token.to_string())
        } else if pattern.starts_with("/organizations") {
            path.replace("{id}", &world.organization.to_string())
        } else if pattern.starts_with("/users") {
            path.replace("{id}", &manager_id.to_string())
                .replace("{action}", "disable")
        } else {
            path.replace("{id}", &project)
                .replace("{policy_id}", &policy.to_string())
                .replace("{backup_id}", &backup.to_string())
                .replace(
                    "{action}",
                    if pattern.contains("backups") {
                        "delete"
                    } else {
                        "run"
                    },
                )
        };
        if pattern.ends_with("/preview") {
            path.push_str("?cron=daily&timezone=UTC");
        }
        path
    };

    // The restore's question (keyhold's own form sends `confirm_in_place=ask`) and the backup's
    // delete question answer only those who may restore and delete, and change nothing.
    let restore = format!("/projects/{}/backups/{backup}/restore", world.project);
    let delete = format!("/projects/{}/backups/{backup}/delete", world.project);
    for (persona, client, status) in [
        (Persona::User, &user, StatusCode::FORBIDDEN),
        (Persona::OtherManager, &other_manager, StatusCode::NOT_FOUND),
        (Persona::OtherPartner, &other_partner, StatusCode::NOT_FOUND),
        (Persona::Manager, &manager, StatusCode::OK),
    ] {
        let before = fingerprint(&world.app);
        let token = client.token("/").await;
        let asked = client
            .post(
                &restore,
                &[
                    ("csrf_token", token.as_str()),
                    ("restore_name", "matrix"),
                    ("confirm_in_place", "ask"),
                ],
            )
            .await;
        assert_eq!(asked.status(), status, "{persona:?} asks to restore");
        assert_eq!(
            client.get(&delete).await.status(),
            status,
            "{persona:?} GET {delete}"
        );
        assert_eq!(
            fingerprint(&world.app),
            before,
            "{persona:?} changed the database"
        );
    }

    let mut checked = 0;
    for (persona, client) in personas {
        let token = client
            .token(if persona == Persona::SignedOut {
                "/login"
            } else {
                "/"
            })
            .await;
        for (method, pattern, access, blue_object) in ACCESS {
            let Some(status) = expected(persona, *access, *blue_object, method) else {
                continue;
            };
            let path = concrete(pattern);
            let before = fingerprint(&world.app);
            let response = match *method {
                "get" => client.get(&path).await,
                _ => {
                    client
                        .post(
                            &path,
                            &[
                                ("csrf_token", token.as_str()),
                                ("name", "Matrix"),
                                ("backup_credential_id", &world.credential.to_string()),
                            ],
                        )
                        .await
                }
            };
            assert_eq!(response.status(), status, "{persona:?} {method} {path}");
            if status == StatusCode::SEE_OTHER {
                let location = response.headers()["location"].to_str().unwrap().to_string();
                assert!(
                    location.starts_with("/login"),
                    "{persona:?} {method} {path} -> {location}"
                );
            }
            assert_eq!(
                fingerprint(&world.app),
                before,
                "{persona:?} {method} {path} changed the database"
            );
            checked += 1;
        }
    }
    // CSRF on every mutating route: a signed-in Partner without a token, or with a cross-site
    // origin, changes nothing anywhere.
    for (method, pattern, _, _) in ACCESS.iter().filter(|(method, _, _, _)| *method == "post") {
        let path = concrete(pattern);
        let before = fingerprint(&world.app);
        let no_token = world.partner.post(&path, &[("name", "Matrix")]).await;
        assert_eq!(
            no_token.status(),
            StatusCode::FORBIDDEN,
            "{method} {path} without a token"
        );
        let token = world.partner.token("/").await;
        let cross_site = world
            .partner
            .http
            .post(format!("{}{path}", world.partner.base))
            .header("Origin", "https://evil.example")
            .form(&[("csrf_token", token.as_str()), ("name", "Matrix")])
            .send()
            .await
            .unwrap();
        assert_eq!(
            cross_site.status(),
            StatusCode::FORBIDDEN,
            "{method} {path} from another site"
        );
        assert_eq!(
            fingerprint(&world.app),
            before,
            "{method} {path} changed the database"
        );
        checked += 2;
    }
    println!("{checked} refusals checked");
    assert!(checked > 80, "only {checked} refusals checked");

    // And what each persona may read, it can read.
    for (persona, client, path) in [
        (Persona::User, &user, format!("/projects/{}", world.project)),
        (
            Persona::Manager,
            &manager,
            format!("/credentials/backup/{}", world.credential),
        ),
        (
            Persona::OtherPartner,
            &other_partner,
            "/organizations".to_string(),
        ),
        (
            Persona::OtherManager,
            &other_manager,
            "/credentials/backup".to_string(),
        ),
        (
            Persona::Manager,
            &manager,
            format!("/notifications/{channel}"),
        ),
    ] {
        assert_eq!(
            client.get(&path).await.status(),
            StatusCode::OK,
            "{persona:?} GET {path}"
        );
    }
    let rival_view = other_partner.page("/credentials/backup").await;
    assert!(
        !rival_view.contains("Blue storage"),
        "another partner account sees nothing of ours"
    );
    for (client, outsider) in [
        (&other_partner, "another partner"),
        (&other_manager, "another organization"),
    ] {
        let channels = client.page("/notifications").await;
        assert!(
            !channels.contains("Blue hook"),
            "{outsider} sees none of Blue's channels"
        );
    }
}

/// Every API route: (method, pattern, the scope it needs — `None`: no token needed —, who may
/// use it, whether the path names an object of Blue).
const API_ACCESS: &[(&str, &str, Option<&str>, Access, bool)] = &[
    ("get", "/api/v1/openapi.json", None, Access::Public, false),
    (
        "get",
        "/api/v1/audit",
        Some("audit:read"),
        Access::Managers,
        false,
    ),
    (
        "get",
        "/api/v1/credentials/{kind}",
        Some("credentials:read"),
        Access::Managers,
        false,
    ),
    (
        "post",
        "/api/v1/credentials/{kind}",
        Some("credentials:write"),
        Access::Managers,
        false,
    ),
    (
        "post",
        "/api/v1/credentials/{kind}/verify",
        Some("credentials:write"),
        Access::Managers,
        false,
    ),
    (
        "get",
        "/api/v1/credentials/{kind}/{id}",
        Some("credentials:read"),
        Access::Managers,
        true,
    ),
    (
        "patch",
        "/api/v1/credentials/{kind}/{id}",
        Some("credentials:write"),
        Access::Managers,
        true,
    ),
    (
        "delete",
        "/api/v1/credentials/{kind}/{id}",
        Some("credentials:write"),
        Access::Managers,
        true,
    ),
    (
        "post",
        "/api/v1/credentials/{kind}/{id}/{action}",
        Some("credentials:write"),
        Access::Managers,
        true,
    ),
    (
        "get",
        "/api/v1/projects",
        Some("projects:read"),
        Access::Everyone,
        false,
    ),
    (
        "post",
        "/api/v1/projects",
        Some("projects:write"),
        Access::Managers,
        false,
    ),
    (
        "get",
        "/api/v1/projects/{id}",
        Some("projects:read"),
        Access::Everyone,
        true,
    ),
    (
        "patch",
        "/api/v1/projects/{id}",
        Some("projects:write"),
        Access::Managers,
        true,
    ),
    (
        "delete",
        "/api/v1/projects/{id}",
        Some("projects:write"),
        Access::Managers,
        true,
    ),
    (
        "post",
        "/api/v1/projects/{id}/backup/enable",
        Some("projects:write"),
        Access::Managers,
        true,
    ),
    (
        "post",
        "/api/v1/projects/{id}/backup/disable",
        Some("projects:write"),
        Access::Managers,
        true,
    ),
    (
        "get",
        "/api/v1/projects/{id}/policies",
        Some("backups:read"),
        Access::Everyone,
        true,
    ),
    (
        "post",
        "/api/v1/projects/{id}/policies",
        Some("backups:write"),
        Access::Managers,
        true,
    ),
    (
        "delete",
        "/api/v1/projects/{id}/policies/{policy_id}",
        Some("backups:write"),
        Access::Managers,
        true,
    ),
    (
        "post",
        "/api/v1/projects/{id}/policies/{policy_id}/run",
        Some("backups:write"),
        Access::Managers,
        true,
    ),
    (
        "get",
        "/api/v1/projects/{id}/backups",
        Some("backups:read"),
        Access::Everyone,
        true,
    ),
    (
        "get",
        "/api/v1/projects/{id}/backups/{backup_id}",
        Some("backups:read"),
        Access::Everyone,
        true,
    ),
    (
        "delete",
        "/api/v1/projects/{id}/backups/{backup_id}",
        Some("backups:write"),
        Access::Managers,
        true,
    ),
    (
        "post",
        "/api/v1/projects/{id}/backups/{backup_id}/restore",
        Some("backups:write"),
        Access::Managers,
        true,
    ),
    (
        "post",
        "/api/v1/projects/{id}/backups/{backup_id}/verify",
        Some("backups:write"),
        Access::Managers,
        true,
    ),
    (
        "get",
        "/api/v1/projects/{id}/restores",
        Some("backups:read"),
        Access::Everyone,
        true,
    ),
];

/// What a token of `persona` must get from an API route needing `scope`: 403 without the
/// scope (named), then the page rules; `None` when allowed.
fn api_expected(
    persona: Persona,
    scope_held: bool,
    access: Access,
    blue_object: bool,
) -> Option<StatusCode> {
    if access == Access::Public {
        return None;
    }
    if !scope_held {
        return Some(StatusCode::FORBIDDEN);
    }
    expected(persona, access, blue_object, "")
}

#[actix_web::test]
async fn every_api_route_refuses_every_token_it_must_and_changes_nothing_when_it_does() {
    let mut registered: Vec<(&str, &str)> = keyhold::routes::TABLE
        .iter()
        .filter(|(_, path)| path.starts_with("/api/"))
        .copied()
        .collect();
    let mut listed: Vec<(&str, &str)> = API_ACCESS.iter().map(|(m, p, ..)| (*m, *p)).collect();
    registered.sort();
    listed.sort();
    assert_eq!(
        registered, listed,
        "every API route needs its line in API_ACCESS"
    );

    let Cast {
        world,
        policy,
        backup,
        manager,
        user,
        other_manager,
        other_partner,
        ..
    } = cast().await;
    let app = &world.app;
    let read_only = [
        "projects:read",
        "backups:read",
        "credentials:read",
        "audit:read",
    ];
    let all = [
        "credentials:read",
        "credentials:write",
        "projects:read",
        "projects:write",
        "backups:read",
        "backups:write",
        "audit:read",
    ];
    let personas: [(Persona, &Client); 5] = [
        (Persona::User, &user),
        (Persona::Manager, &manager),
        (Persona::OtherManager, &other_manager),
        (Persona::Partner, &world.partner),
        (Persona::OtherPartner, &other_partner),
    ];
    let concrete = |pattern: &str| -> String {
        let path = pattern.replace("{kind}", "backup");
        if pattern.starts_with("/api/v1/credentials") {
            path.replace("{id}", &world.credential.to_string())
                .replace("{action}", "lock")
        } else {
            path.replace("{id}", &world.project.to_string())
                .replace("{policy_id}", &policy.to_string())
                .replace("{backup_id}", &backup.to_string())
        }
    };
    let body = serde_json::json!({
        "name": "Matrix",
        "organization_id": world.organization,
        "backup_credential_id": world.credential,
        "cron": "daily",
        "namespaces": ["app"],
    });
    let send = async |token: Option<&str>, method: &str, path: &str| {
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let mut request =
            reqwest::Client::new().request(method.clone(), format!("{}{path}", app.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if matches!(method, reqwest::Method::POST | reqwest::Method::PATCH) {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let content_type = response.headers().get("content-type").cloned();
        let text = response.text().await.unwrap();
        if status.is_client_error() {
            assert_eq!(
                content_type.unwrap(),
                "application/problem+json",
                "{method} {path}: {text}"
            );
        }
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        crate::api::documented(method.as_str(), path, status, &body);
        (status, text)
    };

    let mut checked = 0;
    for (persona, client) in personas {
        let scopes: &[&str] = if persona == Persona::User {
            &read_only
        } else {
            &all
        };
        let full = crate::api::token(client, "full", scopes).await;
        let audit_only = crate::api::token(client, "audit-only", &["audit:read"]).await;
        let projects_only = crate::api::token(client, "projects-only", &["projects:read"]).await;
        for (method, pattern, scope, access, blue_object) in API_ACCESS {
            let path = concrete(pattern);
            let Some(scope) = scope else {
                assert_eq!(send(None, method, &path).await.0, StatusCode::OK, "{path}");
                continue;
            };
            let narrow = if *scope == "audit:read" {
                &projects_only
            } else {
                &audit_only
            };
            for (token, held) in [
                (full.as_str(), scopes.contains(scope)),
                (narrow.as_str(), false),
            ] {
                let expected = api_expected(persona, held, *access, *blue_object);
                if expected.is_none() && *method != "get" {
                    // What it may change is the business of the functional tests.
                    continue;
                }
                let before = fingerprint(app);
                let (status, text) = send(Some(token), method, &path).await;
                match expected {
                    Some(expected) => {
                        assert_eq!(
                            status, expected,
                            "{persona:?} {method} {path} held={held}: {text}"
                        );
                        if !held {
                            assert!(text.contains(scope), "the missing scope is named: {text}");
                        }
                        assert_eq!(
                            fingerprint(app),
                            before,
                            "{persona:?} {method} {path} changed the database"
                        );
                        checked += 1;
                    }
                    // What it may read, it reads.
                    None => {
                        assert_eq!(
                            status,
                            StatusCode::OK,
                            "{persona:?} {method} {path}: {text}"
                        );
                    }
                }
            }
        }
    }

    // Tokens that answer nothing, on every route: none, unknown, expired, revoked, from an
    // address outside the allowlist, of a disabled person.
    let expired = crate::api::token(&world.partner, "expired", &all).await;
    app.query(|conn| {
        diesel::sql_query(
            "UPDATE api_tokens SET expires_on = current_date - 1 WHERE name = 'expired'",
        )
        .execute(conn)
    });
    let revoked = crate::api::token(&world.partner, "revoked", &all).await;
    let revoked_id = scalar_i64(app, "SELECT id AS n FROM api_tokens WHERE name = 'revoked'");
    let response = world
        .partner
        .post_from("/tokens", &format!("/tokens/{revoked_id}/revoke"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let expires = crate::api::in_days(30);
    let mut fenced_form = vec![
        ("name", "fenced"),
        ("expires_on", expires.as_str()),
        ("allowed_ips", "198.51.100.0/24"),
    ];
    fenced_form.extend(all.iter().map(|scope| ("scopes", *scope)));
    let (_, fenced, _) = crate::api::try_token(&world.partner, &fenced_form).await;
    let disabled = crate::api::token(&manager, "disabled", &all).await;
    let manager_id = scalar_i64(
        app,
        "SELECT id AS n FROM users WHERE email = 'mia@blue.example'",
    );
    let response = world
        .partner
        .post_from("/users", &format!("/users/{manager_id}/disable"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    for (method, pattern, scope, ..) in API_ACCESS {
        if scope.is_none() {
            continue;
        }
        let path = concrete(pattern);
        for (token, status) in [
            (None, StatusCode::UNAUTHORIZED),
            (Some("kh_unknown"), StatusCode::UNAUTHORIZED),
            (Some(expired.as_str()), StatusCode::UNAUTHORIZED),
            (Some(revoked.as_str()), StatusCode::UNAUTHORIZED),
            (Some(fenced.as_str()), StatusCode::FORBIDDEN),
            (Some(disabled.as_str()), StatusCode::UNAUTHORIZED),
        ] {
            let before = fingerprint(app);
            let (answered, text) = send(token, method, &path).await;
            assert_eq!(answered, status, "{method} {path} with {token:?}: {text}");
            assert_eq!(
                fingerprint(app),
                before,
                "{method} {path} changed the database"
            );
            checked += 1;
        }
    }
    // A session cookie alone never authorizes the API, not even with a CSRF token.
    for (method, pattern, scope, ..) in API_ACCESS {
        if scope.is_none() {
            continue;
        }
        let path = concrete(pattern);
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let token = world.partner.token("/").await;
        let response = world
            .partner
            .http
            .request(method.clone(), format!("{}{path}", world.partner.base))
            .header("X-CSRF-Token", token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path} with a session"
        );
        checked += 1;
    }
    println!("{checked} API refusals checked");
    assert!(checked > 300, "only {checked} API refusals checked");
}
