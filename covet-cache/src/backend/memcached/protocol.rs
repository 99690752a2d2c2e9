//! The memcached meta protocol (`mg`, `ms`, `md`, `mn`), as far as the
//! backend uses it: requests are encoded here, replies parsed here.
//!
//! Keys always travel base64-encoded with the `b` flag, so no key can
//! carry a space, a line break or a second command (no injection), and any
//! byte may appear in a key. Source of the syntax: memcached's
//! `doc/protocol.txt`, "Meta Commands".

use std::io;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// Longest key memcached accepts, in bytes (of the base64 text we send).
pub(super) const MAX_KEY_TOKEN: usize = 250;

/// A failure talking to one server.
#[derive(Debug, thiserror::Error)]
pub(crate) enum McError {
    /// The connection failed or closed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The server's reply made no sense (the connection is dropped).
    #[error("protocol: {0}")]
    Protocol(String),
    /// `CLIENT_ERROR` / `ERROR`: the server refused the request.
    #[error("client error: {0}")]
    Client(String),
    /// `SERVER_ERROR`: for example an item too large for the cache.
    #[error("server error: {0}")]
    Server(String),
}

impl McError {
    /// Whether the server was not reached or did not answer.
    pub(super) fn is_connection(&self) -> bool {
        matches!(self, McError::Io(_) | McError::Protocol(_))
    }

    pub(super) fn is_too_large(&self) -> bool {
        matches!(self, McError::Server(m) if m.contains("too large"))
    }
}

/// The `ms` modes used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Store whatever is there.
    Set,
    /// Store only if absent (`ME`).
    Add,
}

/// One request of a pipeline.
#[derive(Debug, Clone)]
pub(super) enum Request {
    /// `mg`: value, remaining TTL and CAS token.
    Get { key: Bytes },
    /// `ms`: store `value` for `ttl` (memcached's exptime), in `mode`, only
    /// if the CAS token matches when `cas` is given.
    Set {
        key: Bytes,
        value: Bytes,
        ttl: u32,
        mode: Mode,
        cas: Option<u64>,
    },
    /// `md`, only if the CAS token matches when `cas` is given.
    Delete { key: Bytes, cas: Option<u64> },
}

/// A reply to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reply {
    /// `VA`: the value, its remaining TTL in seconds (`None`: never
    /// expires) and its CAS token.
    Value {
        value: Bytes,
        ttl: Option<u32>,
        cas: u64,
    },
    /// `HD`: done.
    Done,
    /// `EN` / `NF`: no such item.
    Missing,
    /// `NS`: not stored (an `Add` found an item).
    NotStored,
    /// `EX`: the CAS token did not match.
    Exists,
}

/// Encodes `requests` into one buffer for one write.
pub(super) fn encode(requests: &[Request]) -> BytesMut {
    let size: usize = requests
        .iter()
        .map(|r| match r {
            Request::Set { key, value, .. } => key.len() * 4 / 3 + value.len() + 64,
            Request::Get { key } | Request::Delete { key, .. } => key.len() * 4 / 3 + 32,
        })
        .sum();
    let mut out = BytesMut::with_capacity(size);
    for request in requests {
        match request {
            Request::Get { key } => {
                out.put_slice(b"mg ");
                put_key(&mut out, key);
                out.put_slice(b" b v t c\r\n");
            }
            Request::Set {
                key,
                value,
                ttl,
                mode,
                cas,
            } => {
                out.put_slice(b"ms ");
                put_key(&mut out, key);
                out.put_slice(format!(" {} b T{ttl}", value.len()).as_bytes());
                if *mode == Mode::Add {
                    out.put_slice(b" ME");
                }
                if let Some(cas) = cas {
                    out.put_slice(format!(" C{cas}").as_bytes());
                }
                out.put_slice(b"\r\n");
                out.put_slice(value);
                out.put_slice(b"\r\n");
            }
            Request::Delete { key, cas } => {
                out.put_slice(b"md ");
                put_key(&mut out, key);
                out.put_slice(b" b");
                if let Some(cas) = cas {
                    out.put_slice(format!(" C{cas}").as_bytes());
                }
                out.put_slice(b"\r\n");
            }
        }
    }
    out
}

fn put_key(out: &mut BytesMut, key: &[u8]) {
    let mut text = String::with_capacity(key.len() * 4 / 3 + 4);
    STANDARD.encode_string(key, &mut text);
    out.put_slice(text.as_bytes());
}

/// The base64 length of a key of `n` bytes.
pub(super) const fn token_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Reads one reply. `limit` bounds the size of a value the server may
/// announce (a corrupt length never allocates more).
pub(super) async fn read_reply<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    limit: usize,
) -> Result<Reply, McError> {
    line.clear();
    let n = reader.read_until(b'\n', line).await?;
    if n == 0 {
        return Err(McError::Io(io::ErrorKind::UnexpectedEof.into()));
    }
    if !line.ends_with(b"\r\n") {
        return Err(McError::Protocol("a reply line without CRLF".into()));
    }
    let text = std::str::from_utf8(&line[..line.len() - 2])
        .map_err(|_| McError::Protocol("a reply line that is not UTF-8".into()))?;
    let mut words = text.split(' ');
    let code = words.next().unwrap_or_default();
    match code {
        "VA" => {
            let size: usize = words
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| McError::Protocol(format!("bad VA line {text:?}")))?;
            if size > limit {
                return Err(McError::Protocol(format!(
                    "the server announced a {size}-byte value (limit {limit})"
                )));
            }
            let (mut ttl, mut cas) = (None, 0);
            for flag in words {
                match flag.split_at_checked(1) {
                    Some(("t", v)) => {
                        let t: i64 = v
                            .parse()
                            .map_err(|_| McError::Protocol(format!("bad TTL flag {flag:?}")))?;
                        ttl = u32::try_from(t).ok();
                    }
                    Some(("c", v)) => {
                        cas = v
                            .parse()
                            .map_err(|_| McError::Protocol(format!("bad CAS flag {flag:?}")))?;
                    }
                    _ => {}
                }
            }
            let mut data = vec![0u8; size + 2];
            reader.read_exact(&mut data).await?;
            if !data.ends_with(b"\r\n") {
                return Err(McError::Protocol("a value without its CRLF".into()));
            }
            data.truncate(size);
            Ok(Reply::Value {
                value: Bytes::from(data),
                ttl,
                cas,
            })
        }
        "HD" => Ok(Reply::Done),
        "EN" | "NF" => Ok(Reply::Missing),
        "NS" => Ok(Reply::NotStored),
        "EX" => Ok(Reply::Exists),
        "ERROR" => Err(McError::Client("ERROR".into())),
        _ if code == "CLIENT_ERROR" => Err(McError::Client(text[code.len()..].trim().to_owned())),
        _ if code == "SERVER_ERROR" => Err(McError::Server(text[code.len()..].trim().to_owned())),
        _ => Err(McError::Protocol(format!("unexpected reply {text:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_travel_as_base64_so_nothing_can_be_injected() {
        let evil = Bytes::from_static(b"a b\r\nflush_all\r\n");
        let wire = encode(&[Request::Get { key: evil }]);
        let text = std::str::from_utf8(&wire).unwrap();
        assert_eq!(text.matches("\r\n").count(), 1, "{text:?}");
        assert!(text.starts_with("mg YSBiDQpmbHVzaF9hbGwNCg== b v t c"));
    }

    #[test]
    fn sets_carry_length_ttl_mode_and_cas() {
        let wire = encode(&[
            Request::Set {
                key: Bytes::from_static(b"k"),
                value: Bytes::from_static(b"v\r\n"),
                ttl: 60,
                mode: Mode::Add,
                cas: Some(9),
            },
            Request::Delete {
                key: Bytes::from_static(b"k"),
                cas: None,
            },
        ]);
        assert_eq!(
            &wire[..],
            b"ms aw== 3 b T60 ME C9\r\nv\r\n\r\nmd aw== b\r\n"
        );
        assert_eq!(token_len(187), 252);
        assert_eq!(token_len(186), 248);
    }

    async fn parse(wire: &[u8], limit: usize) -> Result<Reply, McError> {
        let mut reader = tokio::io::BufReader::new(wire);
        read_reply(&mut reader, &mut Vec::new(), limit).await
    }

    #[tokio::test]
    async fn replies() {
        assert_eq!(
            parse(b"VA 2 t-1 c7\r\nhi\r\n", 10).await.unwrap(),
            Reply::Value {
                value: Bytes::from_static(b"hi"),
                ttl: None,
                cas: 7
            }
        );
        assert!(matches!(
            parse(b"VA 0 t30 c1\r\n\r\n", 10).await.unwrap(),
            Reply::Value { ttl: Some(30), .. }
        ));
        assert_eq!(parse(b"EN\r\n", 10).await.unwrap(), Reply::Missing);
        assert_eq!(parse(b"NS\r\n", 10).await.unwrap(), Reply::NotStored);
        assert_eq!(parse(b"EX\r\n", 10).await.unwrap(), Reply::Exists);
        assert!(
            parse(b"SERVER_ERROR object too large for cache\r\n", 10)
                .await
                .unwrap_err()
                .is_too_large()
        );
        assert!(matches!(
            parse(b"CLIENT_ERROR bad data chunk\r\n", 10).await,
            Err(McError::Client(_))
        ));
    }

    #[tokio::test]
    async fn corrupt_replies_never_allocate_or_hang() {
        // an announced size over the limit is refused before allocating
        let err = parse(b"VA 99999999999 t-1 c1\r\n", 1 << 20)
            .await
            .unwrap_err();
        assert!(err.is_connection(), "{err}");
        assert!(parse(b"VA x\r\n", 10).await.unwrap_err().is_connection());
        assert!(
            parse(b"VA 5 t1 c1\r\nhi\r\n", 10)
                .await
                .unwrap_err()
                .is_connection()
        );
        assert!(parse(b"HD", 10).await.unwrap_err().is_connection());
        assert!(parse(b"", 10).await.unwrap_err().is_connection());
        assert!(parse(b"WAT\r\n", 10).await.unwrap_err().is_connection());
    }
}
