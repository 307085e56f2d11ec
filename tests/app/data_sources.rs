//! Data sources and restore targets (SPEC §13, issue 14): the attacks that once made keyhold lend
//! its own access to whoever typed a database URL, each run through the HTTP contract.

use diesel::prelude::*;
use reqwest::StatusCode;

use crate::faults::Cluster;
use crate::support::{DataDb, TestApp, World, scalar_i64, scalar_text, spawn_app_with, world};

/// `url` with its host, port and database replaced.
fn spelled(url: &str, host: &str, database: &str) -> String {
    let mut url = url::Url::parse(url).unwrap();
    url.set_host(Some(host)).unwrap();
    url.set_path(&format!("/{database}"));
    url.to_string()
}

/// Posts a new project of `organization` with `database_url`, backup off; status and errors.
async fn create_project(
    client: &crate::support::Client,
    organization: i64,
    name: &str,
    database_url: &str,
) -> (StatusCode, Vec<String>) {
    crate::support::post_project(client, organization, name, database_url, None).await
}

/// The tables of keyhold's own database (to prove nothing was dropped).
fn own_tables(app: &TestApp) -> i64 {
    scalar_i64(
        app,
        "SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public'",
    )
}

#[actix_web::test]
async fn keyholds_own_database_is_never_a_data_source_however_it_is_spelled() {
    let world = world().await;
    let own = world.app.database.clone();
    let url = world.app.database_url.clone();
    for (i, spelling) in [
        url.clone(),
        spelled(&url, "localhost", &own),
        spelled(&url, "LOCALHOST", &own),
        format!("postgresql://postgres@127.0.0.1:5432/{own}?sslmode=disable"),
        // The same name, percent-encoded.
        format!(
            "postgres://postgres@127.0.0.1/{}",
            own.bytes().map(|b| format!("%{b:02X}")).collect::<String>()
        ),
    ]
    .iter()
    .enumerate()
    {
        let (status, errors) = create_project(
            &world.partner,
            world.organization,
            &format!("steal-{i}"),
            spelling,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{spelling}");
        assert!(
            errors.iter().any(|e| e.contains("keyhold's own database")),
            "{spelling}: {errors:?}"
        );
    }
    assert_eq!(
        scalar_i64(&world.app, "SELECT count(*) AS n FROM projects"),
        1,
        "only the world's project"
    );

    // A project whose data source was set before this rule existed (sealed by SQL): "Backup
    // now" refuses to dump keyhold's database and nothing reaches the bucket.
    world.add_policy("grab", "daily", "720h", &["app"]).await;
    let keyring = crate::support::test_keyring();
    let sealed = keyring
        .seal_text(
            &spelled(&url, "localhost", &own),
            &format!(
                "org/{}/project/{}/database_url",
                world.organization, world.project
            ),
        )
        .unwrap();
    world.app.query(|conn| {
        diesel::sql_query("UPDATE projects SET database_url = $1")
            .bind::<diesel::sql_types::Text, _>(&sealed)
            .execute(conn)
    });
    let (backup, phase, reason) = world.backup_now(world.policy_id("grab")).await;
    assert_eq!(phase, "Failed");
    assert!(reason.contains("keyhold's own database"), "{reason}");
    assert_eq!(
        scalar_text(
            &world.app,
            &format!("SELECT coalesce(object_key, '') AS value FROM backups WHERE id = {backup}")
        ),
        ""
    );
}

/// A second organization of the world's partner with a project on a database of its own.
async fn green(world: &World) -> (i64, DataDb) {
    let organization = world
        .partner
        .create_organization(&world.app, "Green Org")
        .await;
    let data = DataDb::with_orders(5);
    let (status, errors) =
        create_project(&world.partner, organization, "green-shop", &data.url).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{errors:?}");
    (organization, data)
}

/// Restores backup `backup` of the world's project into `target`; returns status and body.
async fn restore_into(
    world: &World,
    backup: i64,
    name: &str,
    target: &str,
) -> (StatusCode, String) {
    let response = world
        .partner
        .post_from(
            &world.path(""),
            &world.path(&format!("/backups/{backup}/restore")),
            &[("restore_name", name), ("target_database_url", target)],
        )
        .await;
    let status = response.status();
    (status, response.text().await.unwrap().replace("&#39;", "'"))
}

#[actix_web::test]
async fn another_organizations_database_is_neither_a_data_source_nor_a_restore_target() {
    let world = world().await;
    let (_, green_data) = green(&world).await;
    world.add_policy("nightly", "daily", "720h", &["app"]).await;
    let (backup, phase, reason) = world.backup_now(world.policy_id("nightly")).await;
    assert_eq!(phase, "Completed", "{reason}");

    // Read: Blue cannot take Green's database as a data source, however it is spelled.
    for (i, spelling) in [
        green_data.url.clone(),
        spelled(&green_data.url, "localhost", &green_data.name),
    ]
    .iter()
    .enumerate()
    {
        let (status, errors) = create_project(
            &world.partner,
            world.organization,
            &format!("peek-{i}"),
            spelling,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{spelling}");
        assert!(
            errors
                .iter()
                .any(|e| e.contains("another organization's project")),
            "{errors:?}"
        );
    }

    // Overwrite: Blue's backup is not restored into Green's database.
    let (status, body) = restore_into(
        &world,
        backup,
        "overwrite",
        &spelled(&green_data.url, "localhost", &green_data.name),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("another project's data source"), "{body}");
    assert_eq!(
        green_data.scalar("SELECT count(*)::text AS value FROM app.orders"),
        "5",
        "Green's rows untouched"
    );

    // Destroy: nor into keyhold's own database.
    let tables = own_tables(&world.app);
    let (status, body) = restore_into(&world, backup, "destroy", &world.app.database_url).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("keyhold's own database"), "{body}");
    assert_eq!(own_tables(&world.app), tables);
    assert_eq!(
        scalar_i64(&world.app, "SELECT count(*) AS n FROM restores"),
        0,
        "no restore was started"
    );

    // A fresh database nobody uses is a restore target: a separate, audited choice.
    let fresh = DataDb::empty();
    let (status, body) = restore_into(&world, backup, "to-fresh", &fresh.url).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let audit = scalar_text(
        &world.app,
        "SELECT action || ' ' || object_label || ' ' || array_to_string(fields, ',') AS value
         FROM audit_events WHERE action LIKE 'restore.%'",
    );
    assert!(
        audit.starts_with("restore.create_elsewhere")
            && audit.contains(&fresh.name)
            && audit.contains("restore_name,target_database_url"),
        "{audit}"
    );
}

#[actix_web::test]
async fn a_database_name_never_becomes_a_second_connection_string() {
    let world = world().await;
    // Something listening where the smuggled connection string points.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    for (i, name) in [
        format!("host%3D127.0.0.1%20port%3D{port}%20dbname%3Dx"),
        format!("postgresql%3A%2F%2F127.0.0.1%3A{port}%2Fx"),
    ]
    .iter()
    .enumerate()
    {
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        let (status, errors) = create_project(
            &world.partner,
            world.organization,
            &format!("scan-{i}"),
            &url,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            errors.iter().any(|e| e.contains("does not exist")),
            "the name is a name: {errors:?}"
        );
        assert!(
            listener.accept().is_err(),
            "nothing connected to port {port}"
        );
    }

    // A database really named like a connection string is restored into, as a name.
    let name = format!("host=127.0.0.1 port={port} dbname=x");
    let mut conn = PgConnection::establish(&crate::support::database_url("postgres")).unwrap();
    diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .unwrap();
    world.add_policy("nightly", "daily", "720h", &["app"]).await;
    let (backup, phase, reason) = world.backup_now(world.policy_id("nightly")).await;
    assert_eq!(phase, "Completed", "{reason}");
    let target = format!(
        "postgres://postgres@127.0.0.1:5432/{}",
        url::form_urlencoded::byte_serialize(name.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    );
    let (status, body) = restore_into(&world, backup, "named", &target).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let phase = world.restore_outcome("named").await;
    assert!(phase.starts_with("Completed"), "{phase}");
    assert!(
        listener.accept().is_err(),
        "nothing connected to port {port}"
    );
    let mut restored = PgConnection::establish(&crate::support::database_url(&name)).unwrap();
    let count = diesel::sql_query("SELECT count(*) AS n FROM app.orders")
        .get_result::<Count>(&mut restored)
        .unwrap();
    assert_eq!(count.n, 100);
    drop(restored);
    diesel::sql_query(format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .unwrap();
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[actix_web::test]
async fn servers_that_do_not_check_keyholds_password_are_refused_unless_allowed() {
    let app = spawn_app_with(&[("KEYHOLD_DATA_SOURCE_ALLOW_TRUST", "false")]).await;
    let (partner, _) = app.partner().await;
    let organization = partner.create_organization(&app, "Blue Org").await;
    let trusting = DataDb::with_orders(1);
    let (status, errors) = create_project(&partner, organization, "trusted", &trusting.url).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("without checking its password")),
        "{errors:?}"
    );

    // A server that asks for the password is a data source.
    let password = "s3cret-Pa55";
    let cluster = Cluster::start_with(Some(password));
    let url = format!(
        "postgres://postgres:{password}@127.0.0.1:{}/postgres?gssencmode=disable",
        cluster.port
    );
    let mut conn = PgConnection::establish(&url).expect("the password works");
    diesel::sql_query("CREATE SCHEMA shop")
        .execute(&mut conn)
        .unwrap();
    let (status, errors) = create_project(&partner, organization, "checked", &url).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{errors:?}");
    let wrong = url.replace(password, "wrong");
    let (status, errors) = create_project(&partner, organization, "wrong", &wrong).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("password authentication failed")),
        "{errors:?}"
    );
}

#[actix_web::test]
async fn data_sources_can_be_kept_to_listed_networks() {
    let app = spawn_app_with(&[("KEYHOLD_DATA_SOURCE_NETWORKS", "10.0.0.0/8, fd00::/8")]).await;
    let (partner, _) = app.partner().await;
    let organization = partner.create_organization(&app, "Blue Org").await;
    let data = DataDb::with_orders(1);
    let (status, errors) = create_project(&partner, organization, "outside", &data.url).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("outside the networks data sources may be in")),
        "{errors:?}"
    );
    let allowed = spawn_app_with(&[("KEYHOLD_DATA_SOURCE_NETWORKS", "127.0.0.0/8")]).await;
    let (partner, _) = allowed.partner().await;
    let organization = partner.create_organization(&allowed, "Blue Org").await;
    let (status, errors) = create_project(&partner, organization, "inside", &data.url).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{errors:?}");
}

#[actix_web::test]
async fn projects_made_before_identities_were_recorded_are_identified_at_start() {
    let world = world().await;
    // As if made by a version that recorded no identity.
    world
        .app
        .query(|conn| diesel::sql_query("DELETE FROM project_data_sources").execute(conn));
    let runner = crate::support::test_runner(&world.app);
    let identified = keyhold::backup::scheduler::identify_sources(&runner)
        .await
        .unwrap();
    assert_eq!(identified, 1);
    assert_eq!(
        scalar_i64(&world.app, "SELECT count(*) AS n FROM project_data_sources"),
        1
    );
    // Now another organization cannot take the same database.
    let (_, errors) = {
        let organization = world
            .partner
            .create_organization(&world.app, "Green Org")
            .await;
        create_project(&world.partner, organization, "twin", &world.data.url).await
    };
    assert!(
        errors
            .iter()
            .any(|e| e.contains("another organization's project")),
        "{errors:?}"
    );
}

#[actix_web::test]
async fn a_later_claim_on_a_database_cannot_lock_its_first_project_out() {
    let world = world().await;
    let (_, green_data) = green(&world).await;
    // Green's source claims Blue's identity, later than Blue (a server answering with another
    // server's identity, or two projects that once shared a database).
    world.app.query(|conn| {
        diesel::sql_query(
            "UPDATE project_data_sources SET first_seen_at = now() + interval '1 minute',
                 identity = (SELECT identity FROM project_data_sources s
                             JOIN projects p ON p.id = s.project_id WHERE p.name = 'shop')
             WHERE project_id = (SELECT id FROM projects WHERE name = 'green-shop')",
        )
        .execute(conn)
    });
    world.add_policy("nightly", "daily", "720h", &["app"]).await;
    let (_, phase, reason) = world.backup_now(world.policy_id("nightly")).await;
    assert_eq!(
        phase, "Completed",
        "the first project keeps its database: {reason}"
    );
    drop(green_data);
}
