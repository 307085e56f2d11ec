//! A project's data source or restore target: its PostgreSQL URL, the rules it must pass before
//! keyhold connects (SPEC §13), and the `pg_dump` / `pg_restore` commands.
//!
//! keyhold connects from where it runs, so a URL typed by a Manager could borrow keyhold's own
//! access: its own database, a server that trusts local connections, keyhold's `~/.pgpass`.
//! `DataSource::check` therefore resolves the host once (forbidden addresses and
//! `KEYHOLD_DATA_SOURCE_NETWORKS` checked on every answer) and pins the address it connects to,
//! refuses a server that lets keyhold in with a wrong password (unless the operator allows it),
//! and learns the database's identity (the server's `system_identifier` and the database's oid)
//! so keyhold's own database is refused however its URL is spelled. Callers then compare the
//! identity with other projects' (`projects::model::SourceUse`).
//!
//! Tools get the connection only as a libpq connection string keyhold builds with every value
//! quoted (a database name is only ever a name) and the password in `PGPASSWORD`, never on a
//! command line where `ps` would show it.
//!
//! Over 600 lines because every database keyhold connects to for a Manager (data sources,
//! restore targets, drill servers) passes the same checks here, with their tests: the checks
//! and the pinned connection strings they hand to `pg_dump`/`pg_restore` must not drift apart.

use std::net::IpAddr;
use std::process::Stdio;

use diesel::prelude::*;
use diesel::sql_types::Text;
use tokio::process::Command;

use crate::outbound::Outbound;

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

/// A URL part, percent-decoded (`+` stays a plus: URLs are not forms).
fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// What a data source must satisfy, from the settings and keyhold's own database.
#[derive(Clone, Debug)]
pub struct SourceRules {
    /// Let keyhold connect to servers that do not check its password
    /// (`KEYHOLD_DATA_SOURCE_ALLOW_TRUST`; unsafe, development only by default).
    pub allow_unauthenticated: bool,
    /// When not empty, every address of a data source's host must be in one of these
    /// (`KEYHOLD_DATA_SOURCE_NETWORKS`).
    pub networks: Vec<ipnet::IpNet>,
    /// keyhold's own database, never a data source or restore target.
    pub own: Identity,
}

/// Which database a connection reached, whatever the URL's spelling: the server's
/// `system_identifier` and the database's oid, as `"<system>/<oid>"`.
#[derive(Clone, Debug, PartialEq, Eq, QueryableByName)]
pub struct Identity {
    #[diesel(sql_type = Text)]
    pub identity: String,
}

impl SourceRules {
    /// The rules, with keyhold's own database identified through `pool`.
    pub fn of(
        pool: &crate::db::DbPool,
        allow_unauthenticated: bool,
        networks: Vec<ipnet::IpNet>,
    ) -> anyhow::Result<SourceRules> {
        let mut conn = pool.get()?;
        let own = Identity::of(&mut conn)?;
        Ok(SourceRules {
            allow_unauthenticated,
            networks,
            own,
        })
    }
}

impl Identity {
    /// The identity of the database `conn` is connected to.
    pub fn of(conn: &mut PgConnection) -> QueryResult<Identity> {
        diesel::sql_query(
            "SELECT (SELECT system_identifier::text FROM pg_control_system()) || '/' || d.oid::text
                 AS identity
             FROM pg_database d WHERE d.datname = current_database()",
        )
        .get_result(conn)
    }
}

/// One table and its rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableRows {
    pub schema: String,
    pub table: String,
    pub rows: i64,
}

/// The tables of `namespaces` (every user schema when empty), each counted exactly.
fn count_tables(
    conn: &mut PgConnection,
    namespaces: &[String],
) -> diesel::QueryResult<Vec<TableRows>> {
    #[derive(QueryableByName)]
    struct Table {
        #[diesel(sql_type = Text)]
        schema: String,
        #[diesel(sql_type = Text)]
        name: String,
    }
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        rows: i64,
    }
    let tables: Vec<Table> = diesel::sql_query(
        "SELECT n.nspname AS schema, c.relname AS name
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'r' AND n.nspname NOT LIKE 'pg\\_%'
           AND n.nspname <> 'information_schema'
           AND (cardinality($1::text[]) = 0 OR n.nspname = ANY($1))
         ORDER BY 1, 2",
    )
    .bind::<diesel::sql_types::Array<Text>, _>(namespaces)
    .load(conn)?;
    let ident = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    tables
        .into_iter()
        .map(|table| {
            let count: Count = diesel::sql_query(format!(
                "SELECT count(*) AS rows FROM {}.{}",
                ident(&table.schema),
                ident(&table.name)
            ))
            .get_result(conn)?;
            Ok(TableRows {
                schema: table.schema,
                table: table.name,
                rows: count.rows,
            })
        })
        .collect()
}

/// A transaction whose snapshot `pg_dump --snapshot=<id>` dumps; it must stay open until
/// `pg_dump` has started (dropping it ends the transaction).
pub struct Snapshot {
    conn: PgConnection,
    pub id: String,
}

impl Snapshot {
    /// The rows of the tables of `namespaces` in this snapshot: exactly what the dump holds.
    /// Blocking.
    pub fn count(&mut self, namespaces: &[String]) -> Result<Vec<TableRows>, String> {
        count_tables(&mut self.conn, namespaces)
            .map_err(|error| format!("could not count the rows to back up: {error}"))
    }
}

/// A data source that passed the rules: its address pinned, its identity and schemas known.
#[derive(Clone)]
pub struct Checked {
    source: DataSource,
    /// The one address the check connected to: the tools connect there and nowhere else
    /// (a list would let libpq fall through to an address nobody checked).
    address: IpAddr,
    pub identity: Identity,
    pub schemas: Vec<String>,
}

/// A libpq connection string value, quoted: `'` and `\` escaped, so no value can carry a
/// second keyword.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Why one address of a source was not taken: refused (the answer), or not reachable (the
/// next address is tried).
enum Refusal {
    Refused(String),
    Unreachable(String),
}

/// A password file that does not exist: libpq must not find keyhold's own `~/.pgpass`.
const NO_PASSFILE: &str = "/nonexistent/keyhold-uses-no-passfile";

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

    fn host(&self) -> String {
        self.url
            .host_str()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string()
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

    /// The addresses keyhold will connect to (libpq tries them in turn): every address of the
    /// host passes the outbound rules (no link-local or metadata address; private ones only if
    /// allowed) and lies in the allowed networks, if any.
    async fn addresses(
        &self,
        outbound: &Outbound,
        rules: &SourceRules,
    ) -> Result<Vec<IpAddr>, String> {
        let label = self.display();
        let addresses = outbound.resolve(&self.url, self.port(), &label).await?;
        if let Some(outside) = addresses.iter().find(|ip| {
            !rules.networks.is_empty() && !rules.networks.iter().any(|net| net.contains(*ip))
        }) {
            return Err(format!(
                "{label} resolves to {outside}, outside the networks data sources may be in"
            ));
        }
        if addresses.is_empty() {
            return Err(format!("could not reach {label}: no address"));
        }
        Ok(addresses)
    }

    /// The connection string of this source at `address` (the host name kept beside it, for
    /// TLS). What libpq could otherwise take from keyhold's own files is set: no password file,
    /// no client certificate or key. `password` is the password to send; `None` leaves it out
    /// (the tools, whose environment holds only the URL's `PGPASSWORD`).
    fn conninfo(&self, address: IpAddr, password: Option<&str>) -> String {
        let mut values = vec![
            ("host", self.host()),
            ("hostaddr", address.to_string()),
            ("port", self.port().to_string()),
            ("dbname", self.database()),
            ("connect_timeout", "10".to_string()),
            ("application_name", "keyhold".to_string()),
            ("passfile", NO_PASSFILE.to_string()),
            ("sslcert", NO_PASSFILE.to_string()),
            ("sslkey", NO_PASSFILE.to_string()),
        ];
        if !self.url.username().is_empty() {
            values.push(("user", decode(self.url.username())));
        }
        for (key, value) in self.url.query_pairs() {
            if matches!(key.as_ref(), "sslmode" | "gssencmode") {
                values.push((
                    if key == "sslmode" {
                        "sslmode"
                    } else {
                        "gssencmode"
                    },
                    value.into_owned(),
                ));
            }
        }
        if let Some(password) = password {
            values.push(("password", password.to_string()));
        }
        values
            .into_iter()
            .map(|(keyword, value)| format!("{keyword}={}", quote(&value)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn password(&self) -> Option<String> {
        self.url.password().map(decode)
    }

    /// The password keyhold's own connections send: the URL's, or an empty one, never the
    /// `PGPASSWORD` of keyhold's environment (libpq would read it for a URL without one).
    fn in_process_password(&self) -> String {
        self.password().unwrap_or_default()
    }

    /// Applies the rules and connects: the address pinned, a server that lets keyhold in
    /// without checking its password refused (unless allowed), keyhold's own database refused.
    pub async fn check(&self, outbound: &Outbound, rules: &SourceRules) -> Result<Checked, String> {
        let addresses = self.addresses(outbound, rules).await?;
        let (source, rules) = (self.clone(), rules.clone());
        tokio::task::spawn_blocking(move || source.inspect(&addresses, &rules))
            .await
            .map_err(|_| "could not check the database".to_string())?
    }

    /// The blocking part of `check`: the host's addresses in turn, each checked alone, until
    /// one answers; that one is the source's address from then on.
    fn inspect(self, addresses: &[IpAddr], rules: &SourceRules) -> Result<Checked, String> {
        let mut failure = String::new();
        for &address in addresses {
            match self.clone().inspect_at(address, rules) {
                Ok(checked) => return Ok(checked),
                Err(Refusal::Refused(message)) => return Err(message),
                Err(Refusal::Unreachable(message)) => failure = message,
            }
        }
        Err(failure)
    }

    /// Applies the rules to the server at `address` alone.
    fn inspect_at(self, address: IpAddr, rules: &SourceRules) -> Result<Checked, Refusal> {
        let label = self.display();
        if !rules.allow_unauthenticated {
            // A password no server can expect: a server that accepts it checks none.
            let wrong = format!("keyhold-probe-{}", crate::crypto::random_token());
            if PgConnection::establish(&self.conninfo(address, Some(&wrong))).is_ok() {
                return Err(Refusal::Refused(format!(
                    "{label} let keyhold in without checking its password (trust or peer \
                     authentication): keyhold only connects to databases that authenticate it"
                )));
            }
        }
        let mut conn =
            PgConnection::establish(&self.conninfo(address, Some(&self.in_process_password())))
                .map_err(|error| {
                    let message = error.to_string();
                    Refusal::Unreachable(format!(
                        "could not connect to {label}: {}",
                        message.split_whitespace().collect::<Vec<_>>().join(" ")
                    ))
                })?;
        let identity = Identity::of(&mut conn).map_err(|error| {
            Refusal::Refused(format!("could not identify the database {label}: {error}"))
        })?;
        if identity == rules.own {
            return Err(Refusal::Refused(format!(
                "{label} is keyhold's own database: it is never a data source or restore target"
            )));
        }
        #[derive(QueryableByName)]
        struct Schema {
            #[diesel(sql_type = Text)]
            nspname: String,
        }
        let schemas: Vec<Schema> = diesel::sql_query(
            "SELECT nspname FROM pg_namespace
             WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
             ORDER BY nspname",
        )
        .load(&mut conn)
        .map_err(|error| {
            Refusal::Refused(format!("could not list the schemas of {label}: {error}"))
        })?;
        Ok(Checked {
            source: self,
            address,
            identity,
            schemas: schemas.into_iter().map(|schema| schema.nspname).collect(),
        })
    }
}

impl Checked {
    pub fn display(&self) -> String {
        self.source.display()
    }

    /// Prepares the database for a restore of `namespaces` (all when empty): counts the tables
    /// it already holds there (a restore into a database holding data is one transaction unless
    /// a parallel one was asked for), then creates the schemas it lacks (`pg_restore --schema`
    /// restores what is in a schema, not the schema itself). Blocking: call off async threads.
    pub fn prepare_restore(&self, namespaces: &[String]) -> Result<i64, String> {
        let label = self.display();
        let conninfo = self
            .source
            .conninfo(self.address, Some(&self.source.in_process_password()));
        let mut conn = PgConnection::establish(&conninfo)
            .map_err(|error| format!("could not connect to {label}: {error}"))?;
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            tables: i64,
        }
        let held: Count = diesel::sql_query(
            "SELECT count(*) AS tables FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p', 'm')
               AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
               AND (cardinality($1::text[]) = 0 OR n.nspname = ANY($1))",
        )
        .bind::<diesel::sql_types::Array<Text>, _>(namespaces)
        .get_result(&mut conn)
        .map_err(|error| format!("could not look into {label}: {error}"))?;
        for namespace in namespaces
            .iter()
            .filter(|namespace| !self.schemas.contains(namespace))
        {
            let quoted = format!("\"{}\"", namespace.replace('"', "\"\""));
            diesel::sql_query(format!("CREATE SCHEMA IF NOT EXISTS {quoted}"))
                .execute(&mut conn)
                .map_err(|error| {
                    format!("could not create schema {namespace} in {label}: {error}")
                })?;
        }
        Ok(held.tables)
    }

    /// A connection of keyhold's own to this database (address pinned). Blocking.
    fn connect(&self) -> Result<PgConnection, String> {
        let conninfo = self
            .source
            .conninfo(self.address, Some(&self.source.in_process_password()));
        PgConnection::establish(&conninfo)
            .map_err(|error| format!("could not connect to {}: {error}", self.display()))
    }

    /// Opens a read-only REPEATABLE READ transaction and exports its snapshot, for
    /// `pg_dump --snapshot` and `Snapshot::count` to see the same data. Blocking.
    pub fn snapshot(&self) -> Result<Snapshot, String> {
        let mut conn = self.connect()?;
        #[derive(QueryableByName)]
        struct Exported {
            #[diesel(sql_type = Text)]
            id: String,
        }
        // Named apart from the tools, so an operator can tell the snapshot from a dump.
        diesel::sql_query("SET application_name = 'keyhold-snapshot'")
            .execute(&mut conn)
            .and_then(|_| {
                diesel::sql_query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .execute(&mut conn)
            })
            .and_then(|_| {
                diesel::sql_query("SELECT pg_export_snapshot() AS id")
                    .get_result::<Exported>(&mut conn)
            })
            .map(|exported| Snapshot {
                conn,
                id: exported.id,
            })
            .map_err(|error| format!("could not take a snapshot of {}: {error}", self.display()))
    }

    /// The same server's database `name` (for scratch databases), checked like this one.
    pub fn sibling(&self, name: &str) -> Checked {
        let mut url = self.source.url.clone();
        url.set_path(&format!("/{name}"));
        Checked {
            source: DataSource { url },
            address: self.address,
            identity: Identity {
                identity: String::new(),
            },
            schemas: Vec::new(),
        }
    }

    /// Creates database `name` on this server (the source's user needs CREATEDB). Blocking.
    pub fn create_database(&self, name: &str) -> Result<(), String> {
        let mut conn = self.connect()?;
        diesel::sql_query(format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\"")))
            .execute(&mut conn)
            .map(|_| ())
            .map_err(|error| {
                format!(
                    "could not create the scratch database {name} on {}: {error}",
                    self.display()
                )
            })
    }

    /// Drops database `name` on this server, ending its connections. Blocking.
    pub fn drop_database(&self, name: &str) -> Result<(), String> {
        let mut conn = self.connect()?;
        diesel::sql_query(format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            name.replace('"', "\"\"")
        ))
        .execute(&mut conn)
        .map(|_| ())
        .map_err(|error| format!("could not drop {name} on {}: {error}", self.display()))
    }

    /// The exact row count of every table in `namespaces` (all user schemas when empty).
    /// Blocking.
    pub fn count_tables(&self, namespaces: &[String]) -> Result<Vec<TableRows>, String> {
        let mut conn = self.connect()?;
        count_tables(&mut conn, namespaces)
            .map_err(|error| format!("could not count the rows of {}: {error}", self.display()))
    }

    /// A command for `program` connecting to this source: only PATH and the password in its
    /// environment, everything else in one quoted connection string.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env(
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
            )
            .env("PGPASSFILE", NO_PASSFILE)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(password) = self.source.password() {
            command.env("PGPASSWORD", password);
        }
        command.arg(format!(
            "--dbname={}",
            self.source.conninfo(self.address, None)
        ));
        command
    }

    /// `pg_dump` in custom format of `namespaces`, to standard output.
    pub fn pg_dump(&self, namespaces: &[String], snapshot: Option<&str>) -> Command {
        let mut command = self.command("pg_dump");
        command.args(["--format=custom", "--no-password"]);
        if let Some(snapshot) = snapshot {
            command.arg(format!("--snapshot={snapshot}"));
        }
        for namespace in namespaces {
            command.arg(format!("--schema={namespace}"));
        }
        command
    }

    /// `pg_restore` of `file` into this database: in one transaction (all or nothing), or with
    /// `jobs` parallel connections (faster, but a failure leaves what was restored so far).
    pub fn pg_restore(
        &self,
        namespaces: &[String],
        file: &std::path::Path,
        jobs: Option<u32>,
    ) -> Command {
        let mut command = self.command("pg_restore");
        command.args([
            "--no-password",
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
        ]);
        match jobs {
            Some(jobs) => command.arg(format!("--jobs={}", jobs.max(1))),
            None => command.arg("--single-transaction"),
        };
        for namespace in namespaces {
            command.arg(format!("--schema={namespace}"));
        }
        command.arg(file);
        command
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn checked(url: &str) -> Checked {
        Checked {
            source: DataSource::parse(url).unwrap(),
            address: "10.0.0.7".parse().unwrap(),
            identity: Identity {
                identity: "1/2".into(),
            },
            schemas: Vec::new(),
        }
    }

    fn args(command: &Command) -> Vec<String> {
        command
            .as_std()
            .get_args()
            .map(|a| a.to_string_lossy().to_string())
            .collect()
    }

    #[test]
    fn the_password_goes_to_the_environment_and_never_to_what_is_shown() {
        let source = checked("postgres://app%40x:p%40ss%20w@db.internal:6543/shop?sslmode=require");
        assert_eq!(source.display(), "db.internal:6543/shop");
        let dump = source.pg_dump(&["app".into()], None);
        let env: Vec<(String, String)> = dump
            .as_std()
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_string_lossy().into(), v?.to_string_lossy().into())))
            .collect();
        assert!(env.contains(&("PGPASSWORD".into(), "p@ss w".into())));
        let args = args(&dump);
        assert!(args.iter().all(|a| !a.contains("p@ss")), "{args:?}");
        let dbname = args.iter().find(|a| a.starts_with("--dbname=")).unwrap();
        for part in [
            "user='app@x'",
            "sslmode='require'",
            "host='db.internal'",
            "hostaddr='10.0.0.7'",
            "port='6543'",
        ] {
            assert!(dbname.contains(part), "{dbname} lacks {part}");
        }
        let debug = format!("{:?}", source.source);
        assert!(debug.contains("db.internal") && !debug.contains("p@ss"));
    }

    #[test]
    fn a_database_name_is_only_ever_a_name() {
        // A connection string or URL in the database name, URL-encoded into the path.
        for name in [
            "host%3D0.0.0.0%20port%3D18420%20dbname%3Dx",
            "postgresql%3A%2F%2F0.0.0.0%3A18420%2Fx",
            "x'%20host%3D'0.0.0.0",
        ] {
            let source = checked(&format!("postgres://u@db.internal/{name}"));
            let restore = source.pg_restore(&[], std::path::Path::new("/tmp/x"), None);
            let args = args(&restore);
            let dbname = args.iter().find(|a| a.starts_with("--dbname=")).unwrap();
            let quoted = quote(&source.source.database());
            assert!(
                dbname.contains(&format!("dbname={quoted}")),
                "{dbname} must carry the name quoted"
            );
            assert_eq!(args.iter().filter(|a| a.starts_with("--dbname")).count(), 1);
        }
        assert_eq!(quote(r"a'b\c"), r"'a\'b\\c'");
    }

    #[test]
    fn a_restore_is_one_transaction_unless_it_runs_jobs() {
        let source = checked("postgres://u@db.internal/shop");
        let file = std::path::Path::new("/tmp/x");
        let single = args(&source.pg_restore(&["sales".into()], file, None));
        assert!(single.contains(&"--single-transaction".to_string()));
        assert!(single.contains(&"--schema=sales".to_string()));
        assert!(!single.iter().any(|a| a.starts_with("--jobs")));
        let parallel = args(&source.pg_restore(&[], file, Some(4)));
        assert!(parallel.contains(&"--jobs=4".to_string()));
        assert!(!parallel.contains(&"--single-transaction".to_string()));
    }

    /// The local test server (trust auth), as the suite uses it.
    fn local(database: &str) -> DataSource {
        DataSource::parse(&format!(
            "postgres://postgres@127.0.0.1:5432/{database}?gssencmode=disable"
        ))
        .unwrap()
    }

    #[test]
    fn the_tools_connect_only_to_the_address_that_was_checked() {
        // A host with two addresses, one of which answers: the check settles on the one it
        // reached, and pg_dump gets that one alone, so it cannot fall through to an address
        // nobody checked (a decoy answering the check, then keyhold's server the dump).
        let unchecked: IpAddr = "127.0.0.2".parse().unwrap(); // nothing listens there
        let checked: IpAddr = "127.0.0.1".parse().unwrap();
        let rules = SourceRules {
            allow_unauthenticated: true,
            networks: Vec::new(),
            own: Identity {
                identity: "not/this".into(),
            },
        };
        for order in [[unchecked, checked], [checked, unchecked]] {
            let found = local("postgres").inspect(&order, &rules).unwrap();
            assert_eq!(found.address, checked);
            let dump = found.pg_dump(&[], None);
            let args = args(&dump);
            let dbname = args.iter().find(|a| a.starts_with("--dbname=")).unwrap();
            assert!(
                dbname.contains("hostaddr='127.0.0.1'") && !dbname.contains("127.0.0.2"),
                "{dbname}"
            );
        }
        let nowhere = local("postgres").inspect(&[unchecked], &rules);
        assert!(nowhere.is_err_and(|message| message.starts_with("could not connect")));
    }

    #[test]
    fn url_parts_are_percent_decoded_and_a_plus_stays_a_plus() {
        let source = DataSource::parse("postgres://u%40x:a+b%2Bc@h/d+b").unwrap();
        assert_eq!(source.password().as_deref(), Some("a+b+c"));
        assert_eq!(source.database(), "d+b");
    }

    #[test]
    fn only_postgres_urls_with_a_database_are_accepted() {
        assert!(DataSource::parse("mysql://x@y/z").is_err());
        assert!(DataSource::parse("postgres://x@y").is_err());
        assert!(DataSource::parse("not a url").is_err());
        assert!(DataSource::parse("postgresql://u@h/d").is_ok());
    }
}
