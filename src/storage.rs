//! S3 storage through keyhold's own outbound client.
//!
//! rust-s3 builds a reqwest client of its own (redirects followed, any address, its own
//! timeouts and retries) and offers no way to replace it. keyhold keeps rust-s3 for what it is
//! good at — signing requests (SigV4) and building their URLs and bodies — and sends every
//! request through the guarded client of `Outbound` (no redirects, DNS answers filtered, its
//! connect timeout), with a deadline on every request and on every stalled stream.
//!
//! Every refusal keeps S3's own `Code` and `Message` next to what keyhold was doing.
//!
//! Over 600 lines because every S3 request keyhold makes goes through `send` here (signing,
//! deadlines, retries, S3's answers), with their tests; uploads are `storage/upload.rs`,
//! downloads `storage/download.rs`.

use std::str::FromStr;
use std::time::Duration;

use s3::command::Command;
use s3::creds::Credentials;
use s3::request::Request as _;
use s3::request::tokio_backend::ReqwestRequest;
use s3::{Bucket, BucketConfiguration, Region};

pub mod bucket_name;
mod download;
mod upload;
use crate::outbound::{self, Outbound, reason};
pub use download::Transfer;
pub use upload::UploadFailure;

/// The smallest part S3 accepts (except the last), and the size keyhold starts with.
pub const FIRST_PART: usize = 8 * 1024 * 1024;
/// S3's largest part.
const LARGEST_PART: usize = 5 * 1024 * 1024 * 1024;
/// S3's limit on the parts of one object.
pub const MAX_PARTS: u32 = 10_000;
/// Parts up to this size are held in memory; larger ones (parts grow past it only in dumps of
/// more than about 24 GB) are spooled to a private temporary file and sent from there, so
/// memory stays at about two of these whatever the dump's size.
pub const MEMORY_PART: usize = 16 * 1024 * 1024;
/// Attempts of a request S3 answered 500, 502, 503 (SlowDown) or 504, or that failed to connect.
const ATTEMPTS: u32 = 3;
/// The most of an error answer keyhold reads (the endpoint is a Manager's to choose).
const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// The most of a listing or small object keyhold reads into memory.
const SMALL_BODY_LIMIT: usize = 1024 * 1024;
/// The longest a streamed body may take whole (its chunks have deadlines of their own).
const STREAM_LIMIT: Duration = Duration::from_secs(7 * 24 * 3600);

/// Up to `limit` bytes of a response's body.
async fn capped_bytes(mut response: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    body
}

/// Up to `limit` bytes of a response's body, as text.
async fn capped_text(response: reqwest::Response, limit: usize) -> String {
    String::from_utf8_lossy(&capped_bytes(response, limit).await).into_owned()
}

/// Why an S3 request failed: what keyhold was doing, and S3's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What keyhold was doing ("creating bucket x").
    pub doing: String,
    /// The HTTP status, when S3 answered.
    pub status: Option<u16>,
    /// S3's error code (`AccessDenied`), when it gave one.
    pub code: String,
    /// S3's message, or the transport's reason.
    pub message: String,
    /// No answer came, for a reason other than the deadline: no connection could be made, or
    /// it broke before S3 answered. `send` sends such a request again unless it creates state
    /// (a new upload, a completion), which a second copy could duplicate or fail.
    pub unreached: bool,
}

impl Failure {
    fn transport(doing: &str, message: String) -> Failure {
        Failure {
            doing: doing.to_string(),
            status: None,
            code: String::new(),
            message,
            unreached: false,
        }
    }

    /// No answer from S3: no connection, or one that broke before the answer.
    fn unreachable(doing: &str, message: String) -> Failure {
        Failure {
            unreached: true,
            ..Failure::transport(doing, message)
        }
    }

    /// A signature or key S3 does not accept. AWS and most servers say so in the code; Garage
    /// answers `AccessDenied` for both, with "Invalid signature" or "No such key" as the message.
    pub fn bad_credentials(&self) -> bool {
        let garage = self.code == "AccessDenied"
            && (self.message.contains("Invalid signature") || self.message.contains("No such key"));
        matches!(
            self.code.as_str(),
            "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "InvalidSecurity" | "InvalidToken"
        ) || garage
            || (self.status == Some(401))
            || (self.status == Some(403) && self.code.is_empty())
    }

    /// A refusal of this key's rights (the signature was fine).
    pub fn denied(&self) -> bool {
        !self.bad_credentials() && (self.code == "AccessDenied" || self.status == Some(403))
    }

    /// S3's own words: `Code: Message`, or the status, or the transport's reason.
    pub fn answer(&self) -> String {
        match (self.code.is_empty(), self.status) {
            (false, Some(status)) if self.message.is_empty() => {
                format!("{} (HTTP {status})", self.code)
            }
            (false, Some(status)) => format!("{}: {} (HTTP {status})", self.code, self.message),
            (false, None) => self.code.clone(),
            (true, Some(status)) => format!("answered HTTP {status}"),
            (true, None) => self.message.clone(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.bad_credentials() {
            return write!(f, "Invalid S3 credentials");
        }
        write!(f, "{}: {}", self.doing, self.answer())
    }
}

/// The text between `<tag>` and `</tag>` in an S3 XML answer.
fn element(xml: &str, tag: &str) -> String {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.find(&open)
        .and_then(|start| {
            let rest = &xml[start + open.len()..];
            rest.find(&close).map(|end| rest[..end].trim().to_string())
        })
        .unwrap_or_default()
}

/// S3's refusal, with its code and message.
async fn refusal(response: reqwest::Response, doing: &str) -> Failure {
    let status = response.status().as_u16();
    let body = capped_text(response, ERROR_BODY_LIMIT).await;
    Failure {
        doing: doing.to_string(),
        status: Some(status),
        code: element(&body, "Code"),
        message: element(&body, "Message"),
        unreached: false,
    }
}

/// Whether a request with this answer is worth trying again.
fn transient(status: u16) -> bool {
    matches!(status, 500 | 502 | 503 | 504)
}

/// The size of part `number` (from 1): 8 MiB doubling every 1,000 parts, so 10,000 parts
/// reach S3's 5 TiB object limit while small dumps keep small parts.
pub fn part_size(number: u32, max_parts: u32) -> usize {
    let step = (max_parts / 10).max(1);
    let doublings = ((number.saturating_sub(1)) / step).min(20);
    FIRST_PART
        .saturating_mul(1usize << doublings)
        .min(LARGEST_PART)
}

/// One bucket on one S3 endpoint, with one key.
#[derive(Clone)]
pub struct Storage {
    bucket: Box<Bucket>,
    client: reqwest::Client,
    origin: String,
    /// Deadline of a request without a large body.
    timeout: Duration,
    /// Parts of one object at most (S3's 10,000; lower in tests).
    max_parts: u32,
    /// Parts larger than this are spooled to disk (`MEMORY_PART`; lower in tests).
    memory_part: usize,
    /// The signing region and keys, for the requests keyhold signs itself (spooled parts).
    signing: Signing,
}

/// What SigV4 needs to sign a request.
#[derive(Clone)]
struct Signing {
    region: String,
    access_key: String,
    secret_key: String,
}

/// The S3 settings of a backup credential.
#[derive(Clone)]
pub struct S3Settings {
    pub endpoint: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    pub addressing: Addressing,
}

/// How a bucket is named in requests: in the path (`https://host/bucket/key`, what self-hosted
/// servers expect) or in the host name (`https://bucket.host/key`, what AWS prefers and new
/// AWS regions require).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addressing {
    Path,
    Virtual,
}

impl Addressing {
    /// The style a credential chose (`path-style`, `virtual-hosted`), or for `auto` (and
    /// nothing): virtual-hosted for AWS endpoints, path-style for any other.
    pub fn of(choice: &str, endpoint: &str) -> Addressing {
        match choice.trim() {
            "path-style" => Addressing::Path,
            "virtual-hosted" => Addressing::Virtual,
            _ => {
                let aws = url::Url::parse(endpoint).ok().is_some_and(|url| {
                    url.host_str().is_some_and(|host| {
                        host == "amazonaws.com" || host.ends_with(".amazonaws.com")
                    })
                });
                if aws {
                    Addressing::Virtual
                } else {
                    Addressing::Path
                }
            }
        }
    }
}

impl S3Settings {
    /// rust-s3's handle on `bucket` with these settings (its URLs and signatures).
    fn bucket(&self, bucket: &str) -> Result<Box<Bucket>, String> {
        let region = Region::Custom {
            region: self.signing_region(),
            endpoint: self.endpoint.trim_end_matches('/').to_string(),
        };
        let credentials = Credentials::new(
            Some(&self.access_key),
            Some(&self.secret_key),
            None,
            None,
            None,
        )
        .map_err(|error| format!("cannot use these S3 settings: {error}"))?;
        let mut bucket = Bucket::new(bucket, region, credentials)
            .map_err(|error| format!("cannot use these S3 settings: {error}"))?;
        // Account-level calls (no bucket) always name the endpoint itself.
        if self.addressing == Addressing::Path || bucket.name.is_empty() {
            bucket = bucket.with_path_style();
        }
        Ok(bucket)
    }

    /// The region requests are signed for (`us-east-1` when none is given).
    fn signing_region(&self) -> String {
        match self.region.trim() {
            "" => "us-east-1".to_string(),
            region => region.to_string(),
        }
    }
}

impl Storage {
    /// A handle on `bucket` (may be empty for account-level calls); checks the endpoint's
    /// address first.
    pub async fn open(
        outbound: &Outbound,
        settings: &S3Settings,
        bucket: &str,
    ) -> Result<Storage, String> {
        let url = url::Url::parse(&settings.endpoint)
            .map_err(|_| "the S3 endpoint is not a valid URL".to_string())?;
        outbound.check_target(&url).await?;
        let bucket = settings.bucket(bucket)?;
        Ok(Storage {
            bucket,
            client: outbound.client.clone(),
            origin: outbound::origin(&url),
            timeout: outbound.timeout,
            max_parts: MAX_PARTS,
            memory_part: MEMORY_PART,
            signing: Signing {
                region: settings.signing_region(),
                access_key: settings.access_key.clone(),
                secret_key: settings.secret_key.clone(),
            },
        })
    }

    /// The same storage for transfers: `timeout` per request (a part gets a second more per
    /// MiB), objects split into at most `max_parts` parts (S3's limit; lower in tests).
    pub fn with_transfers(mut self, timeout: Duration, max_parts: u32) -> Storage {
        self.timeout = timeout;
        self.max_parts = max_parts.max(1);
        self
    }

    /// The same storage, spooling parts larger than `bytes` to disk.
    pub fn with_memory_part(mut self, bytes: usize) -> Storage {
        self.memory_part = bytes;
        self
    }

    pub fn name(&self) -> &str {
        &self.bucket.name
    }

    /// Signs `command` for `path` and sends it once.
    async fn send_once(
        &self,
        path: &str,
        command: Command<'_>,
        timeout: Duration,
        doing: &str,
    ) -> Result<reqwest::Response, Failure> {
        let unsigned = |error: s3::error::S3Error| {
            Failure::transport(doing, format!("could not sign the request: {error}"))
        };
        let request = ReqwestRequest::new(&self.bucket, path, command)
            .await
            .map_err(unsigned)?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in request.headers().await.map_err(unsigned)?.iter() {
            if let (Ok(name), Ok(value)) = (
                reqwest::header::HeaderName::from_str(name.as_str()),
                reqwest::header::HeaderValue::from_bytes(value.as_bytes()),
            ) {
                headers.insert(name, value);
            }
        }
        let method = match request.command.http_verb() {
            s3::command::HttpMethod::Delete => reqwest::Method::DELETE,
            s3::command::HttpMethod::Get => reqwest::Method::GET,
            s3::command::HttpMethod::Post => reqwest::Method::POST,
            s3::command::HttpMethod::Put => reqwest::Method::PUT,
            s3::command::HttpMethod::Head => reqwest::Method::HEAD,
        };
        let url = request.url().map_err(unsigned)?;
        let body = request.request_body().map_err(unsigned)?;
        // An object's body may take longer than any one deadline: a GetObject has `timeout` to
        // answer, and its reader a deadline per chunk (`download`); other requests have
        // `timeout` for the whole exchange.
        let streaming = matches!(
            request.command,
            Command::GetObject | Command::GetObjectRange { .. }
        );
        let builder = self
            .client
            .request(method, url.as_str())
            .headers(headers)
            .body(body)
            .timeout(if streaming { STREAM_LIMIT } else { timeout });
        let answered = tokio::time::timeout(timeout, builder.send())
            .await
            .map_err(|_| {
                Failure::transport(
                    doing,
                    format!(
                        "{} did not answer within {} s",
                        self.origin,
                        timeout.as_secs()
                    ),
                )
            })?;
        answered.map_err(|error| {
            if error.is_timeout() {
                let reason = format!(
                    "{} did not answer within {} s",
                    self.origin,
                    timeout.as_secs()
                );
                Failure::transport(doing, reason)
            } else {
                let reason = format!("could not reach {}: {}", self.origin, reason(&error));
                Failure::unreachable(doing, reason)
            }
        })
    }

    /// Sends `command` (built anew for each attempt), retrying transient failures with
    /// backoff; a refusal becomes a `Failure` with S3's code and message. `accept` lists
    /// statuses that are answers rather than failures (404 for a delete, say).
    async fn send<'a>(
        &self,
        path: &str,
        command: impl Fn() -> Command<'a>,
        timeout: Duration,
        doing: &str,
        accept: &[u16],
    ) -> Result<reqwest::Response, Failure> {
        // A request that creates state (a new upload, a completion) is sent once: its retry
        // could open a second upload or fail a completion that succeeded.
        let retry_safe = !matches!(
            command(),
            Command::InitiateMultipartUpload { .. } | Command::CompleteMultipartUpload { .. }
        );
        let mut attempt = 1;
        loop {
            let last = attempt >= ATTEMPTS || !retry_safe;
            match self.send_once(path, command(), timeout, doing).await {
                Ok(response)
                    if response.status().is_success()
                        || accept.contains(&response.status().as_u16()) =>
                {
                    return Ok(response);
                }
                Ok(response) if !last && transient(response.status().as_u16()) => {}
                Ok(response) => return Err(refusal(response, doing).await),
                Err(failure) if !last && failure.unreached => {}
                Err(failure) => return Err(failure),
            }
            tokio::time::sleep(Duration::from_millis(200 * 4u64.pow(attempt - 1))).await;
            attempt += 1;
        }
    }

    /// ListBuckets: the raw answer (some S3 servers omit fields rust-s3's parser requires).
    pub async fn list_buckets(&self) -> Result<String, Failure> {
        let response = self
            .send(
                "/",
                || Command::ListBuckets,
                self.timeout,
                "listing buckets",
                &[],
            )
            .await?;
        Ok(capped_text(response, SMALL_BODY_LIMIT).await)
    }

    /// Creates the bucket; `Ok(false)` when it already exists and is this key's. The
    /// location constraint is sent except where S3 wants none (us-east-1, no region, `auto`).
    pub async fn create_bucket(&self, region: &str) -> Result<bool, Failure> {
        let mut config = BucketConfiguration::default();
        if !matches!(region.trim(), "" | "us-east-1" | "auto") {
            config.set_location_constraint(Region::Custom {
                region: region.trim().to_string(),
                endpoint: String::new(),
            });
        }
        let doing = format!("creating bucket {}", self.name());
        let result = self
            .send(
                "",
                || Command::CreateBucket {
                    config: config.clone(),
                },
                self.timeout,
                &doing,
                &[],
            )
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(failure) if failure.code == "BucketAlreadyOwnedByYou" => Ok(false),
            Err(failure) => Err(failure),
        }
    }

    /// Whether the bucket exists and this key may reach it (HeadBucket).
    pub async fn bucket_exists(&self) -> Result<bool, Failure> {
        let doing = format!("checking bucket {}", self.name());
        // HEAD of the bucket is ListObjects with no keys: any key that may list may ask.
        let response = self
            .send(
                "/",
                || Command::ListObjectsV2 {
                    prefix: String::new(),
                    delimiter: None,
                    continuation_token: None,
                    start_after: None,
                    max_keys: Some(1),
                },
                self.timeout,
                &doing,
                &[404],
            )
            .await?;
        Ok(response.status().as_u16() != 404)
    }

    /// PutObject of a small body.
    pub async fn put(&self, key: &str, content: &[u8], doing: &str) -> Result<(), Failure> {
        self.send(
            key,
            || Command::PutObject {
                content,
                content_type: "application/octet-stream",
                custom_headers: None,
                multipart: None,
            },
            self.part_timeout(content.len()),
            doing,
            &[],
        )
        .await
        .map(|_| ())
    }

    /// GetObject of a small object, whole (1 MiB at most, within the timeout).
    pub async fn get(&self, key: &str, doing: &str) -> Result<Vec<u8>, Failure> {
        let response = self
            .send(key, || Command::GetObject, self.timeout, doing, &[])
            .await?;
        tokio::time::timeout(self.timeout, capped_bytes(response, SMALL_BODY_LIMIT))
            .await
            .map_err(|_| Failure::transport(doing, "the download broke off".into()))
    }

    /// The size of an object, `None` when it does not exist.
    pub async fn size(&self, key: &str, doing: &str) -> Result<Option<u64>, Failure> {
        let response = self
            .send(key, || Command::HeadObject, self.timeout, doing, &[404])
            .await?;
        if response.status().as_u16() == 404 {
            return Ok(None);
        }
        Ok(response
            .headers()
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok()))
    }

    /// Deletes an object (one that is already gone counts as deleted).
    pub async fn delete(&self, key: &str, doing: &str) -> Result<(), Failure> {
        self.send(key, || Command::DeleteObject, self.timeout, doing, &[404])
            .await
            .map(|_| ())
    }

    /// The deadline of a request carrying `bytes`: the timeout, plus a second per MiB (a link
    /// slower than that for a whole part is treated as dead).
    fn part_timeout(&self, bytes: usize) -> Duration {
        self.timeout + Duration::from_secs((bytes / (1024 * 1024)) as u64)
    }

    /// Aborts a multipart upload; false (and logged) when S3 did not confirm it.
    pub async fn abort(&self, key: &str, upload_id: &str) -> bool {
        let doing = format!("aborting the upload of {key}");
        if let Err(failure) = self
            .send(
                key,
                || Command::AbortMultipartUpload { upload_id },
                self.timeout,
                &doing,
                &[404],
            )
            .await
        {
            tracing::warn!("{failure}");
            return false;
        }
        true
    }

    /// Aborts the unfinished multipart uploads of the bucket that began more than `older_than`
    /// ago and are not in `keep` (the uploads of runs still going): parts a killed keyhold
    /// left behind before it could record them. Returns how many were aborted.
    pub async fn abort_forgotten_uploads(
        &self,
        older_than: Duration,
        keep: &[String],
    ) -> Result<usize, Failure> {
        let prefix = "";
        let doing = format!("listing unfinished uploads in bucket {}", self.name());
        let response = self
            .send(
                "/",
                || Command::ListMultipartUploads {
                    prefix: Some(prefix),
                    delimiter: None,
                    key_marker: None,
                    upload_id_marker: None,
                    max_uploads: Some(1000),
                },
                self.timeout,
                &doing,
                &[],
            )
            .await?;
        let body = capped_text(response, SMALL_BODY_LIMIT).await;
        let cutoff =
            chrono::Utc::now() - chrono::Duration::from_std(older_than).unwrap_or_default();
        let mut aborted = 0;
        for upload in body.split("<Upload>").skip(1) {
            let (key, id) = (element(upload, "Key"), element(upload, "UploadId"));
            // An upload of unknown age is left alone: it may be another instance's, going on.
            let old = chrono::DateTime::parse_from_rfc3339(&element(upload, "Initiated"))
                .is_ok_and(|initiated| initiated < cutoff);
            if !key.is_empty()
                && !id.is_empty()
                && old
                && !keep.contains(&id)
                && self.abort(&key, &id).await
            {
                aborted += 1;
            }
        }
        Ok(aborted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn buckets_are_addressed_in_the_host_for_aws_and_in_the_path_elsewhere() {
        assert_eq!(
            Addressing::of("auto", "https://s3.eu-central-1.amazonaws.com"),
            Addressing::Virtual
        );
        assert_eq!(
            Addressing::of("", "http://127.0.0.1:9000"),
            Addressing::Path
        );
        assert_eq!(
            Addressing::of("path-style", "https://s3.amazonaws.com"),
            Addressing::Path
        );
        assert_eq!(
            Addressing::of("virtual-hosted", "https://minio.example"),
            Addressing::Virtual
        );
        assert_eq!(
            Addressing::of("auto", "https://notamazonaws.com"),
            Addressing::Path
        );
        let url_of = async |addressing: Addressing, bucket: &str| {
            let settings = S3Settings {
                endpoint: "https://s3.eu-central-1.amazonaws.com".into(),
                region: "eu-central-1".into(),
                access_key: "AKID".into(),
                secret_key: "secret".into(),
                addressing,
            };
            let bucket = settings.bucket(bucket).unwrap();
            ReqwestRequest::new(&bucket, "shop/x.dump", Command::HeadObject)
                .await
                .unwrap()
                .url()
                .unwrap()
                .to_string()
        };
        assert_eq!(
            url_of(Addressing::Virtual, "keyhold-blue").await,
            "https://keyhold-blue.s3.eu-central-1.amazonaws.com/shop/x.dump"
        );
        assert_eq!(
            url_of(Addressing::Path, "keyhold-blue").await,
            "https://s3.eu-central-1.amazonaws.com/keyhold-blue/shop/x.dump"
        );
    }

    #[test]
    fn s3_errors_keep_their_code_and_message() {
        let body = "<?xml version=\"1.0\"?><Error><Code>InvalidLocationConstraint</Code>\
                    <Message>The specified location-constraint is not valid</Message></Error>";
        let failure = Failure {
            doing: "creating bucket b".into(),
            status: Some(400),
            code: element(body, "Code"),
            message: element(body, "Message"),
            unreached: false,
        };
        assert_eq!(
            failure.to_string(),
            "creating bucket b: InvalidLocationConstraint: The specified location-constraint is not valid (HTTP 400)"
        );
        let denied = Failure {
            code: "AccessDenied".into(),
            status: Some(403),
            ..failure.clone()
        };
        assert!(denied.denied() && !denied.bad_credentials());
        let wrong = Failure {
            code: "SignatureDoesNotMatch".into(),
            status: Some(403),
            ..failure
        };
        assert_eq!(wrong.to_string(), "Invalid S3 credentials");
        let garage = Failure {
            code: "AccessDenied".into(),
            message: "Forbidden: Invalid signature".into(),
            ..wrong
        };
        assert!(garage.bad_credentials() && !garage.denied());
    }

    #[test]
    fn parts_grow_so_the_part_limit_covers_s3s_largest_object() {
        assert_eq!(part_size(1, MAX_PARTS), FIRST_PART);
        assert_eq!(part_size(1000, MAX_PARTS), FIRST_PART);
        assert_eq!(part_size(1001, MAX_PARTS), 2 * FIRST_PART);
        let total: u128 = (1..=MAX_PARTS)
            .map(|n| part_size(n, MAX_PARTS) as u128)
            .sum();
        assert!(total >= 5 * 1024u128.pow(4), "{total}");
        assert!((1..=MAX_PARTS).all(|n| part_size(n, MAX_PARTS) <= LARGEST_PART));
    }
}
