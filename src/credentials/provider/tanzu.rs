//! Tanzu (added by Partners only): a user and password, checked by opening a session
//! (`POST /api/session`) on the configured port.

use crate::credentials::field::{Input, Values, continent, field, secret, text, url};
use crate::credentials::provider::{Kind, Provider, no_rules};
use crate::credentials::verify::{self, Network, Verification};

pub static PROVIDER: Provider = Provider {
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
    derived: &[],
    rules: no_rules,
    verify: check,
};

fn check<'a>(network: Network<'a>, values: &'a Values) -> Verification<'a> {
    Box::pin(async move {
        let Ok(mut base) = url::Url::parse(values.get("url")) else {
            return verify::invalid_url();
        };
        if let Ok(port) = values.get("port").parse::<u16>() {
            let _ = base.set_port(Some(port));
        }
        let Some(url) = verify::join(base.as_str(), "api/session") else {
            return verify::invalid_url();
        };
        verify::http(network.outbound, &url, "Tanzu", |client| {
            client
                .post(url.clone())
                .basic_auth(values.get("username"), Some(values.get("password")))
        })
        .await
    })
}
