//! A restore's download file, hashed and written on a blocking thread of its own. The runner's
//! thread only copies what arrives into 1 MiB chunks and hands them over, so it goes on
//! receiving the other ranged GETs while the chunks before are hashed and written (SHA-256 and
//! file writes on the runner's own thread made the GETs wait); a third thread starts writing
//! the file back to disk as it grows (`Writeback`).

use std::future::Future;
use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::PollSender;

/// The size of the chunks handed to the writing thread.
const CHUNK: usize = 1024 * 1024;
/// Chunks waiting for the writing thread at most (memory: `DEPTH` + 1 chunks).
const DEPTH: usize = 8;

/// What reached the file: its length and SHA-256 (hex).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Written {
    pub bytes: u64,
    pub digest: String,
}

/// Writes to `file` through a thread that hashes and writes (`finish` waits for it).
pub(crate) struct Spool {
    chunk: Vec<u8>,
    sender: PollSender<Vec<u8>>,
    /// The writing thread, until it has ended; then what it answered (`ended`).
    worker: Option<JoinHandle<io::Result<Written>>>,
    ended: Option<io::Result<Written>>,
}

impl Spool {
    /// Must be called within a tokio runtime (the writing thread is its blocking pool's).
    pub(crate) fn new(file: std::fs::File) -> Spool {
        let (sender, mut receiver) = mpsc::channel::<Vec<u8>>(DEPTH);
        let worker = tokio::task::spawn_blocking(move || {
            let writeback = Writeback::of(&file);
            let (mut file, mut hasher, mut bytes) = (file, Sha256::new(), 0u64);
            while let Some(chunk) = receiver.blocking_recv() {
                hasher.update(&chunk);
                file.write_all(&chunk)?;
                bytes += chunk.len() as u64;
                writeback.up_to(bytes);
            }
            file.flush()?;
            Ok(Written {
                bytes,
                digest: hex::encode(hasher.finalize()),
            })
        });
        Spool {
            chunk: Vec::with_capacity(CHUNK),
            sender: PollSender::new(sender),
            worker: Some(worker),
            ended: None,
        }
    }

    /// Hands everything written over, then waits until it is hashed and in the file.
    pub(crate) async fn finish(mut self) -> io::Result<Written> {
        let handed = std::future::poll_fn(|cx| Pin::new(&mut self).poll_shutdown(cx)).await;
        self.sender.close();
        std::future::poll_fn(|cx| self.poll_worker(cx)).await;
        // The thread's own error first: it says what the file system refused.
        let written = self.ended.take().expect("the writing thread ended")?;
        handed.map(|()| written)
    }

    /// Waits for the writing thread to end and keeps what it answered in `ended`.
    fn poll_worker(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(worker) = &mut self.worker {
            let answer = ready!(Pin::new(worker).poll(cx))
                .unwrap_or_else(|_| Err(io::Error::other("the download's writer stopped")));
            self.worker = None;
            self.ended = Some(answer);
        }
        Poll::Ready(())
    }

    /// The channel is closed: the thread stopped at a write error. That error (what the file
    /// system refused: a full disk, an I/O error) is the answer, not a vaguer one of ours, since
    /// a download that fails here never reaches `finish`.
    fn poll_stopped(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_worker(cx));
        Poll::Ready(Err(match &self.ended {
            Some(Err(error)) => io::Error::new(error.kind(), error.to_string()),
            _ => io::Error::other("the download file could not be written"),
        }))
    }

    /// Hands the current chunk to the writing thread (waiting while `DEPTH` chunks wait).
    fn poll_hand_over(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.chunk.is_empty() {
            return Poll::Ready(Ok(()));
        }
        if ready!(self.sender.poll_reserve(cx)).is_err() {
            return self.poll_stopped(cx);
        }
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        if self.sender.send_item(chunk).is_err() {
            return self.poll_stopped(cx);
        }
        Poll::Ready(Ok(()))
    }
}

/// Starts writing the file to disk as it grows, from a thread of its own that never holds up
/// the download: the download is then mostly on disk when it ends, instead of being written
/// back while `pg_restore` loads the target on the same disk, and a large download does not
/// fill memory with dirty pages. Ends when dropped (what it was told is still started).
struct Writeback {
    sender: Option<std::sync::mpsc::Sender<u64>>,
}

impl Writeback {
    fn of(file: &std::fs::File) -> Writeback {
        let (sender, receiver) = std::sync::mpsc::channel::<u64>();
        let started = file.try_clone().ok().and_then(|file| {
            std::thread::Builder::new()
                .name("restore-writeback".into())
                .spawn(move || {
                    let mut done = 0u64;
                    while let Ok(mut end) = receiver.recv() {
                        // Only the newest end matters: one call covers what queued meanwhile.
                        while let Ok(later) = receiver.try_recv() {
                            end = later;
                        }
                        // (A length of 0 would mean "to the end of the file".)
                        if end > done {
                            start_writeback(&file, done, end - done);
                            done = end;
                        }
                    }
                })
                .ok()
        });
        Writeback {
            sender: started.map(|_| sender),
        }
    }

    /// The file holds `end` bytes: start writing them back.
    fn up_to(&self, end: u64) {
        if let Some(sender) = &self.sender {
            let _ = sender.send(end);
        }
    }
}

/// Starts writing `len` bytes of `file` from `offset` to disk, without waiting for them to be
/// written (it may wait while the disk's queue is full).
#[cfg(target_os = "linux")]
fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open file descriptor; the call reads no memory of ours. A failure only
    // leaves the pages to the kernel's own writeback.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &std::fs::File, _offset: u64, _len: u64) {}

impl AsyncWrite for Spool {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.chunk.len() >= CHUNK {
            ready!(this.poll_hand_over(cx))?;
        }
        let taken = buf.len().min(CHUNK - this.chunk.len());
        this.chunk.extend_from_slice(&buf[..taken]);
        Poll::Ready(Ok(taken))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_hand_over(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_hand_over(cx))?;
        this.sender.close();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn what_is_written_reaches_the_file_in_order_with_its_sha256() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut spool = Spool::new(file.reopen().unwrap());
        let mut expected = Vec::new();
        // Writes smaller and larger than a chunk, and one that ends exactly on a chunk.
        for (n, size) in [10, CHUNK + 7, CHUNK - 17, 3 * CHUNK, 1]
            .into_iter()
            .enumerate()
        {
            let part: Vec<u8> = (0..size).map(|i| (i * 31 + n) as u8).collect();
            spool.write_all(&part).await.unwrap();
            expected.extend_from_slice(&part);
        }
        let written = spool.finish().await.unwrap();
        assert_eq!(written.bytes, expected.len() as u64);
        assert_eq!(written.digest, hex::encode(Sha256::digest(&expected)));
        assert_eq!(std::fs::read(file.path()).unwrap(), expected);
    }

    #[tokio::test]
    async fn a_file_that_cannot_be_written_is_an_error_not_a_short_file() {
        // A file opened read-only: the thread's first write fails.
        let file = tempfile::NamedTempFile::new().unwrap();
        let read_only = std::fs::File::open(file.path()).unwrap();
        let mut spool = Spool::new(read_only);
        let mut failed = None;
        for _ in 0..(DEPTH + 4) {
            if let Err(error) = spool.write_all(&vec![7u8; CHUNK]).await {
                failed = Some(error);
                break;
            }
        }
        // The write that found the thread stopped says why it stopped (a download that fails
        // there never reaches `finish`): the file system's own error.
        let failed = failed.expect("a write fails once the thread has stopped");
        assert!(failed.to_string().contains("os error"), "{failed}");
        let finished = spool.finish().await;
        assert!(finished.is_err());
        assert!(
            finished.unwrap_err().to_string().contains("os error"),
            "finish says the same"
        );
    }
}
