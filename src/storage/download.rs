//! Downloads: one object through one stream (`download`), or a large one in ranged GETs run
//! several at once and written in order (`download_ranges`), each stream given a deadline
//! between its chunks.

use std::time::Duration;

use futures_util::StreamExt;
use s3::command::Command;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{ATTEMPTS, Failure, Storage};

/// How a download is spread: `streams` ranged GETs of `part` bytes at once, each stream given
/// up after `stall` without a byte.
#[derive(Clone, Copy, Debug)]
pub struct Transfer {
    pub streams: usize,
    pub part: u64,
    pub stall: Duration,
}

/// A ranged GET's answer.
enum Ranged {
    Part(Vec<u8>),
    /// The whole object instead of the range, or an object of another size.
    NotAsExpected,
}

impl Storage {
    /// Streams an object of `size` bytes into `writer`, each chunk within `stall` of the last;
    /// returns the bytes written. A body longer than `size` is refused as it passes it (the
    /// endpoint is a Manager's to choose: it must not fill the disk).
    pub async fn download(
        &self,
        key: &str,
        size: u64,
        writer: &mut (impl AsyncWrite + Unpin),
        stall: Duration,
        doing: &str,
    ) -> Result<u64, Failure> {
        let mut response = self
            .send(key, || Command::GetObject, self.timeout, doing, &[])
            .await?;
        let mut written = 0u64;
        loop {
            let chunk = tokio::time::timeout(stall, response.chunk())
                .await
                .map_err(|_| {
                    Failure::transport(
                        doing,
                        format!("{} sent nothing for {} s", self.origin, stall.as_secs()),
                    )
                })?
                .map_err(|error| {
                    Failure::transport(doing, format!("the download broke off: {error}"))
                })?;
            let Some(chunk) = chunk else {
                break;
            };
            if written + chunk.len() as u64 > size {
                return Err(Failure::transport(
                    doing,
                    format!(
                        "checksum mismatch: the stored object is larger than the {size} bytes \
                         backed up; the target database was not changed"
                    ),
                ));
            }
            writer.write_all(&chunk).await.map_err(|error| {
                Failure::transport(doing, format!("could not write the download: {error}"))
            })?;
            written += chunk.len() as u64;
        }
        writer.flush().await.map_err(|error| {
            Failure::transport(doing, format!("could not write the download: {error}"))
        })?;
        Ok(written)
    }

    /// Downloads `key`, an object of `size` bytes, into `writer` in order, with up to `streams`
    /// ranged GETs of `part` bytes at once (as S3's own tools download): a large object comes
    /// down several times faster than through one stream, from S3 and from servers that read
    /// a file in small steps. Memory holds at most `streams` parts. A part whose transfer broke
    /// off is asked again. An object whose size is not `size` (replaced, cut) or a server that
    /// ignores ranges is downloaded whole through one stream instead, so the caller's size
    /// and checksum comparison sees what is stored. Answers the bytes written.
    pub async fn download_ranges(
        &self,
        key: &str,
        size: u64,
        writer: &mut (impl AsyncWrite + Unpin),
        transfer: Transfer,
        doing: &str,
    ) -> Result<u64, Failure> {
        let part = transfer.part.max(1);
        if transfer.streams <= 1 || size <= part {
            return self
                .download(key, size, writer, transfer.stall, doing)
                .await;
        }
        let ranges = (0..size.div_ceil(part)).map(|n| (n * part, ((n + 1) * part).min(size) - 1));
        let mut parts = futures_util::stream::iter(ranges)
            .map(|(first, last)| self.range(key, first, last, size, transfer.stall, doing))
            .buffered(transfer.streams);
        let mut written = 0u64;
        while let Some(part) = parts.next().await {
            let bytes = match part? {
                Ranged::Part(bytes) => bytes,
                Ranged::NotAsExpected => {
                    drop(parts);
                    if written > 0 {
                        return Err(Failure::transport(
                            doing,
                            "the object changed during the download".to_string(),
                        ));
                    }
                    return self
                        .download(key, size, writer, transfer.stall, doing)
                        .await;
                }
            };
            writer.write_all(&bytes).await.map_err(|error| {
                Failure::transport(doing, format!("could not write the download: {error}"))
            })?;
            written += bytes.len() as u64;
        }
        writer.flush().await.map_err(|error| {
            Failure::transport(doing, format!("could not write the download: {error}"))
        })?;
        Ok(written)
    }

    /// Bytes `first..=last` of `key`, an object of `size` bytes: asked up to `ATTEMPTS` times
    /// when the transfer breaks off; `NotAsExpected` when the server answers the whole object
    /// or says the object's size is not `size`.
    async fn range(
        &self,
        key: &str,
        first: u64,
        last: u64,
        size: u64,
        stall: Duration,
        doing: &str,
    ) -> Result<Ranged, Failure> {
        let expected = (last - first + 1) as usize;
        let mut attempt = 1;
        loop {
            let mut response = self
                .send(
                    key,
                    || Command::GetObjectRange {
                        start: first,
                        end: Some(last),
                    },
                    self.timeout,
                    doing,
                    &[],
                )
                .await?;
            let total = response
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|value| value.to_str().ok())
                .and_then(|range| range.rsplit('/').next())
                .and_then(|total| total.trim().parse::<u64>().ok());
            if response.status() != reqwest::StatusCode::PARTIAL_CONTENT || total != Some(size) {
                return Ok(Ranged::NotAsExpected);
            }
            let mut bytes = Vec::with_capacity(expected);
            let broke = loop {
                match tokio::time::timeout(stall, response.chunk()).await {
                    Err(_) => {
                        break Some(format!(
                            "{} sent nothing for {} s",
                            self.origin,
                            stall.as_secs()
                        ));
                    }
                    Ok(Err(error)) => break Some(format!("the download broke off: {error}")),
                    Ok(Ok(None)) => break None,
                    Ok(Ok(Some(chunk))) => {
                        if bytes.len() + chunk.len() > expected {
                            return Ok(Ranged::NotAsExpected);
                        }
                        bytes.extend_from_slice(&chunk);
                    }
                }
            };
            match broke {
                None if bytes.len() == expected => return Ok(Ranged::Part(bytes)),
                None => return Ok(Ranged::NotAsExpected),
                Some(reason) if attempt >= ATTEMPTS => {
                    return Err(Failure::transport(doing, reason));
                }
                Some(_) => attempt += 1,
            }
        }
    }
}
