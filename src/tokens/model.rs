//! The `api_tokens` rows and the queries over them.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};

use crate::accounts::model::User;
use crate::ids::{PartnerId, UserId};
use crate::schema::{api_tokens, users};
use crate::tokens::ApiScope;

pub use crate::ids::TokenId;

/// A stored token (its hash is never read back).
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = api_tokens)]
pub struct ApiToken {
    pub id: TokenId,
    pub user_id: UserId,
    pub partner_id: PartnerId,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<Option<String>>,
    pub allowed_ips: Vec<Option<String>>,
    pub expires_on: NaiveDate,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_used_ip: Option<String>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The minute its rate is counted in, and the requests written for it so far.
    pub window_started_at: DateTime<Utc>,
    pub window_requests: i32,
}

/// What it takes to store a token.
#[derive(Insertable)]
#[diesel(table_name = api_tokens)]
pub struct NewApiToken<'a> {
    pub user_id: UserId,
    pub partner_id: PartnerId,
    pub name: &'a str,
    pub prefix: &'a str,
    pub token_hash: &'a str,
    pub scopes: Vec<Option<String>>,
    pub allowed_ips: Vec<Option<String>>,
    pub expires_on: NaiveDate,
}

/// Whose tokens a person sees and revokes: a Partner those of the whole partner account,
/// anyone else their own.
#[derive(Clone, Copy, Debug)]
pub enum Owners {
    Partner(PartnerId),
    Person(UserId),
}

/// A row of the tokens list: the token and its person's email.
#[derive(Debug, Clone)]
pub struct TokenListing {
    pub token: ApiToken,
    pub owner: String,
}

impl ApiToken {
    /// The scopes it carries (unknown words are ignored).
    pub fn scopes(&self) -> Vec<ApiScope> {
        self.scopes
            .iter()
            .flatten()
            .filter_map(|key| ApiScope::parse(key))
            .collect()
    }

    /// The scopes, comma-separated.
    pub fn scope_list(&self) -> String {
        self.scopes
            .iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Its address allowlist.
    pub fn allowed(&self) -> Vec<String> {
        self.allowed_ips.iter().flatten().cloned().collect()
    }

    pub fn is_expired(&self) -> bool {
        self.expires_on < Utc::now().date_naive()
    }

    fn owned_by(owners: Owners) -> api_tokens::BoxedQuery<'static, diesel::pg::Pg> {
        let query = api_tokens::table.into_boxed();
        match owners {
            Owners::Partner(partner) => query.filter(api_tokens::partner_id.eq(partner)),
            Owners::Person(user) => query.filter(api_tokens::user_id.eq(user)),
        }
    }

    /// The tokens of `owners`, newest first, with their person's email.
    pub fn list(conn: &mut PgConnection, owners: Owners) -> QueryResult<Vec<TokenListing>> {
        let tokens: Vec<ApiToken> = ApiToken::owned_by(owners)
            .select(ApiToken::as_select())
            .order(api_tokens::id.desc())
            .load(conn)?;
        let ids: Vec<UserId> = tokens.iter().map(|t| t.user_id).collect();
        let emails: Vec<(UserId, String)> = users::table
            .filter(users::id.eq_any(ids))
            .select((users::id, users::email))
            .load(conn)?;
        Ok(tokens
            .into_iter()
            .map(|token| {
                let owner = emails
                    .iter()
                    .find(|(id, _)| *id == token.user_id)
                    .map(|(_, email)| email.clone())
                    .unwrap_or_default();
                TokenListing { token, owner }
            })
            .collect())
    }

    /// The token `id` among those of `owners`, its row locked.
    pub fn find_for_update(
        conn: &mut PgConnection,
        owners: Owners,
        id: TokenId,
    ) -> QueryResult<Option<ApiToken>> {
        let token = api_tokens::table
            .find(id)
            .select(ApiToken::as_select())
            .for_update()
            .first(conn)
            .optional()?;
        Ok(token.filter(|token| match owners {
            Owners::Partner(partner) => token.partner_id == partner,
            Owners::Person(user) => token.user_id == user,
        }))
    }

    pub fn create(conn: &mut PgConnection, new: &NewApiToken) -> QueryResult<ApiToken> {
        diesel::insert_into(api_tokens::table)
            .values(new)
            .returning(ApiToken::as_returning())
            .get_result(conn)
    }

    pub fn revoke(&self, conn: &mut PgConnection) -> QueryResult<()> {
        diesel::update(api_tokens::table.find(self.id))
            .set(api_tokens::revoked_at.eq(diesel::dsl::now))
            .execute(conn)?;
        Ok(())
    }

    /// The token whose SHA-256 is `hash`, with its person.
    pub fn find_by_hash(
        conn: &mut PgConnection,
        hash: &str,
    ) -> QueryResult<Option<(ApiToken, User)>> {
        api_tokens::table
            .inner_join(users::table)
            .filter(api_tokens::token_hash.eq(hash))
            .select((ApiToken::as_select(), User::as_select()))
            .first(conn)
            .optional()
    }

    /// Writes `requests` more uses, the last from `client` now, into the token's current
    /// minute (a new minute when the last one is over).
    pub fn record_uses(
        &self,
        conn: &mut PgConnection,
        requests: i32,
        client: &str,
    ) -> QueryResult<()> {
        diesel::sql_query(
            "UPDATE api_tokens AS t SET
                 window_started_at = CASE WHEN t.window_started_at <= now() - interval '1 minute'
                     THEN now() ELSE t.window_started_at END,
                 window_requests = CASE WHEN t.window_started_at <= now() - interval '1 minute'
                     THEN $2 ELSE t.window_requests + $2 END,
                 last_used_at = now(),
                 last_used_ip = $3
             WHERE t.id = $1",
        )
        .bind::<BigInt, _>(self.id.0)
        .bind::<Integer, _>(requests)
        .bind::<Text, _>(client)
        .execute(conn)?;
        Ok(())
    }
}
