//! Prometheus, the provider of two kinds (billing, showback): a user and password, checked with
//! `GET {url}/api/v1/status/buildinfo` and basic auth.

use crate::credentials::field::{Values, secret, text, url};
use crate::credentials::provider::{Kind, Provider, no_rules};
use crate::credentials::verify::{self, Network, Verification};

pub static BILLING: Provider = Provider {
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
    derived: &[],
    rules: no_rules,
    verify: check,
};

pub static SHOWBACK: Provider = Provider {
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
    derived: &[],
    rules: no_rules,
    verify: check,
};

fn check<'a>(network: Network<'a>, values: &'a Values) -> Verification<'a> {
    Box::pin(async move {
        let Some(url) = verify::join(values.get("url"), "api/v1/status/buildinfo") else {
            return verify::invalid_url();
        };
        verify::http(network.outbound, &url, "Prometheus", |client| {
            client
                .get(url.clone())
                .basic_auth(values.get("username"), Some(values.get("password")))
        })
        .await
    })
}
