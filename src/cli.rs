//! The command line: `serve` (default), `migrate`, `user create`.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use diesel::prelude::*;

use crate::access::Role;
use crate::accounts::model::{Organization, Partner, User};
use crate::accounts::service::{self, AccountError, NewPerson, Placement};
use crate::audit::NewEvent;
use crate::config::Settings;
use crate::credentials::model::Credential;
use crate::crypto::Secret;
use crate::crypto::password;
use crate::db;
use crate::projects::model::Project;
use crate::startup::Application;

/// keyhold: credentials and scheduled S3 backups for your organizations.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

impl Cli {
    /// Whether this runs the web console (`serve`, the default).
    pub fn serves(&self) -> bool {
        matches!(self.command, None | Some(Command::Serve))
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create and migrate the database if needed, then serve the web console (the default).
    Serve,
    /// Create and migrate the database, then exit.
    Migrate,
    /// Run only the backup scheduler (no web console), e.g. beside `serve` with
    /// KEYHOLD_SCHEDULER=false.
    Worker,
    /// Manage accounts from a shell.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the data keys that seal secrets.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Re-seal every secret under the active key (KEYHOLD_DATA_KEY_ACTIVE), in batches; older
    /// keys can be removed from KEYHOLD_DATA_KEYS afterwards.
    Rotate {
        /// Secrets re-sealed per transaction.
        #[arg(long, default_value_t = 100)]
        batch: i64,
    },
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Create an account; the password is read from standard input (or prompted for).
    Create {
        #[arg(long)]
        email: String,
        /// partner, manager or user.
        #[arg(long)]
        role: String,
        /// Organization (id or name) of a Manager or User.
        #[arg(long)]
        organization: Option<String>,
        /// Name shown in the console; defaults to the email.
        #[arg(long)]
        display_name: Option<String>,
        /// Name of the partner account created with the very first Partner.
        #[arg(long, default_value = "My partner account")]
        partner_name: String,
    },
    /// Remove a person's second factor and recovery codes (a lost phone) and end their
    /// sessions; they sign in with their password and set it up again (audited).
    ResetMfa {
        #[arg(long)]
        email: String,
    },
}

/// Runs one command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let application = Application::build(settings.clone()).await?;
            tracing::info!(
                "keyhold listening on http://{} (database {})",
                settings.bind,
                db::redact(&settings.database_url)
            );
            application.run_until_stopped().await?;
            Ok(())
        }
        Command::Migrate => {
            db::prepare(&settings.database_url, 2)?;
            println!(
                "database {} is up to date",
                db::redact(&settings.database_url)
            );
            Ok(())
        }
        Command::Worker => {
            let pool = db::prepare(&settings.database_url, settings.db_pool_size)?;
            let runner = crate::startup::runner(&pool, &settings).await?;
            crate::backup::scheduler::spawn(runner.clone(), settings.scheduler_interval);
            crate::startup::deliverer(&pool, &settings)
                .spawn(chrono::Duration::from_std(settings.missed_grace)?);
            tracing::info!("keyhold worker running the backup scheduler");
            tokio::signal::ctrl_c().await?;
            runner.shutdown(std::time::Duration::from_secs(60)).await;
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate { batch }) => {
            let pool = db::prepare(&settings.database_url, 2)?;
            let mut conn = pool.get()?;
            let reseal =
                |conn: &mut diesel::PgConnection, projects: bool| -> anyhow::Result<usize> {
                    let mut total = 0;
                    loop {
                        let done = if projects {
                            Project::reseal_batch(conn, &settings.keyring, batch.max(1))
                        } else {
                            Credential::reseal_batch(conn, &settings.keyring, batch.max(1))
                        }?;
                        if done == 0 {
                            return Ok(total);
                        }
                        total += done;
                    }
                };
            let credentials = reseal(&mut conn, false)?;
            let projects = reseal(&mut conn, true)?;
            let mut identities = 0;
            loop {
                let done = crate::backup::encryption::Encryption::reseal_batch(
                    &mut conn,
                    &settings.keyring,
                    batch.max(1),
                )?;
                if done == 0 {
                    break;
                }
                identities += done;
            }
            let mut channels = 0;
            loop {
                let done = crate::notifications::model::Channel::reseal_batch(
                    &mut conn,
                    &settings.keyring,
                    batch.max(1),
                )?;
                if done == 0 {
                    break;
                }
                channels += done;
            }
            println!(
                "re-sealed {credentials} credential(s), {projects} project data source(s), {identities} age identit(ies) and {channels} notification channel(s) under key {}; every secret now uses it",
                settings.keyring.active_id()
            );
            Ok(())
        }
        Command::User(UserCommand::ResetMfa { email }) => {
            let pool = db::prepare(&settings.database_url, 2)?;
            let mut conn = pool.get()?;
            let user = crate::accounts::model::User::find_by_email(&mut conn, &email)?
                .ok_or_else(|| anyhow::anyhow!("nobody signs in as {email}"))?;
            let conn: &mut diesel::PgConnection = &mut conn;
            diesel::Connection::transaction(conn, |conn| {
                crate::auth::mfa::remove(conn, user.id)?;
                crate::session_store::revoke_all_for(conn, user.id)?;
                crate::audit::NewEvent {
                    partner_id: Some(user.partner_id),
                    organization_id: user.organization_id,
                    ..crate::audit::NewEvent::system("mfa.reset")
                }
                .object("user", user.id.0, &user.email)
                .record(conn)
            })?;
            println!("two-step sign-in of {email} removed and their sessions ended");
            Ok(())
        }
        Command::User(UserCommand::Create {
            email,
            role,
            organization,
            display_name,
            partner_name,
        }) => {
            let password = read_password()?;
            let pool = db::prepare(&settings.database_url, 2)?;
            let mut conn = pool.get()?;
            let user = create_user(
                &mut conn,
                &email,
                &role,
                organization.as_deref(),
                display_name.as_deref().unwrap_or(&email),
                &partner_name,
                &password,
            )?;
            println!(
                "created {} {} (id {})",
                user.role.label(),
                user.email,
                user.id
            );
            Ok(())
        }
    }
}

fn read_password() -> anyhow::Result<Secret> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Repeat password: ")?;
        if first != second {
            bail!("the passwords differ");
        }
        return Ok(Secret::new(first));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    Ok(Secret::new(line.trim_end_matches(['\r', '\n'])))
}

/// Creates an account from the shell: the first Partner also creates the partner account.
fn create_user(
    conn: &mut PgConnection,
    email: &str,
    role: &str,
    organization: Option<&str>,
    display_name: &str,
    partner_name: &str,
    password: &Secret,
) -> anyhow::Result<User> {
    let role = Role::parse(role).context("--role must be partner, manager or user")?;
    let person = NewPerson {
        email,
        display_name,
        password,
    };
    if let Some((field, message)) = person.check().iter().next() {
        let flag = match field {
            "email" => "--email",
            "display_name" => "--display-name",
            _ => "password",
        };
        bail!("{flag}: {message}");
    }
    let hash = password::hash_blocking(password)?;
    conn.transaction(|conn| {
        service::lock_people(conn).map_err(shell_words)?;
        let partners = Partner::all(conn)?;
        let partner = match (partners.as_slice(), role) {
            ([], Role::Partner) => {
                service::open_partner_account(conn, partner_name).map_err(shell_words)?
            }
            ([], _) => bail!("the first account must be a Partner (--role partner)"),
            ([only], _) => only.clone(),
            _ => bail!("several partner accounts exist: create this account in the console"),
        };
        let organization_id = match (role, organization) {
            (Role::Partner, None) => None,
            (Role::Partner, Some(_)) => bail!("Partners belong to no organization"),
            (_, None) => bail!("Managers and Users need --organization"),
            (_, Some(wanted)) => Some(
                Organization::find_by_id_or_name(conn, partner.id, wanted)?
                    .with_context(|| {
                        format!("no organization {wanted:?}: create it at /organizations first")
                    })?
                    .id,
            ),
        };
        let placement = Placement {
            partner: partner.id,
            organization: organization_id,
            role,
            created_by: None,
        };
        let event = NewEvent {
            partner_id: Some(partner.id),
            organization_id,
            actor_label: "keyhold user create".to_string(),
            ..NewEvent::system("user.create")
        };
        service::add_person(conn, &person, &hash, &placement, event).map_err(|error| match error {
            AccountError::Invalid(_) => anyhow::anyhow!("{email} already exists"),
            other => shell_words(other),
        })
    })
}

/// An account refusal as the shell says it: a field's message after its flag.
fn shell_words(error: AccountError) -> anyhow::Error {
    match error {
        AccountError::Invalid(errors) => {
            let said = errors.iter().next().map(|(field, message)| match field {
                "partner_name" => format!("--partner-name: {message}"),
                field => format!("{field}: {message}"),
            });
            anyhow::anyhow!(said.unwrap_or_else(|| "the fields are not right".to_string()))
        }
        AccountError::Database(error) => error.into(),
        other => anyhow::anyhow!("{other}"),
    }
}
