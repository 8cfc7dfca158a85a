//! Why hyper closed an HTTP/2 connection, read from the frames it wrote.
//!
//! tonic runs each connection's hyper future itself and only logs the
//! error it ends with (at debug level), so the edge cannot ask hyper why a
//! connection ended. It can read what hyper wrote: every close hyper
//! decides on itself is announced by a GOAWAY frame, whose error code and
//! debug data name the cause. In hyper 1.12 and h2 0.4.20:
//!
//! - keepalive: the PING went unanswered, and hyper calls
//!   `abrupt_shutdown(NO_ERROR)` (`hyper/src/proto/h2/server.rs`,
//!   `poll_ping`). A GOAWAY `NO_ERROR` while the server is serving has no
//!   other source: hyper's graceful shutdown, the other one, is only asked
//!   for when the server drains (we set no maximum connection age).
//! - `ENHANCE_YOUR_CALM` with `too_many_resets`: more streams reset by the
//!   client before they were served than allowed (rapid reset,
//!   `h2/src/proto/streams/recv.rs`); with `too_many_internal_resets`: the
//!   server had to reset too many of the client's streams
//!   (`h2/src/proto/streams/streams.rs`); other debug data
//!   (`too_many_continuations`, `header_list_way_too_large`,
//!   `too_many_data_frames`): other abuse h2 detects.
//! - any other code: a protocol error by the client.
//!
//! The scan costs a few comparisons per frame, not per byte: payloads are
//! skipped by length, except a GOAWAY's first bytes.

/// HTTP/2 frame type of GOAWAY (RFC 9113, 6.8).
const GOAWAY: u8 = 0x7;
/// Length of an HTTP/2 frame header.
const FRAME_HEADER_LEN: usize = 9;
/// The bytes of a GOAWAY payload kept: last stream ID, error code and
/// enough debug data to tell h2's reasons apart.
const GOAWAY_KEPT: usize = 8 + 32;
const NO_ERROR: u32 = 0x0;
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// Follows the frames written to one connection and remembers the cause
/// named by the last GOAWAY.
#[derive(Debug, Default)]
pub struct GoAwayScan {
    header: [u8; FRAME_HEADER_LEN],
    /// Header bytes seen of the current frame, while fewer than 9.
    header_seen: usize,
    /// Payload bytes of the current frame still to come.
    payload_left: usize,
    /// The current frame's payload so far, when it is a GOAWAY.
    goaway: Option<Vec<u8>>,
    /// What the last complete GOAWAY said.
    said: Option<Said>,
}

/// What a GOAWAY said, before the phase tells keepalive from drain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Said {
    /// `NO_ERROR`: keepalive while serving, graceful shutdown while draining.
    NoError,
    /// A close for cause, with its metric label.
    Cause(&'static str),
}

impl GoAwayScan {
    /// Follows `bytes`, just written.
    pub fn wrote(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.header_seen < FRAME_HEADER_LEN {
                let take = (FRAME_HEADER_LEN - self.header_seen).min(bytes.len());
                self.header[self.header_seen..self.header_seen + take]
                    .copy_from_slice(&bytes[..take]);
                self.header_seen += take;
                bytes = &bytes[take..];
                if self.header_seen == FRAME_HEADER_LEN {
                    let [a, b, c, kind, ..] = self.header;
                    self.payload_left = u32::from_be_bytes([0, a, b, c]) as usize;
                    self.goaway = (kind == GOAWAY).then(Vec::new);
                    self.end_if_complete();
                }
            } else {
                let take = self.payload_left.min(bytes.len());
                if let Some(kept) = self.goaway.as_mut() {
                    let room = GOAWAY_KEPT.saturating_sub(kept.len()).min(take);
                    kept.extend_from_slice(&bytes[..room]);
                }
                self.payload_left -= take;
                bytes = &bytes[take..];
                self.end_if_complete();
            }
        }
    }

    /// Follows the first `written` bytes of `slices`.
    pub fn wrote_vectored(&mut self, slices: &[std::io::IoSlice<'_>], mut written: usize) {
        for slice in slices {
            if written == 0 {
                break;
            }
            let take = slice.len().min(written);
            self.wrote(&slice[..take]);
            written -= take;
        }
    }

    /// What the last GOAWAY written said, if one was.
    pub fn said(&self) -> Option<Said> {
        self.said
    }

    fn end_if_complete(&mut self) {
        if self.payload_left > 0 {
            return;
        }
        self.header_seen = 0;
        if let Some(payload) = self.goaway.take() {
            self.said = Some(classify(&payload));
        }
    }
}

/// The cause a GOAWAY payload names.
fn classify(payload: &[u8]) -> Said {
    let code = payload
        .get(4..8)
        .map(|code| u32::from_be_bytes([code[0], code[1], code[2], code[3]]));
    let debug = payload.get(8..).unwrap_or_default();
    match code {
        Some(NO_ERROR) => Said::NoError,
        Some(ENHANCE_YOUR_CALM) => Said::Cause(match debug {
            b"too_many_resets" => "rapid_reset",
            b"too_many_internal_resets" => "stream_errors",
            _ => "enhance_your_calm",
        }),
        _ => Said::Cause("protocol_error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let length = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut bytes = vec![length[1], length[2], length[3], kind, 0, 0, 0, 0, 0];
        bytes.extend_from_slice(payload);
        bytes
    }

    fn goaway(code: u32, debug: &[u8]) -> Vec<u8> {
        let mut payload = 7u32.to_be_bytes().to_vec();
        payload.extend_from_slice(&code.to_be_bytes());
        payload.extend_from_slice(debug);
        frame(GOAWAY, &payload)
    }

    /// Proves the scan finds a GOAWAY after other frames, whatever the
    /// write boundaries (here every split of the bytes, and one byte at a
    /// time), and names h2's causes.
    #[test]
    fn finds_the_goaway_across_any_write_boundary() {
        let cases: [(Vec<u8>, Said); 5] = [
            (goaway(0, b""), Said::NoError),
            (goaway(11, b"too_many_resets"), Said::Cause("rapid_reset")),
            (
                goaway(11, b"too_many_internal_resets"),
                Said::Cause("stream_errors"),
            ),
            (
                goaway(11, b"too_many_continuations"),
                Said::Cause("enhance_your_calm"),
            ),
            (goaway(1, b""), Said::Cause("protocol_error")),
        ];
        for (closing, said) in cases {
            let mut bytes = frame(0x4, &[0, 3, 0, 0, 0, 100]);
            bytes.extend(frame(0x0, &[7; 20_000]));
            bytes.extend(closing);
            for split in 0..bytes.len() {
                let mut scan = GoAwayScan::default();
                scan.wrote(&bytes[..split]);
                scan.wrote(&bytes[split..]);
                assert_eq!(scan.said(), Some(said), "split at {split}");
            }
            let mut scan = GoAwayScan::default();
            for byte in &bytes {
                scan.wrote(std::slice::from_ref(byte));
            }
            assert_eq!(scan.said(), Some(said));
        }
    }

    /// Proves no GOAWAY means nothing said, and a vectored write is
    /// followed only as far as it was written.
    #[test]
    fn follows_vectored_writes_as_far_as_written() {
        let data = frame(0x0, b"hello");
        let closing = goaway(11, b"too_many_resets");
        let slices = [
            std::io::IoSlice::new(&data),
            std::io::IoSlice::new(&closing),
        ];
        let mut scan = GoAwayScan::default();
        scan.wrote_vectored(&slices, data.len() + 3);
        assert_eq!(scan.said(), None);
        scan.wrote(&closing[3..]);
        assert_eq!(scan.said(), Some(Said::Cause("rapid_reset")));
    }
}
