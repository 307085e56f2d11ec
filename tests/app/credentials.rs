//! Credentials: the tests of each concern are in `credentials/`; the setup, forms and
//! helpers they share are here.

use std::collections::HashMap;

use base64::Engine;
use reqwest::StatusCode;

use crate::support::fakes::{
    self, AWS_ACCESS_KEY, GOOD, MARKER, S3_ACCESS_KEY, S3_LIMITED_KEY, S3_MARKED_KEY, marked,
};
use keyhold::credentials::provider::{self, Kind};

use crate::support::{Account, Client, TestApp, spawn_app_with, texts};

mod access;
mod actions;
mod editing;
mod listing;
mod registry;
mod secrets;
mod verification;

/// An app whose AWS and Azure checks go to the local fakes, with a Partner signed in and two
/// organizations.
struct Setup {
    app: TestApp,
    partner: Client,
    blue: i64,
    green: i64,
    fake: String,
}

async fn setup() -> Setup {
    let fake = fakes::start_cloud_fake().await;
    let sts = format!("{fake}/sts/");
    let app = spawn_app_with(&[
        ("KEYHOLD_AWS_STS_ENDPOINT", sts.as_str()),
        ("KEYHOLD_AZURE_AUTHORITY", fake.as_str()),
        ("KEYHOLD_OUTBOUND_TIMEOUT_SECONDS", "2"),
    ])
    .await;
    let (partner, _) = app.partner().await;
    let blue = partner.create_organization(&app, "Blue Org").await;
    let green = partner.create_organization(&app, "Green Org").await;
    Setup {
        app,
        partner,
        blue,
        green,
        fake,
    }
}

impl Setup {
    async fn signed_in(&self, account: Account) -> Client {
        self.app.signed_in(&account).await
    }

    async fn manager(&self, email: &str, organization: i64) -> Client {
        let account = self
            .partner
            .create_user(email, "manager", Some(organization))
            .await;
        self.signed_in(account).await
    }

    fn credential_id(&self, name: &str) -> i64 {
        let name = name.to_string();
        self.app.query(move |conn| {
            use diesel::prelude::*;
            use keyhold::schema::credentials;
            credentials::table
                .filter(credentials::name.eq(name))
                .select(credentials::id)
                .first::<i64>(conn)
        })
    }
}

#[derive(diesel::QueryableByName)]
struct TextValue {
    #[diesel(sql_type = diesel::sql_types::Text)]
    value: String,
}

fn text_column(app: &TestApp, sql: &str) -> String {
    let sql = sql.to_string();
    app.query(move |conn| {
        use diesel::prelude::*;
        diesel::sql_query(sql).get_result::<TextValue>(conn)
    })
    .value
}

/// Posts an add form (with the CSRF token of its page).
async fn add(client: &Client, kind: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let provider = fields
        .iter()
        .find(|(k, _)| *k == "provider")
        .map(|(_, v)| format!("?provider={v}"))
        .unwrap_or_default();
    client
        .post_from(
            &format!("/credentials/{kind}/new{provider}"),
            &format!("/credentials/{kind}"),
            fields,
        )
        .await
}

fn s3_fields<'a>(
    org: &'a str,
    name: &'a str,
    endpoint: &'a str,
    key: &'a str,
    secret: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("organization_id", org),
        ("name", name),
        ("access_key_id", key),
        ("secret_access_key", secret),
        ("endpoint", endpoint),
        ("region", "us-east-1"),
    ]
}

/// Valid add forms for every cloud provider, against the fakes.
fn cloud_forms(
    fake: &str,
    secret: &dyn Fn(&str) -> String,
) -> Vec<(&'static str, Vec<(String, String)>)> {
    let port = url::Url::parse(fake).unwrap().port().unwrap().to_string();
    let gcp_key = serde_json::json!({
        "type": "service_account",
        "project_id": "keyhold-demo",
        "client_email": "svc@keyhold-demo.iam.gserviceaccount.com",
        "private_key": format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode([0x30u8; 96])
        ),
        "private_key_id": secret("config_json"),
    })
    .to_string();
    let kubeconfig = format!(
        "apiVersion: v1\nclusters:\n- name: c\n  cluster:\n    server: {fake}/k8s\ncontexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\ncurrent-context: ctx\nusers:\n- name: u\n  user:\n    token: {}\n",
        secret("kubeconfig")
    );
    let networks = |v: &mut Vec<(String, String)>| {
        for (k, val) in [
            ("public_network", "10.0.0.0"),
            ("public_netmask", "24"),
            ("public_gateway", "10.0.0.1"),
            ("public_range_begin", "10.0.0.10"),
            ("public_range_end", "10.0.0.50"),
            ("public_bridge", "vmbr0"),
            ("private_network", "192.168.5.0"),
            ("private_netmask", "24"),
            ("private_gateway", "192.168.5.1"),
            ("private_range_begin", "192.168.5.10"),
            ("private_range_end", "192.168.5.90"),
            ("private_bridge", "vmbr1"),
        ] {
            v.push((k.into(), val.into()));
        }
    };
    let pairs = |list: &[(&str, String)]| {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<Vec<_>>()
    };
    let mut proxmox = pairs(&[
        ("url", fake.into()),
        ("token_id", "root@pam!keyhold".into()),
        ("token_secret", secret("token_secret")),
        ("storage", "local-lvm".into()),
        ("vm_template", "ubuntu-24".into()),
        ("hypervisors", "pve1\npve2".into()),
        ("continent", "Europe".into()),
    ]);
    networks(&mut proxmox);
    let mut vsphere = pairs(&[
        ("url", fake.into()),
        ("username", "administrator".into()),
        ("password", secret("password")),
        ("datacenter", "dc1".into()),
        ("resource_pool", "pool".into()),
        ("datastore", "ds1".into()),
        ("drs_enabled", "on".into()),
        ("vm_template", "ubuntu".into()),
        ("continent", "Europe".into()),
    ]);
    networks(&mut vsphere);
    vec![
        (
            "aws",
            pairs(&[
                ("access_key_id", AWS_ACCESS_KEY.into()),
                ("secret_access_key", secret("secret_access_key")),
                ("region", "eu-west-1".into()),
                ("az_count", "2".into()),
            ]),
        ),
        (
            "azure",
            pairs(&[
                ("client_id", "client-0123456789".into()),
                ("client_secret", secret("client_secret")),
                ("tenant_id", "tenant-1".into()),
                ("subscription_id", "sub-1".into()),
                ("location", "westeurope".into()),
                ("az_count", "1".into()),
            ]),
        ),
        (
            "gcp",
            pairs(&[
                ("config_json", gcp_key),
                ("folder_id", "folder-1".into()),
                ("billing_account_id", "billing-1".into()),
                ("region", "europe-west1".into()),
                ("az_count", "1".into()),
            ]),
        ),
        (
            "openstack",
            pairs(&[
                ("url", format!("{fake}/v3")),
                ("user", "demo".into()),
                ("password", secret("password")),
                ("domain", "Default".into()),
                ("project", "demo".into()),
                ("region", "RegionOne".into()),
                ("public_network", "public".into()),
            ]),
        ),
        ("proxmox", proxmox),
        ("vsphere", vsphere),
        (
            "zadara",
            pairs(&[
                ("url", fake.into()),
                ("access_key_id", "ZADARAKEY0001".into()),
                ("secret_access_key", secret("secret_access_key")),
                ("region", "us-east".into()),
                ("az_count", "1".into()),
                ("volume_type", "gp3".into()),
                ("continent", "North America".into()),
            ]),
        ),
        (
            "openshift",
            pairs(&[
                ("kubeconfig", kubeconfig),
                ("pull_secret", secret("pull_secret")),
                ("storage_class", "standard".into()),
                ("base_domain", "apps.example.com".into()),
            ]),
        ),
        (
            "tanzu",
            pairs(&[
                ("url", fake.into()),
                ("port", port),
                ("username", "admin".into()),
                ("password", secret("password")),
                ("namespace", "ns1".into()),
                ("volume_type", "thin".into()),
                ("continent", "Europe".into()),
            ]),
        ),
        (
            "zededa",
            pairs(&[
                ("api_url", format!("{fake}/zededa")),
                ("api_token", secret("api_token")),
                ("project", "edge".into()),
                ("edge_nodes", "node-1\nnode-2".into()),
                ("continent", "Asia".into()),
            ]),
        ),
    ]
}

/// The valid add form of every cloud provider the registry lists, in its order: a provider
/// without a fixture in `cloud_forms` (or a fixture of no provider) fails the test.
fn every_cloud_form(
    fake: &str,
    secret: &dyn Fn(&str) -> String,
) -> Vec<(&'static str, Vec<(String, String)>)> {
    let mut fixtures: HashMap<_, _> = cloud_forms(fake, secret).into_iter().collect();
    let forms = Kind::Cloud
        .spec()
        .providers()
        .map(|provider| match fixtures.remove(provider.key) {
            Some(fields) => (provider.key, fields),
            None => panic!(
                "the cloud provider {} has no fixture in cloud_forms",
                provider.key
            ),
        })
        .collect();
    assert!(
        fixtures.is_empty(),
        "fixtures of no provider: {:?}",
        fixtures.keys()
    );
    forms
}

async fn add_cloud(
    client: &Client,
    organization: i64,
    provider: &str,
    name: &str,
    fields: &[(String, String)],
) -> reqwest::Response {
    let organization = organization.to_string();
    let mut form: Vec<(&str, &str)> = vec![
        ("provider", provider),
        ("organization_id", &organization),
        ("name", name),
    ];
    form.extend(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    add(client, "cloud", &form).await
}

async fn add_ai(setup: &Setup, client: &Client, organization: i64, name: &str) -> i64 {
    let org = organization.to_string();
    let response = add(
        client,
        "ai",
        &[
            ("organization_id", &org),
            ("name", name),
            ("api_key", GOOD),
            ("base_url", &setup.fake),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{name} added");
    setup.credential_id(name)
}

async fn act(client: &Client, kind: &str, id: i64, action: &str) -> reqwest::Response {
    client
        .post_from(
            &format!("/credentials/{kind}"),
            &format!("/credentials/{kind}/{id}/{action}"),
            &[],
        )
        .await
}

fn scraper_value(body: &str, selector: &str) -> String {
    let html = scraper::Html::parse_document(body);
    let selector = scraper::Selector::parse(selector).unwrap();
    html.select(&selector)
        .next()
        .and_then(|e| e.value().attr("value"))
        .unwrap_or_default()
        .to_string()
}

/// Inserts AI credentials straight through the model (no verification round-trips).
fn seed_ai(app: &TestApp, organization: i64, prefix: &str, count: usize) {
    seed_ai_at(app, organization, prefix, count, "https://api.example.com");
}

/// AI credentials sealed with the old key only, straight through the model.
fn seed_ai_at(app: &TestApp, organization: i64, prefix: &str, count: usize, base_url: &str) {
    crate::support::seed_credentials(app, organization, Kind::Ai, count, |n| {
        (
            format!("{prefix}-key-{n:02}"),
            vec![("base_url", base_url.to_string())],
            vec![("api_key", GOOD.to_string())],
        )
    });
}
