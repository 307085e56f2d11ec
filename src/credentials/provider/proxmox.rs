//! Proxmox VE (added by Partners only): an API token, checked with `GET /api2/json/version`.

use crate::credentials::field::{
    Field, Input, NETWORKS, Values, continent, field, joined, network_rules, secret, text, url,
};
use crate::credentials::provider::{Kind, Provider};
use crate::credentials::verify::{self, Network, Verification};

pub static PROVIDER: Provider = Provider {
    kind: Kind::Cloud,
    key: "proxmox",
    label: "Proxmox",
    partner_only_add: true,
    name_editable: true,
    fields: &FIELDS,
    columns: &[
        ("URL", "url"),
        ("Storage", "storage"),
        ("Hypervisors", "hypervisors"),
    ],
    derived: &[],
    rules: network_rules,
    verify: check,
};

static FIELDS: [Field; 19] = joined(
    [
        url("url", "Proxmox URL"),
        text("token_id", "API token ID")
            .help("user@realm!tokenname")
            .editable(),
        secret("token_secret", "API token secret").editable(),
        text("storage", "Storage"),
        text("vm_template", "VM template"),
        field("hypervisors", "Hypervisors", Input::List).help("One node name per line."),
        continent(),
    ],
    NETWORKS,
);

fn check<'a>(network: Network<'a>, values: &'a Values) -> Verification<'a> {
    Box::pin(async move {
        let Some(url) = verify::join(values.get("url"), "api2/json/version") else {
            return verify::invalid_url();
        };
        let token = format!(
            "PVEAPIToken={}={}",
            values.get("token_id"),
            values.get("token_secret")
        );
        verify::http(network.outbound, &url, "Proxmox", |client| {
            client.get(url.clone()).header("Authorization", token)
        })
        .await
    })
}
