//! SPDY/3.1 framing (draft-mbelshe-httpbis-spdy-00 as SPDY/3.1 amends it): control and data
//! frames, and the name/value header blocks of SYN_STREAM, SYN_REPLY and HEADERS, which travel
//! through one zlib stream per direction primed with the protocol's dictionary.

use anyhow::{Context, Result, bail};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::AsyncReadExt;

pub const SYN_STREAM: u16 = 1;
pub const SYN_REPLY: u16 = 2;
pub const RST_STREAM: u16 = 3;
pub const PING: u16 = 6;
pub const GOAWAY: u16 = 7;
pub const HEADERS: u16 = 8;
pub const FLAG_FIN: u8 = 1;
/// RST_STREAM status: the stream was refused.
pub const REFUSED_STREAM: u32 = 3;
const MAX_FRAME: usize = 16 << 20;
/// A header block that inflates past this is refused (a zlib bomb).
const MAX_HEADERS: usize = 256 << 10;

/// A frame as read.
#[derive(Debug)]
pub enum Frame {
    Control {
        kind: u16,
        flags: u8,
        data: Vec<u8>,
    },
    Data {
        stream: u32,
        flags: u8,
        data: Vec<u8>,
    },
}

/// A control frame of `kind`.
pub fn control(kind: u16, flags: u8, data: &[u8]) -> Vec<u8> {
    let l = (data.len() as u32).to_be_bytes();
    let k = kind.to_be_bytes();
    let mut v = vec![0x80, 3, k[0], k[1], flags, l[1], l[2], l[3]];
    v.extend_from_slice(data);
    v
}

/// A data frame of `stream`.
pub fn data(stream: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let l = (payload.len() as u32).to_be_bytes();
    let mut v = (stream & 0x7fff_ffff).to_be_bytes().to_vec();
    v.extend_from_slice(&[flags, l[1], l[2], l[3]]);
    v.extend_from_slice(payload);
    v
}

/// RST_STREAM of `stream` with `status`.
pub fn reset(stream: u32, status: u32) -> Vec<u8> {
    let mut b = stream.to_be_bytes().to_vec();
    b.extend_from_slice(&status.to_be_bytes());
    control(RST_STREAM, 0, &b)
}

/// Read one frame.
pub async fn read_frame<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> Result<Frame> {
    let mut h = [0u8; 8];
    r.read_exact(&mut h).await?;
    let len = u32::from_be_bytes([0, h[5], h[6], h[7]]) as usize;
    if len > MAX_FRAME {
        bail!("SPDY frame of {len} bytes");
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(if h[0] & 0x80 != 0 {
        let version = u16::from_be_bytes([h[0] & 0x7f, h[1]]);
        if version != 3 {
            bail!("SPDY version {version}, not 3");
        }
        Frame::Control {
            kind: u16::from_be_bytes([h[2], h[3]]),
            flags: h[4],
            data: payload,
        }
    } else {
        Frame::Data {
            stream: u32::from_be_bytes([h[0], h[1], h[2], h[3]]) & 0x7fff_ffff,
            flags: h[4],
            data: payload,
        }
    })
}

/// The words SPDY/3's header dictionary lists, each written as a 32-bit length and the word.
const DICTIONARY_WORDS: &[&str] = &[
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// The dictionary's tail: status codes, reason phrases, dates and common values, as one run.
const DICTIONARY_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

/// SPDY/3's zlib dictionary for header blocks (spec section 2.6.10.1).
pub fn dictionary() -> Vec<u8> {
    let mut d = Vec::with_capacity(1424);
    for w in DICTIONARY_WORDS {
        d.extend_from_slice(&(w.len() as u32).to_be_bytes());
        d.extend_from_slice(w.as_bytes());
    }
    d.extend_from_slice(DICTIONARY_TAIL.as_bytes());
    d
}

/// Header blocks of one connection: the client's inflated, ours deflated, each in the zlib
/// stream of its direction.
pub struct HeaderCodec {
    inflate: Decompress,
    deflate: Compress,
    dict: Vec<u8>,
}

impl Default for HeaderCodec {
    fn default() -> Self {
        let dict = dictionary();
        let mut deflate = Compress::new(Compression::fast(), true);
        // a zlib stream with a preset dictionary announces it (FDICT): clients prime their
        // inflater with SPDY's
        let _ = deflate.set_dictionary(&dict);
        HeaderCodec {
            inflate: Decompress::new(true),
            deflate,
            dict,
        }
    }
}

impl HeaderCodec {
    /// Inflate and parse a header block: (name, value) pairs, names lowercase as SPDY sends
    /// them. Every block must pass here in order: the zlib stream spans them all.
    pub fn decode(&mut self, block: &[u8]) -> Result<Vec<(String, String)>> {
        let mut out: Vec<u8> = Vec::with_capacity(256);
        let mut input = block;
        loop {
            if out.capacity() - out.len() < 256 {
                out.reserve(1024);
            }
            let before_in = self.inflate.total_in();
            match self
                .inflate
                .decompress_vec(input, &mut out, FlushDecompress::Sync)
            {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(&self.dict)
                        .context("prime the header inflater with SPDY's dictionary")?;
                }
                Err(e) => return Err(e).context("inflate a SPDY header block"),
            }
            let used = (self.inflate.total_in() - before_in) as usize;
            input = &input[used..];
            if out.len() > MAX_HEADERS {
                bail!("a SPDY header block inflates past {MAX_HEADERS} bytes");
            }
            if input.is_empty() && out.capacity() > out.len() {
                break;
            }
        }
        parse_block(&out)
    }

    /// Deflate a header block of `pairs`.
    pub fn encode(&mut self, pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut raw = (pairs.len() as u32).to_be_bytes().to_vec();
        for (n, v) in pairs {
            for s in [n, v] {
                raw.extend_from_slice(&(s.len() as u32).to_be_bytes());
                raw.extend_from_slice(s.as_bytes());
            }
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut input = &raw[..];
        loop {
            out.reserve(256);
            let before = self.deflate.total_in();
            let _ = self
                .deflate
                .compress_vec(input, &mut out, FlushCompress::Sync);
            input = &input[(self.deflate.total_in() - before) as usize..];
            if input.is_empty() && out.capacity() > out.len() {
                return out;
            }
        }
    }
}

/// A raw name/value block: a 32-bit count, then each name and value with a 32-bit length.
fn parse_block(b: &[u8]) -> Result<Vec<(String, String)>> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8]> {
        let s = b.get(at..at + n).context("a truncated SPDY header block")?;
        at += n;
        Ok(s)
    };
    let word = |s: &[u8]| u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize;
    let count = word(take(4)?);
    let mut pairs = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let n = word(take(4)?);
        let name = String::from_utf8_lossy(take(n)?).to_ascii_lowercase();
        let n = word(take(4)?);
        let value = String::from_utf8_lossy(take(n)?).into_owned();
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// The value of header `name` (the first of several NUL-separated values).
pub fn header<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.split('\0').next().unwrap_or(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_spdy3s() {
        // the Adler-32 that a SPDY/3 client's zlib header names as its dictionary
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        let mut c = Compress::new(Compression::fast(), true);
        assert_eq!(c.set_dictionary(&d).unwrap(), 0xe3c6_a7c2);
    }

    #[test]
    fn header_blocks_round_trip_through_the_shared_zlib_streams() {
        let mut client = HeaderCodec::default();
        let mut server = HeaderCodec::default();
        let a = client.encode(&[("streamtype", "data"), ("port", "8080"), ("requestid", "0")]);
        let b = client.encode(&[
            ("streamtype", "error"),
            ("port", "9090"),
            ("requestid", "1"),
        ]);
        let pa = server.decode(&a).unwrap();
        assert_eq!(header(&pa, "port"), Some("8080"));
        assert_eq!(header(&pa, "streamtype"), Some("data"));
        let pb = server.decode(&b).unwrap();
        assert_eq!(header(&pb, "requestid"), Some("1"));
        assert_eq!(header(&pb, "port"), Some("9090"));
        assert!(server.decode(&[1, 2, 3]).is_err());
    }

    #[test]
    fn frames() {
        assert_eq!(
            control(PING, 0, &[0, 0, 0, 1]),
            vec![0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]
        );
        assert_eq!(data(5, FLAG_FIN, b"x"), vec![0, 0, 0, 5, 1, 0, 0, 1, b'x']);
        assert_eq!(reset(7, REFUSED_STREAM)[8..], [0, 0, 0, 7, 0, 0, 0, 3]);
        assert!(parse_block(&[0, 0, 0, 1, 0, 0, 0, 9, b'x']).is_err());
    }
}
