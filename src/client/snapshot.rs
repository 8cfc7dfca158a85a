//! `medassist snapshot save`: a running server's snapshot into a file.
//!
//! What arrives is written as it arrives, never held whole. A plain
//! snapshot is checked on the way ([`crate::store::snapshot::check`] reads
//! the same bytes the file gets), and sealed to `--recipient`s when given,
//! so its plaintext never touches the disk. A snapshot the server sealed
//! (it has `[backup] recipients`) is copied as it comes: nobody here can
//! read it, and its contents are checked when it is restored or opened with
//! `age -d`, whose authentication refuses a damaged or truncated file.

use std::{
    io::{self, BufRead as _, BufReader, Read, Write},
    path::PathBuf,
    process::ExitCode,
    time::Instant,
};

use bytes::Bytes;
use indicatif::ProgressBar;
use tokio_stream::StreamExt as _;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::{Client, ClientError, Connection, OutputFile, byte_progress};
use crate::{
    grpc::pb,
    seal::{self, Recipients, Sink},
    store::snapshot::{self, SnapshotSummary},
};

/// What `medassist snapshot save` is asked to do.
#[derive(Debug)]
pub struct SaveOptions {
    /// The server, and how to reach it.
    pub connection: Connection,
    /// The new file.
    pub file: PathBuf,
    /// Who to seal a plain snapshot to (none: it is written plain).
    pub recipients: Recipients,
}

/// How a saved snapshot was written.
enum Saved {
    /// Checked whole on the way; sealed here when `sealed`.
    Checked {
        summary: SnapshotSummary,
        sealed: bool,
        bytes: u64,
    },
    /// Sealed by the server, copied as it came.
    SealedByServer { bytes: u64 },
}

/// Streams SaveSnapshot into `options.file`, which must not exist.
pub async fn save(options: SaveOptions) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let file = &options.file;
    if file.exists() {
        return Err(format!(
            "{} exists: choose a new name, backups are never overwritten",
            file.display()
        )
        .into());
    }
    let started = Instant::now();
    let client = Client::connect(&options.connection).await?;
    let chunks = client
        .admin()
        .save_snapshot(client.request(pb::SaveSnapshotRequest::default()))
        .await
        .map_err(ClientError::from)?
        .into_inner()
        .map(|message| {
            message
                .map(|m| Bytes::from(m.chunk))
                .map_err(|status| io::Error::other(ClientError::from(status)))
        });
    // The gRPC stream as a blocking reader, read on a blocking thread.
    let input = SyncIoBridge::new(StreamReader::new(chunks));
    let bar = byte_progress("saving snapshot");
    let (path, recipients, progress) = (file.clone(), options.recipients, bar.clone());
    let saved = tokio::task::spawn_blocking(move || write(input, &path, &recipients, &progress))
        .await
        .map_err(|e| format!("the snapshot task failed: {e}"))??;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    match saved {
        Saved::Checked {
            summary,
            sealed,
            bytes,
        } => {
            println!(
                "saved {}: {bytes} bytes, {} entries, commit {} ({} commits during the copy), in {seconds:.1} s{}",
                file.display(),
                summary.entries,
                summary.last_commit,
                summary.records,
                if sealed { ", encrypted (age)" } else { "" },
            );
            if !sealed {
                eprintln!(
                    "warning: {} is not encrypted: whoever can read it can read every resident ID \
                     and diagnosis; pass --recipient, or give the server [backup] recipients",
                    file.display()
                );
            }
        }
        Saved::SealedByServer { bytes } => {
            println!(
                "saved {}: {bytes} bytes in {seconds:.1} s, encrypted by the server to its \
                 [backup] recipients (age); it is checked whole when restored \
                 (snapshot restore --identity) or opened (age -d)",
                file.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the snapshot read from `input` into a new file at `path`.
fn write(
    input: impl Read,
    path: &std::path::Path,
    recipients: &Recipients,
    bar: &ProgressBar,
) -> Result<Saved, String> {
    let mut input = BufReader::with_capacity(1 << 20, Counted { input, bar });
    let head = input.fill_buf().map_err(|e| e.to_string())?;
    let sealed_by_server = seal::is_sealed(head);
    let mut output = OutputFile::create(path)?;
    // An error here is the file's or the server's (a failed stream).
    let written = |e: io::Error| format!("cannot save {}: {e}", path.display());
    if sealed_by_server {
        if !recipients.is_empty() {
            eprintln!(
                "note: the server encrypted the snapshot to its own [backup] recipients; \
                 --recipient is not applied"
            );
        }
        io::copy(&mut input, &mut output).map_err(written)?;
        let bytes = output.commit()?;
        return Ok(Saved::SealedByServer { bytes });
    }
    let mut sink = Sink::new(output, recipients).map_err(written)?;
    // What arrived must be whole before it is called a backup: the check
    // reads every byte, and each byte it reads goes to the file.
    let summary = snapshot::check(Tee {
        input,
        out: &mut sink,
    })
    .map_err(|e| e.to_string())?;
    let sealed = sink.is_sealed();
    let bytes = sink.finish().map_err(written)?.commit()?;
    Ok(Saved::Checked {
        summary,
        sealed,
        bytes,
    })
}

/// A reader that counts what passes on a progress bar.
struct Counted<'a, R> {
    input: R,
    bar: &'a ProgressBar,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.input.read(buf)?;
        self.bar.inc(read as u64);
        Ok(read)
    }
}

/// A reader that writes everything read through it to `out`.
struct Tee<'a, R, W> {
    input: R,
    out: &'a mut W,
}

impl<R: Read, W: Write> Read for Tee<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.input.read(buf)?;
        self.out.write_all(&buf[..read])?;
        Ok(read)
    }
}
