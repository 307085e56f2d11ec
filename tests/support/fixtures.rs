//! The worlds tests start from: an organization with a backup credential and a project whose
//! data source is a database of its own (`World`, `DataDb`), seeded credentials, the steps of a
//! backup and a restore, and the database read as one value (`scalar_i64`, `scalar_text`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use diesel::prelude::*;
use reqwest::StatusCode;

use super::fakes::{self, GOOD, S3_ACCESS_KEY, S3Server};
use super::{Client, TestApp, database_url, spawn_app_with, test_keyring, texts};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A PostgreSQL database standing in for a project's data: schemas `app` (100 orders) and
/// `reporting`; dropped with the value.
pub struct DataDb {
    pub name: String,
    pub url: String,
}

impl DataDb {
    pub fn empty() -> DataDb {
        let name = format!(
            "keyhold_data_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let mut conn = PgConnection::establish(&database_url("postgres")).unwrap();
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .unwrap();
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .unwrap();
        DataDb {
            url: database_url(&name),
            name,
        }
    }

    pub fn with_orders(rows: i64) -> DataDb {
        let db = DataDb::empty();
        let mut conn = PgConnection::establish(&db.url).unwrap();
        diesel::sql_query("CREATE SCHEMA app")
            .execute(&mut conn)
            .unwrap();
        diesel::sql_query("CREATE SCHEMA reporting")
            .execute(&mut conn)
            .unwrap();
        diesel::sql_query("CREATE TABLE app.orders (id bigserial PRIMARY KEY, item text NOT NULL, cents bigint NOT NULL)")
            .execute(&mut conn)
            .unwrap();
        diesel::sql_query(format!(
            "INSERT INTO app.orders (item, cents) SELECT 'item-' || n, n * 100 FROM generate_series(1, {rows}) n"
        ))
        .execute(&mut conn)
        .unwrap();
        diesel::sql_query("CREATE TABLE reporting.totals (day date, cents bigint)")
            .execute(&mut conn)
            .unwrap();
        db
    }

    /// The rows of `app.orders`; -1 while the table is missing.
    pub fn count(&self) -> i64 {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = PgConnection::establish(&self.url).unwrap();
        diesel::sql_query("SELECT count(*) AS n FROM app.orders")
            .get_result::<N>(&mut conn)
            .map(|row| row.n)
            .unwrap_or(-1)
    }

    pub fn scalar(&self, sql: &str) -> String {
        #[derive(QueryableByName)]
        struct Value {
            #[diesel(sql_type = diesel::sql_types::Text)]
            value: String,
        }
        let mut conn = PgConnection::establish(&self.url).unwrap();
        diesel::sql_query(sql)
            .get_result::<Value>(&mut conn)
            .unwrap()
            .value
    }
}

impl Drop for DataDb {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&database_url("postgres")) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn);
        }
    }
}

/// An app (scheduler off: tests drive it), a Partner, an organization, an S3 server with a
/// verified default backup credential, and a project with backup enabled.
pub struct World {
    pub app: TestApp,
    pub partner: Client,
    pub s3: S3Server,
    pub data: DataDb,
    pub organization: i64,
    pub credential: i64,
    pub project: i64,
}

pub async fn world() -> World {
    world_with(&[]).await
}

/// The same world, with some settings overridden.
pub async fn world_with(overrides: &[(&str, &str)]) -> World {
    let mut settings = vec![("KEYHOLD_SCHEDULER", "false")];
    settings.extend_from_slice(overrides);
    let app = spawn_app_with(&settings).await;
    let (partner, _) = app.partner().await;
    let organization = partner.create_organization(&app, "Blue Org").await;
    let s3 = fakes::start_s3().await;
    let org = organization.to_string();
    let response = partner
        .post_from(
            "/credentials/backup/new",
            "/credentials/backup",
            &[
                ("organization_id", &org),
                ("name", "Blue storage"),
                ("access_key_id", S3_ACCESS_KEY),
                ("secret_access_key", GOOD),
                ("endpoint", &s3.endpoint),
                ("region", "us-east-1"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let credential = scalar_i64(
        &app,
        "SELECT id AS n FROM credentials WHERE name = 'Blue storage'",
    );
    let made_default = partner
        .post_from(
            "/credentials/backup",
            &format!("/credentials/backup/{credential}/default"),
            &[],
        )
        .await;
    assert_eq!(made_default.status(), StatusCode::SEE_OTHER);

    let new_page = partner.get("/projects/new").await.text().await.unwrap();
    let selected = texts(&new_page, "#backup_credential_id option[selected]");
    assert_eq!(
        selected,
        vec!["Blue storage (default) — Blue Org".to_string()],
        "the default is pre-selected"
    );

    let data = DataDb::with_orders(100);
    let response = partner
        .post_from(
            "/projects/new",
            "/projects",
            &[
                ("organization_id", &org),
                ("name", "shop"),
                ("database_url", &data.url),
                ("backup_enabled", "on"),
                ("backup_credential_id", &credential.to_string()),
                ("bucket", ""),
            ],
        )
        .await;
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "{:?}",
        texts(&body, "p.error")
    );
    let project = scalar_i64(&app, "SELECT id AS n FROM projects WHERE name = 'shop'");
    World {
        app,
        partner,
        s3,
        data,
        organization,
        credential,
        project,
    }
}

/// Posts the new-project form of `organization` (with backup on `credential` and `bucket`
/// when given); the status and the field errors.
pub async fn post_project(
    client: &Client,
    organization: i64,
    name: &str,
    database_url: &str,
    backup: Option<(i64, &str)>,
) -> (StatusCode, Vec<String>) {
    let organization = organization.to_string();
    let mut fields = vec![
        ("organization_id", organization.as_str()),
        ("name", name),
        ("database_url", database_url),
    ];
    let credential = backup.map(|(credential, _)| credential.to_string());
    if let (Some(credential), Some((_, bucket))) = (&credential, backup) {
        fields.extend([
            ("backup_enabled", "on"),
            ("backup_credential_id", credential.as_str()),
            ("bucket", bucket),
        ]);
    }
    let response = client
        .post_from("/projects/new", "/projects", &fields)
        .await;
    let status = response.status();
    (status, texts(&response.text().await.unwrap(), "p.error"))
}

/// Adds a policy to `project` through its form (time zone UTC).
pub async fn add_policy(
    client: &Client,
    project: i64,
    name: &str,
    cron: &str,
    retention: &str,
    namespaces: &[&str],
) -> reqwest::Response {
    let mut fields = vec![
        ("name", name),
        ("cron", cron),
        ("timezone", "UTC"),
        ("retention", retention),
    ];
    for namespace in namespaces {
        fields.push(("namespaces", namespace));
    }
    let page = format!("/projects/{project}");
    client
        .post_from(&page, &format!("{page}/policies"), &fields)
        .await
}

/// Waits (60 s at most) until `sql`'s one text value no longer starts with New or InProgress;
/// returns it.
pub async fn ended(app: &TestApp, sql: &str) -> String {
    for _ in 0..600 {
        let value = scalar_text(app, sql);
        if !value.starts_with("New") && !value.starts_with("InProgress") {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{sql} did not end");
}

/// Presses "Backup now" on `policy` of `project` and waits for the run to end; returns
/// (id, phase, reason).
pub async fn backup_now(
    app: &TestApp,
    client: &Client,
    project: i64,
    policy: i64,
) -> (i64, String, String) {
    let before = scalar_i64(app, "SELECT coalesce(max(id), 0) AS n FROM backups");
    let page = format!("/projects/{project}");
    let response = client
        .post_from(&page, &format!("{page}/policies/{policy}/run"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let id = scalar_i64(
        app,
        &format!("SELECT max(id) AS n FROM backups WHERE id > {before}"),
    );
    let outcome = ended(
        app,
        &format!(
            "SELECT phase || ' ' || coalesce(reason, '') AS value FROM backups WHERE id = {id}"
        ),
    )
    .await;
    let (phase, reason) = outcome.split_once(' ').unwrap_or((&outcome, ""));
    (id, phase.to_string(), reason.to_string())
}

/// Waits for restore `name` to end; returns "<phase> <warnings>".
pub async fn restore_outcome(app: &TestApp, name: &str) -> String {
    ended(
        app,
        &format!(
            "SELECT phase || ' ' || coalesce(warnings, '') AS value FROM restores WHERE name = '{name}'"
        ),
    )
    .await
}

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct T {
    #[diesel(sql_type = diesel::sql_types::Text)]
    value: String,
}

pub fn scalar_i64(app: &TestApp, sql: &str) -> i64 {
    let sql = sql.to_string();
    app.query(move |conn| diesel::sql_query(sql).get_result::<N>(conn))
        .n
}

pub fn scalar_text(app: &TestApp, sql: &str) -> String {
    let sql = sql.to_string();
    app.query(move |conn| diesel::sql_query(sql).get_result::<T>(conn))
        .value
}

impl World {
    pub fn path(&self, rest: &str) -> String {
        format!("/projects/{}{rest}", self.project)
    }

    pub async fn add_policy(
        &self,
        name: &str,
        cron: &str,
        retention: &str,
        namespaces: &[&str],
    ) -> reqwest::Response {
        add_policy(
            &self.partner,
            self.project,
            name,
            cron,
            retention,
            namespaces,
        )
        .await
    }

    pub fn policy_id(&self, name: &str) -> i64 {
        scalar_i64(
            &self.app,
            &format!("SELECT id AS n FROM backup_policies WHERE name = '{name}'"),
        )
    }

    /// Presses "Backup now" and waits for the run to end; returns (id, phase, reason).
    pub async fn backup_now(&self, policy: i64) -> (i64, String, String) {
        backup_now(&self.app, &self.partner, self.project, policy).await
    }

    /// Waits for restore `name` to end; returns "<phase> <warnings>".
    pub async fn restore_outcome(&self, name: &str) -> String {
        restore_outcome(&self.app, name).await
    }

    pub fn object_path(&self, backup: i64) -> std::path::PathBuf {
        let bucket = scalar_text(
            &self.app,
            &format!("SELECT bucket AS value FROM backups WHERE id = {backup}"),
        );
        let key = scalar_text(
            &self.app,
            &format!("SELECT object_key AS value FROM backups WHERE id = {backup}"),
        );
        self.s3.root.path().join(bucket).join(key)
    }
}

/// Inserts credentials of `kind` straight through keyhold's model (sealed with the test key,
/// no verification round-trips); `make(n)` gives each one's name, public and secret fields.
pub fn seed_credentials(
    app: &TestApp,
    organization: i64,
    kind: keyhold::credentials::provider::Kind,
    count: usize,
    make: impl Fn(
        usize,
    ) -> (
        String,
        Vec<(&'static str, String)>,
        Vec<(&'static str, String)>,
    ),
) {
    use keyhold::credentials::model::{Credential, NewCredential};
    let keyring = test_keyring();
    // A kind of several providers (cloud) is seeded with its first.
    let provider = keyhold::credentials::provider::find(kind, None)
        .or_else(|| kind.spec().providers().next())
        .expect("a provider of the kind");
    let mut conn = app.pool.get().expect("connection");
    let creator = keyhold::schema::users::table
        .select(diesel::dsl::min(keyhold::schema::users::id))
        .first::<Option<i64>>(&mut **conn)
        .expect("query")
        .expect("someone created the organization");
    let organization_name = app.query(|conn| {
        keyhold::schema::organizations::table
            .find(organization)
            .select(keyhold::schema::organizations::name)
            .first::<String>(conn)
    });
    for n in 0..count {
        let (name, public, secrets) = make(n);
        let fields = |list: Vec<(&'static str, String)>| {
            list.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
        };
        Credential::create(
            &mut conn,
            &keyring,
            &NewCredential {
                organization_id: keyhold::accounts::model::OrganizationId(organization),
                organization_name: &organization_name,
                provider,
                name: &name,
                public: fields(public),
                secrets: fields(secrets),
                expires_on: None,
                verification: keyhold::credentials::verify::Outcome::Ok("seeded".into()),
                created_by: keyhold::accounts::model::UserId(creator),
            },
        )
        .map_err(|error| format!("{error:?}"))
        .expect("seeded");
    }
    app.pages.catch_up(&mut conn).expect("notice");
}

pub fn test_runner(app: &TestApp) -> keyhold::backup::runner::Runner {
    let keyring = test_keyring();
    keyhold::backup::runner::Runner::new(
        app.pool.clone(),
        keyring,
        keyhold::outbound::Outbound::new(Duration::from_secs(5), true),
        keyhold::projects::data_source::SourceRules::of(&app.pool, true, Vec::new())
            .expect("keyhold's own database identified"),
    )
}
