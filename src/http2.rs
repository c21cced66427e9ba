//! HTTP/2 framing (RFC 9113 §3.4, §4.1, §6), for the two places berth speaks HTTP/2 by hand
//! where a whole client or server does not fit: a probe's gRPC call from the pod monitor (one
//! thread, no async runtime: src/pod/monitor/check.rs) and the CRI socket's `:authority`
//! rewrite in front of tonic (src/cri/authority.rs). HPACK is loona-hpack's.

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types.
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const CONTINUATION: u8 = 0x9;

/// Flags (ACK on SETTINGS and PING shares END_STREAM's bit).
pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY: u8 = 0x20;

/// The frame size every peer accepts without asking.
pub const MAX_FRAME: usize = 16_384;

/// A frame's 9-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub len: usize,
    pub kind: u8,
    pub flags: u8,
    /// The stream identifier (its reserved bit cleared).
    pub stream: u32,
}

impl FrameHeader {
    pub const SIZE: usize = 9;

    pub fn parse(b: &[u8; 9]) -> FrameHeader {
        FrameHeader {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize,
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        }
    }

    /// The header at the start of `buf` and whether its whole frame is there.
    pub fn peek(buf: &[u8]) -> Option<(FrameHeader, bool)> {
        let h = FrameHeader::parse(buf.get(..Self::SIZE)?.try_into().ok()?);
        Some((h, buf.len() >= Self::SIZE + h.len))
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        let l = (self.len as u32).to_be_bytes();
        out.extend_from_slice(&[l[1], l[2], l[3], self.kind, self.flags]);
        out.extend_from_slice(&self.stream.to_be_bytes());
    }
}

/// A whole frame.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FrameHeader::SIZE + payload.len());
    FrameHeader {
        len: payload.len(),
        kind,
        flags,
        stream,
    }
    .write(&mut out);
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        let f = frame(HEADERS, END_HEADERS | END_STREAM, 3, &[7; 300]);
        assert_eq!(&f[..9], &[0, 1, 44, HEADERS, 5, 0, 0, 0, 3]);
        let (h, whole) = FrameHeader::peek(&f).unwrap();
        assert_eq!(
            (h.len, h.kind, h.flags, h.stream, whole),
            (300, HEADERS, 5, 3, true)
        );
        assert_eq!(FrameHeader::peek(&f[..100]).map(|p| p.1), Some(false));
        assert_eq!(FrameHeader::peek(&f[..8]), None);
        // the reserved bit is not part of the stream
        let mut g = f.clone();
        g[5] |= 0x80;
        assert_eq!(FrameHeader::peek(&g).unwrap().0.stream, 3);
    }
}
