//! The provider registry: one static spec per credential kind and cloud provider. Forms,
//! validation, tables and verification all read it; adding a provider is adding one entry here
//! (and, if it has a network API, one check in `verify`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use diesel::deserialize::FromSqlRow;
use diesel::expression::AsExpression;
use diesel::sql_types::Text;

use crate::web::form::FieldErrors;

/// The five tabs of the Credentials area, stored as their key (`credentials.kind`).
#[derive(AsExpression, FromSqlRow, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[diesel(sql_type = Text)]
pub enum Kind {
    Cloud,
    Backup,
    Billing,
    Showback,
    Ai,
}

impl Kind {
    /// In tab order.
    pub const ALL: [Kind; 5] = [
        Kind::Cloud,
        Kind::Backup,
        Kind::Billing,
        Kind::Showback,
        Kind::Ai,
    ];

    /// The URL segment and stored value.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Cloud => "cloud",
            Kind::Backup => "backup",
            Kind::Billing => "billing",
            Kind::Showback => "showback",
            Kind::Ai => "ai",
        }
    }

    /// The tab's title.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Cloud => "Cloud",
            Kind::Backup => "Backup",
            Kind::Billing => "Billing",
            Kind::Showback => "Showback",
            Kind::Ai => "AI",
        }
    }

    /// What one credential of this kind is called in sentences.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Cloud => "cloud credential",
            Kind::Backup => "backup credential",
            Kind::Billing => "billing credential",
            Kind::Showback => "showback credential",
            Kind::Ai => "AI credential",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.key() == text)
    }

    /// Only Partners open this tab (Billing).
    pub fn partner_only(self) -> bool {
        self == Kind::Billing
    }

    /// Whether one credential of the kind can be the organization's default.
    pub fn has_default(self) -> bool {
        self != Kind::Showback
    }

    /// The providers of this kind, in the order forms offer them.
    pub fn providers(self) -> impl Iterator<Item = &'static Provider> {
        PROVIDERS
            .iter()
            .filter(move |provider| provider.kind == self)
    }

    /// The table's columns (cloud with no provider filter shows a summary column).
    pub fn columns(self, provider: Option<&'static Provider>) -> Vec<Column> {
        use Value::*;
        let col = |label: &'static str, value: Value| Column { label, value };
        match self {
            Kind::Cloud => {
                let mut columns = vec![
                    col("ID", Id),
                    col("Name", Name),
                    col("Organization", Organization),
                    col("Provider", ProviderName),
                ];
                match provider {
                    Some(provider) => columns.extend(
                        provider
                            .columns
                            .iter()
                            .map(|(label, key)| col(label, Public(key))),
                    ),
                    None => columns.push(col("Details", Summary)),
                }
                columns.extend([
                    col("Projects", Associated),
                    col("Default", Default),
                    col("Lock", Lock),
                    col("Verified", Verified),
                ]);
                columns
            }
            Kind::Backup => vec![
                col("ID", Id),
                col("Organization", Organization),
                col("S3 Access Key ID", Public("access_key_id")),
                col("S3 Endpoint", Public("endpoint")),
                col("S3 Name", Name),
                col("Associated Projects", Associated),
                col("Expires", Expires),
                col("Default", Default),
                col("Lock", Lock),
                col("Verified", Verified),
            ],
            Kind::Billing => vec![
                col("ID", Id),
                col("Name", Name),
                col("Organization", Organization),
                col("Username", Public("username")),
                col("URL", Public("url")),
                col("Default", Default),
                col("Lock", Lock),
                col("Verified", Verified),
            ],
            Kind::Showback => vec![
                col("ID", Id),
                col("Name", Name),
                col("Organization", Organization),
                col("URL", Public("url")),
                col("Created", Created),
                col("Lock", Lock),
                col("Verified", Verified),
            ],
            Kind::Ai => vec![
                col("ID", Id),
                col("Name", Name),
                col("Organization", Organization),
                col("Base URL", Public("base_url")),
                col("Associated Projects", Associated),
                col("Default", Default),
                col("Lock", Lock),
                col("Verified", Verified),
            ],
        }
    }
}

crate::stored_as_text!(Kind, "credential kind");

/// A table column: its heading and what it shows (and sorts by).
#[derive(Clone, Copy, Debug)]
pub struct Column {
    pub label: &'static str,
    pub value: Value,
}

/// What a column shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    Id,
    Name,
    Organization,
    ProviderName,
    Public(&'static str),
    Summary,
    Created,
    Expires,
    Default,
    Lock,
    Verified,
    /// The projects using it (count; names in the expanded row).
    Associated,
}

impl Value {
    /// The `sort` query value that orders by this column (`None`: not sortable).
    pub fn sort_key(self) -> Option<String> {
        Some(match self {
            Value::Id => "id".into(),
            Value::Name => "name".into(),
            Value::Organization => "organization".into(),
            Value::ProviderName => "provider".into(),
            Value::Public(key) => key.to_string(),
            Value::Summary | Value::Associated => return None,
            Value::Created => "created".into(),
            Value::Expires => "expires".into(),
            Value::Default => "default".into(),
            Value::Lock => "lock".into(),
            Value::Verified => "verified".into(),
        })
    }
}

/// How a field is entered and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    Text,
    Url,
    Number {
        min: i64,
        max: i64,
    },
    Select(&'static [&'static str]),
    Checkbox,
    /// Several lines (a pasted JSON key, a kubeconfig).
    TextArea,
    /// One entry per line.
    List,
    Ipv4,
    Date,
}

/// One form field of a provider.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub key: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    pub input: Input,
    pub secret: bool,
    pub required: bool,
    pub editable: bool,
    pub default: &'static str,
}

const fn field(key: &'static str, label: &'static str, input: Input) -> Field {
    Field {
        key,
        label,
        help: "",
        input,
        secret: false,
        required: true,
        editable: false,
        default: "",
    }
}

const fn text(key: &'static str, label: &'static str) -> Field {
    field(key, label, Input::Text)
}

const fn url(key: &'static str, label: &'static str) -> Field {
    field(key, label, Input::Url).help("An http:// or https:// address.")
}

const fn secret(key: &'static str, label: &'static str) -> Field {
    let mut field = field(key, label, Input::Text);
    field.secret = true;
    field
}

const fn az_count() -> Field {
    field(
        "az_count",
        "Availability zones",
        Input::Number { min: 1, max: 3 },
    )
    .help("How many zones to spread over, 1 to 3.")
    .default("1")
}

const fn continent() -> Field {
    field("continent", "Continent", Input::Select(CONTINENTS)).default("Europe")
}

impl Field {
    const fn help(mut self, help: &'static str) -> Field {
        self.help = help;
        self
    }
    const fn optional(mut self) -> Field {
        self.required = false;
        self
    }
    const fn editable(mut self) -> Field {
        self.editable = true;
        self
    }
    const fn default(mut self, default: &'static str) -> Field {
        self.default = default;
        self
    }
    const fn area(mut self) -> Field {
        self.input = Input::TextArea;
        self
    }

    /// The value shown in a form: secrets never, otherwise the submitted or stored value.
    pub fn shown<'a>(&self, values: &'a Values) -> &'a str {
        if self.secret {
            ""
        } else {
            values.get(self.key)
        }
    }

    /// The options of a select field.
    pub fn options(&self) -> &'static [&'static str] {
        match self.input {
            Input::Select(options) => options,
            _ => &[],
        }
    }

    pub fn is_checkbox(&self) -> bool {
        self.input == Input::Checkbox
    }

    pub fn is_textarea(&self) -> bool {
        matches!(self.input, Input::TextArea | Input::List)
    }

    /// Secret text that usually comes as a file (a JSON key, a kubeconfig).
    pub fn accepts_file(&self) -> bool {
        self.secret && self.input == Input::TextArea
    }

    pub fn is_select(&self) -> bool {
        matches!(self.input, Input::Select(_))
    }

    /// The `type` of an `<input>` for this field.
    pub fn html_type(&self) -> &'static str {
        match self.input {
            _ if self.secret => "password",
            Input::Url => "url",
            Input::Number { .. } => "number",
            Input::Date => "date",
            _ => "text",
        }
    }
}

/// The network API a provider's credentials are checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    S3,
    Prometheus,
    OpenAi,
    AwsSts,
    AzureToken,
    GcpServiceAccount,
    Keystone,
    Proxmox,
    VsphereSession,
    ZadaraStructure,
    Kubeconfig,
    TanzuSession,
    ZededaHealth,
}

/// A provider of a kind (for non-cloud kinds, the one protocol it speaks).
#[derive(Debug)]
pub struct Provider {
    pub kind: Kind,
    pub key: &'static str,
    pub label: &'static str,
    /// Only Partners may add it (Proxmox, Tanzu); Managers may still view, edit and lock it.
    pub partner_only_add: bool,
    pub name_editable: bool,
    pub fields: &'static [Field],
    /// Provider-specific table columns: (heading, public field key).
    pub columns: &'static [(&'static str, &'static str)],
    pub check: Check,
    /// Rules across fields, beyond each field's own.
    pub rules: fn(&Values, &mut FieldErrors),
}

impl Provider {
    pub fn field(&self, key: &str) -> Option<&'static Field> {
        self.fields.iter().find(|field| field.key == key)
    }

    pub fn secret_fields(&self) -> impl Iterator<Item = &'static Field> {
        self.fields.iter().filter(|field| field.secret)
    }

    pub fn public_fields(&self) -> impl Iterator<Item = &'static Field> {
        self.fields.iter().filter(|field| !field.secret)
    }

    /// Whether an edit form has anything to change.
    pub fn editable(&self) -> bool {
        self.name_editable || self.fields.iter().any(|field| field.editable)
    }

    /// Whether table cells and sorting may use `key` (a public field of some provider).
    pub fn column_keys(kind: Kind) -> impl Iterator<Item = &'static str> {
        kind.providers()
            .flat_map(|provider| provider.columns.iter().map(|(_, key)| *key))
    }
}

/// The continents a cloud credential can be placed on.
pub const CONTINENTS: &[&str] = &[
    "Africa",
    "Asia",
    "Europe",
    "North America",
    "Oceania",
    "South America",
];

const AWS_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "ca-central-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-north-1",
    "eu-south-1",
    "me-south-1",
    "sa-east-1",
];

const ZADARA_VOLUME_TYPES: &[&str] = &[
    "io1", "io2", "gp2", "gp3", "sc1", "st1", "standard", "sbp1", "sbg1",
];

/// The public and private network fields of on-premises hypervisors.
macro_rules! networks {
    () => {
        [
            field("public_network", "Public network address", Input::Ipv4)
                .help("IPv4 network address, e.g. 192.168.10.0."),
            field(
                "public_netmask",
                "Public network mask",
                Input::Number { min: 1, max: 32 },
            ),
            field("public_gateway", "Public gateway", Input::Ipv4),
            field("public_range_begin", "Public range begin", Input::Ipv4)
                .help("First address keyhold may allocate; inside the network."),
            field("public_range_end", "Public range end", Input::Ipv4),
            text("public_bridge", "Public bridge").default("vmbr0"),
            field("private_network", "Private network address", Input::Ipv4),
            field(
                "private_netmask",
                "Private network mask",
                Input::Number { min: 1, max: 32 },
            ),
            field("private_gateway", "Private gateway", Input::Ipv4),
            field("private_range_begin", "Private range begin", Input::Ipv4),
            field("private_range_end", "Private range end", Input::Ipv4),
            text("private_bridge", "Private bridge").default("vmbr1"),
        ]
    };
}

const PROXMOX_NETWORKS: [Field; 12] = networks!();

static PROXMOX_FIELDS: [Field; 19] = {
    let head = [
        url("url", "Proxmox URL"),
        text("token_id", "API token ID")
            .help("user@realm!tokenname")
            .editable(),
        secret("token_secret", "API token secret").editable(),
        text("storage", "Storage"),
        text("vm_template", "VM template"),
        field("hypervisors", "Hypervisors", Input::List).help("One node name per line."),
        continent(),
    ];
    let mut all = [head[0]; 19];
    let mut i = 0;
    while i < 7 {
        all[i] = head[i];
        i += 1;
    }
    while i < 19 {
        all[i] = PROXMOX_NETWORKS[i - 7];
        i += 1;
    }
    all
};

static VSPHERE_FIELDS: [Field; 21] = {
    let head = [
        url("url", "vSphere URL"),
        text("username", "Username").editable(),
        secret("password", "Password").editable(),
        text("datacenter", "Datacenter"),
        text("resource_pool", "Resource pool"),
        text("datastore", "Datastore"),
        field("drs_enabled", "DRS enabled", Input::Checkbox)
            .optional()
            .help("With DRS off, list the hypervisors."),
        field("hypervisors", "Hypervisors", Input::List)
            .optional()
            .help("One host per line; required when DRS is off."),
        continent(),
    ];
    let mut all = [head[0]; 21];
    let mut i = 0;
    while i < 9 {
        all[i] = head[i];
        i += 1;
    }
    while i < 21 {
        all[i] = PROXMOX_NETWORKS[i - 9];
        i += 1;
    }
    all
};

/// Every provider of every kind.
pub static PROVIDERS: &[Provider] = &[
    Provider {
        kind: Kind::Cloud,
        key: "aws",
        label: "AWS",
        partner_only_add: false,
        name_editable: true,
        fields: &[
            secret("access_key_id", "Access key ID").editable(),
            secret("secret_access_key", "Secret access key").editable(),
            field("region", "Region", Input::Select(AWS_REGIONS)),
            az_count(),
        ],
        columns: &[("Region", "region"), ("Zones", "az_count")],
        check: Check::AwsSts,
        rules: no_rules,
    },
    Provider {
        kind: Kind::Cloud,
        key: "azure",
        label: "Azure",
        partner_only_add: false,
        name_editable: true,
        fields: &[
            secret("client_id", "Client ID").editable(),
            secret("client_secret", "Client secret").editable(),
            text("tenant_id", "Tenant ID"),
            text("subscription_id", "Subscription ID"),
            text("location", "Location").help("e.g. westeurope"),
            az_count(),
        ],
        columns: &[("Location", "location"), ("Zones", "az_count")],
        check: Check::AzureToken,
        rules: no_rules,
    },
    Provider {
        kind: Kind::Cloud,
        key: "gcp",
        label: "GCP",
        partner_only_add: false,
        name_editable: false,
        fields: &[
            secret("config_json", "Service account key (JSON)")
                .area()
                .help("Paste the JSON key file of a service account."),
            field(
                "import_project",
                "Import an existing project",
                Input::Checkbox,
            )
            .optional(),
            text("folder_id", "Folder ID")
                .optional()
                .help("Required unless importing a project."),
            text("billing_account_id", "Billing account ID")
                .optional()
                .help("Required unless importing a project."),
            text("region", "Region").help("e.g. europe-west1"),
            az_count(),
        ],
        columns: &[
            ("Region", "region"),
            ("Folder", "folder_id"),
            ("Billing account", "billing_account_id"),
            ("Project ID", "project_id"),
        ],
        check: Check::GcpServiceAccount,
        rules: gcp_rules,
    },
    Provider {
        kind: Kind::Cloud,
        key: "openstack",
        label: "OpenStack",
        partner_only_add: false,
        name_editable: true,
        fields: &[
            url("url", "Keystone URL")
                .help("The identity endpoint, e.g. https://keystone:5000/v3."),
            text("user", "User")
                .editable()
                .help("With application credentials: its ID."),
            secret("password", "Password")
                .editable()
                .help("With application credentials: its secret."),
            text("domain", "Domain")
                .optional()
                .help("Required for user and password."),
            text("project", "Project"),
            text("region", "Region"),
            text("public_network", "Public network"),
            text("availability_zone", "Availability zone").optional(),
            text("volume_type", "Volume type").optional(),
            field(
                "application_credentials",
                "Application credentials",
                Input::Checkbox,
            )
            .optional(),
        ],
        columns: &[("URL", "url"), ("Project", "project"), ("Region", "region")],
        check: Check::Keystone,
        rules: openstack_rules,
    },
    Provider {
        kind: Kind::Cloud,
        key: "proxmox",
        label: "Proxmox",
        partner_only_add: true,
        name_editable: true,
        fields: &PROXMOX_FIELDS,
        columns: &[
            ("URL", "url"),
            ("Storage", "storage"),
            ("Hypervisors", "hypervisors"),
        ],
        check: Check::Proxmox,
        rules: network_rules,
    },
    Provider {
        kind: Kind::Cloud,
        key: "vsphere",
        label: "vSphere",
        partner_only_add: false,
        name_editable: true,
        fields: &VSPHERE_FIELDS,
        columns: &[("URL", "url"), ("Datacenter", "datacenter")],
        check: Check::VsphereSession,
        rules: vsphere_rules,
    },
    Provider {
        kind: Kind::Cloud,
        key: "zadara",
        label: "Zadara",
        partner_only_add: false,
        name_editable: true,
        fields: &[
            url("url", "Zadara URL"),
            secret("access_key_id", "Access key ID").editable(),
            secret("secret_access_key", "Secret access key").editable(),
            text("region", "Region"),
            az_count(),
            field(
                "volume_type",
                "Volume type",
                Input::Select(ZADARA_VOLUME_TYPES),
            )
            .default("gp2"),
            continent(),
        ],
        columns: &[("URL", "url"), ("Region", "region")],
        check: Check::ZadaraStructure,
        rules: no_rules,
    },
    Provider {
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
        check: Check::Kubeconfig,
        rules: openshift_rules,
    },
    Provider {
        kind: Kind::Cloud,
        key: "tanzu",
        label: "Tanzu",
        partner_only_add: true,
        name_editable: true,
        fields: &[
            url("url", "Tanzu URL"),
            field("port", "Port", Input::Number { min: 1, max: 65535 }).default("443"),
            text("username", "Username"),
            secret("password", "Password").editable(),
            text("namespace", "Namespace"),
            text("volume_type", "Volume type"),
            continent(),
        ],
        columns: &[("URL", "url"), ("Namespace", "namespace")],
        check: Check::TanzuSession,
        rules: no_rules,
    },
    Provider {
        kind: Kind::Cloud,
        key: "zededa",
        label: "Zededa",
        partner_only_add: false,
        name_editable: false,
        fields: &[
            url("api_url", "API URL"),
            secret("api_token", "API token"),
            text("project", "Project"),
            field("edge_nodes", "Edge nodes", Input::List)
                .editable()
                .help("One edge node per line."),
            continent(),
        ],
        columns: &[("API URL", "api_url"), ("Project", "project")],
        check: Check::ZededaHealth,
        rules: no_rules,
    },
    Provider {
        kind: Kind::Backup,
        key: "s3",
        label: "S3",
        partner_only_add: false,
        name_editable: true,
        fields: &[
            text("access_key_id", "S3 Access Key ID").editable(),
            secret("secret_access_key", "S3 Secret Key").editable(),
            url("endpoint", "S3 Endpoint")
                .help("e.g. https://s3.eu-central-1.amazonaws.com or your MinIO address."),
            text("region", "S3 Region").default("us-east-1"),
        ],
        columns: &[
            ("S3 Access Key ID", "access_key_id"),
            ("S3 Endpoint", "endpoint"),
        ],
        check: Check::S3,
        rules: no_rules,
    },
    Provider {
        kind: Kind::Billing,
        key: "prometheus",
        label: "Prometheus",
        partner_only_add: false,
        name_editable: true,
        fields: &[
            text("username", "Username").editable(),
            secret("password", "Password").editable(),
            url("url", "Prometheus URL"),
        ],
        columns: &[("Username", "username"), ("URL", "url")],
        check: Check::Prometheus,
        rules: no_rules,
    },
    Provider {
        kind: Kind::Showback,
        key: "prometheus",
        label: "Prometheus",
        partner_only_add: false,
        name_editable: true,
        fields: &[
            url("url", "Prometheus URL"),
            text("username", "Username").editable(),
            secret("password", "Password").editable(),
        ],
        columns: &[("URL", "url")],
        check: Check::Prometheus,
        rules: no_rules,
    },
    Provider {
        kind: Kind::Ai,
        key: "openai",
        label: "OpenAI-compatible",
        partner_only_add: false,
        name_editable: true,
        fields: &[
            secret("api_key", "API key").editable(),
            url("base_url", "Base URL").default("https://api.openai.com"),
        ],
        columns: &[("Base URL", "base_url")],
        check: Check::OpenAi,
        rules: no_rules,
    },
];

/// Finds a provider of `kind`; non-cloud kinds have exactly one.
pub fn find(kind: Kind, key: Option<&str>) -> Option<&'static Provider> {
    match kind {
        Kind::Cloud => kind.providers().find(|p| Some(p.key) == key),
        _ => kind.providers().next(),
    }
}

/// Submitted or stored values by field key (trimmed).
#[derive(Clone, Debug, Default)]
pub struct Values(BTreeMap<String, String>);

impl Values {
    pub fn new(map: BTreeMap<String, String>) -> Values {
        Values(map)
    }

    pub fn get(&self, key: &str) -> &str {
        self.0.get(key).map_or("", |value| value.trim())
    }

    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.0.insert(key.to_string(), value.into());
    }

    pub fn remove(&mut self, key: &str) {
        self.0.remove(key);
    }

    /// A checkbox's value.
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), "on" | "true" | "1" | "yes")
    }

    /// The entries of a one-per-line field.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.get(key)
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_string)
            .collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }
}

/// Checks the name: 3–30 characters; cloud names only letters, digits and `-`.
pub fn check_name(kind: Kind, name: &str) -> Result<(), String> {
    let length = name.chars().count();
    if !(3..=30).contains(&length) {
        return Err("Use 3 to 30 characters.".into());
    }
    if kind == Kind::Cloud && !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err("only letters, digits and -".into());
    }
    Ok(())
}

/// Checks one field's value by its input kind; `editing` skips blank secrets (unchanged).
pub fn check_field(field: &Field, values: &Values, editing: bool) -> Result<(), String> {
    let value = values.get(field.key);
    if value.is_empty() {
        if field.required && !(editing && field.secret) && field.input != Input::Checkbox {
            return Err("Required.".into());
        }
        return Ok(());
    }
    if value.len() > 65_536 {
        return Err("Too long.".into());
    }
    match field.input {
        Input::Url => check_url(value),
        Input::Number { min, max } => match value.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(()),
            _ => Err(format!("Enter a number from {min} to {max}.")),
        },
        Input::Select(options) => {
            if options.contains(&value) {
                Ok(())
            } else {
                Err("Choose one of the options.".into())
            }
        }
        Input::Ipv4 => value
            .parse::<Ipv4Addr>()
            .map(|_| ())
            .map_err(|_| "Enter an IPv4 address like 192.168.10.1.".into()),
        Input::Date => chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
            .map(|_| ())
            .map_err(|_| "Enter a date as YYYY-MM-DD.".into()),
        Input::Text if !field.secret && value.contains(['\n', '\r']) => {
            Err("Use a single line.".into())
        }
        Input::Text | Input::TextArea | Input::List | Input::Checkbox => Ok(()),
    }
}

/// An http(s) URL with a host.
pub fn check_url(value: &str) -> Result<(), String> {
    match url::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => Ok(()),
        _ => Err("Enter an http:// or https:// URL.".into()),
    }
}

fn no_rules(_: &Values, _: &mut FieldErrors) {}

fn gcp_rules(values: &Values, errors: &mut FieldErrors) {
    let importing = values.flag("import_project");
    for key in ["folder_id", "billing_account_id"] {
        let given = !values.get(key).is_empty();
        if importing && given {
            errors.add(key, "Leave empty when importing a project.");
        } else if !importing && !given {
            errors.add(key, "Required unless importing a project.");
        }
    }
    if !values.get("config_json").is_empty()
        && let Err(message) = crate::credentials::verify::gcp_project_id(values.get("config_json"))
    {
        errors.add("config_json", message);
    }
}

fn openstack_rules(values: &Values, errors: &mut FieldErrors) {
    let app_credentials = values.flag("application_credentials");
    let domain = values.get("domain");
    if app_credentials && !domain.is_empty() {
        errors.add("domain", "Application credentials take no domain.");
    } else if !app_credentials && domain.is_empty() {
        errors.add("domain", "Required for user and password.");
    }
}

fn openshift_rules(values: &Values, errors: &mut FieldErrors) {
    if !values.get("kubeconfig").is_empty()
        && let Err(message) =
            crate::credentials::verify::kubeconfig_server(values.get("kubeconfig"))
    {
        errors.add("kubeconfig", message);
    }
}

fn vsphere_rules(values: &Values, errors: &mut FieldErrors) {
    if !values.flag("drs_enabled") && values.list("hypervisors").is_empty() {
        errors.add("hypervisors", "List the hypervisors, or enable DRS.");
    }
    network_rules(values, errors);
}

/// Gateway and allocation range must lie inside each network, and the range run forwards.
fn network_rules(values: &Values, errors: &mut FieldErrors) {
    for side in ["public", "private"] {
        let address = values.get(&format!("{side}_network")).parse::<Ipv4Addr>();
        let mask = values.get(&format!("{side}_netmask")).parse::<u32>();
        let (Ok(address), Ok(mask @ 1..=32)) = (address, mask) else {
            continue;
        };
        let bits = u32::MAX.checked_shl(32 - mask).unwrap_or(0);
        let network = u32::from(address) & bits;
        let inside = |ip: Ipv4Addr| u32::from(ip) & bits == network;
        let mut addresses = Vec::new();
        for part in ["gateway", "range_begin", "range_end"] {
            let key = format!("{side}_{part}");
            if let Ok(ip) = values.get(&key).parse::<Ipv4Addr>() {
                if !inside(ip) {
                    errors.add(
                        static_key(&key),
                        format!("Must be inside {}/{mask}.", Ipv4Addr::from(network)),
                    );
                }
                addresses.push(Some(ip));
            } else {
                addresses.push(None);
            }
        }
        if let (Some(begin), Some(end)) = (addresses[1], addresses[2])
            && u32::from(begin) > u32::from(end)
        {
            errors.add(
                static_key(&format!("{side}_range_end")),
                "Must not come before the range begin.",
            );
        }
    }
}

/// The registry's own `&'static str` for a field key built at run time.
fn static_key(key: &str) -> &'static str {
    PROVIDERS
        .iter()
        .flat_map(|provider| provider.fields.iter())
        .map(|field| field.key)
        .find(|known| *known == key)
        .unwrap_or("form")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> Values {
        Values::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn every_provider_has_unique_field_keys_and_known_column_keys() {
        for provider in PROVIDERS {
            let mut keys: Vec<_> = provider.fields.iter().map(|f| f.key).collect();
            keys.sort();
            keys.dedup();
            assert_eq!(keys.len(), provider.fields.len(), "{}", provider.key);
            for (_, key) in provider.columns {
                let derived = ["project_id", "api_server"].contains(key);
                assert!(
                    derived || provider.field(key).is_some(),
                    "{} {key}",
                    provider.key
                );
            }
        }
    }

    #[test]
    fn cloud_names_allow_only_letters_digits_and_dashes() {
        assert!(check_name(Kind::Cloud, "prod-eu-1").is_ok());
        assert_eq!(
            check_name(Kind::Cloud, "prod eu").unwrap_err(),
            "only letters, digits and -"
        );
        assert!(check_name(Kind::Backup, "Backups (EU)").is_ok());
        assert!(check_name(Kind::Ai, "ab").is_err());
        assert!(check_name(Kind::Ai, &"a".repeat(31)).is_err());
    }

    #[test]
    fn gateways_and_ranges_must_lie_inside_the_network() {
        let mut errors = FieldErrors::default();
        network_rules(
            &values(&[
                ("public_network", "10.0.0.0"),
                ("public_netmask", "24"),
                ("public_gateway", "10.0.1.1"),
                ("public_range_begin", "10.0.0.50"),
                ("public_range_end", "10.0.0.10"),
            ]),
            &mut errors,
        );
        assert_eq!(
            errors.get("public_gateway"),
            Some("Must be inside 10.0.0.0/24.")
        );
        assert!(errors.get("public_range_end").is_some());
        assert!(errors.get("public_range_begin").is_none());
    }

    #[test]
    fn gcp_folder_and_billing_account_depend_on_import() {
        let mut errors = FieldErrors::default();
        gcp_rules(
            &values(&[("import_project", "on"), ("folder_id", "f")]),
            &mut errors,
        );
        assert!(errors.get("folder_id").is_some() && errors.get("billing_account_id").is_none());
        let mut errors = FieldErrors::default();
        gcp_rules(&values(&[]), &mut errors);
        assert!(errors.get("folder_id").is_some() && errors.get("billing_account_id").is_some());
    }

    #[test]
    fn field_checks_follow_the_input_kind() {
        let az = az_count();
        assert!(check_field(&az, &values(&[("az_count", "4")]), false).is_err());
        assert!(check_field(&az, &values(&[("az_count", "3")]), false).is_ok());
        let endpoint = url("endpoint", "Endpoint");
        assert!(check_field(&endpoint, &values(&[("endpoint", "ftp://x")]), false).is_err());
        let key = secret("secret_access_key", "Secret");
        assert!(
            check_field(&key, &values(&[]), true).is_ok(),
            "blank secret = unchanged"
        );
        assert!(check_field(&key, &values(&[]), false).is_err());
    }
}
