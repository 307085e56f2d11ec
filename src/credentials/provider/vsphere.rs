//! vSphere: a user and password, checked by opening a session (`POST /api/session`).

use crate::credentials::field::{
    Field, Input, NETWORKS, Values, continent, field, joined, network_rules, secret, text, url,
};
use crate::credentials::provider::{Kind, Provider};
use crate::credentials::verify::{self, Network, Verification};
use crate::web::form::FieldErrors;

pub static PROVIDER: Provider = Provider {
    kind: Kind::Cloud,
    key: "vsphere",
    label: "vSphere",
    partner_only_add: false,
    name_editable: true,
    fields: &FIELDS,
    columns: &[("URL", "url"), ("Datacenter", "datacenter")],
    derived: &[],
    rules,
    verify: check,
};

static FIELDS: [Field; 21] = joined(
    [
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
    ],
    NETWORKS,
);

fn rules(values: &Values, errors: &mut FieldErrors) {
    if !values.flag("drs_enabled") && values.list("hypervisors").is_empty() {
        errors.add("hypervisors", "List the hypervisors, or enable DRS.");
    }
    network_rules(values, errors);
}

fn check<'a>(network: Network<'a>, values: &'a Values) -> Verification<'a> {
    Box::pin(async move {
        let Some(url) = verify::join(values.get("url"), "api/session") else {
            return verify::invalid_url();
        };
        verify::http(network.outbound, &url, "vSphere", |client| {
            client
                .post(url.clone())
                .basic_auth(values.get("username"), Some(values.get("password")))
        })
        .await
    })
}
