//! The admin service: snapshots, streamed as the store produces them.

use std::pin::Pin;

use tonic::{
    Request, Response, Status,
    codegen::tokio_stream::{Stream, StreamExt, wrappers::ReceiverStream},
};

use super::{Api, caller, pb, to_status};
use crate::app::SnapshotEncryption;

/// The chunks of one snapshot, as the wire sends them.
pub type SnapshotStream =
    Pin<Box<dyn Stream<Item = Result<pb::SaveSnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::admin_service_server::AdminService for Api {
    type SaveSnapshotStream = SnapshotStream;

    async fn save_snapshot(
        &self,
        request: Request<pb::SaveSnapshotRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        let by = caller(&request)?;
        let asked = match request.get_ref().encryption() {
            pb::SnapshotEncryption::Unspecified => SnapshotEncryption::ServerChoice,
            pb::SnapshotEncryption::Age => SnapshotEncryption::Sealed,
            pb::SnapshotEncryption::None => SnapshotEncryption::Plain,
        };
        by.note.bulk();
        by.note.subject(crate::audit::Subject::Filter(
            "a snapshot of the whole store (bytes)".into(),
        ));
        let chunks = self.app.save_snapshot(&by, asked).map_err(to_status)?;
        let note = by.note.clone();
        let stream = ReceiverStream::new(chunks).map(move |chunk| {
            if let Ok(bytes) = &chunk {
                note.sent(bytes.len() as u64);
            }
            chunk
                .map(|chunk| pb::SaveSnapshotResponse { chunk })
                .map_err(to_status)
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
