//! Zededa: an API token, checked with a bearer `GET` of the API URL.

use crate::credentials::field::{Input, Values, continent, field, secret, text, url};
use crate::credentials::provider::{Kind, Provider, no_rules};
use crate::credentials::verify::{self, Network, Verification};

pub static PROVIDER: Provider = Provider {
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
    derived: &[],
    rules: no_rules,
    verify: check,
};

fn check<'a>(network: Network<'a>, values: &'a Values) -> Verification<'a> {
    Box::pin(async move {
        let Ok(url) = url::Url::parse(values.get("api_url")) else {
            return verify::invalid_url();
        };
        verify::http(network.outbound, &url, "Zededa", |client| {
            client.get(url.clone()).bearer_auth(values.get("api_token"))
        })
        .await
    })
}
