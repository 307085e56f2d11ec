//! A project's data source: its PostgreSQL URL turned into libpq environment variables (so the
//! password never appears on a command line, where `ps` would show it), its schemas, and the
//! `pg_dump` / `pg_restore` commands.

use std::process::Stdio;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::Text;
use tokio::process::Command;

use crate::credentials::verify::Outbound;

/// A parsed `postgres://` URL.
#[derive(Clone)]
pub struct DataSource {
    url: url::Url,
}

impl std::fmt::Debug for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataSource({})", self.display())
    }
}

fn decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

impl DataSource {
    /// Checks the form: `postgres://` or `postgresql://`, a host and a database name.
    pub fn parse(text: &str) -> Result<DataSource, String> {
        let url = url::Url::parse(text.trim()).map_err(|_| {
            "Enter a URL like postgres://user:password@host:5432/database.".to_string()
        })?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err("The URL must start with postgres:// or postgresql://.".into());
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("The URL needs a host.".into());
        }
        if url.path().trim_start_matches('/').is_empty() {
            return Err("The URL needs a database name.".into());
        }
        Ok(DataSource { url })
    }

    pub fn port(&self) -> u16 {
        self.url.port().unwrap_or(5432)
    }

    pub fn database(&self) -> String {
        decode(self.url.path().trim_start_matches('/'))
    }

    /// `host:port/database`: what pages may show (no user, no password).
    pub fn display(&self) -> String {
        format!(
            "{}:{}/{}",
            self.url.host_str().unwrap_or_default(),
            self.port(),
            self.database()
        )
    }

    /// Refuses link-local and metadata hosts, like every other outbound connection.
    pub async fn check_reachable_host(&self, outbound: &Outbound) -> Result<(), String> {
        outbound
            .check_host(&self.url, self.port(), &self.display())
            .await
    }

    /// libpq's environment for this database; the password travels only here.
    pub fn environment(&self) -> Vec<(String, String)> {
        let host = self
            .url
            .host_str()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let mut env = vec![
            ("PGHOST".to_string(), host),
            ("PGPORT".to_string(), self.port().to_string()),
            ("PGDATABASE".to_string(), self.database()),
            ("PGCONNECT_TIMEOUT".to_string(), "10".to_string()),
            ("PGAPPNAME".to_string(), "keyhold".to_string()),
        ];
        if !self.url.username().is_empty() {
            env.push(("PGUSER".into(), decode(self.url.username())));
        }
        if let Some(password) = self.url.password() {
            env.push(("PGPASSWORD".into(), decode(password)));
        }
        for (key, value) in self.url.query_pairs() {
            if key == "sslmode" {
                env.push(("PGSSLMODE".into(), value.into_owned()));
            }
        }
        env
    }

    /// A command for `program` with only this database's environment (and PATH).
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env(
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
            )
            .envs(self.environment())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// `pg_dump` in custom format of `namespaces`, to standard output.
    pub fn pg_dump(&self, namespaces: &[String]) -> Command {
        let mut command = self.command("pg_dump");
        command.args(["--format=custom", "--no-password"]);
        for namespace in namespaces {
            command.arg(format!("--schema={namespace}"));
        }
        command
    }

    /// `pg_restore` reading a custom-format dump from standard input, replacing what exists.
    pub fn pg_restore(&self, namespaces: &[String]) -> Command {
        let mut command = self.command("pg_restore");
        command.args([
            "--no-password",
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
        ]);
        command.arg(format!("--dbname={}", self.database()));
        for namespace in namespaces {
            command.arg(format!("--schema={namespace}"));
        }
        command.stdin(Stdio::piped());
        command
    }

    /// A libpq connection string without the password, for diesel; the password goes in the
    /// `PGPASSWORD`-free keyword form so it is never logged with the URL.
    fn connection_string(&self) -> String {
        let quote = |value: &str| format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"));
        self.environment()
            .into_iter()
            .filter_map(|(key, value)| {
                let keyword = match key.as_str() {
                    "PGHOST" => "host",
                    "PGPORT" => "port",
                    "PGDATABASE" => "dbname",
                    "PGUSER" => "user",
                    "PGPASSWORD" => "password",
                    "PGSSLMODE" => "sslmode",
                    "PGCONNECT_TIMEOUT" => "connect_timeout",
                    "PGAPPNAME" => "application_name",
                    _ => return None,
                };
                Some(format!("{keyword}={}", quote(&value)))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The schemas of the database, without PostgreSQL's own (blocking: call off async threads).
    pub fn schemas(&self) -> Result<Vec<String>, String> {
        #[derive(QueryableByName)]
        struct Schema {
            #[diesel(sql_type = Text)]
            nspname: String,
        }
        let mut conn = PgConnection::establish(&self.connection_string()).map_err(|error| {
            let message = error.to_string();
            format!(
                "could not connect to {}: {}",
                self.display(),
                message.split_whitespace().collect::<Vec<_>>().join(" ")
            )
        })?;
        let schemas: Vec<Schema> = diesel::sql_query(
            "SELECT nspname FROM pg_namespace
             WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
             ORDER BY nspname",
        )
        .load(&mut conn)
        .map_err(|error| format!("could not list the schemas of {}: {error}", self.display()))?;
        Ok(schemas.into_iter().map(|schema| schema.nspname).collect())
    }
}

/// How long a `pg_dump` or `pg_restore` may stay silent before it is treated as stuck.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_goes_to_the_environment_and_never_to_what_is_shown() {
        let source = DataSource::parse(
            "postgres://app%40x:p%40ss%20w@db.internal:6543/shop?sslmode=require",
        )
        .unwrap();
        assert_eq!(source.display(), "db.internal:6543/shop");
        let env = source.environment();
        assert!(env.contains(&("PGPASSWORD".into(), "p@ss w".into())));
        assert!(env.contains(&("PGUSER".into(), "app@x".into())));
        assert!(env.contains(&("PGSSLMODE".into(), "require".into())));
        let dump = source.pg_dump(&["app".into()]);
        let args: Vec<_> = dump
            .as_std()
            .get_args()
            .map(|a| a.to_string_lossy().to_string())
            .collect();
        assert!(args.iter().all(|a| !a.contains("p@ss")), "{args:?}");
        assert!(
            format!("{source:?}").contains("db.internal")
                && !format!("{source:?}").contains("p@ss")
        );
    }

    #[test]
    fn only_postgres_urls_with_a_database_are_accepted() {
        assert!(DataSource::parse("mysql://x@y/z").is_err());
        assert!(DataSource::parse("postgres://x@y").is_err());
        assert!(DataSource::parse("not a url").is_err());
        assert!(DataSource::parse("postgresql://u@h/d").is_ok());
    }
}
