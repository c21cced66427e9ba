//! Accept gRPC clients that send a unix socket's path as the HTTP/2 `:authority`.
//!
//! Go gRPC clients of crictl 1.26–1.29 (and grpc-java, and Python's since 1.57) send
//! `:authority: /run/berth/berth.sock`. The h2 crate under tonic rejects that as a malformed
//! authority and resets the stream (hyperium/h2#487). So each connection passes through this
//! relay on its way to tonic: frames go through unchanged except request header blocks, which
//! are decoded (HPACK, with the client's dynamic table), get `localhost` in place of an
//! authority h2 would reject, and are encoded again for h2 (with a table of the relay's own).
//! Responses flow back untouched.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::http2::{
    CONTINUATION, END_HEADERS, END_STREAM, FrameHeader, HEADERS, MAX_FRAME, PADDED, PREFACE,
    PRIORITY,
};

/// A header block larger than this is refused (h2 refuses far smaller ones).
const MAX_BLOCK: usize = 1 << 20;

/// Would h2 accept this `:authority`?
pub fn acceptable(authority: &[u8]) -> bool {
    http::uri::Authority::try_from(authority).is_ok()
}

/// Copy a client's HTTP/2 byte stream to `to`, rewriting unacceptable `:authority` values.
pub async fn relay_requests<R, W>(mut from: R, mut to: W) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut preface = [0u8; PREFACE.len()];
    from.read_exact(&mut preface).await?;
    to.write_all(&preface).await?;
    if preface != PREFACE {
        // not HTTP/2 with prior knowledge: let h2 refuse it
        return tokio::io::copy(&mut from, &mut to).await.map(|_| ());
    }
    let mut decoder = loona_hpack::Decoder::new();
    let mut encoder = loona_hpack::Encoder::new();
    let mut header = [0u8; 9];
    let mut payload = Vec::new();
    loop {
        match from.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return to.shutdown().await,
            Err(e) => return Err(e),
        }
        let FrameHeader {
            len,
            kind,
            flags,
            stream,
        } = FrameHeader::parse(&header);
        payload.resize(len, 0);
        from.read_exact(&mut payload).await?;
        if kind != HEADERS {
            to.write_all(&header).await?;
            to.write_all(&payload).await?;
            continue;
        }
        // a HEADERS frame: strip padding and priority, gather CONTINUATIONs
        let mut body: &[u8] = &payload;
        if flags & PADDED != 0 {
            let pad = *body.first().ok_or_else(|| bad("empty padded HEADERS"))? as usize;
            if pad + 1 > body.len() {
                return Err(bad("HEADERS padding longer than the frame"));
            }
            body = &body[1..body.len() - pad];
        }
        let priority: Option<[u8; 5]> = if flags & PRIORITY != 0 {
            let p = body.get(..5).ok_or_else(|| bad("short HEADERS priority"))?;
            let p = [p[0], p[1], p[2], p[3], p[4]];
            body = &body[5..];
            Some(p)
        } else {
            None
        };
        let mut block = body.to_vec();
        let mut end = flags & END_HEADERS != 0;
        while !end {
            from.read_exact(&mut header).await?;
            let next = FrameHeader::parse(&header);
            let len = next.len;
            if next.kind != CONTINUATION || next.stream != stream {
                return Err(bad("HEADERS not followed by its CONTINUATION"));
            }
            if block.len() + len > MAX_BLOCK {
                return Err(bad("header block too large"));
            }
            let start = block.len();
            block.resize(start + len, 0);
            from.read_exact(&mut block[start..]).await?;
            end = next.flags & END_HEADERS != 0;
        }
        let fields = decoder
            .decode(&block)
            .map_err(|e| bad(&format!("HPACK: {e:?}")))?;
        let fields: Vec<(Vec<u8>, Vec<u8>)> = fields
            .into_iter()
            .map(|(n, v)| {
                if n == b":authority" && !acceptable(&v) {
                    (n, b"localhost".to_vec())
                } else {
                    (n, v)
                }
            })
            .collect();
        let encoded = encoder.encode(fields.iter().map(|(n, v)| (&n[..], &v[..])));
        write_headers(&mut to, stream, flags & END_STREAM, priority, &encoded).await?;
    }
}

/// Write a header block as HEADERS (+ CONTINUATION) frames.
async fn write_headers<W: AsyncWrite + Unpin>(
    to: &mut W,
    stream: u32,
    end_stream: u8,
    priority: Option<[u8; 5]>,
    block: &[u8],
) -> io::Result<()> {
    let mut out = Vec::with_capacity(block.len() + 32);
    let first_room = MAX_FRAME - if priority.is_some() { 5 } else { 0 };
    let (first, mut rest) = block.split_at(block.len().min(first_room));
    let mut flags = end_stream | if rest.is_empty() { END_HEADERS } else { 0 };
    if priority.is_some() {
        flags |= PRIORITY;
    }
    let len = first.len() + if priority.is_some() { 5 } else { 0 };
    frame_header(&mut out, len, HEADERS, flags, stream);
    if let Some(p) = priority {
        out.extend_from_slice(&p);
    }
    out.extend_from_slice(first);
    while !rest.is_empty() {
        let (chunk, r) = rest.split_at(rest.len().min(MAX_FRAME));
        rest = r;
        let flags = if rest.is_empty() { END_HEADERS } else { 0 };
        frame_header(&mut out, chunk.len(), CONTINUATION, flags, stream);
        out.extend_from_slice(chunk);
    }
    to.write_all(&out).await
}

fn frame_header(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    FrameHeader {
        len,
        kind,
        flags,
        stream,
    }
    .write(out);
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("HTTP/2 relay: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::http2::frame;

    fn parse(mut bytes: &[u8]) -> Vec<(u8, u8, Vec<u8>)> {
        let mut out = Vec::new();
        while bytes.len() >= 9 {
            let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
            out.push((bytes[3], bytes[4], bytes[9..9 + len].to_vec()));
            bytes = &bytes[9 + len..];
        }
        out
    }

    #[test]
    fn authorities() {
        assert!(acceptable(b"localhost"));
        assert!(acceptable(b"127.0.0.1:80"));
        assert!(!acceptable(b"/run/berth/berth.sock"));
        assert!(!acceptable(b"%2Frun%2Fberth.sock"));
    }

    #[tokio::test]
    async fn rewrites_a_socket_path_authority_and_keeps_the_rest() {
        let mut enc = loona_hpack::Encoder::new();
        let req = |enc: &mut loona_hpack::Encoder, auth: &[u8]| {
            enc.encode(vec![
                (&b":method"[..], &b"POST"[..]),
                (b":scheme", b"http"),
                (b":path", b"/runtime.v1.RuntimeService/Version"),
                (b":authority", auth),
                (b"content-type", b"application/grpc"),
            ])
        };
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[])); // SETTINGS
        let b1 = req(&mut enc, b"/run/berth/berth.sock");
        // split across HEADERS + CONTINUATION, padded, to exercise both
        let mut padded = vec![2u8];
        padded.extend_from_slice(&b1[..3]);
        padded.extend_from_slice(&[0, 0]);
        input.extend(frame(HEADERS, PADDED, 1, &padded));
        input.extend(frame(CONTINUATION, END_HEADERS, 1, &b1[3..]));
        input.extend(frame(0x0, END_STREAM, 1, b"\0\0\0\0\0"));
        // a second request refers to the client's dynamic table
        let b3 = req(&mut enc, b"/run/berth/berth.sock");
        input.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &b3));
        let b5 = req(&mut enc, b"localhost:1");
        input.extend(frame(HEADERS, END_HEADERS, 5, &b5));

        let mut out = Vec::new();
        relay_requests(&input[..], &mut out).await.unwrap();
        assert_eq!(&out[..PREFACE.len()], PREFACE);
        let frames = parse(&out[PREFACE.len()..]);
        let kinds: Vec<u8> = frames.iter().map(|f| f.0).collect();
        assert_eq!(kinds, vec![0x4, HEADERS, 0x0, HEADERS, HEADERS]);
        assert_eq!(frames[2].2, b"\0\0\0\0\0");
        assert_eq!(frames[3].1, END_HEADERS | END_STREAM);
        let mut dec = loona_hpack::Decoder::new();
        let auth = |dec: &mut loona_hpack::Decoder, block: &[u8]| {
            let h = dec.decode(block).unwrap();
            assert!(
                h.iter()
                    .any(|(n, v)| n == b":path" && v.starts_with(b"/runtime"))
            );
            h.into_iter().find(|(n, _)| n == b":authority").unwrap().1
        };
        assert_eq!(auth(&mut dec, &frames[1].2), b"localhost");
        assert_eq!(auth(&mut dec, &frames[3].2), b"localhost");
        assert_eq!(auth(&mut dec, &frames[4].2), b"localhost:1");
    }
}
