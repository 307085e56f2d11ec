//! Verification: proves a credential against the API it will be used with, before every save
//! and on demand. Each provider's check is a function in its own file (`Provider::verify`);
//! here is what they share: what a check found and how it is stored, what it reaches the
//! network with, and one request read the same way for all. "Invalid credentials" (the server
//! said no) is kept apart from "could not reach" (no answer), and a valid but narrowly scoped
//! key passes with a warning.

pub mod sigv4;

use std::future::Future;
use std::pin::Pin;

use chrono::NaiveDate;
use diesel::deserialize::FromSqlRow;
use diesel::expression::AsExpression;
use diesel::sql_types::Text;
use reqwest::{RequestBuilder, StatusCode};

use crate::credentials::field::Values;
use crate::credentials::provider::Provider;
use crate::outbound::{self, Outbound, reason};

/// What a check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok(String),
    /// Accepted, with something the person should know (e.g. a narrowly scoped key).
    Warning(String),
    Failed(String),
}

/// What a check found, as stored (`credentials.verify_state`) and shown.
#[derive(AsExpression, FromSqlRow, Clone, Copy, Debug, PartialEq, Eq)]
#[diesel(sql_type = Text)]
pub enum VerifyState {
    Ok,
    Warning,
    Failed,
}

impl VerifyState {
    pub const ALL: [VerifyState; 3] = [VerifyState::Ok, VerifyState::Warning, VerifyState::Failed];

    /// The stored form, also the CSS modifier of its badge: `ok`, `warning`, `failed`.
    pub fn key(self) -> &'static str {
        match self {
            VerifyState::Ok => "ok",
            VerifyState::Warning => "warning",
            VerifyState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<VerifyState> {
        VerifyState::ALL
            .into_iter()
            .find(|state| state.key() == text)
    }
}

crate::stored_as_text!(VerifyState, "verify state");

impl Outcome {
    /// Whether the credential may be saved and used.
    pub fn passed(&self) -> bool {
        !matches!(self, Outcome::Failed(_))
    }

    pub fn state(&self) -> VerifyState {
        match self {
            Outcome::Ok(_) => VerifyState::Ok,
            Outcome::Warning(_) => VerifyState::Warning,
            Outcome::Failed(_) => VerifyState::Failed,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Outcome::Ok(message) | Outcome::Warning(message) | Outcome::Failed(message) => message,
        }
    }
}

/// Where the checks that talk to public SaaS endpoints go (configurable for tests and clouds
/// with their own endpoints).
#[derive(Clone, Debug)]
pub struct Endpoints {
    pub aws_sts: String,
    pub azure_authority: String,
}

/// What a check reaches the network with: the guarded client and the configured endpoints.
#[derive(Clone, Copy)]
pub struct Network<'a> {
    pub outbound: &'a Outbound,
    pub endpoints: &'a Endpoints,
}

/// A provider's check under way.
pub type Verification<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

/// A provider's check of complete values (secrets included): `Provider::verify`.
pub type Verifier = for<'a> fn(Network<'a>, &'a Values) -> Verification<'a>;

/// Runs the provider's check on complete values (secrets included); an expired credential
/// fails without asking anyone.
pub async fn run(
    network: Network<'_>,
    provider: &Provider,
    values: &Values,
    expires_on: Option<NaiveDate>,
) -> Outcome {
    if let Some(date) = expires_on
        && date < chrono::Utc::now().date_naive()
    {
        return Outcome::Failed(format!("credentials expired on {date}"));
    }
    (provider.verify)(network, values).await
}

pub fn invalid_url() -> Outcome {
    Outcome::Failed("the URL is not valid".into())
}

/// `base` with `path` appended (keeping any path `base` already has).
pub fn join(base: &str, path: &str) -> Option<url::Url> {
    let mut base = url::Url::parse(base).ok()?;
    if !base.path().ends_with('/') {
        let with_slash = format!("{}/", base.path());
        base.set_path(&with_slash);
    }
    base.join(path).ok()
}

/// Sends one request to `url` (checked against the outbound rules first): its answer, or what
/// a check found when none came.
pub async fn send(
    outbound: &Outbound,
    url: &url::Url,
    request: impl FnOnce(&reqwest::Client) -> RequestBuilder,
) -> Result<reqwest::Response, Outcome> {
    outbound.check_target(url).await.map_err(Outcome::Failed)?;
    request(&outbound.client).send().await.map_err(|error| {
        let origin = outbound::origin(url);
        Outcome::Failed(format!("could not reach {origin}: {}", reason(&error)))
    })
}

/// What the status of `service`'s answer says of the credentials: 2xx ok, 401/403 invalid
/// credentials, anything else (including a redirect, never followed) a failure that says
/// what came back.
pub fn read_status(url: &url::Url, service: &str, status: StatusCode) -> Outcome {
    let origin = outbound::origin(url);
    match status {
        status if status.is_success() => Outcome::Ok(format!("{service} accepted the credentials")),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Outcome::Failed(format!(
            "Invalid {service} credentials (HTTP {})",
            status.as_u16()
        )),
        status if status.is_redirection() => Outcome::Failed(format!(
            "{origin} answered with a redirect (HTTP {}), which keyhold does not follow: check the URL",
            status.as_u16()
        )),
        status => Outcome::Failed(format!("{origin} answered HTTP {}", status.as_u16())),
    }
}

/// Sends one request and reads its status (`send`, `read_status`).
pub async fn http(
    outbound: &Outbound,
    url: &url::Url,
    service: &str,
    request: impl FnOnce(&reqwest::Client) -> RequestBuilder,
) -> Outcome {
    match send(outbound, url, request).await {
        Ok(response) => read_status(url, service, response.status()),
        Err(outcome) => outcome,
    }
}
