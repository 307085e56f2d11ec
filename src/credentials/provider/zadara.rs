//! Zadara: access keys, checked for their form only (Zadara has no read-only call to test them
//! with), so they pass with a warning.

use crate::credentials::field::{Input, Values, az_count, continent, field, secret, text, url};
use crate::credentials::provider::{Kind, Provider, no_rules};
use crate::credentials::verify::{Network, Outcome, Verification};

pub static PROVIDER: Provider = Provider {
    kind: Kind::Cloud,
    key: "zadara",
    label: "Zadara",
    partner_only_add: false,
    name_editable: true,
    fields: &[
        url("url", "Zadara URL"),
        secret("access_key_id", "Access key ID").editable(),
        secret("secret_access_key", "Secret access key").editable(),
        text("region", "Region"),
        az_count(),
        field("volume_type", "Volume type", Input::Select(VOLUME_TYPES)).default("gp2"),
        continent(),
    ],
    columns: &[("URL", "url"), ("Region", "region")],
    derived: &[],
    rules: no_rules,
    verify: check,
};

const VOLUME_TYPES: &[&str] = &[
    "io1", "io2", "gp2", "gp3", "sc1", "st1", "standard", "sbp1", "sbg1",
];

fn check<'a>(_: Network<'a>, values: &'a Values) -> Verification<'a> {
    let outcome =
        if values.get("access_key_id").len() < 8 || values.get("secret_access_key").len() < 8 {
            Outcome::Failed("Zadara keys look too short to be real".into())
        } else {
            Outcome::Warning(
                "checked the form of the keys only: Zadara has no read-only call to test them with"
                    .into(),
            )
        };
    Box::pin(std::future::ready(outcome))
}
