use std::collections::HashMap;

use base64::Engine;
use reqwest::StatusCode;

use crate::fakes::{
    self, AWS_ACCESS_KEY, GOOD, MARKER, S3_ACCESS_KEY, S3_LIMITED_KEY, S3_MARKED_KEY, marked,
};
use crate::helpers::{Account, Client, TestApp, spawn_app_with, texts};

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

#[actix_web::test]
async fn backup_credentials_are_verified_against_a_real_s3_server_before_saving() {
    let setup = setup().await;
    let s3 = fakes::start_s3().await;
    let blue = setup.blue.to_string();
    let partner = &setup.partner;

    let wrong = add(
        partner,
        "backup",
        &s3_fields(
            &blue,
            "Wrong secret",
            &s3.endpoint,
            S3_ACCESS_KEY,
            "not-the-secret",
        ),
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = wrong.text().await.unwrap();
    assert_eq!(
        texts(&body, ".verify-box"),
        vec!["Invalid S3 credentials".to_string()]
    );
    assert!(!body.contains("not-the-secret"), "secrets are never echoed");
    assert!(
        body.contains("value=\"Wrong secret\""),
        "other values are kept"
    );
    assert_eq!(setup.app.count("credentials"), 0, "nothing saved");

    let unreachable = format!("http://127.0.0.1:{}", fakes::closed_port());
    let down = add(
        partner,
        "backup",
        &s3_fields(&blue, "Down", &unreachable, S3_ACCESS_KEY, GOOD),
    )
    .await;
    assert_eq!(down.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let message = texts(&down.text().await.unwrap(), ".verify-box").join("");
    assert!(
        message.starts_with(&format!("could not reach {unreachable}")),
        "{message}"
    );

    let ok = add(
        partner,
        "backup",
        &s3_fields(&blue, "Main backups", &s3.endpoint, S3_ACCESS_KEY, GOOD),
    )
    .await;
    assert_eq!(
        ok.status(),
        StatusCode::SEE_OTHER,
        "{:?}",
        texts(&ok.text().await.unwrap(), ".verify-box, p.error")
    );
    let limited = add(
        partner,
        "backup",
        &s3_fields(&blue, "Limited", &s3.endpoint, S3_LIMITED_KEY, GOOD),
    )
    .await;
    assert_eq!(
        limited.status(),
        StatusCode::SEE_OTHER,
        "AccessDenied with a valid signature is saved"
    );
    let page = partner.page("/credentials/backup").await;
    assert!(
        page.contains("Warning: the signature is valid, but listing buckets is denied"),
        "warning shown"
    );
    assert!(
        page.contains("Main backups")
            && page.contains(S3_ACCESS_KEY)
            && page.contains(&s3.endpoint)
    );

    // Stored sealed: neither column holds the secret, and the row verifies on demand.
    let id = setup.credential_id("Main backups");
    let row = text_column(
        &setup.app,
        &format!("SELECT row_to_json(c)::text AS value FROM credentials c WHERE id = {id}"),
    );
    assert!(!row.contains(GOOD), "no plaintext secret in the row");
    let verified = partner
        .post_from(
            "/credentials/backup",
            &format!("/credentials/backup/{id}/verify"),
            &[],
        )
        .await;
    assert_eq!(verified.status(), StatusCode::SEE_OTHER);
    let page = partner.page("/credentials/backup").await;
    assert!(page.contains("Main backups verified"), "flash after verify");
}

#[actix_web::test]
async fn billing_and_showback_are_verified_against_a_real_prometheus() {
    let setup = setup().await;
    let prometheus = fakes::start_prometheus().await;
    let blue = setup.blue.to_string();
    for (kind, name) in [("billing", "Billing prom"), ("showback", "Showback prom")] {
        let wrong = add(
            &setup.partner,
            kind,
            &[
                ("organization_id", &blue),
                ("name", name),
                ("username", &prometheus.user),
                ("password", "wrong"),
                ("url", &prometheus.url),
            ],
        )
        .await;
        assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY, "{kind}");
        let message = texts(&wrong.text().await.unwrap(), ".verify-box").join("");
        assert_eq!(message, "Invalid Prometheus credentials (HTTP 401)");
        let ok = add(
            &setup.partner,
            kind,
            &[
                ("organization_id", &blue),
                ("name", name),
                ("username", &prometheus.user),
                ("password", GOOD),
                ("url", &prometheus.url),
            ],
        )
        .await;
        assert_eq!(ok.status(), StatusCode::SEE_OTHER, "{kind}");
    }
    assert_eq!(setup.app.count("credentials"), 2);
}

#[actix_web::test]
async fn ai_keys_are_checked_and_redirects_and_metadata_addresses_are_refused() {
    let setup = setup().await;
    let blue = setup.blue.to_string();
    let cases = [
        ("Bad key", setup.fake.clone(), "wrong-key", "Invalid API credentials (HTTP 401)".to_string()),
        (
            "Redirected",
            format!("{}/redirect", setup.fake),
            GOOD,
            format!("{} answered with a redirect (HTTP 302), which keyhold does not follow: check the URL", setup.fake),
        ),
        (
            "Metadata",
            "http://169.254.169.254".to_string(),
            GOOD,
            "http://169.254.169.254 resolves to 169.254.169.254, an address keyhold does not connect to".to_string(),
        ),
        (
            "Metadata hex",
            "http://0xA9FEA9FE".to_string(),
            GOOD,
            "http://169.254.169.254 resolves to 169.254.169.254, an address keyhold does not connect to".to_string(),
        ),
    ];
    for (name, url, key, expected) in cases {
        let response = add(
            &setup.partner,
            "ai",
            &[
                ("organization_id", &blue),
                ("name", name),
                ("api_key", key),
                ("base_url", &url),
            ],
        )
        .await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name}"
        );
        assert_eq!(
            texts(&response.text().await.unwrap(), ".verify-box").join(""),
            expected,
            "{name}"
        );
    }
    let ok = add(
        &setup.partner,
        "ai",
        &[
            ("organization_id", &blue),
            ("name", "Good key"),
            ("api_key", GOOD),
            ("base_url", &setup.fake),
        ],
    )
    .await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
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

#[actix_web::test]
async fn every_cloud_provider_can_be_added_and_is_checked_against_its_api() {
    let setup = setup().await;
    for (provider, fields) in cloud_forms(&setup.fake, &|_| GOOD.to_string()) {
        let name = format!("{provider}-ok");
        let response = add_cloud(&setup.partner, setup.blue, provider, &name, &fields).await;
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(
            status,
            StatusCode::SEE_OTHER,
            "{provider}: {:?} {:?}",
            texts(&body, ".verify-box"),
            texts(&body, "p.error")
        );

        // The same values with a wrong secret are refused (except where only the structure
        // can be checked).
        let wrong: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| {
                let secret_field = [
                    "secret_access_key",
                    "client_secret",
                    "password",
                    "token_secret",
                    "api_token",
                ]
                .contains(&k.as_str());
                (
                    k.clone(),
                    if secret_field {
                        "wrong-value-123".to_string()
                    } else {
                        v.clone()
                    },
                )
            })
            .collect();
        if !["gcp", "zadara", "openshift"].contains(&provider) {
            let response = add_cloud(
                &setup.partner,
                setup.blue,
                provider,
                &format!("{provider}-bad"),
                &wrong,
            )
            .await;
            assert_eq!(
                response.status(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "{provider} with a wrong secret"
            );
            let message = texts(&response.text().await.unwrap(), ".verify-box").join("");
            assert!(message.starts_with("Invalid"), "{provider}: {message}");
        }
    }
    let page = setup.partner.page("/credentials/cloud?provider=gcp").await;
    assert!(
        page.contains("keyhold-demo"),
        "GCP project id derived from the key"
    );
    let page = setup
        .partner
        .page("/credentials/cloud?provider=openshift")
        .await;
    assert!(
        page.contains(&format!("{}/k8s", setup.fake)),
        "API server derived from the kubeconfig"
    );
}

#[actix_web::test]
async fn a_key_whose_project_id_says_only_is_verified_without_a_warning() {
    let setup = setup().await;
    let mut fields = cloud_forms(&setup.fake, &|_| GOOD.to_string())
        .into_iter()
        .find(|(provider, _)| *provider == "gcp")
        .unwrap()
        .1;
    for (key, value) in &mut fields {
        if key == "config_json" {
            *value = value.replace("keyhold-demo", "readonly-analytics");
        }
    }
    let response = add_cloud(&setup.partner, setup.blue, "gcp", "gcp-readonly", &fields).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);

    let page = setup.partner.page("/credentials/cloud?provider=gcp").await;
    assert!(page.contains("readonly-analytics"), "the key's project id");
    assert_eq!(
        texts(&page, "span.verify"),
        vec!["✓ Verified".to_string()],
        "the check passed without a warning, whatever words its message holds"
    );
}

#[actix_web::test]
async fn invalid_cloud_forms_answer_422_with_messages_next_to_the_fields() {
    let setup = setup().await;
    let forms: HashMap<_, _> = cloud_forms(&setup.fake, &|_| GOOD.to_string())
        .into_iter()
        .collect();
    let mut aws = forms["aws"].clone();
    aws.retain(|(k, _)| k != "az_count");
    aws.push(("az_count".into(), "4".into()));
    let response = add_cloud(&setup.partner, setup.blue, "aws", "bad name!", &aws).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = response.text().await.unwrap();
    assert_eq!(
        texts(&body, "#name-help"),
        vec!["only letters, digits and -".to_string()]
    );
    assert_eq!(
        texts(&body, "#az_count-help"),
        vec!["Enter a number from 1 to 3.".to_string()]
    );
    assert!(!body.contains(GOOD), "secret fields are never echoed");

    let mut gcp = forms["gcp"].clone();
    gcp.push(("import_project".into(), "on".into()));
    let response = add_cloud(&setup.partner, setup.blue, "gcp", "gcp-import", &gcp).await;
    let body = response.text().await.unwrap();
    assert_eq!(
        texts(&body, "#folder_id-help"),
        vec!["Leave empty when importing a project.".to_string()]
    );

    let mut proxmox = forms["proxmox"].clone();
    for (k, v) in proxmox.iter_mut() {
        if k == "public_gateway" {
            *v = "10.9.9.1".into();
        }
        if k == "private_netmask" {
            *v = "33".into();
        }
    }
    let response = add_cloud(&setup.partner, setup.blue, "proxmox", "pve", &proxmox).await;
    let body = response.text().await.unwrap();
    assert_eq!(
        texts(&body, "#public_gateway-help"),
        vec!["Must be inside 10.0.0.0/24.".to_string()]
    );
    assert_eq!(
        texts(&body, "#private_netmask-help"),
        vec!["Enter a number from 1 to 32.".to_string()]
    );
    assert_eq!(setup.app.count("credentials"), 0);
}

#[actix_web::test]
async fn names_are_unique_per_organization_and_kind() {
    let setup = setup().await;
    for organization in [setup.blue, setup.green] {
        let org = organization.to_string();
        let response = add(
            &setup.partner,
            "ai",
            &[
                ("organization_id", &org),
                ("name", "Shared name"),
                ("api_key", GOOD),
                ("base_url", &setup.fake),
            ],
        )
        .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
    }
    let blue = setup.blue.to_string();
    let again = add(
        &setup.partner,
        "ai",
        &[
            ("organization_id", &blue),
            ("name", "Shared name"),
            ("api_key", GOOD),
            ("base_url", &setup.fake),
        ],
    )
    .await;
    assert_eq!(again.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        texts(&again.text().await.unwrap(), "#name-help"),
        vec!["Shared name already exists".to_string()]
    );
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

#[actix_web::test]
async fn lock_unlock_default_and_delete_follow_the_rules() {
    let setup = setup().await;
    let partner = &setup.partner;
    let first = add_ai(&setup, partner, setup.blue, "First key").await;
    let second = add_ai(&setup, partner, setup.blue, "Second key").await;

    assert_eq!(
        act(partner, "ai", first, "lock").await.status(),
        StatusCode::SEE_OTHER
    );
    let again = act(partner, "ai", first, "lock").await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert!(again.text().await.unwrap().contains("already locked"));
    assert_eq!(
        partner
            .get(&format!("/credentials/ai/{first}/edit"))
            .await
            .status(),
        StatusCode::CONFLICT
    );
    assert_eq!(
        act(partner, "ai", first, "delete").await.status(),
        StatusCode::CONFLICT
    );
    assert_eq!(
        act(partner, "ai", first, "default").await.status(),
        StatusCode::CONFLICT,
        "locked cannot become default"
    );
    assert_eq!(
        act(partner, "ai", first, "unlock").await.status(),
        StatusCode::SEE_OTHER
    );
    let again = act(partner, "ai", first, "unlock").await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert!(again.text().await.unwrap().contains("already unlocked"));

    assert_eq!(
        act(partner, "ai", first, "default").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        act(partner, "ai", second, "default").await.status(),
        StatusCode::SEE_OTHER
    );
    let defaults = text_column(
        &setup.app,
        "SELECT string_agg(name, ',') AS value FROM credentials WHERE is_default",
    );
    assert_eq!(
        defaults, "Second key",
        "making one default clears the other"
    );
    let page = partner.get("/credentials/ai").await.text().await.unwrap();
    assert_eq!(
        texts(&page, "tr.row-default .badge-default"),
        vec!["Default".to_string()]
    );

    assert_eq!(
        act(partner, "ai", first, "delete").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(setup.app.count("credentials"), 1);
    assert_eq!(
        act(partner, "ai", first, "delete").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        act(partner, "ai", second, "frobnicate").await.status(),
        StatusCode::NOT_FOUND
    );

    let audit = partner.get("/audit").await.text().await.unwrap();
    for action in [
        "credential.create",
        "credential.lock",
        "credential.unlock",
        "credential.default",
        "credential.delete",
    ] {
        assert!(audit.contains(action), "{action} audited");
    }
}

#[actix_web::test]
async fn showback_credentials_have_no_default() {
    let setup = setup().await;
    let prometheus = fakes::start_prometheus().await;
    let blue = setup.blue.to_string();
    let response = add(
        &setup.partner,
        "showback",
        &[
            ("organization_id", &blue),
            ("name", "Showback"),
            ("url", &prometheus.url),
            ("username", &prometheus.user),
            ("password", GOOD),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let id = setup.credential_id("Showback");
    assert_eq!(
        act(&setup.partner, "showback", id, "default")
            .await
            .status(),
        StatusCode::CONFLICT
    );
}

#[actix_web::test]
async fn concurrent_make_default_leaves_exactly_one_default() {
    let setup = setup().await;
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(add_ai(&setup, &setup.partner, setup.blue, &format!("Key {n}")).await);
    }
    let token = setup.partner.token("/credentials/ai").await;
    let requests = ids.iter().map(|id| {
        setup
            .partner
            .http
            .post(format!(
                "{}/credentials/ai/{id}/default",
                setup.partner.base
            ))
            .form(&[("csrf_token", token.as_str())])
            .send()
    });
    let responses = futures_util::future::join_all(requests).await;
    for response in responses {
        let status = response.unwrap().status();
        assert!(
            status == StatusCode::SEE_OTHER || status == StatusCode::CONFLICT,
            "{status}"
        );
    }
    assert_eq!(setup.app.count("credentials WHERE is_default"), 1);
}

#[actix_web::test]
async fn a_stale_edit_is_refused_instead_of_overwriting() {
    let setup = setup().await;
    let id = add_ai(&setup, &setup.partner, setup.blue, "Edited key").await;
    let form_page = setup
        .partner
        .page(&format!("/credentials/ai/{id}/edit"))
        .await;
    let version = scraper_value(&form_page, "input[name=version]");
    let token = crate::helpers::csrf_token(&form_page).unwrap();
    let path = format!("/credentials/ai/{id}");
    let save = |name: &'static str| {
        let fields = vec![
            ("csrf_token", token.clone()),
            ("version", version.clone()),
            ("name", name.to_string()),
            ("api_key", String::new()),
            ("base_url", setup.fake.clone()),
        ];
        let request = setup
            .partner
            .http
            .post(format!("{}{path}", setup.partner.base))
            .form(&fields);
        async move { request.send().await.unwrap() }
    };
    let first = save("First edit").await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let second = save("Second edit").await;
    assert_eq!(second.status(), StatusCode::CONFLICT);
    assert!(
        second
            .text()
            .await
            .unwrap()
            .contains("changed by someone else")
    );
    let name = text_column(
        &setup.app,
        &format!("SELECT name AS value FROM credentials WHERE id = {id}"),
    );
    assert_eq!(name, "First edit");
    let audit = text_column(
        &setup.app,
        "SELECT array_to_string(fields, ',') AS value FROM audit_events WHERE action = 'credential.update'",
    );
    assert_eq!(audit, "name", "only the changed field's name is audited");
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

#[actix_web::test]
async fn editing_a_secret_reverifies_and_blank_keeps_it() {
    let setup = setup().await;
    let id = add_ai(&setup, &setup.partner, setup.blue, "Rotating key").await;
    let partner = &setup.partner;
    let edit = |key: &'static str| async move {
        let page = partner.page(&format!("/credentials/ai/{id}/edit")).await;
        let version = scraper_value(&page, "input[name=version]");
        let token = crate::helpers::csrf_token(&page).unwrap();
        assert!(!page.contains(GOOD), "the edit form never shows the secret");
        partner
            .post(
                &format!("/credentials/ai/{id}"),
                &[
                    ("csrf_token", token.as_str()),
                    ("version", version.as_str()),
                    ("name", "Rotating key"),
                    ("api_key", key),
                    ("base_url", ""),
                ],
            )
            .await
    };
    let wrong = edit("wrong-key").await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        texts(&wrong.text().await.unwrap(), ".verify-box").join(""),
        "Invalid API credentials (HTTP 401)"
    );
    assert_eq!(
        edit("").await.status(),
        StatusCode::SEE_OTHER,
        "blank secret = unchanged, still valid"
    );
}

#[actix_web::test]
async fn roles_and_organizations_decide_who_reaches_which_credential() {
    let setup = setup().await;
    let blue_key = add_ai(&setup, &setup.partner, setup.blue, "Blue key").await;
    let green_key = add_ai(&setup, &setup.partner, setup.green, "Green key").await;
    let manager = setup.manager("mia@blue.example", setup.blue).await;
    let other = setup.manager("gus@green.example", setup.green).await;
    let user = setup
        .signed_in(
            setup
                .partner
                .create_user("ulf@blue.example", "user", Some(setup.blue))
                .await,
        )
        .await;

    for path in [
        "/credentials",
        "/credentials/cloud",
        "/credentials/ai",
        "/credentials/ai/new",
        &format!("/credentials/ai/{blue_key}"),
        &format!("/credentials/ai/{blue_key}/edit"),
    ] {
        assert_eq!(
            user.get(path).await.status(),
            StatusCode::FORBIDDEN,
            "User GET {path}"
        );
    }
    assert_eq!(
        act(&user, "ai", blue_key, "lock").await.status(),
        StatusCode::FORBIDDEN
    );

    assert_eq!(
        manager.get("/credentials/billing").await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        setup.partner.get("/credentials/billing").await.status(),
        StatusCode::OK
    );
    let tabs = texts(
        &manager.get("/credentials/ai").await.text().await.unwrap(),
        "nav.tabs a",
    );
    assert_eq!(tabs, vec!["Cloud", "Backup", "Showback", "AI"]);

    let list = manager.get("/credentials/ai").await.text().await.unwrap();
    assert!(list.contains("Blue key") && !list.contains("Green key"));
    let foreign = [
        format!("/credentials/ai/{green_key}"),
        format!("/credentials/ai/{green_key}/edit"),
    ];
    for path in &foreign {
        assert_eq!(
            manager.get(path).await.status(),
            StatusCode::NOT_FOUND,
            "Manager GET {path}"
        );
    }
    for action in ["lock", "unlock", "default", "verify", "delete"] {
        assert_eq!(
            act(&manager, "ai", green_key, action).await.status(),
            StatusCode::NOT_FOUND,
            "{action} foreign"
        );
    }
    let update = manager
        .post_from(
            "/credentials/ai",
            &format!("/credentials/ai/{green_key}"),
            &[("version", "1"), ("name", "Stolen")],
        )
        .await;
    assert_eq!(update.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        act(&other, "ai", blue_key, "lock").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        setup
            .partner
            .get(&format!("/credentials/backup/{blue_key}"))
            .await
            .status(),
        StatusCode::NOT_FOUND,
        "wrong kind"
    );

    // A Manager's credentials always belong to their own organization, whatever the form says.
    let green = setup.green.to_string();
    let response = add(
        &manager,
        "ai",
        &[
            ("organization_id", &green),
            ("name", "Sneaky"),
            ("api_key", GOOD),
            ("base_url", &setup.fake),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let owner = text_column(
        &setup.app,
        "SELECT organization_id::text AS value FROM credentials WHERE name = 'Sneaky'",
    );
    assert_eq!(owner, setup.blue.to_string());

    // Proxmox and Tanzu: only Partners add them; Managers view, edit and lock them.
    assert_eq!(
        manager
            .get("/credentials/cloud/new?provider=proxmox")
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let choices = texts(
        &manager.page("/credentials/cloud/new").await,
        ".provider-grid a",
    );
    assert!(
        !choices.contains(&"Proxmox".to_string())
            && !choices.contains(&"Tanzu".to_string())
            && choices.contains(&"AWS".to_string())
    );
    let forms: HashMap<_, _> = cloud_forms(&setup.fake, &|_| GOOD.to_string())
        .into_iter()
        .collect();
    let refused = add_cloud(&manager, setup.blue, "tanzu", "tanzu-m", &forms["tanzu"]).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        add_cloud(
            &setup.partner,
            setup.blue,
            "proxmox",
            "pve-blue",
            &forms["proxmox"]
        )
        .await
        .status(),
        StatusCode::SEE_OTHER
    );
    let pve = setup.credential_id("pve-blue");
    assert_eq!(
        manager
            .get(&format!("/credentials/cloud/{pve}/edit"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        act(&manager, "cloud", pve, "lock").await.status(),
        StatusCode::SEE_OTHER
    );
}

#[actix_web::test]
async fn search_sort_paging_and_the_organization_filter_work_with_and_without_htmx() {
    let setup = setup().await;
    seed_ai(&setup.app, setup.blue, "blue", 55);
    seed_ai(&setup.app, setup.green, "green", 5);
    let partner = &setup.partner;

    let page = partner.get("/credentials/ai").await.text().await.unwrap();
    assert_eq!(texts(&page, "tbody#rows tr").len(), 50, "50 a page");
    assert!(page.contains("60 credentials"));
    let second = partner.page("/credentials/ai?page=2").await;
    assert_eq!(texts(&second, "tbody#rows tr").len(), 10);

    let sorted = partner.page("/credentials/ai?sort=name&dir=desc").await;
    let names = texts(&sorted, "tbody#rows td.name summary");
    assert_eq!(names.first().map(String::as_str), Some("green-key-04"));
    let by_org = partner
        .page("/credentials/ai?sort=organization&dir=asc")
        .await;
    assert!(texts(&by_org, "tbody#rows td.name summary")[0].starts_with("blue"));

    let filtered = partner
        .page(&format!("/credentials/ai?org={}", setup.green))
        .await;
    assert_eq!(texts(&filtered, "tbody#rows tr").len(), 5);

    let search = partner.get_htmx("/credentials/ai?q=KEY-0").await;
    assert_eq!(search.status(), StatusCode::OK);
    let fragment = search.text().await.unwrap();
    assert!(
        !fragment.contains("<html") && !fragment.contains("<nav class=\"tabs\""),
        "only the results"
    );
    assert_eq!(
        texts(&fragment, "tbody#rows tr").len(),
        15,
        "blue-key-00..09 and green-key-00..04"
    );

    for hostile in ["'; DROP TABLE credentials; --", "%", "_", "\\", "ü\u{0}"] {
        let encoded: String = url::form_urlencoded::byte_serialize(hostile.as_bytes()).collect();
        let response = partner.get(&format!("/credentials/ai?q={encoded}&sort={encoded}&dir={encoded}&org={encoded}&page={encoded}")).await;
        assert!(
            response.status().is_success(),
            "{hostile}: {}",
            response.status()
        );
    }
    assert_eq!(setup.app.count("credentials"), 60);
    let manager = setup.manager("mia@blue.example", setup.blue).await;
    let managed = manager
        .page(&format!("/credentials/ai?org={}", setup.green))
        .await;
    assert!(
        !managed.contains("green-key"),
        "the organization filter cannot widen a Manager's scope"
    );
}

#[actix_web::test]
async fn totals_are_kept_and_searches_counted_up_to_a_bound_in_every_order() {
    let setup = setup().await;
    seed_ai(&setup.app, setup.blue, "blue", 1020);
    let partner = &setup.partner;
    let count_of = |page: &str| texts(page, "p.count").join("");
    let names_of = |page: &str| texts(page, "tbody#rows td.name summary");

    let tab = partner.get("/credentials/ai").await.text().await.unwrap();
    assert_eq!(count_of(&tab), "1,020 credentials", "the kept total");
    setup.app.query(|conn| {
        diesel::RunQueryDsl::execute(
            diesel::sql_query("DELETE FROM credentials WHERE name = 'blue-key-500'"),
            conn,
        )
    });
    let tab = partner.get("/credentials/ai").await.text().await.unwrap();
    assert_eq!(count_of(&tab), "1,019 credentials", "kept through deletes");
    let past_the_end = partner.page("/credentials/ai?page=99").await;
    assert!(names_of(&past_the_end).is_empty());
    assert_eq!(count_of(&past_the_end), "1,019 credentials");

    let mut all: Vec<String> = (0..1020)
        .filter(|n| *n != 500)
        .map(|n| format!("blue-key-{n:02}"))
        .collect();
    all.sort_by_key(|name| name.to_lowercase());

    // A broad term: more than the bound, the page still in name order, a next page offered.
    let broad = partner.fragment("/credentials/ai?q=key").await;
    assert_eq!(count_of(&broad), "more than 1,000 credentials");
    assert_eq!(names_of(&broad), all[..50].to_vec());
    assert!(broad.contains("page=2"), "a next page");
    let deep = partner.fragment("/credentials/ai?q=key&page=21").await;
    assert_eq!(names_of(&deep), all[1000..].to_vec(), "the last 19 matches");

    // A narrow term: counted exactly, sorted either way.
    let narrow: Vec<&String> = all.iter().filter(|name| name.contains("key-10")).collect();
    let page = partner
        .fragment("/credentials/ai?q=KEY-10&sort=name&dir=desc")
        .await;
    assert_eq!(count_of(&page), format!("{} credentials", narrow.len()));
    let mut descending: Vec<String> = narrow.iter().map(|name| name.to_string()).collect();
    descending.reverse();
    assert_eq!(names_of(&page), descending);
    let none = partner.fragment("/credentials/ai?q=no-such-key").await;
    assert_eq!(count_of(&none), "0 credentials");
}

/// Inserts AI credentials straight through the model (no verification round-trips).
fn seed_ai(app: &TestApp, organization: i64, prefix: &str, count: usize) {
    seed_ai_at(app, organization, prefix, count, "https://api.example.com");
}

#[actix_web::test]
async fn an_opened_row_loads_its_details_from_the_detail_route() {
    let setup = setup().await;
    let id = add_ai(&setup, &setup.partner, setup.blue, "Detailed key").await;
    let list = setup.partner.page("/credentials/ai").await;
    assert!(list.contains(&format!("hx-get=\"/credentials/ai/{id}\"")));
    assert!(
        list.contains(&format!("href=\"/credentials/ai/{id}\"")),
        "a link without JS"
    );
    assert!(
        !list.contains("Last modified by"),
        "details are not in every row"
    );
    let fragment = setup
        .partner
        .fragment(&format!("/credentials/ai/{id}"))
        .await;
    assert!(
        fragment.contains("Last modified by")
            && fragment.contains("Associated projects")
            && !fragment.contains("<html"),
        "{fragment}"
    );
    // Who created it and who changed it last, each under its own label.
    setup.manager("mia@blue.example", setup.blue).await;
    setup.app.query(move |conn| {
        use diesel::prelude::*;
        diesel::sql_query(format!(
            "UPDATE credentials SET updated_by = (SELECT id FROM users
             WHERE email = 'mia@blue.example') WHERE id = {id}"
        ))
        .execute(conn)
    });
    let partner_email = crate::backups::scalar_text(
        &setup.app,
        "SELECT email AS value FROM users WHERE role = 'partner'",
    );
    let fragment = setup
        .partner
        .fragment(&format!("/credentials/ai/{id}"))
        .await;
    assert!(
        fragment.contains(&format!("<dt>Created by</dt><dd>{partner_email}</dd>"))
            && fragment.contains("<dt>Last modified by</dt><dd>mia@blue.example</dd>"),
        "{fragment}"
    );
    let page = setup.partner.page(&format!("/credentials/ai/{id}")).await;
    assert!(page.contains("<html") && page.contains("Created by"));
}

#[actix_web::test]
async fn htmx_actions_answer_with_the_changed_row_or_table() {
    let setup = setup().await;
    let id = add_ai(&setup, &setup.partner, setup.blue, "Htmx key").await;
    let token = setup.partner.token("/credentials/ai").await;
    let post = |action: &'static str| {
        setup
            .partner
            .http
            .post(format!(
                "{}/credentials/ai/{id}/{action}",
                setup.partner.base
            ))
            .header("HX-Request", "true")
            .header("X-CSRF-Token", token.as_str())
            .form(&[("back", "q=Htmx")])
            .send()
    };
    let locked = post("lock").await.unwrap();
    assert_eq!(locked.status(), StatusCode::OK);
    let body = locked.text().await.unwrap();
    // The row first (so it parses as a table row), the message as an out-of-band template.
    assert!(
        body.trim_start()
            .starts_with(&format!("<tr id=\"credential-{id}\"")),
        "{body}"
    );
    assert!(
        body.contains("<template><div id=\"messages\" hx-swap-oob"),
        "{body}"
    );
    assert!(
        body.contains(&format!("<tr id=\"credential-{id}\""))
            && body.contains("Locked")
            && !body.contains("<html")
    );
    let conflict = post("lock").await.unwrap();
    assert_eq!(conflict.status(), StatusCode::CONFLICT);
    assert_eq!(conflict.headers()["hx-retarget"], "#messages");
    post("unlock").await.unwrap();
    let default = post("default").await.unwrap().text().await.unwrap();
    assert!(
        default.contains("<table") && default.contains("Default"),
        "the whole table when the default moves"
    );
    let deleted = post("delete").await.unwrap().text().await.unwrap();
    assert!(!deleted.contains("<tr") && deleted.contains("is deleted"));
}

#[actix_web::test]
async fn key_rotation_reseals_every_secret_and_the_old_key_can_go() {
    let setup = setup().await;
    let id = add_ai(&setup, &setup.partner, setup.blue, "Rotated key").await;
    let old = crate::helpers::test_data_keys();
    let new = format!(
        "t2:{}",
        base64::engine::general_purpose::STANDARD.encode([9u8; 32])
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_keyhold"))
        .args(["keys", "rotate", "--batch", "1"])
        .env("DATABASE_URL", &setup.app.database_url)
        .env("KEYHOLD_DATA_KEYS", format!("{old},{new}"))
        .env("KEYHOLD_DATA_KEY_ACTIVE", "t2")
        .env("KEYHOLD_SESSION_KEY", crate::helpers::test_session_key())
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("re-sealed 1 credential"));
    assert_eq!(
        text_column(
            &setup.app,
            &format!("SELECT key_id AS value FROM credentials WHERE id = {id}")
        ),
        "t2"
    );

    // An instance holding only the new key still opens it.
    let only_new = spawn_app_with(&[
        ("DATABASE_URL", setup.app.database_url.as_str()),
        ("KEYHOLD_DATA_KEYS", new.as_str()),
    ])
    .await;
    let partner = only_new.client();
    partner
        .login("pat@partner.example", "partner-password-1")
        .await;
    let _ = setup.fake.as_str();
    let verified = act(&partner, "ai", id, "verify").await;
    assert_eq!(verified.status(), StatusCode::SEE_OTHER);
    let page = partner.get("/credentials/ai").await.text().await.unwrap();
    assert!(
        page.contains("Rotated key verified"),
        "{:?}",
        texts(&page, ".flash")
    );
    drop(only_new); // shares the database of `setup`, which drops it
}

#[actix_web::test]
async fn no_page_fragment_header_or_audit_row_ever_contains_a_stored_secret() {
    let setup = setup().await;
    let s3 = fakes::start_s3().await;
    let prometheus = fakes::start_prometheus().await;
    let blue = setup.blue.to_string();
    let partner = &setup.partner;

    for (provider, fields) in cloud_forms(&setup.fake, &marked) {
        let response = add_cloud(
            partner,
            setup.blue,
            provider,
            &format!("{provider}-marked"),
            &fields,
        )
        .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{provider}");
    }
    let s3_secret = marked("secret_access_key");
    assert_eq!(
        add(
            partner,
            "backup",
            &s3_fields(&blue, "Marked S3", &s3.endpoint, S3_MARKED_KEY, &s3_secret)
        )
        .await
        .status(),
        StatusCode::SEE_OTHER
    );
    let prometheus_password = marked("password");
    for kind in ["billing", "showback"] {
        let response = add(
            partner,
            kind,
            &[
                ("organization_id", &blue),
                ("name", "Marked prom"),
                ("username", "marked"),
                ("password", &prometheus_password),
                ("url", &prometheus.url),
            ],
        )
        .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{kind}");
    }
    let api_key = marked("api_key");
    assert_eq!(
        add(
            partner,
            "ai",
            &[
                ("organization_id", &blue),
                ("name", "Marked AI"),
                ("api_key", &api_key),
                ("base_url", &setup.fake)
            ]
        )
        .await
        .status(),
        StatusCode::SEE_OTHER
    );

    let manager = setup.manager("mia@blue.example", setup.blue).await;
    let other = setup.manager("gus@green.example", setup.green).await;
    let user = setup
        .signed_in(
            partner
                .create_user("ulf@blue.example", "user", Some(setup.blue))
                .await,
        )
        .await;
    let ids: Vec<(String, i64)> = setup.app.query(|conn| {
        use diesel::prelude::*;
        use keyhold::schema::credentials;
        credentials::table
            .select((credentials::kind, credentials::id))
            .load(conn)
    });

    let secrets: Vec<String> = [
        "secret_access_key",
        "client_secret",
        "config_json",
        "password",
        "token_secret",
        "pull_secret",
        "kubeconfig",
        "api_token",
        "api_key",
    ]
    .iter()
    .map(|field| marked(field))
    .collect();
    let forbidden: Vec<String> = std::iter::once(MARKER.to_string())
        .chain(secrets.iter().flat_map(|secret| {
            [
                url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>(),
                base64::engine::general_purpose::STANDARD.encode(secret),
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
                hex::encode(secret),
            ]
        }))
        .collect();
    let check = |what: &str, response_text: &str| {
        for needle in &forbidden {
            assert!(
                !response_text.contains(needle.as_str()),
                "{what} leaks a secret ({needle})"
            );
        }
    };

    let mut pages = vec![
        "/".to_string(),
        "/audit".into(),
        "/users".into(),
        "/organizations".into(),
        "/credentials".into(),
    ];
    for kind in ["cloud", "backup", "billing", "showback", "ai"] {
        pages.push(format!("/credentials/{kind}"));
        pages.push(format!("/credentials/{kind}?q=marked"));
        pages.push(format!("/credentials/{kind}/new"));
    }
    for (kind, id) in &ids {
        pages.push(format!("/credentials/{kind}/{id}"));
        pages.push(format!("/credentials/{kind}/{id}/edit"));
    }
    let mut fetched = 0;
    for client in [partner, &manager, &other, &user] {
        for path in &pages {
            for htmx in [false, true] {
                let response = if htmx {
                    client.get_htmx(path).await
                } else {
                    client.get(path).await
                };
                let headers = format!("{:?}", response.headers());
                let body = response.text().await.unwrap();
                check(&format!("GET {path} (htmx {htmx}) headers"), &headers);
                check(&format!("GET {path} (htmx {htmx})"), &body);
                fetched += 1;
            }
        }
        for (kind, id) in &ids {
            let token = client.token("/").await;
            for action in ["verify", "lock", "unlock"] {
                for htmx in [false, true] {
                    let mut request = client
                        .http
                        .post(format!("{}/credentials/{kind}/{id}/{action}", client.base))
                        .form(&[("csrf_token", token.as_str())]);
                    if htmx {
                        request = request.header("HX-Request", "true");
                    }
                    let response = request.send().await.unwrap();
                    let headers = format!("{:?}", response.headers());
                    check(&format!("POST {action} {kind}/{id} headers"), &headers);
                    check(
                        &format!("POST {action} {kind}/{id}"),
                        &response.text().await.unwrap(),
                    );
                }
            }
            // The edit form's "Verify only" merges the stored secrets without JS.
            let response = client
                .post(
                    &format!("/credentials/{kind}/verify"),
                    &[
                        ("csrf_token", token.as_str()),
                        ("credential_id", &id.to_string()),
                    ],
                )
                .await;
            check(
                &format!("verify form {kind}/{id}"),
                &response.text().await.unwrap(),
            );
        }
    }
    assert!(fetched > 200, "crawled {fetched} pages");
    let audit = text_column(
        &setup.app,
        "SELECT coalesce(string_agg(row_to_json(a)::text, ' '), '') AS value FROM audit_events a",
    );
    check("audit rows", &audit);
    let stored = text_column(
        &setup.app,
        "SELECT string_agg(row_to_json(c)::text, ' ') AS value FROM credentials c",
    );
    check("credential rows (sealed at rest)", &stored);

    // A dump of keyhold's own database holds no secret either (sessions and audit included).
    let dump = std::process::Command::new("pg_dump")
        .args(["--format=plain", "--no-owner", &setup.app.database_url])
        .output()
        .expect("pg_dump runs");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout).to_string();
    assert!(
        dump.contains("COPY public.credentials"),
        "the dump holds the credentials table"
    );
    check("pg_dump of keyhold's database", &dump);
}

#[actix_web::test]
async fn key_rotation_under_load_keeps_every_secret_usable() {
    let fake = fakes::start_cloud_fake().await;
    let old = crate::helpers::test_data_keys();
    let new = format!(
        "t2:{}",
        base64::engine::general_purpose::STANDARD.encode([9u8; 32])
    );
    let both = format!("{old},{new}");
    // Every instance knows both keys and writes with the new one while the old rows are re-sealed.
    let app = spawn_app_with(&[
        ("KEYHOLD_DATA_KEYS", both.as_str()),
        ("KEYHOLD_DATA_KEY_ACTIVE", "t2"),
    ])
    .await;
    let (partner, account) = app.partner().await;
    let organization = partner.create_organization(&app, "Blue Org").await;
    seed_ai_at(&app, organization, "old", 30, &fake);
    let ids: Vec<i64> = app.query(|conn| {
        use diesel::prelude::*;
        keyhold::schema::credentials::table
            .select(keyhold::schema::credentials::id)
            .load(conn)
    });
    assert_eq!(app.count("credentials WHERE key_id = 't1'"), 30);

    let database_url = app.database_url.clone();
    let (old_key, new_key) = (old.clone(), new.clone());
    let rotation = std::thread::spawn(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_keyhold"))
            .args(["keys", "rotate", "--batch", "3"])
            .env("DATABASE_URL", database_url)
            .env("KEYHOLD_DATA_KEYS", format!("{old_key},{new_key}"))
            .env("KEYHOLD_DATA_KEY_ACTIVE", "t2")
            .env("KEYHOLD_SESSION_KEY", crate::helpers::test_session_key())
            .env("RUST_LOG", "error")
            .output()
            .unwrap()
    });
    // Load while the rotation runs: verify every credential (opens its secret) and list them.
    let token = partner.token("/credentials/ai").await;
    for round in 0..3 {
        for id in &ids {
            let response = partner
                .http
                .post(format!("{}/credentials/ai/{id}/verify", partner.base))
                .header("HX-Request", "true")
                .form(&[("csrf_token", token.as_str())])
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::OK,
                "round {round}, credential {id}"
            );
            let body = response.text().await.unwrap();
            assert!(
                body.contains("verified:"),
                "round {round}, credential {id}: {}",
                texts(&body, ".flash").join(" ")
            );
        }
        assert_eq!(
            partner.get("/credentials/ai").await.status(),
            StatusCode::OK
        );
    }
    let output = rotation.join().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        app.count("credentials WHERE key_id = 't2'"),
        30,
        "every secret re-sealed"
    );

    // The old key can go: an instance with only the new key opens every secret.
    let only_new = spawn_app_with(&[
        ("DATABASE_URL", app.database_url.as_str()),
        ("KEYHOLD_DATA_KEYS", new.as_str()),
    ])
    .await;
    let browser = only_new.client();
    browser.login(&account.email, &account.password).await;
    let token = browser.token("/credentials/ai").await;
    for id in &ids {
        let response = browser
            .http
            .post(format!("{}/credentials/ai/{id}/verify", browser.base))
            .header("HX-Request", "true")
            .form(&[("csrf_token", token.as_str())])
            .send()
            .await
            .unwrap();
        assert!(
            response.text().await.unwrap().contains("verified:"),
            "credential {id} opens with the new key alone"
        );
    }
    drop(only_new); // shares `app`'s database, which `app` drops
}

/// AI credentials sealed with the old key only, straight through the model.
fn seed_ai_at(app: &TestApp, organization: i64, prefix: &str, count: usize, base_url: &str) {
    crate::helpers::seed_credentials(
        app,
        organization,
        keyhold::credentials::provider::Kind::Ai,
        count,
        |n| {
            (
                format!("{prefix}-key-{n:02}"),
                vec![("base_url", base_url.to_string())],
                vec![("api_key", GOOD.to_string())],
            )
        },
    );
}
