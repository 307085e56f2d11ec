//! OpenAI-compatible APIs (the AI kind's provider): an API key, checked with
//! `GET {base_url}/v1/models` and the key as a bearer token.

use crate::credentials::field::{Values, secret, url};
use crate::credentials::provider::{Kind, Provider, no_rules};
use crate::credentials::verify::{self, Network, Verification};

pub static PROVIDER: Provider = Provider {
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
    derived: &[],
    rules: no_rules,
    verify: check,
};

fn check<'a>(network: Network<'a>, values: &'a Values) -> Verification<'a> {
    Box::pin(async move {
        let Some(url) = verify::join(values.get("base_url"), "v1/models") else {
            return verify::invalid_url();
        };
        verify::http(network.outbound, &url, "API", |client| {
            client.get(url.clone()).bearer_auth(values.get("api_key"))
        })
        .await
    })
}
