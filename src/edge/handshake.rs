//! A connection's handshake, done by the edge before hyper sees the
//! connection: the TLS handshake, then, on the gRPC port, the whole HTTP/2
//! client preface (the 24-byte magic and its first SETTINGS frame, RFC
//! 9113, 3.4), or, on the HTTP/JSON port, the first bytes of a request.
//!
//! Until then a connection costs a small task and a socket: no hyper
//! connection, no HTTP/2 state, no buffers. A half-open connection is
//! cheap to hold and cheap to shed, and a flood that reconnects as fast as
//! it can costs the server little more than its accepts. The bytes read
//! are handed to hyper first, as if it had read them itself.

use tokio::io::AsyncReadExt;

use super::{Port, io::Io};

/// Length of the HTTP/2 client magic, `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`.
const PREFACE_MAGIC_LEN: usize = 24;
/// Length of an HTTP/2 frame header.
const FRAME_HEADER_LEN: usize = 9;
/// The largest first SETTINGS frame waited for: HTTP/2's initial maximum
/// frame size. A client announcing more is handed to hyper at that point,
/// and hyper refuses the frame.
const SETTINGS_BYTES_MAX: usize = 16_384;
/// Bytes asked of the socket per read while handshaking.
const READ_CHUNK: usize = 512;

/// How a handshake ended without a connection to serve.
#[derive(Debug)]
pub enum Failed {
    /// The TLS handshake failed, for this reason: counted as `tls`.
    Tls(std::io::Error),
    /// The peer closed or reset the connection: not counted.
    PeerLeft,
}

/// Runs the handshake of `port` on `io` (TLS already done); returns the
/// bytes read, which hyper must read first.
pub async fn opening(io: &mut Box<dyn Io>, port: Port) -> Result<Vec<u8>, Failed> {
    let mut bytes = Vec::with_capacity(READ_CHUNK);
    let mut preface = Preface::default();
    loop {
        let mut chunk = [0u8; READ_CHUNK];
        let read = match io.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(Failed::PeerLeft),
            Ok(read) => read,
        };
        bytes.extend_from_slice(&chunk[..read]);
        let done = match port {
            Port::Grpc => preface.saw(&chunk[..read]),
            // hyper reads the request; the edge watches its deadline.
            Port::Http => true,
        };
        if done {
            return Ok(bytes);
        }
    }
}

/// Follows the HTTP/2 client preface through the bytes a client sends.
#[derive(Debug)]
struct Preface {
    /// Bytes seen so far.
    read: usize,
    /// Bytes the preface takes, once the SETTINGS frame's length is known.
    need: usize,
    /// The SETTINGS frame's header, as it arrives.
    header: [u8; FRAME_HEADER_LEN],
}

impl Default for Preface {
    fn default() -> Preface {
        Preface {
            read: 0,
            need: PREFACE_MAGIC_LEN + FRAME_HEADER_LEN,
            header: [0; FRAME_HEADER_LEN],
        }
    }
}

impl Preface {
    /// Follows `bytes`, just read; true once the preface is complete.
    fn saw(&mut self, bytes: &[u8]) -> bool {
        for &byte in bytes {
            let at = self.read;
            if (PREFACE_MAGIC_LEN..PREFACE_MAGIC_LEN + FRAME_HEADER_LEN).contains(&at) {
                self.header[at - PREFACE_MAGIC_LEN] = byte;
            }
            self.read += 1;
            if self.read == PREFACE_MAGIC_LEN + FRAME_HEADER_LEN {
                let [a, b, c, ..] = self.header;
                let length = u32::from_be_bytes([0, a, b, c]) as usize;
                self.need += length.min(SETTINGS_BYTES_MAX);
            }
            if self.read >= self.need {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves the preface is complete exactly after the magic, the SETTINGS
    /// header and its payload, however the bytes are split, and that an
    /// oversized SETTINGS frame is not waited for past the largest frame.
    #[test]
    fn the_preface_ends_after_its_settings_frame() {
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        bytes.extend_from_slice(&[0, 0, 12, 4, 0, 0, 0, 0, 0]);
        bytes.extend_from_slice(&[0, 4, 0, 1, 0, 0, 0, 3, 0, 0, 0, 100]);
        for split in 1..bytes.len() {
            let mut preface = Preface::default();
            assert!(!preface.saw(&bytes[..split]), "incomplete at {split}");
            assert!(preface.saw(&bytes[split..]), "complete at {split}");
        }
        let mut oversized = bytes[..24].to_vec();
        oversized.extend_from_slice(&[0x7f, 0xff, 0xff, 4, 0, 0, 0, 0, 0]);
        let mut preface = Preface::default();
        assert!(!preface.saw(&oversized));
        assert!(preface.saw(&vec![0; SETTINGS_BYTES_MAX]));
    }
}
