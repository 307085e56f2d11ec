//! OpenStack: a user and password (or an application credential) checked with a Keystone v3
//! token request.

use crate::credentials::field::{Input, Values, field, secret, text, url};
use crate::credentials::provider::{Kind, Provider};
use crate::credentials::verify::{self, Network, Verification};
use crate::web::form::FieldErrors;

pub static PROVIDER: Provider = Provider {
    kind: Kind::Cloud,
    key: "openstack",
    label: "OpenStack",
    partner_only_add: false,
    name_editable: true,
    fields: &[
        url("url", "Keystone URL").help("The identity endpoint, e.g. https://keystone:5000/v3."),
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
    derived: &[],
    rules,
    verify: check,
};

fn rules(values: &Values, errors: &mut FieldErrors) {
    let app_credentials = values.flag("application_credentials");
    let domain = values.get("domain");
    if app_credentials && !domain.is_empty() {
        errors.add("domain", "Application credentials take no domain.");
    } else if !app_credentials && domain.is_empty() {
        errors.add("domain", "Required for user and password.");
    }
}

fn check<'a>(network: Network<'a>, values: &'a Values) -> Verification<'a> {
    Box::pin(async move {
        let base = values.get("url");
        let path = if base.trim_end_matches('/').ends_with("/v3") {
            "auth/tokens"
        } else {
            "v3/auth/tokens"
        };
        let Some(url) = verify::join(base, path) else {
            return verify::invalid_url();
        };
        let body = token_request(values);
        verify::http(network.outbound, &url, "OpenStack", |client| {
            client.post(url.clone()).json(&body)
        })
        .await
    })
}

fn token_request(values: &Values) -> serde_json::Value {
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
