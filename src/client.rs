//! The command-line tools that talk to a running server (`medassist
//! snapshot save`, `medassist roster import` and `export` in
//! [`roster`], and the other client subcommands as they come): one way
//! to connect and present a token, one way to show progress, and errors that
//! fit on one line, so scripts and operators get the same clear answer.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tonic::{
    metadata::{Ascii, MetadataValue},
    transport::{Channel, Endpoint},
};

pub mod audit;
pub mod export;
pub mod roster;

use crate::grpc::pb::{
    admin_service_client::AdminServiceClient, audit_service_client::AuditServiceClient,
    reconciliation_service_client::ReconciliationServiceClient,
    roster_service_client::RosterServiceClient,
};

/// How long connecting may take before the tool gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        ClientError::Refused {
            code: status.code(),
            message: status.message().to_owned(),
        }
    }
}

/// A connection to a server, with the caller's token.
pub struct Client {
    channel: Channel,
    authorization: Option<MetadataValue<Ascii>>,
}

impl Client {
    /// Connects to `target` (`http://host:port`); every request then carries
    /// `authorization: Bearer <token>` when a token is given.
    pub async fn connect(target: &str, token: Option<&str>) -> Result<Client, ClientError> {
        let refused = |message: String| ClientError::Connect {
            target: target.to_owned(),
            message,
        };
        let authorization = token
            .map(|t| {
                format!("Bearer {t}")
                    .parse()
                    .map_err(|_| ClientError::Token)
            })
            .transpose()?;
        let channel = Endpoint::from_shared(target.to_owned())
            .map_err(|e| refused(e.to_string()))?
            .connect_timeout(CONNECT_TIMEOUT)
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
