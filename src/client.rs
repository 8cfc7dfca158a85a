//! The command-line tools that talk to a running server (`medassist
//! snapshot save` in [`snapshot`], `medassist roster import` and `export`
//! in [`roster`], `medassist export` and `reconcile`): one way to connect
//! (plain or TLS, with a client certificate when the server asks for one)
//! and present a token, one way to write an output file, one way to show
//! progress, and errors that fit on one line, so scripts and operators get
//! the same clear answer.
//!
//! A token never comes from the command line: arguments show in `ps` and
//! the shell's history, so it is read from a file (`--token-file`) or the
//! environment (`MEDASSIST_TOKEN`). Output files hold personal data, so they
//! are created `0600` whatever the umask, under a temporary name that is
//! renamed into place only when the file is whole.

use std::{
    fs::File,
    io::{self, BufWriter, IsTerminal as _, Read as _, Write},
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
    time::Duration,
};

use indicatif::{ProgressBar, ProgressStyle};
use tonic::{
    metadata::{Ascii, MetadataValue},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};

pub mod audit;
pub mod export;
pub mod roster;
pub mod snapshot;

use crate::grpc::pb::{
    admin_service_client::AdminServiceClient, audit_service_client::AuditServiceClient,
    reconciliation_service_client::ReconciliationServiceClient,
    roster_service_client::RosterServiceClient,
};

/// How long connecting may take before the tool gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest token sent, in bytes: the server refuses longer ones unread.
const TOKEN_BYTES_MAX: usize = 256;
/// Largest PEM file (CA bundle, certificate, key) read: a system's whole
/// CA bundle is about 200 KiB.
const PEM_BYTES_MAX: u64 = 1024 * 1024;
/// The environment variable a token is read from when no file is named.
pub const TOKEN_VARIABLE: &str = "MEDASSIST_TOKEN";

/// Why a client command failed, in one line.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached.
    #[error("cannot reach {target}: {message}")]
    Connect {
        /// The `--target` given.
        target: String,
        /// What went wrong.
        message: String,
    },
    /// The server answered with an error status.
    #[error("the server refused: {code:?}: {message}")]
    Refused {
        /// The gRPC status code.
        code: tonic::Code,
        /// The server's message.
        message: String,
    },
    /// The token cannot be sent as a header.
    #[error("--token must be printable ASCII")]
    Token,
    /// What the server sent could not be written out.
    #[error("cannot write the output: {0}")]
    Output(String),
    /// The token, the TLS files or the target cannot be used; says which and why.
    #[error("{0}")]
    Setup(String),
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        ClientError::Refused {
            code: status.code(),
            message: status.message().to_owned(),
        }
    }
}

/// A caller's token, as read from a file or the environment. Its `Debug`
/// never shows it.
pub struct Token(String);

impl Token {
    /// The token in `path`: its first line, surrounding whitespace removed.
    pub fn read_file(path: &Path) -> Result<Token, ClientError> {
        let setup =
            |why: String| ClientError::Setup(format!("--token-file {}: {why}", path.display()));
        let mut text = String::new();
        File::open(path)
            .and_then(|file| {
                file.take(TOKEN_BYTES_MAX as u64 * 4)
                    .read_to_string(&mut text)
            })
            .map_err(|e| setup(e.to_string()))?;
        Token::parse(text.lines().next().unwrap_or("")).map_err(setup)
    }

    /// The token in [`TOKEN_VARIABLE`], if it is set and not empty.
    pub fn from_environment() -> Result<Option<Token>, ClientError> {
        match std::env::var(TOKEN_VARIABLE) {
            Ok(text) if !text.trim().is_empty() => Token::parse(&text)
                .map(Some)
                .map_err(|why| ClientError::Setup(format!("{TOKEN_VARIABLE}: {why}"))),
            _ => Ok(None),
        }
    }

    fn parse(text: &str) -> Result<Token, String> {
        let token = text.trim();
        if token.is_empty() {
            return Err("holds no token".into());
        }
        if token.len() > TOKEN_BYTES_MAX || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "a token is 1 to {TOKEN_BYTES_MAX} printable ASCII characters, as `medassist token new` prints"
            ));
        }
        Ok(Token(token.to_owned()))
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

/// How a client command reaches the server.
#[derive(Debug)]
pub struct Connection {
    /// `http://host:port`, or `https://host:port` for TLS.
    pub target: String,
    /// The caller's token, when the server asks for one.
    pub token: Option<Token>,
    /// CA certificates (PEM) the server's certificate must chain to; the
    /// system's trusted roots when absent.
    pub ca: Option<PathBuf>,
    /// A client certificate and its key (PEM), for a server that asks for
    /// one (mTLS).
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl Connection {
    /// A plaintext connection to `target` without a token (open mode on
    /// loopback).
    pub fn plain(target: &str) -> Connection {
        Connection {
            target: target.to_owned(),
            token: None,
            ca: None,
            identity: None,
        }
    }
}

/// A connection to a server, with the caller's token.
pub struct Client {
    channel: Channel,
    authorization: Option<MetadataValue<Ascii>>,
}

impl Client {
    /// Connects as `connection` says: TLS for an `https://` target
    /// (checking the server's certificate and name), plaintext for
    /// `http://`; every request then carries `authorization: Bearer <token>`
    /// when there is a token.
    pub async fn connect(connection: &Connection) -> Result<Client, ClientError> {
        let target = &connection.target;
        let refused = |message: String| ClientError::Connect {
            target: target.to_owned(),
            message,
        };
        let authorization = connection
            .token
            .as_ref()
            .map(|Token(t)| {
                format!("Bearer {t}")
                    .parse()
                    .map_err(|_| ClientError::Setup("the token must be printable ASCII".into()))
            })
            .transpose()?;
        let mut endpoint = Endpoint::from_shared(target.to_owned())
            .map_err(|e| refused(e.to_string()))?
            .connect_timeout(CONNECT_TIMEOUT);
        match endpoint.uri().scheme_str() {
            Some("https") => {
                endpoint = endpoint
                    .tls_config(tls_config(connection)?)
                    .map_err(|e| refused(error_chain(&e)))?;
            }
            Some("http") if connection.ca.is_none() && connection.identity.is_none() => {}
            Some("http") => {
                return Err(ClientError::Setup(format!(
                    "--ca, --cert and --key are for TLS: use an https:// target, not {target}"
                )));
            }
            _ => {
                return Err(refused(
                    "the target must be http://HOST:PORT or https://HOST:PORT".into(),
                ));
            }
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| refused(error_chain(&e)))?;
        Ok(Client {
            channel,
            authorization,
        })
    }

    /// A request carrying the caller's token.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        request
    }

    /// The roster service.
    pub fn roster(&self) -> RosterServiceClient<Channel> {
        RosterServiceClient::new(self.channel.clone())
    }

    /// The admin service.
    pub fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel.clone())
    }

    /// The reconciliation service.
    pub fn reconciliation(&self) -> ReconciliationServiceClient<Channel> {
        ReconciliationServiceClient::new(self.channel.clone())
    }

    /// The audit service.
    pub fn audit(&self) -> AuditServiceClient<Channel> {
        AuditServiceClient::new(self.channel.clone())
    }
}

/// The TLS settings of an `https://` connection: the given CA or the
/// system's roots, and the client certificate if any. The server's name is
/// checked against the target's host.
fn tls_config(connection: &Connection) -> Result<ClientTlsConfig, ClientError> {
    let mut tls = match &connection.ca {
        Some(ca) => {
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read_pem("--ca", ca)?))
        }
        None => ClientTlsConfig::new().with_native_roots(),
    };
    if let Some((cert, key)) = &connection.identity {
        tls = tls.identity(Identity::from_pem(
            read_pem("--cert", cert)?,
            read_pem("--key", key)?,
        ));
    }
    Ok(tls)
}

/// Reads a PEM file named by `option`, refusing what is too large to be one.
fn read_pem(option: &str, path: &Path) -> Result<Vec<u8>, ClientError> {
    let setup = |why: String| ClientError::Setup(format!("{option} {}: {why}", path.display()));
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|file| file.take(PEM_BYTES_MAX + 1).read_to_end(&mut bytes))
        .map_err(|e| setup(e.to_string()))?;
    if bytes.len() as u64 > PEM_BYTES_MAX {
        return Err(setup(format!("larger than {PEM_BYTES_MAX} bytes")));
    }
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(setup("not a PEM file".into()));
    }
    Ok(bytes)
}

/// An error and its causes, on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        // Layers often repeat their cause's words; say each thing once.
        let said = cause.to_string();
        if !text.ends_with(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

/// A file a client command writes personal data into: created `0600`
/// whatever the umask, as `NAME.partial` beside its final name, and renamed
/// into place only by [`OutputFile::commit`], once whole and synced.
/// Dropped before that, it is removed: a failed export or snapshot leaves
/// nothing half-written.
pub struct OutputFile {
    path: PathBuf,
    partial: PathBuf,
    out: Option<BufWriter<File>>,
}

impl OutputFile {
    /// Creates `PATH.partial`; refuses when it exists (another run writes
    /// it, or one was interrupted: the message says to remove it).
    pub fn create(path: &Path) -> Result<OutputFile, String> {
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => format!(
                    "{} exists: another run is writing it, or one was interrupted; remove it",
                    partial.display()
                ),
                _ => format!("cannot create {}: {e}", partial.display()),
            })?;
        Ok(OutputFile {
            path: path.to_owned(),
            partial,
            out: Some(BufWriter::with_capacity(1 << 20, file)),
        })
    }

    /// Syncs the file and renames it to its final name (replacing a file of
    /// that name), then syncs the directory, so the name is durable too.
    /// Answers the file's size.
    pub fn commit(mut self) -> Result<u64, String> {
        let failed = |e: io::Error| format!("cannot write {}: {e}", self.partial.display());
        let out = self
            .out
            .take()
            .ok_or_else(|| failed(io::Error::other("closed")))?;
        let file = out.into_inner().map_err(|e| failed(e.into_error()))?;
        file.sync_all().map_err(failed)?;
        let bytes = file.metadata().map_err(failed)?.len();
        std::fs::rename(&self.partial, &self.path).map_err(|e| {
            format!(
                "cannot rename {} to {}: {e}",
                self.partial.display(),
                self.path.display()
            )
        })?;
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("cannot sync {}: {e}", dir.display()))?;
        Ok(bytes)
    }
}

impl Write for OutputFile {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match &mut self.out {
            Some(out) => out.write(bytes),
            None => Err(io::Error::other("the file is closed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.out {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

/// Where an export goes: a file ([`OutputFile`]), or standard output.
pub enum Output {
    /// `--output FILE`.
    File(OutputFile),
    /// Standard output, for a pipe.
    Stdout(BufWriter<io::Stdout>),
}

impl Output {
    /// Opens `path`, or standard output when `None`. Sealed bytes are never
    /// written to a terminal: they are useless there and can upset it.
    pub fn open(path: Option<&Path>, sealed: bool) -> Result<Output, String> {
        match path {
            Some(path) => OutputFile::create(path).map(Output::File),
            None if sealed && io::stdout().is_terminal() => Err(
                "will not write encrypted bytes to a terminal: give --output FILE or redirect"
                    .into(),
            ),
            None => Ok(Output::Stdout(BufWriter::new(io::stdout()))),
        }
    }

    /// Ends the output: a file is synced and renamed into place.
    pub fn commit(self) -> Result<(), String> {
        match self {
            Output::File(file) => file.commit().map(drop),
            Output::Stdout(mut out) => out
                .flush()
                .map_err(|e| format!("cannot write to standard output: {e}")),
        }
    }
}

impl Write for Output {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Output::File(file) => file.write(bytes),
            Output::Stdout(out) => out.write(bytes),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::File(file) => file.flush(),
            Output::Stdout(out) => out.flush(),
        }
    }
}

/// A progress line counting items (`exporting 12,345 settlements`), drawn
/// only when standard error is a terminal.
pub fn count_progress(what: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {human_pos} ({per_sec}) {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A progress line counting bytes, drawn only when standard error is a
/// terminal (scripts and logs get the final summary only).
pub fn byte_progress(what: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {bytes} ({binary_bytes_per_sec}) {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    /// Proves a token file gives its first line, trimmed, and that empty,
    /// oversized or non-ASCII tokens are refused without being echoed.
    #[test]
    fn tokens_are_read_from_files_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  mdas_0123abcd  \n# not read\n").unwrap();
        let Token(token) = Token::read_file(&path).unwrap();
        assert_eq!(token, "mdas_0123abcd");
        assert_eq!(
            format!("{:?}", Token::read_file(&path).unwrap()),
            "Token(…)"
        );
        for bad in ["\n", "mdas_秘密\n", &"x".repeat(TOKEN_BYTES_MAX + 1)] {
            std::fs::write(&path, bad).unwrap();
            let error = Token::read_file(&path).unwrap_err().to_string();
            assert!(error.starts_with("--token-file "), "{error}");
            assert!(!error.contains("秘密"), "{error}");
        }
        let missing = Token::read_file(&dir.path().join("missing")).unwrap_err();
        assert!(missing.to_string().contains("missing"), "{missing}");
    }

    /// Proves an output file is 0600 under any umask, invisible under its
    /// final name until committed, and removed when dropped unfinished.
    #[test]
    fn output_files_are_private_and_appear_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("export.csv");
        std::fs::write(&path, "an older export\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut file = OutputFile::create(&path).unwrap();
        file.write_all(b"header\nrow\n").unwrap();
        let partial = dir.path().join("export.csv.partial");
        let mode = std::fs::metadata(&partial).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            OutputFile::create(&path)
                .err()
                .unwrap()
                .contains("remove it")
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "an older export\n");
        assert_eq!(file.commit().unwrap(), 11);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "header\nrow\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the old file's mode does not survive");
        assert!(!partial.exists());

        let mut abandoned = OutputFile::create(&dir.path().join("lost.csv")).unwrap();
        abandoned.write_all(b"half").unwrap();
        drop(abandoned);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// Proves TLS options are refused on a plaintext target and PEM files
    /// are checked before any connection is tried.
    #[tokio::test]
    async fn tls_options_need_an_https_target_and_pem_files() {
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.pem");
        std::fs::write(&not_pem, "not a certificate").unwrap();
        let mut connection = Connection::plain("http://127.0.0.1:1");
        connection.ca = Some(not_pem.clone());
        let error = Client::connect(&connection)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("https://"), "{error}");
        connection.target = "https://127.0.0.1:1".into();
        let error = Client::connect(&connection)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("--ca") && error.contains("not a PEM file"),
            "{error}"
        );
        connection.target = "ftp://127.0.0.1:1".into();
        let error = Client::connect(&connection)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("http://HOST:PORT"), "{error}");
    }
}
