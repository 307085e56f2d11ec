//! The registry: what each of the five kinds is (one `KindSpec` each) and every provider of
//! each kind (one file under `provider/`: its fields, table columns, derived values, rules and
//! check), listed once in `PROVIDERS`. Forms, validation, tables, the listing queries and
//! verification read it; nothing else names a kind or a provider.

use diesel::deserialize::FromSqlRow;
use diesel::expression::AsExpression;
use diesel::sql_types::Text;

use crate::credentials::field::{Field, Values};
use crate::credentials::verify::Verifier;
use crate::schema::projects;
use crate::web::form::FieldErrors;

/// Lists every provider of every kind, a kind's providers in the order its forms offer them: one
/// line per file of `provider/` (its module and the providers it defines), so a new provider is
/// its file and its line here.
macro_rules! providers {
    ($($file:ident: [$($provider:ident),+],)+) => {
        $(mod $file;)+

        /// Every provider of every kind; a kind's providers in the order its forms offer them.
        pub static PROVIDERS: &[&Provider] = &[$($(&$file::$provider,)+)+];
    };
}

providers! {
    aws: [PROVIDER],
    azure: [PROVIDER],
    gcp: [PROVIDER],
    openstack: [PROVIDER],
    proxmox: [PROVIDER],
    vsphere: [PROVIDER],
    zadara: [PROVIDER],
    openshift: [PROVIDER],
    tanzu: [PROVIDER],
    zededa: [PROVIDER],
    s3: [PROVIDER],
    prometheus: [BILLING, SHOWBACK],
    openai: [PROVIDER],
}

/// The five tabs of the Credentials area, stored as their key (`credentials.kind`). What each
/// is and does is its `KindSpec`.
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

    pub fn spec(self) -> &'static KindSpec {
        match self {
            Kind::Cloud => &CLOUD,
            Kind::Backup => &BACKUP,
            Kind::Billing => &BILLING,
            Kind::Showback => &SHOWBACK,
            Kind::Ai => &AI,
        }
    }

    /// The URL segment and stored value.
    pub fn key(self) -> &'static str {
        self.spec().key
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.key() == text)
    }
}

crate::stored_as_text!(Kind, "credential kind");

/// What a kind is: its words, who opens its tab, its rules, its table, and which projects use
/// its credentials.
#[derive(Debug)]
pub struct KindSpec {
    pub kind: Kind,
    /// The URL segment and stored value.
    pub key: &'static str,
    /// The tab's title.
    pub label: &'static str,
    /// What one credential of this kind is called in sentences.
    pub noun: &'static str,
    /// Only Partners open this tab.
    pub partner_only: bool,
    /// Whether one credential of the kind can be the organization's default.
    pub has_default: bool,
    /// The kind has several providers: its add form starts by choosing one, its tab filters by
    /// it, forms and details name it, and its default is one per provider (as the
    /// `credentials_one_default` index of the migrations has it for cloud).
    pub by_provider: bool,
    /// The name field's label.
    pub name_label: &'static str,
    /// Names are also only letters, digits and `-`.
    pub slug_names: bool,
    /// The column of `projects` that names a credential of this kind, if projects use the
    /// kind: the projects using a credential are those whose column holds its id (they are
    /// listed with it and keep it from being deleted). The migrations hold the same three
    /// columns with their foreign keys.
    pub used_by: Option<&'static str>,
    /// The table's columns; `Value::ProviderColumns` stands for the provider's own.
    pub columns: &'static [Column],
}

const fn col(label: &'static str, value: Value) -> Column {
    Column { label, value }
}

static CLOUD: KindSpec = KindSpec {
    kind: Kind::Cloud,
    key: "cloud",
    label: "Cloud",
    noun: "cloud credential",
    partner_only: false,
    has_default: true,
    by_provider: true,
    name_label: "Name",
    slug_names: true,
    used_by: Some(<projects::cloud_credential_id as diesel::Column>::NAME),
    columns: &[
        col("ID", Value::Id),
        col("Name", Value::Name),
        col("Organization", Value::Organization),
        col("Provider", Value::ProviderName),
        col("Details", Value::ProviderColumns),
        col("Projects", Value::Associated),
        col("Default", Value::Default),
        col("Lock", Value::Lock),
        col("Verified", Value::Verified),
    ],
};

static BACKUP: KindSpec = KindSpec {
    kind: Kind::Backup,
    key: "backup",
    label: "Backup",
    noun: "backup credential",
    partner_only: false,
    has_default: true,
    by_provider: false,
    name_label: "S3 Name",
    slug_names: false,
    used_by: Some(<projects::backup_credential_id as diesel::Column>::NAME),
    columns: &[
        col("ID", Value::Id),
        col("Organization", Value::Organization),
        col("", Value::ProviderColumns),
        col("S3 Name", Value::Name),
        col("Associated Projects", Value::Associated),
        col("Expires", Value::Expires),
        col("Default", Value::Default),
        col("Lock", Value::Lock),
        col("Verified", Value::Verified),
    ],
};

static BILLING: KindSpec = KindSpec {
    kind: Kind::Billing,
    key: "billing",
    label: "Billing",
    noun: "billing credential",
    partner_only: true,
    has_default: true,
    by_provider: false,
    name_label: "Name",
    slug_names: false,
    used_by: None,
    columns: &[
        col("ID", Value::Id),
        col("Name", Value::Name),
        col("Organization", Value::Organization),
        col("", Value::ProviderColumns),
        col("Default", Value::Default),
        col("Lock", Value::Lock),
        col("Verified", Value::Verified),
    ],
};

static SHOWBACK: KindSpec = KindSpec {
    kind: Kind::Showback,
    key: "showback",
    label: "Showback",
    noun: "showback credential",
    partner_only: false,
    has_default: false,
    by_provider: false,
    name_label: "Name",
    slug_names: false,
    used_by: None,
    columns: &[
        col("ID", Value::Id),
        col("Name", Value::Name),
        col("Organization", Value::Organization),
        col("", Value::ProviderColumns),
        col("Created", Value::Created),
        col("Lock", Value::Lock),
        col("Verified", Value::Verified),
    ],
};

static AI: KindSpec = KindSpec {
    kind: Kind::Ai,
    key: "ai",
    label: "AI",
    noun: "AI credential",
    partner_only: false,
    has_default: true,
    by_provider: false,
    name_label: "Name",
    slug_names: false,
    used_by: Some(<projects::ai_credential_id as diesel::Column>::NAME),
    columns: &[
        col("ID", Value::Id),
        col("Name", Value::Name),
        col("Organization", Value::Organization),
        col("", Value::ProviderColumns),
        col("Associated Projects", Value::Associated),
        col("Default", Value::Default),
        col("Lock", Value::Lock),
        col("Verified", Value::Verified),
    ],
};

impl KindSpec {
    /// The providers of this kind, in the order forms offer them.
    pub fn providers(&self) -> impl Iterator<Item = &'static Provider> + use<> {
        let kind = self.kind;
        PROVIDERS
            .iter()
            .copied()
            .filter(move |provider| provider.kind == kind)
    }

    /// The table's columns, with `provider`'s own where the spec says (a tab listing several
    /// providers at once shows a summary of each row's instead, under the spec's label).
    pub fn columns(&self, provider: Option<&'static Provider>) -> Vec<Column> {
        let provider = provider.or_else(|| self.providers().next().filter(|_| !self.by_provider));
        let mut columns = Vec::with_capacity(self.columns.len() + 4);
        for column in self.columns {
            match (column.value, provider) {
                (Value::ProviderColumns, Some(provider)) => columns.extend(
                    provider
                        .columns
                        .iter()
                        .map(|(label, key)| col(label, Value::Public(key))),
                ),
                (Value::ProviderColumns, None) => columns.push(col(column.label, Value::Summary)),
                _ => columns.push(*column),
            }
        }
        columns
    }

    /// The public keys table cells and sorting may use: the columns of the kind's providers.
    pub fn column_keys(&self) -> impl Iterator<Item = &'static str> + use<> {
        self.providers()
            .flat_map(|provider| provider.columns.iter().map(|(_, key)| *key))
    }
}

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
    /// In a `KindSpec`: the provider's own columns go here (`KindSpec::columns`).
    ProviderColumns,
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
            Value::ProviderColumns | Value::Summary | Value::Associated => return None,
            Value::Created => "created".into(),
            Value::Expires => "expires".into(),
            Value::Default => "default".into(),
            Value::Lock => "lock".into(),
            Value::Verified => "verified".into(),
        })
    }
}

/// A provider of a kind (for the kinds other than cloud, the one protocol it speaks), each in
/// its own file under `provider/`.
#[derive(Debug)]
pub struct Provider {
    pub kind: Kind,
    pub key: &'static str,
    pub label: &'static str,
    /// Only Partners may add it (Proxmox, Tanzu); Managers may still view, edit and lock it.
    pub partner_only_add: bool,
    pub name_editable: bool,
    pub fields: &'static [Field],
    /// Provider-specific table columns: (heading, key of a public field or a derived value).
    pub columns: &'static [(&'static str, &'static str)],
    /// Public values worked out from the submitted ones when saving.
    pub derived: &'static [Derived],
    /// Rules across fields, beyond each field's own.
    pub rules: fn(&Values, &mut FieldErrors),
    /// Proves complete values (secrets included) against the provider's API.
    pub verify: Verifier,
}

/// A public value a provider works out from submitted values (GCP's project id, from its key),
/// stored beside the fields and shown like them.
#[derive(Debug)]
pub struct Derived {
    pub key: &'static str,
    pub value: fn(&Values) -> Option<String>,
}

impl Provider {
    pub fn field(&self, key: &str) -> Option<&'static Field> {
        self.fields.iter().find(|field| field.key == key)
    }

    pub fn secret_fields(&self) -> impl Iterator<Item = &'static Field> + use<> {
        self.fields.iter().filter(|field| field.secret)
    }

    pub fn public_fields(&self) -> impl Iterator<Item = &'static Field> + use<> {
        self.fields.iter().filter(|field| !field.secret)
    }

    /// Whether an edit form has anything to change.
    pub fn editable(&self) -> bool {
        self.name_editable || self.fields.iter().any(|field| field.editable)
    }
}

/// The rules of a provider whose fields are checked one by one only.
pub fn no_rules(_: &Values, _: &mut FieldErrors) {}

/// Finds a provider of `kind`; a kind not `by_provider` has exactly one.
pub fn find(kind: Kind, key: Option<&str>) -> Option<&'static Provider> {
    let spec = kind.spec();
    if spec.by_provider {
        spec.providers().find(|provider| Some(provider.key) == key)
    } else {
        spec.providers().next()
    }
}

/// Checks the name of a credential of `kind`: 3–30 characters, and for some kinds only
/// letters, digits and `-`.
pub fn check_name(kind: Kind, name: &str) -> Result<(), String> {
    let length = name.chars().count();
    if !(3..=30).contains(&length) {
        return Err("Use 3 to 30 characters.".into());
    }
    if kind.spec().slug_names && !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err("only letters, digits and -".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_has_unique_field_keys_and_known_column_keys() {
        for provider in PROVIDERS {
            let mut keys: Vec<_> = provider.fields.iter().map(|f| f.key).collect();
            keys.extend(provider.derived.iter().map(|derived| derived.key));
            keys.sort();
            keys.dedup();
            let declared = provider.fields.len() + provider.derived.len();
            assert_eq!(keys.len(), declared, "{}", provider.key);
            for (_, key) in provider.columns {
                assert!(keys.contains(key), "{} {key}", provider.key);
            }
        }
    }

    #[test]
    fn every_kind_has_its_spec_and_its_providers() {
        for kind in Kind::ALL {
            let spec = kind.spec();
            assert_eq!(spec.kind, kind);
            assert_eq!(Kind::parse(spec.key), Some(kind));
            let providers = spec.providers().count();
            assert!(providers >= 1, "{}", spec.key);
            assert!(spec.by_provider || providers == 1, "{}", spec.key);
            let mut keys: Vec<_> = spec.providers().map(|p| p.key).collect();
            keys.sort();
            keys.dedup();
            assert_eq!(
                keys.len(),
                providers,
                "{}: provider keys are unique",
                spec.key
            );
            assert!(
                spec.columns
                    .iter()
                    .any(|column| column.value == Value::ProviderColumns),
                "{}",
                spec.key
            );
        }
        assert_eq!(Kind::parse("clouds"), None);
    }

    #[test]
    fn a_tab_of_one_provider_shows_its_columns_and_of_several_a_summary() {
        let labels = |columns: Vec<Column>| -> Vec<&str> {
            columns.iter().map(|column| column.label).collect()
        };
        assert_eq!(
            labels(Kind::Backup.spec().columns(None)),
            [
                "ID",
                "Organization",
                "S3 Access Key ID",
                "S3 Endpoint",
                "S3 Name",
                "Associated Projects",
                "Expires",
                "Default",
                "Lock",
                "Verified"
            ]
        );
        let cloud = Kind::Cloud.spec();
        assert_eq!(labels(cloud.columns(None))[4], "Details");
        let aws = find(Kind::Cloud, Some("aws"));
        assert_eq!(labels(cloud.columns(aws))[4..6], ["Region", "Zones"]);
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
}
