//! OpenShift: a cluster administrator's kubeconfig, checked by asking its current context's API
//! server for `/version` (with the kubeconfig's CA and token); the server is stored beside the
//! fields.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;

use crate::credentials::field::{Values, check_url, secret, text};
use crate::credentials::provider::{Derived, Kind, Provider};
use crate::credentials::verify::{self, Network, Outcome, Verification};
use crate::outbound::Outbound;
use crate::web::form::FieldErrors;

pub static PROVIDER: Provider = Provider {
    kind: Kind::Cloud,
    key: "openshift",
    label: "OpenShift",
    partner_only_add: false,
    name_editable: false,
    fields: &[
        secret("kubeconfig", "Kubeconfig")
            .area()
            .help("Paste the kubeconfig of a cluster administrator."),
        secret("pull_secret", "Pull secret").area(),
        text("storage_class", "Storage class"),
        text("base_domain", "Base domain"),
    ],
    columns: &[
        ("Base domain", "base_domain"),
        ("Storage class", "storage_class"),
        ("API server", "api_server"),
    ],
    derived: &[Derived {
        key: "api_server",
        value: |values| {
            target(values.get("kubeconfig"))
                .ok()
                .map(|target| target.server)
        },
    }],
    rules,
    verify: check,
};

fn rules(values: &Values, errors: &mut FieldErrors) {
    if !values.get("kubeconfig").is_empty()
        && let Err(message) = target(values.get("kubeconfig"))
    {
        errors.add("kubeconfig", message);
    }
}

fn check<'a>(network: Network<'a>, values: &'a Values) -> Verification<'a> {
    Box::pin(async move {
        let target = match target(values.get("kubeconfig")) {
            Ok(target) => target,
            Err(message) => return Outcome::Failed(message),
        };
        let Some(url) = verify::join(&target.server, "version") else {
            return verify::invalid_url();
        };
        if let Err(message) = network.outbound.check_target(&url).await {
            return Outcome::Failed(message);
        }
        let client = match network
            .outbound
            .client_with_tls(target.ca.as_deref(), target.insecure)
        {
            Ok(client) => client,
            Err(message) => return Outcome::Failed(message),
        };
        let scoped = Outbound {
            client,
            ..network.outbound.clone()
        };
        verify::http(&scoped, &url, "OpenShift", |client| {
            let request = client.get(url.clone());
            match &target.token {
                Some(token) => request.bearer_auth(token),
                None => request,
            }
        })
        .await
    })
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

/// The API server a kubeconfig's current context points at, and how to reach it.
struct KubeTarget {
    server: String,
    ca: Option<Vec<u8>>,
    insecure: bool,
    token: Option<String>,
}

fn target(text: &str) -> Result<KubeTarget, String> {
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
    check_url(&cluster.item.server)
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
