//! The authorization matrix: every route of `keyhold::routes::TABLE` × every method it answers ×
//! six personas. A route missing from `ACCESS` fails the test, so no route ships untested. Every
//! refusal is checked for its status and for leaving the database unchanged.

use std::time::Duration;

use diesel::prelude::*;
use reqwest::StatusCode;

use crate::backups::{scalar_i64, scalar_text, world};
use crate::helpers::{Account, Client};

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
    ("post", "/logout", Access::Everyone, false),
    ("get", "/", Access::Everyone, false),
    ("get", "/organizations", Access::Partners, false),
    ("post", "/organizations", Access::Partners, false),
    ("get", "/users", Access::Partners, false),
    ("post", "/users", Access::Partners, false),
    ("post", "/users/{id}/{action}", Access::Partners, true),
    ("get", "/audit", Access::Managers, false),
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
fn fingerprint(app: &crate::helpers::TestApp) -> String {
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
            (SELECT string_agg(t::text, ',' ORDER BY id) FROM drills t)))
            AS value",
    )
}

#[actix_web::test]
async fn every_route_refuses_every_persona_it_must_and_changes_nothing_when_it_does() {
    // The table covers exactly the routes keyhold registers.
    let mut registered: Vec<(&str, &str)> = keyhold::routes::TABLE.to_vec();
    let mut listed: Vec<(&str, &str)> = ACCESS.iter().map(|(m, p, _, _)| (*m, *p)).collect();
    registered.sort();
    listed.sort();
    assert_eq!(registered, listed, "every route needs its line in ACCESS");

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
        keyhold::auth::password::hash_blocking(&keyhold::crypto::Secret::new("rival-password-1"))
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
}
