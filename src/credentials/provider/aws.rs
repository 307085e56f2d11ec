//! AWS: an access key, checked with STS `GetCallerIdentity` (SigV4), which any valid key may
//! call and which changes nothing, at the configured endpoint (`Endpoints::aws_sts`).

use crate::credentials::field::{Input, Values, az_count, field, secret};
use crate::credentials::provider::{Kind, Provider, no_rules};
use crate::credentials::verify::{self, Network, Verification, sigv4};

pub static PROVIDER: Provider = Provider {
    kind: Kind::Cloud,
    key: "aws",
    label: "AWS",
    partner_only_add: false,
    name_editable: true,
    fields: &[
        secret("access_key_id", "Access key ID").editable(),
        secret("secret_access_key", "Secret access key").editable(),
        field("region", "Region", Input::Select(REGIONS)),
        az_count(),
    ],
    columns: &[("Region", "region"), ("Zones", "az_count")],
    derived: &[],
    rules: no_rules,
    verify: check,
};

const REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "ca-central-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-north-1",
    "eu-south-1",
    "me-south-1",
    "sa-east-1",
];

fn check<'a>(network: Network<'a>, values: &'a Values) -> Verification<'a> {
    Box::pin(async move {
        let Ok(url) = url::Url::parse(&network.endpoints.aws_sts) else {
            return verify::invalid_url();
        };
        let request = sigv4::get_caller_identity(
            &url,
            values.get("access_key_id"),
            values.get("secret_access_key"),
            chrono::Utc::now(),
        );
        verify::http(network.outbound, &url, "AWS", |client| {
            let mut builder = client.post(url.clone()).body(request.body.clone());
            for (name, value) in &request.headers {
                builder = builder.header(name, value);
            }
            builder
        })
        .await
    })
}
