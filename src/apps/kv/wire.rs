//! wire.rs - the KV payload encoding: requests (GET, SET, DEL, SCAN) and replies, as
//! carried in the payload after the 28-byte persephone header. Little-endian lengths.
//!
//! ```text
//! request                                   reply (header status ok)
//! off size field                            off size field
//!   0    1 op     1 GET 2 SET 3 DEL 4 SCAN    0    1 result  0 ok, 1 not_found
//!   1    1 flags  0 (others: bad_request)     1    1 flags   bit 0: more (SCAN)
//!   2    2 klen   key bytes                   2    2 count   see below
//!   4 klen key                                4    . body    see below
//! GET, DEL: nothing follows (but padding)
//! SET:  4+klen    value = the rest of the payload
//! SCAN: 4+klen  2 elen   end key bytes (0: no upper bound)
//!       6+klen elen end  (exclusive)
//!       6+klen+elen 2 limit  most pairs to return (0: as many as fit)
//!       then padding
//! ```
//!
//! GET, DEL and SCAN requests may end with any number of zero bytes: a client pads a
//! request to be allowed a larger reply where the server bounds replies to a multiple
//! of their request (`net.max_amplification`). Other trailing bytes are an error.
//!
//! Keys are 1..=[`MAX_KEY_LEN`] bytes (a SCAN's start may be empty: from the first
//! key) and compare as byte strings. Reply bodies:
//!
//! | op   | result | count | body |
//! |------|--------|-------|------|
//! | GET  | ok / not_found | 1 if found | the value |
//! | SET  | ok | 1 if an old value was replaced | empty |
//! | DEL  | ok / not_found | 1 if a value was removed | empty |
//! | SCAN | ok | pairs in the body | `count` × (klen u16, key, vlen u16, value), in key order |
//!
//! A SCAN returns the pairs of `[start, end)` in order until it has `limit` of them or
//! the next one would not fit in the reply ([`crate::Request::max_reply_len`]: the
//! request's buffer of `net.max_msg` bytes, and at most `net.max_amplification` times
//! the request). `more` is set when the range holds keys after the last one returned, so a
//! client continues from that key with a `0x00` byte appended. A GET whose value does
//! not fit the allowed reply (the buffer, or `net.max_amplification` times the request:
//! pad the request) is answered `handler_error`. A malformed request payload is answered
//! `bad_request` (header status 6).

use thiserror::Error;

/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// Longest value a SCAN pair can carry (its length field is a u16).
pub const MAX_VALUE_LEN: usize = u16::MAX as usize;
/// Bytes of a reply before its body.
pub const REPLY_HEADER_LEN: usize = 4;
/// Bytes a SCAN pair takes in a reply besides its key and value.
pub const PAIR_OVERHEAD: usize = 4;

/// A KV operation (the request payload's first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Op {
    Get = 1,
    Set = 2,
    Del = 3,
    Scan = 4,
}

impl Op {
    /// Every operation, in wire order.
    pub const ALL: [Op; 4] = [Op::Get, Op::Set, Op::Del, Op::Scan];

    /// The operation with wire code `b`.
    pub fn from_byte(b: u8) -> Option<Op> {
        Op::ALL.get((b as usize).wrapping_sub(1)).copied()
    }

    /// The upper-case name, which is also the request type name the classifier looks
    /// for (`GET`, `SET`, `DEL`, `SCAN`).
    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "GET",
            Op::Set => "SET",
            Op::Del => "DEL",
            Op::Scan => "SCAN",
        }
    }
}

/// Why a payload is not a valid KV request or reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum WireError {
    #[error("payload of {0} bytes is too short")]
    Short(usize),
    #[error("unknown operation {0}")]
    UnknownOp(u8),
    #[error("flags 0x{0:02x}: no flags are defined")]
    BadFlags(u8),
    #[error("key of {0} bytes (1..={MAX_KEY_LEN} allowed)")]
    KeyLength(usize),
    #[error("{0} bytes follow the request, not all zero padding")]
    Trailing(usize),
    #[error("unknown result {0}")]
    UnknownResult(u8),
    #[error("buffer of {have} bytes cannot hold {need}")]
    NoRoom { need: usize, have: usize },
}

/// A KV request, borrowing its keys and value from the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    Get {
        key: &'a [u8],
    },
    Set {
        key: &'a [u8],
        value: &'a [u8],
    },
    Del {
        key: &'a [u8],
    },
    /// Pairs with `start <= key < end` (`end: None`: no upper bound), at most `limit`
    /// of them (0: as many as fit).
    Scan {
        start: &'a [u8],
        end: Option<&'a [u8]>,
        limit: u16,
    },
}

/// Reads a u16-length-prefixed byte string at `at`; returns it and the offset after it.
fn take(p: &[u8], at: usize) -> Result<(&[u8], usize), WireError> {
    let len_end = at + 2;
    let Some(len) = p.get(at..len_end) else {
        return Err(WireError::Short(p.len()));
    };
    let len = u16::from_le_bytes([len[0], len[1]]) as usize;
    let end = len_end + len;
    match p.get(len_end..end) {
        Some(s) => Ok((s, end)),
        None => Err(WireError::Short(p.len())),
    }
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) -> usize {
    let len = bytes.len() as u16;
    buf[at..at + 2].copy_from_slice(&len.to_le_bytes());
    buf[at + 2..at + 2 + bytes.len()].copy_from_slice(bytes);
    at + 2 + bytes.len()
}

impl<'a> Command<'a> {
    /// The operation.
    pub fn op(&self) -> Op {
        match self {
            Command::Get { .. } => Op::Get,
            Command::Set { .. } => Op::Set,
            Command::Del { .. } => Op::Del,
            Command::Scan { .. } => Op::Scan,
        }
    }

    /// Parses and validates a request payload. Never panics, whatever the bytes.
    pub fn parse(p: &'a [u8]) -> Result<Command<'a>, WireError> {
        let [op, flags, ..] = *p else {
            return Err(WireError::Short(p.len()));
        };
        let op = Op::from_byte(op).ok_or(WireError::UnknownOp(op))?;
        if flags != 0 {
            return Err(WireError::BadFlags(flags));
        }
        let (key, at) = take(p, 2)?;
        let key_ok = |k: &[u8], empty_ok: bool| {
            if (k.is_empty() && !empty_ok) || k.len() > MAX_KEY_LEN {
                Err(WireError::KeyLength(k.len()))
            } else {
                Ok(())
            }
        };
        key_ok(key, op == Op::Scan)?;
        // Zero bytes after the fields are padding.
        let done = |at: usize, c: Command<'a>| {
            if p[at..].iter().all(|&b| b == 0) {
                Ok(c)
            } else {
                Err(WireError::Trailing(p.len() - at))
            }
        };
        match op {
            Op::Get => done(at, Command::Get { key }),
            Op::Del => done(at, Command::Del { key }),
            Op::Set => Ok(Command::Set {
                key,
                value: &p[at..],
            }),
            Op::Scan => {
                let (end, at) = take(p, at)?;
                key_ok(end, true)?;
                let Some(limit) = p.get(at..at + 2) else {
                    return Err(WireError::Short(p.len()));
                };
                let limit = u16::from_le_bytes([limit[0], limit[1]]);
                let end = (!end.is_empty()).then_some(end);
                done(
                    at + 2,
                    Command::Scan {
                        start: key,
                        end,
                        limit,
                    },
                )
            }
        }
    }

    /// Bytes [`Command::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        4 + match self {
            Command::Get { key } | Command::Del { key } => key.len(),
            Command::Set { key, value } => key.len() + value.len(),
            Command::Scan { start, end, .. } => start.len() + 2 + end.map_or(0, <[u8]>::len) + 2,
        }
    }

    /// Writes the request payload into `buf`; returns its length.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let need = self.encoded_len();
        if buf.len() < need {
            return Err(WireError::NoRoom {
                need,
                have: buf.len(),
            });
        }
        let check = |k: &[u8], empty_ok: bool| {
            if (k.is_empty() && !empty_ok) || k.len() > MAX_KEY_LEN {
                Err(WireError::KeyLength(k.len()))
            } else {
                Ok(())
            }
        };
        buf[0] = self.op() as u8;
        buf[1] = 0;
        let n = match *self {
            Command::Get { key } | Command::Del { key } => {
                check(key, false)?;
                put(buf, 2, key)
            }
            Command::Set { key, value } => {
                check(key, false)?;
                let at = put(buf, 2, key);
                buf[at..at + value.len()].copy_from_slice(value);
                at + value.len()
            }
            Command::Scan { start, end, limit } => {
                check(start, true)?;
                let end = end.unwrap_or(&[]);
                check(end, true)?;
                let at = put(buf, 2, start);
                let at = put(buf, at, end);
                buf[at..at + 2].copy_from_slice(&limit.to_le_bytes());
                at + 2
            }
        };
        debug_assert_eq!(n, need);
        Ok(n)
    }
}

/// The `result` byte of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Outcome {
    Ok = 0,
    NotFound = 1,
}

const FLAG_MORE: u8 = 1;

/// A parsed reply payload (client side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply<'a> {
    pub outcome: Outcome,
    /// SCAN: the range holds keys after the last pair returned.
    pub more: bool,
    pub count: u16,
    pub body: &'a [u8],
}

impl<'a> Reply<'a> {
    /// Parses a reply payload. Never panics, whatever the bytes.
    pub fn parse(p: &'a [u8]) -> Result<Reply<'a>, WireError> {
        let [result, flags, c0, c1, ..] = *p else {
            return Err(WireError::Short(p.len()));
        };
        let outcome = match result {
            0 => Outcome::Ok,
            1 => Outcome::NotFound,
            r => return Err(WireError::UnknownResult(r)),
        };
        if flags & !FLAG_MORE != 0 {
            return Err(WireError::BadFlags(flags));
        }
        Ok(Reply {
            outcome,
            more: flags & FLAG_MORE != 0,
            count: u16::from_le_bytes([c0, c1]),
            body: &p[REPLY_HEADER_LEN..],
        })
    }

    /// The (key, value) pairs of a SCAN reply, in order; an item is an error if the
    /// body is cut short. Trailing bytes after `count` pairs are not read.
    pub fn pairs(&self) -> Pairs<'a> {
        Pairs {
            body: self.body,
            at: 0,
            left: self.count,
        }
    }
}

/// Iterator over a SCAN reply's pairs (see [`Reply::pairs`]).
#[derive(Debug, Clone)]
pub struct Pairs<'a> {
    body: &'a [u8],
    at: usize,
    left: u16,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = Result<(&'a [u8], &'a [u8]), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let r = take(self.body, self.at).and_then(|(k, at)| {
            let (v, at) = take(self.body, at)?;
            self.at = at;
            Ok((k, v))
        });
        if r.is_err() {
            self.left = 0;
        }
        Some(r)
    }
}

/// Writes a reply with no body (GET misses, SET, DEL) into `buf`; returns its length.
pub fn encode_reply(
    buf: &mut [u8],
    outcome: Outcome,
    more: bool,
    count: u16,
) -> Result<usize, WireError> {
    let Some(h) = buf.get_mut(..REPLY_HEADER_LEN) else {
        return Err(WireError::NoRoom {
            need: REPLY_HEADER_LEN,
            have: buf.len(),
        });
    };
    h[0] = outcome as u8;
    h[1] = if more { FLAG_MORE } else { 0 };
    h[2..4].copy_from_slice(&count.to_le_bytes());
    Ok(REPLY_HEADER_LEN)
}

/// Fills a SCAN reply in place: pairs are appended while they fit, then
/// [`ScanWriter::finish`] writes the header.
#[derive(Debug)]
pub struct ScanWriter<'b> {
    buf: &'b mut [u8],
    at: usize,
    count: u16,
}

impl<'b> ScanWriter<'b> {
    /// A writer over the whole reply buffer (at least [`REPLY_HEADER_LEN`] bytes).
    pub fn new(buf: &'b mut [u8]) -> Result<ScanWriter<'b>, WireError> {
        if buf.len() < REPLY_HEADER_LEN {
            return Err(WireError::NoRoom {
                need: REPLY_HEADER_LEN,
                have: buf.len(),
            });
        }
        Ok(ScanWriter {
            buf,
            at: REPLY_HEADER_LEN,
            count: 0,
        })
    }

    /// Pairs written so far.
    pub fn count(&self) -> u16 {
        self.count
    }

    /// Appends a pair if it fits (and the count and lengths fit their fields); returns
    /// whether it was written.
    pub fn push(&mut self, key: &[u8], value: &[u8]) -> bool {
        let need = PAIR_OVERHEAD + key.len() + value.len();
        if self.count == u16::MAX
            || key.len() > MAX_KEY_LEN
            || value.len() > MAX_VALUE_LEN
            || self.buf.len() - self.at < need
        {
            return false;
        }
        let at = put(self.buf, self.at, key);
        self.at = put(self.buf, at, value);
        self.count += 1;
        true
    }

    /// Writes the header; returns the reply's length.
    pub fn finish(self, more: bool) -> usize {
        // `new` checked the buffer holds the header.
        let _ = encode_reply(self.buf, Outcome::Ok, more, self.count);
        self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(c: Command<'_>) {
        let mut buf = [0u8; 64];
        let n = c.encode(&mut buf).unwrap();
        assert_eq!(n, c.encoded_len());
        assert_eq!(Command::parse(&buf[..n]).unwrap(), c);
    }

    #[test]
    fn requests_roundtrip() {
        roundtrip(Command::Get { key: b"k" });
        roundtrip(Command::Del { key: b"key" });
        roundtrip(Command::Set {
            key: b"key",
            value: b"value",
        });
        roundtrip(Command::Set {
            key: b"key",
            value: b"",
        });
        roundtrip(Command::Scan {
            start: b"",
            end: None,
            limit: 0,
        });
        roundtrip(Command::Scan {
            start: b"a",
            end: Some(b"b"),
            limit: 7,
        });
    }

    #[test]
    fn the_encoding_is_the_documented_one() {
        let mut buf = [0u8; 32];
        let n = Command::Scan {
            start: b"ab",
            end: Some(b"c"),
            limit: 300,
        }
        .encode(&mut buf)
        .unwrap();
        assert_eq!(&buf[..n], &[4, 0, 2, 0, b'a', b'b', 1, 0, b'c', 0x2c, 0x01]);
        let n = Command::Get { key: b"k" }.encode(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[1, 0, 1, 0, b'k']);
    }

    #[test]
    fn malformed_requests_are_errors_not_panics() {
        let cases: &[(&[u8], WireError)] = &[
            (&[], WireError::Short(0)),
            (&[1], WireError::Short(1)),
            (&[9, 0, 1, 0, b'k'], WireError::UnknownOp(9)),
            (&[0, 0, 1, 0, b'k'], WireError::UnknownOp(0)),
            (&[1, 1, 1, 0, b'k'], WireError::BadFlags(1)),
            (&[1, 0, 0, 0], WireError::KeyLength(0)),
            (&[1, 0, 5, 0, b'k'], WireError::Short(5)),
            (&[1, 0, 1, 0, b'k', b'x'], WireError::Trailing(1)),
            (&[1, 0, 1, 0, b'k', 0, 0, 7], WireError::Trailing(3)),
            (&[3, 0, 1, 0, b'k', b'x'], WireError::Trailing(1)),
            (&[4, 0, 0, 0], WireError::Short(4)),
            (&[4, 0, 0, 0, 0, 0, 1], WireError::Short(7)),
            (&[4, 0, 0, 0, 0, 0, 1, 0, 9], WireError::Trailing(1)),
        ];
        for (p, want) in cases {
            assert_eq!(Command::parse(p), Err(*want), "{p:?}");
        }
        let mut long = vec![1u8, 0];
        long.extend_from_slice(&((MAX_KEY_LEN + 1) as u16).to_le_bytes());
        long.resize(4 + MAX_KEY_LEN + 1, b'k');
        assert_eq!(
            Command::parse(&long),
            Err(WireError::KeyLength(MAX_KEY_LEN + 1))
        );
        // Every prefix of a valid request either parses or fails cleanly.
        let mut buf = [0u8; 32];
        let n = Command::Scan {
            start: b"abc",
            end: Some(b"xyz"),
            limit: 3,
        }
        .encode(&mut buf)
        .unwrap();
        for k in 0..n {
            assert!(Command::parse(&buf[..k]).is_err(), "prefix {k}");
        }
    }

    #[test]
    fn zero_padding_is_allowed_after_get_del_and_scan() {
        assert_eq!(
            Command::parse(&[1, 0, 1, 0, b'k', 0, 0, 0]),
            Ok(Command::Get { key: b"k" })
        );
        assert_eq!(
            Command::parse(&[3, 0, 1, 0, b'k', 0]),
            Ok(Command::Del { key: b"k" })
        );
        assert_eq!(
            Command::parse(&[4, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0]),
            Ok(Command::Scan {
                start: b"",
                end: None,
                limit: 5
            })
        );
        // A SET's value is the rest of the payload: zeros are part of it.
        assert_eq!(
            Command::parse(&[2, 0, 1, 0, b'k', 0, 0]),
            Ok(Command::Set {
                key: b"k",
                value: &[0, 0]
            })
        );
    }

    #[test]
    fn encode_refuses_what_parse_would_refuse() {
        let mut buf = [0u8; 8];
        assert_eq!(
            Command::Get { key: b"" }.encode(&mut buf),
            Err(WireError::KeyLength(0))
        );
        assert!(matches!(
            Command::Get { key: &[0; 5] }.encode(&mut buf),
            Err(WireError::NoRoom { need: 9, have: 8 })
        ));
    }

    #[test]
    fn scan_replies_roundtrip_and_stop_when_full() {
        let mut buf = [0u8; 4 + 2 * (4 + 2 + 3)];
        let mut w = ScanWriter::new(&mut buf).unwrap();
        assert!(w.push(b"k1", b"abc"));
        assert!(w.push(b"k2", b"def"));
        assert!(!w.push(b"k3", b"ghi"), "no room for a third pair");
        let n = w.finish(true);
        assert_eq!(n, buf.len());
        let r = Reply::parse(&buf[..n]).unwrap();
        assert_eq!((r.outcome, r.more, r.count), (Outcome::Ok, true, 2));
        let pairs: Vec<_> = r.pairs().map(Result::unwrap).collect();
        assert_eq!(
            pairs,
            vec![(&b"k1"[..], &b"abc"[..]), (&b"k2"[..], &b"def"[..])]
        );
        // A body shorter than its count is an error, once.
        let r = Reply::parse(&buf[..n - 1]).unwrap();
        let items: Vec<_> = r.pairs().collect();
        assert_eq!(items.len(), 2);
        assert!(items[1].is_err());
    }

    #[test]
    fn replies_reject_unknown_results_and_flags() {
        assert_eq!(Reply::parse(&[0, 0, 0]), Err(WireError::Short(3)));
        assert_eq!(
            Reply::parse(&[2, 0, 0, 0]),
            Err(WireError::UnknownResult(2))
        );
        assert_eq!(Reply::parse(&[0, 2, 0, 0]), Err(WireError::BadFlags(2)));
        let mut b = [0u8; 4];
        encode_reply(&mut b, Outcome::NotFound, false, 0).unwrap();
        let r = Reply::parse(&b).unwrap();
        assert_eq!((r.outcome, r.more, r.count), (Outcome::NotFound, false, 0));
        assert!(ScanWriter::new(&mut [0u8; 3]).is_err());
    }

    #[test]
    fn ops_have_wire_codes_and_names() {
        for op in Op::ALL {
            assert_eq!(Op::from_byte(op as u8), Some(op));
        }
        assert_eq!(Op::from_byte(0), None);
        assert_eq!(Op::from_byte(5), None);
        assert_eq!(Op::Scan.name(), "SCAN");
    }
}
