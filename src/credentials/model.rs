//! Credential rows and their queries. Every read takes the caller's `Scope` (the backup
//! runner's `find_any` aside); secrets are sealed field by field before they reach the database
//! and opened only for verification and use (`sealing`). A tab's listing is `listing`, and its
//! SQL `page_sql`.

mod fields;
mod listing;
mod page_sql;
mod sealing;

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

pub use fields::Fields;
pub use listing::{CredentialPage, ListQuery, Listed, SEARCH_COUNT_CAP, Total, sort_expression};

use crate::access::Scope;
use crate::accounts::model::Organization;
use crate::credentials::field::Values;
use crate::credentials::provider::{Kind, Provider};
use crate::credentials::verify::{Outcome, VerifyState};
use crate::crypto::Keyring;
use crate::ids::{OrganizationId, UserId};
use crate::schema::{credentials, organizations};
use crate::web::form::Choice;
use sealing::SealedSecrets;

pub use crate::ids::CredentialId;

/// A stored credential (its secrets still sealed).
#[derive(Queryable, Selectable, QueryableByName, Debug, Clone)]
#[diesel(table_name = credentials)]
pub struct Credential {
    pub id: CredentialId,
    pub organization_id: OrganizationId,
    pub kind: Kind,
    pub provider: String,
    pub name: String,
    pub public: Fields,
    pub secrets: serde_json::Value,
    pub key_id: String,
    pub is_default: bool,
    pub is_locked: bool,
    pub expires_on: Option<NaiveDate>,
    pub verified_at: Option<DateTime<Utc>>,
    pub verify_ok: Option<bool>,
    pub verify_message: Option<String>,
    pub verify_state: Option<VerifyState>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<UserId>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Option<UserId>,
}

/// The SQL types of a credential's columns, in `Credential`'s order.
type CredentialSql = diesel::dsl::SqlTypeOf<<Credential as Selectable<Pg>>::SelectExpression>;

/// A credential as a choice in a project form.
#[derive(Queryable, Debug, Clone)]
pub struct CredentialOption {
    pub id: CredentialId,
    pub organization_id: OrganizationId,
    pub name: String,
    pub provider: String,
    pub is_default: bool,
}

impl CredentialOption {
    /// The choices of a credential select: none, then each option; `chosen` or else the
    /// default of `organization` is selected (the default is pre-selected, SPEC §2).
    pub fn choices(
        options: &[CredentialOption],
        organizations: &[Organization],
        organization: Option<OrganizationId>,
        chosen: &str,
        with_organization: bool,
        none: &str,
    ) -> Vec<Choice> {
        let preselect = if chosen.is_empty() {
            options
                .iter()
                .find(|o| o.is_default && Some(o.organization_id) == organization)
                .map(|o| o.id.to_string())
                .unwrap_or_default()
        } else {
            chosen.to_string()
        };
        let mut choices = vec![Choice {
            value: String::new(),
            label: none.to_string(),
            selected: preselect.is_empty(),
        }];
        for option in options {
            let organization_name = organizations
                .iter()
                .find(|o| o.id == option.organization_id)
                .map_or("", |o| o.name.as_str());
            let mut label = option.name.clone();
            if option.is_default {
                label.push_str(" (default)");
            }
            if with_organization {
                label = format!("{label} — {organization_name}");
            }
            choices.push(Choice {
                value: option.id.to_string(),
                label,
                selected: option.id.to_string() == preselect,
            });
        }
        choices
    }
}

/// A credential about to be created.
pub struct NewCredential<'a> {
    pub organization_id: OrganizationId,
    pub organization_name: &'a str,
    pub provider: &'static Provider,
    pub name: &'a str,
    pub public: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, String>,
    pub expires_on: Option<NaiveDate>,
    /// What the check before saving found (it passed).
    pub verification: Outcome,
    pub created_by: UserId,
}

/// Changes to a credential; secrets absent from `secrets` stay as they are.
pub struct CredentialChanges<'a> {
    pub name: &'a str,
    pub public: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, String>,
    pub expires_on: Option<NaiveDate>,
    /// What the check before saving found; `None` keeps the last verification.
    pub verification: Option<Outcome>,
    pub updated_by: UserId,
    /// The version the edit form showed: a newer row means someone saved in between.
    pub version: i32,
}

fn search_text(name: &str, organization: &str, public: &BTreeMap<String, String>) -> String {
    let mut text = format!("{name} {organization}");
    for value in public.values() {
        text.push(' ');
        text.push_str(value);
    }
    text.to_lowercase()
}

/// Why a credential could not be stored: a query failed, or its secrets could not be sealed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    #[error("sealing failed: {0:#}")]
    Sealing(anyhow::Error),
}

/// Public fields as the `public` object.
fn public_object(public: &BTreeMap<String, String>) -> serde_json::Value {
    serde_json::Value::Object(
        public
            .iter()
            .map(|(key, value)| (key.clone(), serde_json::Value::String(value.clone())))
            .collect(),
    )
}

impl Credential {
    pub fn provider(&self) -> Option<&'static Provider> {
        crate::credentials::provider::find(self.kind, Some(&self.provider))
    }

    /// A public field's value.
    pub fn public_value(&self, key: &str) -> &str {
        self.public.get(key).unwrap_or("")
    }

    /// The public fields as form values.
    pub fn public_values(&self) -> Values {
        let mut values = Values::default();
        for (key, value) in self.public.iter() {
            values.set(key, value);
        }
        values
    }

    /// Public and secret values together, as the verifiers take them.
    pub fn all_values(&self, keyring: &Keyring) -> anyhow::Result<Values> {
        let mut values = self.public_values();
        for (key, value) in self.open_secrets(keyring)? {
            values.set(&key, value);
        }
        Ok(values)
    }

    /// What its last verification found; `None` before the first. A row whose pass or failure
    /// disagrees with its state was verified by a version that did not write the state: its
    /// pass or failure holds.
    pub fn verification(&self) -> Option<VerifyState> {
        Some(match (self.verify_ok?, self.verify_state) {
            (false, _) => VerifyState::Failed,
            (true, Some(VerifyState::Warning)) => VerifyState::Warning,
            (true, _) => VerifyState::Ok,
        })
    }

    /// Whether the credential's expiry date has passed.
    pub fn expired(&self) -> bool {
        self.expires_on
            .is_some_and(|date| date < Utc::now().date_naive())
    }

    /// Whether the credential expires within 14 days (or has).
    pub fn expires_soon(&self) -> bool {
        self.expires_on
            .is_some_and(|date| date <= Utc::now().date_naive() + chrono::Days::new(14))
    }

    /// One credential of `kind` inside `scope`, locked for update; `NotFound` otherwise.
    pub fn find_for_update(
        conn: &mut PgConnection,
        scope: &Scope,
        kind: Kind,
        id: CredentialId,
    ) -> QueryResult<Credential> {
        credentials::table
            .filter(credentials::id.eq(id))
            .filter(credentials::kind.eq(kind))
            .filter(credentials::organization_id.eq_any(scope.organization_ids()))
            .select(Credential::as_select())
            .for_update()
            .first(conn)
    }

    /// The unlocked credentials of `kind` inside `scope`, defaults first: what project forms
    /// may choose (locked ones are not selectable).
    pub fn options(
        conn: &mut PgConnection,
        scope: &Scope,
        kind: Kind,
    ) -> QueryResult<Vec<CredentialOption>> {
        credentials::table
            .filter(credentials::kind.eq(kind))
            .filter(credentials::is_locked.eq(false))
            .filter(credentials::organization_id.eq_any(scope.organization_ids()))
            .order((credentials::is_default.desc(), credentials::name))
            .select((
                credentials::id,
                credentials::organization_id,
                credentials::name,
                credentials::provider,
                credentials::is_default,
            ))
            .load(conn)
    }

    /// A credential by id, unscoped (for the backup runner, which acts for everyone).
    pub fn find_any(conn: &mut PgConnection, id: CredentialId) -> QueryResult<Credential> {
        credentials::table
            .find(id)
            .select(Credential::as_select())
            .first(conn)
    }

    /// Creates a credential with its secrets sealed under the active key (for its id, drawn
    /// first).
    pub fn create(
        conn: &mut PgConnection,
        keyring: &Keyring,
        new: &NewCredential<'_>,
    ) -> Result<Credential, StoreError> {
        let id: i64 = diesel::select(diesel::dsl::sql::<BigInt>("nextval('credentials_id_seq')"))
            .get_result(conn)?;
        let id = CredentialId(id);
        let secrets = SealedSecrets::seal(keyring, new.organization_id, id, &new.secrets)
            .map_err(StoreError::Sealing)?;
        Ok(diesel::insert_into(credentials::table)
            .values((
                credentials::id.eq(id),
                credentials::organization_id.eq(new.organization_id),
                credentials::kind.eq(new.provider.kind),
                credentials::provider.eq(new.provider.key),
                credentials::name.eq(new.name),
                credentials::public.eq(public_object(&new.public)),
                credentials::secrets.eq(serde_json::Value::Object(secrets.fields)),
                credentials::key_id.eq(secrets.key_id),
                credentials::search_text.eq(search_text(
                    new.name,
                    new.organization_name,
                    &new.public,
                )),
                credentials::expires_on.eq(new.expires_on),
                credentials::verified_at.eq(Some(Utc::now())),
                credentials::verify_ok.eq(Some(new.verification.passed())),
                credentials::verify_message.eq(Some(new.verification.message())),
                credentials::verify_state.eq(Some(new.verification.state())),
                credentials::created_by.eq(Some(new.created_by)),
                credentials::updated_by.eq(Some(new.created_by)),
            ))
            .returning(Credential::as_returning())
            .get_result(conn)?)
    }

    /// Applies an edit made to `changes.version`, sealing every secret again (so the row is all
    /// under the active key afterwards); `None` if the row has another version now.
    pub fn update(
        &self,
        conn: &mut PgConnection,
        keyring: &Keyring,
        organization_name: &str,
        changes: &CredentialChanges<'_>,
    ) -> Result<Option<Credential>, StoreError> {
        let mut secrets = self.open_secrets(keyring).map_err(StoreError::Sealing)?;
        secrets.extend(changes.secrets.clone());
        let sealed = SealedSecrets::seal(keyring, self.organization_id, self.id, &secrets)
            .map_err(StoreError::Sealing)?;
        let target = credentials::table
            .filter(credentials::id.eq(self.id))
            .filter(credentials::version.eq(changes.version));
        let (verified_at, verify_ok, verify_message, verify_state) = match &changes.verification {
            Some(outcome) => (
                Some(Utc::now()),
                Some(outcome.passed()),
                Some(outcome.message().to_string()),
                Some(outcome.state()),
            ),
            None => (
                self.verified_at,
                self.verify_ok,
                self.verify_message.clone(),
                self.verify_state,
            ),
        };
        Ok(diesel::update(target)
            .set((
                credentials::name.eq(changes.name),
                credentials::public.eq(public_object(&changes.public)),
                credentials::secrets.eq(serde_json::Value::Object(sealed.fields)),
                credentials::key_id.eq(sealed.key_id),
                credentials::search_text.eq(search_text(
                    changes.name,
                    organization_name,
                    &changes.public,
                )),
                credentials::expires_on.eq(changes.expires_on),
                credentials::verified_at.eq(verified_at),
                credentials::verify_ok.eq(verify_ok),
                credentials::verify_message.eq(verify_message),
                credentials::verify_state.eq(verify_state),
                credentials::version.eq(changes.version + 1),
                credentials::updated_at.eq(Utc::now()),
                credentials::updated_by.eq(Some(changes.updated_by)),
            ))
            .returning(Credential::as_returning())
            .get_result(conn)
            .optional()?)
    }

    /// Locks or unlocks.
    pub fn set_locked(&self, conn: &mut PgConnection, locked: bool, by: UserId) -> QueryResult<()> {
        diesel::update(credentials::table.find(self.id))
            .set((
                credentials::is_locked.eq(locked),
                credentials::version.eq(credentials::version + 1),
                credentials::updated_at.eq(Utc::now()),
                credentials::updated_by.eq(Some(by)),
            ))
            .execute(conn)?;
        Ok(())
    }

    /// Makes this the default of its organization and kind (and provider, for cloud), clearing
    /// the previous default in the same transaction.
    pub fn make_default(&self, conn: &mut PgConnection, by: UserId) -> QueryResult<()> {
        // Serializes default changes of one organization (two instances, two clicks).
        organizations::table
            .find(self.organization_id)
            .select(organizations::id)
            .for_update()
            .first::<OrganizationId>(conn)?;
        let siblings = credentials::table
            .filter(credentials::organization_id.eq(self.organization_id))
            .filter(credentials::kind.eq(&self.kind))
            .filter(credentials::is_default.eq(true))
            .into_boxed();
        let siblings = if self.kind.spec().by_provider {
            siblings.filter(credentials::provider.eq(&self.provider))
        } else {
            siblings
        };
        let previous: Vec<CredentialId> = siblings.select(credentials::id).load(conn)?;
        diesel::update(credentials::table.filter(credentials::id.eq_any(&previous)))
            .set((
                credentials::is_default.eq(false),
                credentials::version.eq(credentials::version + 1),
            ))
            .execute(conn)?;
        diesel::update(credentials::table.find(self.id))
            .set((
                credentials::is_default.eq(true),
                credentials::version.eq(credentials::version + 1),
                credentials::updated_at.eq(Utc::now()),
                credentials::updated_by.eq(Some(by)),
            ))
            .execute(conn)?;
        Ok(())
    }

    /// Claims up to `limit` unlocked credentials last checked more than `every` ago (or never),
    /// oldest first, by moving their check time to now; the rows are skipped by a concurrent
    /// claim (`FOR UPDATE SKIP LOCKED`), so each is checked by one instance.
    pub fn claim_reverification(
        conn: &mut PgConnection,
        every: std::time::Duration,
        limit: i64,
    ) -> QueryResult<Vec<Credential>> {
        let cutoff = Utc::now() - chrono::Duration::from_std(every).unwrap_or_default();
        conn.transaction(|conn| {
            let ids: Vec<CredentialId> = credentials::table
                .filter(credentials::is_locked.eq(false))
                .filter(
                    credentials::verified_at
                        .lt(cutoff)
                        .or(credentials::verified_at.is_null()),
                )
                .order(credentials::verified_at.asc().nulls_first())
                .limit(limit)
                .select(credentials::id)
                .for_update()
                .skip_locked()
                .load(conn)?;
            diesel::update(credentials::table.filter(credentials::id.eq_any(&ids)))
                .set(credentials::verified_at.eq(Some(Utc::now())))
                .execute(conn)?;
            credentials::table
                .filter(credentials::id.eq_any(&ids))
                .select(Credential::as_select())
                .load(conn)
        })
    }

    /// Stores the result of a verification.
    pub fn record_verification(
        &self,
        conn: &mut PgConnection,
        outcome: &Outcome,
    ) -> QueryResult<()> {
        conn.transaction(|conn| {
            // Said once per change to failed, also when two checks end at once: the row, not
            // what this process read earlier, decides (the second UPDATE waits and finds it
            // failed already).
            let newly_failed = !outcome.passed()
                && diesel::update(
                    credentials::table
                        .find(self.id)
                        .filter(credentials::verify_ok.is_distinct_from(false)),
                )
                .set(credentials::verify_ok.eq(Some(false)))
                .execute(conn)?
                    == 1;
            diesel::update(credentials::table.find(self.id))
                .set((
                    credentials::verified_at.eq(Some(Utc::now())),
                    credentials::verify_ok.eq(Some(outcome.passed())),
                    credentials::verify_message.eq(Some(outcome.message())),
                    credentials::verify_state.eq(Some(outcome.state())),
                ))
                .execute(conn)?;
            Credential::record_use(conn, self.id, "a verification")?;
            // Only a change to failed is news: a credential failing every day says it once.
            if newly_failed {
                let message = format!(
                    "The {} credential {} failed verification: {}",
                    self.kind.key(),
                    self.name,
                    outcome.message()
                );
                crate::notifications::Event {
                    kind: crate::notifications::EventKind::CredentialVerifyFailed,
                    subject: crate::notifications::Subject::credential(self.id),
                    message: &message,
                    once: None,
                }
                .record(conn)?;
            }
            Ok(())
        })
    }

    /// Records what used the credential last (shown as "Last used").
    pub fn record_use(
        conn: &mut PgConnection,
        id: CredentialId,
        used_for: &str,
    ) -> QueryResult<()> {
        use crate::schema::credential_uses;
        let now = Utc::now();
        diesel::insert_into(credential_uses::table)
            .values((
                credential_uses::credential_id.eq(id),
                credential_uses::used_at.eq(now),
                credential_uses::used_for.eq(used_for),
            ))
            .on_conflict(credential_uses::credential_id)
            .do_update()
            .set((
                credential_uses::used_at.eq(now),
                credential_uses::used_for.eq(used_for),
            ))
            .execute(conn)?;
        Ok(())
    }

    /// When the credential was last used, and by what.
    pub fn last_use(
        conn: &mut PgConnection,
        id: CredentialId,
    ) -> QueryResult<Option<(DateTime<Utc>, String)>> {
        use crate::schema::credential_uses;
        credential_uses::table
            .find(id)
            .select((credential_uses::used_at, credential_uses::used_for))
            .first(conn)
            .optional()
    }

    /// Names of the projects using this credential (by the column of its kind,
    /// `KindSpec::used_by`), in name order.
    pub fn projects_using(&self, conn: &mut PgConnection) -> QueryResult<Vec<String>> {
        #[derive(QueryableByName)]
        struct ProjectName {
            #[diesel(sql_type = Text)]
            name: String,
        }
        let Some(column) = self.kind.spec().used_by else {
            return Ok(Vec::new());
        };
        let names = diesel::sql_query(format!(
            "SELECT name FROM projects WHERE {column} = $1 ORDER BY name"
        ))
        .bind::<BigInt, _>(self.id.0)
        .load::<ProjectName>(conn)?;
        Ok(names.into_iter().map(|row| row.name).collect())
    }

    /// Deletes the credential (the service checks first that nothing uses it; the foreign
    /// keys refuse a race).
    pub fn delete(&self, conn: &mut PgConnection) -> QueryResult<()> {
        diesel::delete(credentials::table.find(self.id)).execute(conn)?;
        Ok(())
    }

    /// Whether a credential of this kind and name exists in the organization (other than `except`).
    pub fn name_taken(
        conn: &mut PgConnection,
        organization: OrganizationId,
        kind: Kind,
        name: &str,
        except: Option<CredentialId>,
    ) -> QueryResult<bool> {
        let query = credentials::table
            .filter(credentials::organization_id.eq(organization))
            .filter(credentials::kind.eq(kind))
            .filter(credentials::name.eq(name))
            .select(credentials::id)
            .into_boxed();
        let query = match except {
            Some(id) => query.filter(credentials::id.ne(id)),
            None => query,
        };
        Ok(query.first::<CredentialId>(conn).optional()?.is_some())
    }
}
