//! Azure: a service principal, checked with an OAuth2 client-credentials token request at the
//! configured authority (`Endpoints::azure_authority`).

use reqwest::StatusCode;

use crate::credentials::field::{Values, az_count, secret, text};
use crate::credentials::provider::{Kind, Provider, no_rules};
use crate::credentials::verify::{self, Network, Outcome, Verification};

pub static PROVIDER: Provider = Provider {
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
    derived: &[],
    rules: no_rules,
    verify: check,
};

fn check<'a>(network: Network<'a>, values: &'a Values) -> Verification<'a> {
    Box::pin(async move {
        let token_path = format!("{}/oauth2/v2.0/token", values.get("tenant_id"));
        let Some(url) = verify::join(&network.endpoints.azure_authority, &token_path) else {
            return verify::invalid_url();
        };
        let answer = verify::send(network.outbound, &url, |client| {
            client.post(url.clone()).form(&[
                ("grant_type", "client_credentials"),
                ("client_id", values.get("client_id")),
                ("client_secret", values.get("client_secret")),
                ("scope", "https://management.azure.com/.default"),
            ])
        })
        .await;
        match answer {
            // Azure AD answers a wrong client or secret with 400.
            Ok(response) if response.status() == StatusCode::BAD_REQUEST => {
                Outcome::Failed("Invalid Azure credentials (the token request was refused)".into())
            }
            Ok(response) => verify::read_status(&url, "Azure", response.status()),
            Err(outcome) => outcome,
        }
    })
}
