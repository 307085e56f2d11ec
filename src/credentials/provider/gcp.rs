//! GCP: a service-account JSON key, checked for its structure (type, project, client email, a
//! parsing private key); its project id is stored beside the fields.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;

use crate::credentials::field::{Input, Values, az_count, field, secret, text};
use crate::credentials::provider::{Derived, Kind, Provider};
use crate::credentials::verify::{Network, Outcome, Verification};
use crate::web::form::FieldErrors;

pub static PROVIDER: Provider = Provider {
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
            .required_unless("import_project", "Required unless importing a project."),
        text("billing_account_id", "Billing account ID")
            .required_unless("import_project", "Required unless importing a project."),
        text("region", "Region").help("e.g. europe-west1"),
        az_count(),
    ],
    columns: &[
        ("Region", "region"),
        ("Folder", "folder_id"),
        ("Billing account", "billing_account_id"),
        ("Project ID", "project_id"),
    ],
    derived: &[Derived {
        key: "project_id",
        value: |values| project_id(values.get("config_json")).ok(),
    }],
    rules,
    verify: check,
};

fn rules(values: &Values, errors: &mut FieldErrors) {
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
        && let Err(message) = project_id(values.get("config_json"))
    {
        errors.add("config_json", message);
    }
}

fn check<'a>(_: Network<'a>, values: &'a Values) -> Verification<'a> {
    let outcome = match project_id(values.get("config_json")) {
        Ok(project) => Outcome::Ok(format!("service account key of project {project}")),
        Err(message) => Outcome::Failed(message),
    };
    Box::pin(std::future::ready(outcome))
}

#[derive(Deserialize)]
struct ServiceAccountKey {
    #[serde(rename = "type")]
    kind: String,
    project_id: String,
    client_email: String,
    private_key: String,
}

/// The project of a service-account key, after checking its structure and private key.
fn project_id(json: &str) -> Result<String, String> {
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
    fn gcp_folder_and_billing_account_depend_on_import() {
        let mut errors = FieldErrors::default();
        rules(
            &values(&[("import_project", "on"), ("folder_id", "f")]),
            &mut errors,
        );
        assert!(errors.get("folder_id").is_some() && errors.get("billing_account_id").is_none());
        let mut errors = FieldErrors::default();
        rules(&values(&[]), &mut errors);
        assert!(errors.get("folder_id").is_some() && errors.get("billing_account_id").is_some());
    }
}
