//! Uploads: one PutObject for a small object, else a multipart upload whose parts grow so
//! S3's part limit covers its largest object. Parts above the memory limit are spooled to a
//! private temporary file and signed by keyhold (SigV4 over the part's SHA-256). Every
//! failure aborts the multipart upload.

use std::time::Duration;

use s3::command::{Command, Multipart};
use s3::request::Request as _;
use s3::request::tokio_backend::ReqwestRequest;
use s3::serde_types::{CompleteMultipartUploadData, Part};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::{
    ATTEMPTS, ERROR_BODY_LIMIT, Failure, Signing, Storage, capped_text, element, part_size, reason,
    refusal, transient,
};

impl Storage {
    /// Uploads what `reader` gives until its end as object `key`: one PutObject when it fits
    /// in a part, else a multipart upload whose parts grow (`part_size`) so `max_parts` parts
    /// reach S3's largest object. The reader must give something within `stall`; two parts
    /// are in flight at most, so memory stays at about three parts. On any failure the
    /// multipart upload is aborted; `opened` hears of the upload id when one is opened (before
    /// any part is sent) and with `None` when it was aborted, so a caller can record what is
    /// left to abort should S3 or keyhold be down meanwhile. Returns the bytes uploaded.
    pub async fn upload(
        &self,
        key: &str,
        reader: &mut (impl AsyncRead + Unpin),
        stall: Duration,
        doing: &str,
        opened: impl AsyncFn(Option<String>),
    ) -> Result<u64, UploadFailure> {
        // The first part is always held in memory: it may be the whole (small) object.
        let first = read_part(reader, part_size(1, self.max_parts), stall, usize::MAX).await?;
        if first.len() < part_size(1, self.max_parts) {
            let PartBody::Memory(content) = &first else {
                unreachable!("a part smaller than the first part size is held in memory")
            };
            self.put(key, content, doing).await?;
            return Ok(first.len() as u64);
        }
        let upload_id = self.begin_upload(key, doing).await?;
        opened(Some(upload_id.clone())).await;
        let result = self
            .upload_parts(key, &upload_id, first, reader, stall, doing)
            .await;
        if result.is_err() && self.abort(key, &upload_id).await {
            opened(None).await;
        }
        result
    }

    /// Opens a multipart upload of `key`; its id.
    pub async fn begin_upload(&self, key: &str, doing: &str) -> Result<String, Failure> {
        let response = self
            .send(
                key,
                || Command::InitiateMultipartUpload {
                    content_type: "application/octet-stream",
                },
                self.timeout,
                doing,
                &[],
            )
            .await?;
        let body = capped_text(response, ERROR_BODY_LIMIT).await;
        let upload_id = element(&body, "UploadId");
        if upload_id.is_empty() {
            return Err(Failure::transport(doing, "S3 gave no upload id".into()));
        }
        Ok(upload_id)
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        first: PartBody,
        reader: &mut (impl AsyncRead + Unpin),
        stall: Duration,
        doing: &str,
    ) -> Result<u64, UploadFailure> {
        let mut parts: Vec<Part> = Vec::new();
        let mut total = first.len() as u64;
        let mut next = Some(first);
        let mut number = 1u32;
        // Part n uploads while part n+1 is read: two parts in memory, one in flight.
        while let Some(content) = next.take() {
            if number > self.max_parts {
                return Err(Failure::transport(
                    doing,
                    format!("the dump needs more than {} parts", self.max_parts),
                )
                .into());
            }
            let upload = self.upload_part(key, upload_id, number, &content, doing);
            let size = part_size(number + 1, self.max_parts);
            let (uploaded, read) = tokio::join!(upload, async {
                if content.len() < part_size(number, self.max_parts) {
                    Ok(PartBody::Memory(Vec::new()))
                } else {
                    read_part(reader, size, stall, self.memory_part).await
                }
            });
            parts.push(uploaded?);
            let read = read?;
            if !read.is_empty() {
                total += read.len() as u64;
                next = Some(read);
            }
            number += 1;
        }
        let data = CompleteMultipartUploadData { parts };
        let response = self
            .send(
                key,
                || Command::CompleteMultipartUpload {
                    upload_id,
                    data: data.clone(),
                },
                self.part_timeout(0),
                doing,
                &[],
            )
            .await?;
        // S3 may answer 200 and still fail the completion, in the body.
        let body = capped_text(response, ERROR_BODY_LIMIT).await;
        if body.contains("<Error>") {
            return Err(Failure {
                doing: doing.to_string(),
                status: Some(200),
                code: element(&body, "Code"),
                message: element(&body, "Message"),
                unreached: false,
            }
            .into());
        }
        Ok(total)
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        content: &PartBody,
        doing: &str,
    ) -> Result<Part, Failure> {
        let response = match content {
            PartBody::Memory(content) => {
                self.send(
                    key,
                    || Command::PutObject {
                        content,
                        content_type: "application/octet-stream",
                        custom_headers: None,
                        multipart: Some(Multipart::new(number, upload_id)),
                    },
                    self.part_timeout(content.len()),
                    doing,
                    &[],
                )
                .await?
            }
            PartBody::Spooled { file, len, sha256 } => {
                self.send_spooled(key, upload_id, number, (file.path(), *len, sha256), doing)
                    .await?
            }
        };
        let etag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string();
        Ok(Part {
            part_number: number,
            etag,
        })
    }

    /// UploadPart of a part spooled to a file (`path`, `len` bytes, `sha256` its hex SHA-256),
    /// streamed from the file. rust-s3 signs only bodies it holds, so keyhold signs this one
    /// itself (SigV4 with the part's SHA-256, so S3 checks the bytes it received), at the URL
    /// rust-s3 builds for the part. Retried like `send`.
    async fn send_spooled(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        (path, len, sha256): (&std::path::Path, usize, &str),
        doing: &str,
    ) -> Result<reqwest::Response, Failure> {
        let timeout = self.part_timeout(len);
        let unsigned = |error: s3::error::S3Error| {
            Failure::transport(doing, format!("could not sign the request: {error}"))
        };
        let command = Command::PutObject {
            content: &[],
            content_type: "application/octet-stream",
            custom_headers: None,
            multipart: Some(Multipart::new(number, upload_id)),
        };
        let url = ReqwestRequest::new(&self.bucket, key, command)
            .await
            .map_err(unsigned)?
            .url()
            .map_err(unsigned)?;
        let mut attempt = 1;
        loop {
            let last = attempt >= ATTEMPTS;
            let headers = sign_put(&url, &self.signing, sha256, chrono::Utc::now());
            let file = tokio::fs::File::open(path).await.map_err(|error| {
                Failure::transport(doing, format!("could not read the spooled part: {error}"))
            })?;
            let body = reqwest::Body::wrap_stream(file_chunks(file));
            let mut request = self.client.put(url.as_str());
            for (name, value) in headers {
                request = request.header(name, value);
            }
            let sent = tokio::time::timeout(
                timeout,
                request
                    .header(reqwest::header::CONTENT_LENGTH, len)
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .body(body)
                    .timeout(timeout)
                    .send(),
            )
            .await;
            match sent {
                Ok(Ok(response)) if response.status().is_success() => return Ok(response),
                Ok(Ok(response)) if !last && transient(response.status().as_u16()) => {}
                Ok(Ok(response)) => return Err(refusal(response, doing).await),
                Ok(Err(error)) if !last && error.is_connect() => {}
                Ok(Err(error)) => {
                    return Err(Failure::transport(
                        doing,
                        format!("could not reach {}: {}", self.origin, reason(&error)),
                    ));
                }
                Err(_) => {
                    return Err(Failure::transport(
                        doing,
                        format!(
                            "{} did not answer within {} s",
                            self.origin,
                            timeout.as_secs()
                        ),
                    ));
                }
            }
            tokio::time::sleep(Duration::from_millis(200 * 4u64.pow(attempt - 1))).await;
            attempt += 1;
        }
    }
}

/// Why an upload ended: S3's refusal, or the reader (the dump) failing or stalling.
#[derive(Debug)]
pub enum UploadFailure {
    Storage(Failure),
    Source(String),
}

impl From<Failure> for UploadFailure {
    fn from(failure: Failure) -> UploadFailure {
        UploadFailure::Storage(failure)
    }
}

/// One part of an upload: in memory, or spooled to a private temporary file (removed when
/// dropped) when it is larger than the storage's memory limit.
enum PartBody {
    Memory(Vec<u8>),
    Spooled {
        file: tempfile::NamedTempFile,
        len: usize,
        /// Hex SHA-256 of the part (its signature covers it).
        sha256: String,
    },
}

impl PartBody {
    fn len(&self) -> usize {
        match self {
            PartBody::Memory(content) => content.len(),
            PartBody::Spooled { len, .. } => *len,
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A file's content as a stream of 256 KiB chunks.
fn file_chunks(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> + Send + 'static {
    futures_util::stream::try_unfold(file, |mut file| async move {
        let mut chunk = vec![0u8; 256 * 1024];
        let n = file.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        chunk.truncate(n);
        Ok(Some((chunk, file)))
    })
}

/// Reads up to `size` bytes (less only at the end), each read within `stall`: into memory
/// when `size` is at most `memory`, else into a private temporary file.
async fn read_part(
    reader: &mut (impl AsyncRead + Unpin),
    size: usize,
    stall: Duration,
    memory: usize,
) -> Result<PartBody, UploadFailure> {
    let mut buffer = vec![0u8; 256 * 1024];
    let mut read = async |buffer: &mut [u8]| {
        tokio::time::timeout(stall, reader.read(buffer))
            .await
            .map_err(|_| {
                UploadFailure::Source(format!("the dump gave nothing for {} s", stall.as_secs()))
            })?
            .map_err(|error| UploadFailure::Source(format!("could not read the dump: {error}")))
    };
    if size <= memory {
        let mut part = Vec::with_capacity(size);
        while part.len() < size {
            let want = buffer.len().min(size - part.len());
            let n = read(&mut buffer[..want]).await?;
            if n == 0 {
                break;
            }
            part.extend_from_slice(&buffer[..n]);
        }
        return Ok(PartBody::Memory(part));
    }
    let spool_failed =
        |error: std::io::Error| UploadFailure::Source(format!("could not spool a part: {error}"));
    let file = tempfile::Builder::new()
        .prefix("keyhold-part-")
        .tempfile()
        .map_err(spool_failed)?;
    let mut writer = tokio::fs::File::from_std(file.reopen().map_err(spool_failed)?);
    let mut hasher = sha2::Sha256::default();
    let mut len = 0;
    while len < size {
        let want = buffer.len().min(size - len);
        let n = read(&mut buffer[..want]).await?;
        if n == 0 {
            break;
        }
        writer.write_all(&buffer[..n]).await.map_err(spool_failed)?;
        sha2::Digest::update(&mut hasher, &buffer[..n]);
        len += n;
    }
    writer.flush().await.map_err(spool_failed)?;
    Ok(PartBody::Spooled {
        file,
        len,
        sha256: hex::encode(sha2::Digest::finalize(hasher)),
    })
}

/// The headers of a SigV4-signed `PUT` of `url` whose body has the hex SHA-256 `sha256`.
fn sign_put(
    url: &url::Url,
    signing: &Signing,
    sha256: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<(&'static str, String)> {
    use hmac::Mac;
    use sha2::Digest;
    let hmac = |key: &[u8], data: &str| {
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().to_vec()
    };
    // AWS's URI encoding: unreserved characters kept, everything else %XX.
    const AWS: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    let encode = |text: &str| percent_encoding::utf8_percent_encode(text, AWS).to_string();
    let mut query: Vec<(String, String)> = url
        .query_pairs()
        .map(|(name, value)| (encode(&name), encode(&value)))
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&");
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
    let date = now.format("%Y%m%d").to_string();
    let canonical = format!(
        "PUT\n{}\n{query}\nhost:{host}\nx-amz-content-sha256:{sha256}\nx-amz-date:{amz_date}\n\n\
         host;x-amz-content-sha256;x-amz-date\n{sha256}",
        url.path()
    );
    let scope = format!("{date}/{}/s3/aws4_request", signing.region);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(sha2::Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{}", signing.secret_key).as_bytes(), &date);
    for part in [signing.region.as_str(), "s3", "aws4_request"] {
        key = hmac(&key, part);
    }
    let signature = hex::encode(hmac(&key, &to_sign));
    vec![
        ("x-amz-content-sha256", sha256.to_string()),
        ("x-amz-date", amz_date),
        (
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, \
                 SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}",
                signing.access_key
            ),
        ),
    ]
}
