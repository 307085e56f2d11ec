//! S3 (the backup kind's provider): an access key, checked with a signed ListBuckets against
//! the endpoint. A key whose signature is accepted but which may not list buckets passes with a
//! warning: backups need write and delete on their bucket, which enabling backup probes.

use crate::credentials::field::{Input, Values, field, secret, text, url};
use crate::credentials::provider::{Kind, Provider, no_rules};
use crate::credentials::verify::{self, Network, Outcome, Verification};
use crate::outbound;
use crate::storage::{Addressing, Failure, S3Settings, Storage};

/// The addressing styles a backup credential may choose (`storage::Addressing`).
const ADDRESSING: &[&str] = &["auto", "path-style", "virtual-hosted"];

pub static PROVIDER: Provider = Provider {
    kind: Kind::Backup,
    key: "s3",
    label: "S3",
    partner_only_add: false,
    name_editable: true,
    fields: &[
        text("access_key_id", "S3 Access Key ID")
            .editable()
            .pasted_as(&[
                "access key id",
                "access key",
                "aws_access_key_id",
                "access_key_id",
            ]),
        secret("secret_access_key", "S3 Secret Key")
            .editable()
            .pasted_as(&[
                "secret key",
                "secret access key",
                "aws_secret_access_key",
                "secret_access_key",
            ]),
        url("endpoint", "S3 Endpoint")
            .help("e.g. https://s3.eu-central-1.amazonaws.com or your MinIO address.")
            .pasted_as(&["endpoint", "s3 endpoint", "endpoint url", "endpoint_url"]),
        text("region", "S3 Region")
            .default("us-east-1")
            .pasted_as(&["region", "s3 region"]),
        field("addressing", "Addressing style", Input::Select(ADDRESSING))
            .default("auto")
            .optional()
            .editable()
            .help(
                "auto: virtual-hosted (bucket.host) for AWS endpoints, path-style (host/bucket) \
                 for any other; choose one if your service needs it.",
            ),
    ],
    columns: &[
        ("S3 Access Key ID", "access_key_id"),
        ("S3 Endpoint", "endpoint"),
    ],
    derived: &[],
    rules: no_rules,
    verify: check,
};

/// Signed ListBuckets against the endpoint (path style).
fn check<'a>(network: Network<'a>, values: &'a Values) -> Verification<'a> {
    Box::pin(async move {
        let endpoint = values.get("endpoint");
        let Ok(url) = url::Url::parse(endpoint) else {
            return verify::invalid_url();
        };
        if let Err(message) = network.outbound.check_target(&url).await {
            return Outcome::Failed(message);
        }
        let origin = outbound::origin(&url);
        let settings = S3Settings {
            endpoint: endpoint.to_string(),
            region: values.get("region").to_string(),
            access_key: values.get("access_key_id").to_string(),
            secret_key: values.get("secret_access_key").to_string(),
            addressing: Addressing::of(values.get("addressing"), endpoint),
        };
        let storage = match Storage::open(network.outbound, &settings, "").await {
            Ok(storage) => storage,
            Err(message) => return Outcome::Failed(message),
        };
        match storage.list_buckets().await {
            Ok(body) if body.contains("ListAllMyBucketsResult") => {
                Outcome::Ok("S3 accepted the credentials (ListBuckets)".into())
            }
            Ok(_) => Outcome::Failed(format!("{origin} answered, but not like an S3 endpoint")),
            Err(failure) => refused(&origin, &failure),
        }
    })
}

/// What a refused ListBuckets means to a person.
fn refused(origin: &str, failure: &Failure) -> Outcome {
    if failure.status.is_none() {
        Outcome::Failed(failure.message.clone())
    } else if failure.bad_credentials() {
        Outcome::Failed("Invalid S3 credentials".into())
    } else if failure.denied() {
        Outcome::Warning(format!(
            "the signature is valid, but listing buckets is denied ({}): backups need write and delete on their bucket",
            failure.answer()
        ))
    } else {
        Outcome::Failed(format!("{origin} {}", failure.answer()))
    }
}
