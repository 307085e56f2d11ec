//! Seeds a benchmark database through keyhold's own code: one partner account, 20 organizations,
//! 100,000 backup credentials with sealed secrets (10,000 in the first organization), 500
//! projects with a policy and 100 completed backups each, and the baseline's `fortune` table.
//! Used by `scripts/bench`; reads DATABASE_URL and KEYHOLD_DATA_KEYS like keyhold itself.
//! `BENCH_SEED=accounts` seeds only the partner, the organizations and the Manager.

use chrono::{Duration, Utc};
use diesel::prelude::*;
use keyhold::accounts::model::{NewUser, Organization, Partner, User};
use keyhold::auth::Role;
use keyhold::backup::model::{Backup, BackupPolicy, NewPolicy};
use keyhold::backup::policy::Schedule;
use keyhold::config::Settings;
use keyhold::credentials::model::{Credential, NewCredential};
use keyhold::credentials::provider::{self, Kind};
use keyhold::crypto::Secret;
use keyhold::crypto::password;
use keyhold::projects::model::{NewProject, Project};

const CREDENTIALS: usize = 100_000;
const BIG_ORGANIZATION: usize = 10_000;
const ORGANIZATIONS: usize = 20;
const PROJECTS_PER_ORGANIZATION: usize = 25;
const BACKUPS_PER_PROJECT: i64 = 100;

fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let pool = keyhold::db::prepare(&settings.database_url, 2)?;
    let mut conn = pool.get()?;
    let keyring = settings.keyring.clone();
    let started = std::time::Instant::now();

    let partner = Partner::create(&mut conn, "Bench Partners")?;
    let hash = password::hash_blocking(&Secret::new("bench-password-1"))?;
    let admin = User::create(
        &mut conn,
        &NewUser {
            partner_id: partner.id,
            organization_id: None,
            email: "partner@bench.example",
            display_name: "Bench Partner",
            role: Role::Partner,
            password_hash: &hash,
            created_by: None,
        },
    )?;
    let organizations: Vec<Organization> = (0..ORGANIZATIONS)
        .map(|n| {
            Organization::create(
                &mut conn,
                partner.id,
                &format!("Org {n:02}"),
                Some(admin.id),
            )
        })
        .collect::<Result<_, _>>()?;
    User::create(
        &mut conn,
        &NewUser {
            partner_id: partner.id,
            organization_id: Some(organizations[0].id),
            email: "manager@bench.example",
            display_name: "Bench Manager",
            role: Role::Manager,
            password_hash: &hash,
            created_by: Some(admin.id),
        },
    )?;
    // `BENCH_SEED=accounts` (`BENCH_ONLY=backup bash scripts/bench`): the partner, the
    // organizations and the Manager only; the backup measurements need nothing more.
    if std::env::var("BENCH_SEED").is_ok_and(|only| only == "accounts") {
        println!("accounts seeded in {:.1?}", started.elapsed());
        return Ok(());
    }

    let provider = provider::find(Kind::Backup, None).expect("the backup provider");
    let mut first_of = vec![None; ORGANIZATIONS];
    for chunk in (0..CREDENTIALS).collect::<Vec<_>>().chunks(1000) {
        conn.transaction(|conn| {
            for &n in chunk {
                let organization = if n < BIG_ORGANIZATION {
                    0
                } else {
                    1 + (n - BIG_ORGANIZATION) % (ORGANIZATIONS - 1)
                };
                let name = format!("b{n:06}-t{:03}", n % 100);
                let credential = Credential::create(
                    conn,
                    &keyring,
                    &NewCredential {
                        organization_id: organizations[organization].id,
                        organization_name: &organizations[organization].name,
                        provider,
                        name: &name,
                        public: [
                            ("access_key_id".to_string(), format!("AKIA{n:012}")),
                            (
                                "endpoint".to_string(),
                                format!("https://s3.region-{}.example.com", n % 7),
                            ),
                            ("region".to_string(), format!("region-{}", n % 7)),
                        ]
                        .into(),
                        secrets: [("secret_access_key".to_string(), format!("secret-{n}"))].into(),
                        expires_on: None,
                        verification: keyhold::credentials::verify::Outcome::Ok(
                            "S3 accepted the credentials (ListBuckets)".into(),
                        ),
                        created_by: admin.id,
                    },
                )
                .map_err(|error| anyhow::anyhow!("{error}"))?;
                first_of[organization].get_or_insert(credential.id);
            }
            Ok::<_, anyhow::Error>(())
        })?;
    }
    println!("{CREDENTIALS} credentials after {:.1?}", started.elapsed());

    let schedule = Schedule::parse("daily", "UTC").map_err(anyhow::Error::msg)?;
    let database_url = settings.database_url.clone();
    for (index, organization) in organizations.iter().enumerate() {
        conn.transaction(|conn| {
            for p in 0..PROJECTS_PER_ORGANIZATION {
                let name = format!("project-{index:02}-{p:02}");
                let project = Project::create(
                    conn,
                    &keyring,
                    &NewProject {
                        organization_id: organization.id,
                        name: &name,
                        cloud_credential_id: None,
                        ai_credential_id: None,
                        database_url: &database_url,
                        backup: first_of[index]
                            .map(|credential| (credential, format!("bench-{index}-{p}"))),
                        created_by: admin.id,
                    },
                )
                .map_err(|error| anyhow::anyhow!("{error}"))?;
                let policy = BackupPolicy::create(
                    conn,
                    &NewPolicy {
                        project_id: project.id,
                        name: "nightly",
                        schedule: &schedule,
                        retention_secs: 720 * 3600,
                        namespaces: &["public".to_string()],
                        drill: keyhold::backup::drill::DrillSchedule::Off,
                        heartbeat_url: None,
                        created_by: admin.id,
                    },
                    Utc::now(),
                )?;
                for day in 0..BACKUPS_PER_PROJECT {
                    let slot = Utc::now() - Duration::days(day + 1);
                    if let Some(id) = Backup::insert_slot(conn, &policy, slot)? {
                        let key = format!("{name}/nightly/{}.dump", slot.format("%Y%m%dT%H%M%SZ"));
                        Backup::complete(
                            conn,
                            id,
                            &key,
                            1_048_576 + day,
                            &format!("{:064x}", day),
                            slot + Duration::days(30),
                            None,
                        )?;
                    }
                }
            }
            Ok::<_, anyhow::Error>(())
        })?;
    }
    println!(
        "500 projects and 50,000 backups after {:.1?}",
        started.elapsed()
    );

    diesel::sql_query("DROP TABLE IF EXISTS fortune").execute(&mut **conn)?;
    diesel::sql_query("CREATE TABLE fortune (id integer PRIMARY KEY, message text NOT NULL)")
        .execute(&mut **conn)?;
    diesel::sql_query(
        "INSERT INTO fortune VALUES
         (1, 'fortune: No such file or directory'),
         (2, 'A computer scientist is someone who fixes things that aren''t broken.'),
         (3, 'After enough decimal places, nobody gives a damn.'),
         (4, 'A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1'),
         (5, 'A computer program does what you tell it to do, not what you want it to do.'),
         (6, 'Emacs is a nice operating system, but I prefer UNIX. — Tom Christaensen'),
         (7, 'Any program that runs right is obsolete.'),
         (8, 'A list is only as strong as its weakest link. — Donald Knuth'),
         (9, 'Feature: A bug with seniority.'),
         (10, 'Computers make very fast, very accurate mistakes.'),
         (11, '<script>alert(\"This should not be displayed in a browser alert box.\");</script>'),
         (12, 'フレームワークのベンチマーク')",
    )
    .execute(&mut **conn)?;
    diesel::sql_query("VACUUM (ANALYZE)").execute(&mut **conn)?;
    println!("seeded in {:.1?}", started.elapsed());
    Ok(())
}
