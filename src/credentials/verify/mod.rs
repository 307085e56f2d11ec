//! Verification: proves a credential against the API it will be used with, before every save
//! and on demand. "Invalid credentials" (the server said no) is kept apart from "could not
//! reach" (no answer), and a valid but narrowly scoped key passes with a warning.

pub mod sigv4;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::NaiveDate;
use diesel::deserialize::FromSqlRow;
use diesel::expression::AsExpression;
use diesel::sql_types::Text;
use reqwest::{RequestBuilder, StatusCode};
use serde::Deserialize;

use crate::credentials::provider::{Check, Provider, Values};
use crate::outbound::{self, Outbound};
use crate::storage::{Failure, S3Settings, Storage};

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

/// Runs the provider's check on complete values (secrets included).
pub async fn run(
    outbound: &Outbound,
    endpoints: &Endpoints,
    provider: &Provider,
    values: &Values,
    expires_on: Option<NaiveDate>,
) -> Outcome {
    if let Some(date) = expires_on
        && date < chrono::Utc::now().date_naive()
    {
        return Outcome::Failed(format!("credentials expired on {date}"));
    }
    let v = |key: &str| values.get(key).to_string();
    match provider.check {
        Check::S3 => {
            s3(
                outbound,
                &v("endpoint"),
                &v("region"),
                &v("access_key_id"),
                &v("secret_access_key"),
            )
            .await
        }
        Check::Prometheus => {
            let Some(url) = join(&v("url"), "api/v1/status/buildinfo") else {
                return invalid_url();
            };
            http(outbound, &url, "Prometheus", |client| {
                client
                    .get(url.clone())
                    .basic_auth(v("username"), Some(v("password")))
            })
            .await
        }
        Check::OpenAi => {
            let Some(url) = join(&v("base_url"), "v1/models") else {
                return invalid_url();
            };
            http(outbound, &url, "API", |client| {
                client.get(url.clone()).bearer_auth(v("api_key"))
            })
            .await
        }
        Check::AwsSts => {
            let Ok(url) = url::Url::parse(&endpoints.aws_sts) else {
                return invalid_url();
            };
            let request = sigv4::get_caller_identity(
                &url,
                &v("access_key_id"),
                &v("secret_access_key"),
                chrono::Utc::now(),
            );
            http(outbound, &url, "AWS", |client| {
                let mut builder = client.post(url.clone()).body(request.body.clone());
                for (name, value) in &request.headers {
                    builder = builder.header(name, value);
                }
                builder
            })
            .await
        }
        Check::AzureToken => {
            let Some(url) = join(
                &endpoints.azure_authority,
                &format!("{}/oauth2/v2.0/token", v("tenant_id")),
            ) else {
                return invalid_url();
            };
            http(outbound, &url, "Azure", |client| {
                client.post(url.clone()).form(&[
                    ("grant_type", "client_credentials".to_string()),
                    ("client_id", v("client_id")),
                    ("client_secret", v("client_secret")),
                    ("scope", "https://management.azure.com/.default".to_string()),
                ])
            })
            .await
        }
        Check::GcpServiceAccount => match gcp_project_id(values.get("config_json")) {
            Ok(project) => Outcome::Ok(format!("service account key of project {project}")),
            Err(message) => Outcome::Failed(message),
        },
        Check::Keystone => {
            let base = v("url");
            let path = if base.trim_end_matches('/').ends_with("/v3") {
                "auth/tokens"
            } else {
                "v3/auth/tokens"
            };
            let Some(url) = join(&base, path) else {
                return invalid_url();
            };
            let body = keystone_body(values);
            http(outbound, &url, "OpenStack", |client| {
                client.post(url.clone()).json(&body)
            })
            .await
        }
        Check::Proxmox => {
            let Some(url) = join(&v("url"), "api2/json/version") else {
                return invalid_url();
            };
            let token = format!("PVEAPIToken={}={}", v("token_id"), v("token_secret"));
            http(outbound, &url, "Proxmox", |client| {
                client
                    .get(url.clone())
                    .header("Authorization", token.clone())
            })
            .await
        }
        Check::VsphereSession => {
            let Some(url) = join(&v("url"), "api/session") else {
                return invalid_url();
            };
            http(outbound, &url, "vSphere", |client| {
                client
                    .post(url.clone())
                    .basic_auth(v("username"), Some(v("password")))
            })
            .await
        }
        Check::TanzuSession => {
            let Some(mut base) = url::Url::parse(&v("url")).ok() else {
                return invalid_url();
            };
            if let Ok(port) = v("port").parse::<u16>() {
                let _ = base.set_port(Some(port));
            }
            let Some(url) = join(base.as_str(), "api/session") else {
                return invalid_url();
            };
            http(outbound, &url, "Tanzu", |client| {
                client
                    .post(url.clone())
                    .basic_auth(v("username"), Some(v("password")))
            })
            .await
        }
        Check::ZededaHealth => {
            let Ok(url) = url::Url::parse(&v("api_url")) else {
                return invalid_url();
            };
            http(outbound, &url, "Zededa", |client| {
                client.get(url.clone()).bearer_auth(v("api_token"))
            })
            .await
        }
        Check::ZadaraStructure => {
            if v("access_key_id").len() < 8 || v("secret_access_key").len() < 8 {
                Outcome::Failed("Zadara keys look too short to be real".into())
            } else {
                Outcome::Warning("checked the form of the keys only: Zadara has no read-only call to test them with".into())
            }
        }
        Check::Kubeconfig => kubeconfig(outbound, values.get("kubeconfig")).await,
    }
}

fn invalid_url() -> Outcome {
    Outcome::Failed("the URL is not valid".into())
}

/// `base` with `path` appended (keeping any path `base` already has).
fn join(base: &str, path: &str) -> Option<url::Url> {
    let mut base = url::Url::parse(base).ok()?;
    if !base.path().ends_with('/') {
        let with_slash = format!("{}/", base.path());
        base.set_path(&with_slash);
    }
    base.join(path).ok()
}

/// Sends one request and reads its status: 2xx ok, 401/403 invalid credentials, anything
/// else (including a redirect, never followed) a failure that says what came back.
async fn http(
    outbound: &Outbound,
    url: &url::Url,
    service: &str,
    request: impl FnOnce(&reqwest::Client) -> RequestBuilder,
) -> Outcome {
    if let Err(message) = outbound.check_target(url).await {
        return Outcome::Failed(message);
    }
    let origin = outbound::origin(url);
    match request(&outbound.client).send().await {
        Err(error) => Outcome::Failed(format!("could not reach {origin}: {}", reason(&error))),
        Ok(response) => match response.status() {
            status if status.is_success() => {
                Outcome::Ok(format!("{service} accepted the credentials"))
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Outcome::Failed(format!(
                "Invalid {service} credentials (HTTP {})",
                response.status().as_u16()
            )),
            StatusCode::BAD_REQUEST if service == "Azure" => {
                Outcome::Failed("Invalid Azure credentials (the token request was refused)".into())
            }
            status if status.is_redirection() => Outcome::Failed(format!(
                "{origin} answered with a redirect (HTTP {}), which keyhold does not follow: check the URL",
                status.as_u16()
            )),
            status => Outcome::Failed(format!("{origin} answered HTTP {}", status.as_u16())),
        },
    }
}

/// A short reason for a failed connection, without the request's URL (it may hold a key).
pub fn reason(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".into();
    }
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
    let mut deepest = None;
    while let Some(cause) = source {
        deepest = Some(cause.to_string());
        source = cause.source();
    }
    deepest.unwrap_or_else(|| "connection failed".into())
}

/// Signed ListBuckets against the endpoint (path style).
async fn s3(
    outbound: &Outbound,
    endpoint: &str,
    region: &str,
    access_key: &str,
    secret_key: &str,
) -> Outcome {
    let Ok(url) = url::Url::parse(endpoint) else {
        return invalid_url();
    };
    if let Err(message) = outbound.check_target(&url).await {
        return Outcome::Failed(message);
    }
    let origin = outbound::origin(&url);
    let settings = S3Settings {
        endpoint: endpoint.to_string(),
        region: region.to_string(),
        access_key: access_key.to_string(),
        secret_key: secret_key.to_string(),
    };
    let storage = match Storage::open(outbound, &settings, "").await {
        Ok(storage) => storage,
        Err(message) => return Outcome::Failed(message),
    };
    match storage.list_buckets().await {
        Ok(body) if body.contains("ListAllMyBucketsResult") => {
            Outcome::Ok("S3 accepted the credentials (ListBuckets)".into())
        }
        Ok(_) => Outcome::Failed(format!("{origin} answered, but not like an S3 endpoint")),
        Err(failure) => s3_failure(&origin, &failure),
    }
}

/// What a refused ListBuckets means to a person.
pub fn s3_failure(origin: &str, failure: &Failure) -> Outcome {
    if failure.status.is_none() {
        Outcome::Failed(failure.message.clone())
    } else if failure.bad_credentials() {
        Outcome::Failed("Invalid S3 credentials".into())
    } else if failure.denied() {
        Outcome::Warning(format!(
            "the signature is valid, but listing buckets is denied ({}): backups need write and delete on their bucket",
            failure.answer()
        ))
    } else {
        Outcome::Failed(format!("{origin} {}", failure.answer()))
    }
}

fn keystone_body(values: &Values) -> serde_json::Value {
    if values.flag("application_credentials") {
        serde_json::json!({"auth": {"identity": {"methods": ["application_credential"],
            "application_credential": {"id": values.get("user"), "secret": values.get("password")}}}})
    } else {
        serde_json::json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": values.get("user"), "domain": {"name": values.get("domain")},
                "password": values.get("password")}}},
            "scope": {"project": {"name": values.get("project"), "domain": {"name": values.get("domain")}}}}})
    }
}

#[derive(Deserialize)]
struct ServiceAccountKey {
    #[serde(rename = "type")]
    kind: String,
    project_id: String,
    client_email: String,
    private_key: String,
}

/// The project of a GCP service-account key, after checking its structure and private key.
pub fn gcp_project_id(json: &str) -> Result<String, String> {
    let key: ServiceAccountKey = serde_json::from_str(json)
        .map_err(|_| "This is not a service-account JSON key.".to_string())?;
    if key.kind != "service_account" {
        return Err("The key's type must be service_account.".into());
    }
    if key.project_id.trim().is_empty() || !key.client_email.contains('@') {
        return Err("The key has no project_id or client_email.".into());
    }
    let body: String = key
        .private_key
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = BASE64
        .decode(body.trim())
        .map_err(|_| "The key's private_key is not a PEM private key.".to_string())?;
    if !key.private_key.contains("-----BEGIN PRIVATE KEY-----") || der.len() < 64 || der[0] != 0x30
    {
        return Err("The key's private_key is not a PEM private key.".into());
    }
    Ok(key.project_id)
}

#[derive(Deserialize)]
struct Kubeconfig {
    #[serde(rename = "current-context", default)]
    current_context: String,
    #[serde(default)]
    clusters: Vec<Named<KubeCluster>>,
    #[serde(default)]
    contexts: Vec<Named<KubeContext>>,
    #[serde(default)]
    users: Vec<Named<KubeUser>>,
}

#[derive(Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "cluster", alias = "context", alias = "user")]
    item: T,
}

#[derive(Deserialize)]
struct KubeCluster {
    server: String,
    #[serde(rename = "certificate-authority-data", default)]
    certificate_authority_data: Option<String>,
    #[serde(rename = "insecure-skip-tls-verify", default)]
    insecure: bool,
}

#[derive(Deserialize)]
struct KubeContext {
    cluster: String,
    #[serde(default)]
    user: String,
}

#[derive(Deserialize, Default)]
struct KubeUser {
    #[serde(default)]
    token: Option<String>,
}

struct KubeTarget {
    server: String,
    ca: Option<Vec<u8>>,
    insecure: bool,
    token: Option<String>,
}

fn kube_target(text: &str) -> Result<KubeTarget, String> {
    let config: Kubeconfig = serde_norway::from_str(text)
        .map_err(|_| "This is not a kubeconfig (YAML with clusters and contexts).".to_string())?;
    let context = config
        .contexts
        .iter()
        .find(|context| context.name == config.current_context)
        .or(config.contexts.first())
        .ok_or("The kubeconfig has no context.")?;
    let cluster = config
        .clusters
        .iter()
        .find(|cluster| cluster.name == context.item.cluster)
        .ok_or("The kubeconfig's context names no known cluster.")?;
    crate::credentials::provider::check_url(&cluster.item.server)
        .map_err(|_| "The kubeconfig's cluster server is not an https:// URL.".to_string())?;
    let ca = match &cluster.item.certificate_authority_data {
        Some(data) => Some(
            BASE64
                .decode(data.trim())
                .map_err(|_| "certificate-authority-data is not base64.".to_string())?,
        ),
        None => None,
    };
    let token = config
        .users
        .iter()
        .find(|user| user.name == context.item.user)
        .and_then(|user| user.item.token.clone());
    Ok(KubeTarget {
        server: cluster.item.server.clone(),
        ca,
        insecure: cluster.item.insecure,
        token,
    })
}

/// The API server a kubeconfig's current context points at.
pub fn kubeconfig_server(text: &str) -> Result<String, String> {
    kube_target(text).map(|target| target.server)
}

async fn kubeconfig(outbound: &Outbound, text: &str) -> Outcome {
    let target = match kube_target(text) {
        Ok(target) => target,
        Err(message) => return Outcome::Failed(message),
    };
    let Some(url) = join(&target.server, "version") else {
        return invalid_url();
    };
    if let Err(message) = outbound.check_target(&url).await {
        return Outcome::Failed(message);
    }
    let client = match outbound.client_with_tls(target.ca.as_deref(), target.insecure) {
        Ok(client) => client,
        Err(message) => return Outcome::Failed(message),
    };
    let scoped = Outbound {
        client,
        ..outbound.clone()
    };
    http(&scoped, &url, "OpenShift", |client| {
        let request = client.get(url.clone());
        match &target.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    })
    .await
}
