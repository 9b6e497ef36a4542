//! proto.rs - the wire format: a fixed 28-byte header at the start of every UDP payload.
//!
//! ```text
//! offset size field
//!      0    2 magic      0x5350 (bytes "PS"), little-endian like every field
//!      2    1 version    1
//!      3    1 flags      bit 7: 0 = request, 1 = reply; bits 0-3: reply status
//!      4    4 type       request type id (config `requests[].id`)
//!      8    8 id         request id, chosen by the client, echoed in the reply
//!     16    8 sent_at    client send timestamp, opaque to the server, echoed
//!     24    4 len        payload length in bytes; must equal the bytes that follow
//!     28  len payload    handler-specific (the `spin` handler reads a u64 service time)
//! ```
//!
//! A reply reuses the request's buffer: the same header with the reply bit and a
//! [`Status`] in `flags`, and the handler's reply payload. Parsing validates everything
//! once (smoltcp style): code past [`Header::parse`] only sees well-formed headers.

use thiserror::Error;

/// Magic number at offset 0 ("PS" on the wire).
pub const MAGIC: u16 = 0x5350;
/// The only wire version this code speaks.
pub const VERSION: u8 = 1;
/// Bytes of header before the payload.
pub const HEADER_LEN: usize = 28;

const FLAG_REPLY: u8 = 0x80;
const STATUS_MASK: u8 = 0x0f;

/// Why a request was (not) served, carried in a reply's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Status {
    /// Served; the payload is the handler's reply.
    Ok = 0,
    /// Rejected at once: the request type's queue was full.
    QueueFull = 1,
    /// Rejected: the server does not know this request type.
    UnknownType = 2,
    /// The handler failed (returned an error or panicked).
    HandlerError = 3,
    /// The handler overran the per-request budget.
    Timeout = 4,
    /// Rejected: the server is shutting down.
    Shutdown = 5,
    /// The handler found the request payload malformed.
    BadRequest = 6,
}

impl Status {
    /// Every status, in wire order.
    pub const ALL: [Status; 7] = [
        Status::Ok,
        Status::QueueFull,
        Status::UnknownType,
        Status::HandlerError,
        Status::Timeout,
        Status::Shutdown,
        Status::BadRequest,
    ];

    /// Decodes the low bits of a reply's flags.
    pub fn from_bits(bits: u8) -> Option<Status> {
        Status::ALL.get(bits as usize).copied()
    }

    /// A short lower-case name for tables and CSV columns.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::QueueFull => "queue_full",
            Status::UnknownType => "unknown_type",
            Status::HandlerError => "handler_error",
            Status::Timeout => "timeout",
            Status::Shutdown => "shutdown",
            Status::BadRequest => "bad_request",
        }
    }
}

/// Whether a message is a request or a reply (with its status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Reply(Status),
}

/// Why a buffer is not a valid message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("message of {len} bytes is shorter than the {HEADER_LEN}-byte header")]
    Short { len: usize },
    #[error("bad magic 0x{0:04x}")]
    BadMagic(u16),
    #[error("unsupported version {0}")]
    BadVersion(u8),
    #[error("invalid flags 0x{0:02x}")]
    BadFlags(u8),
    #[error("length field says {declared} payload bytes but {actual} follow the header")]
    BadLength { declared: u32, actual: usize },
}

/// A buffer too small to hold what was asked of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("buffer of {have} bytes cannot hold {need}")]
pub struct ShortBuffer {
    pub need: usize,
    pub have: usize,
}

/// A decoded, validated header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    /// Request type id.
    pub ty: u32,
    /// Request id.
    pub id: u64,
    /// Client send timestamp (opaque to the server).
    pub sent_at: u64,
    /// Payload length.
    pub len: u32,
}

impl Header {
    /// A request header.
    pub fn request(ty: u32, id: u64, sent_at: u64, len: u32) -> Header {
        Header {
            kind: Kind::Request,
            ty,
            id,
            sent_at,
            len,
        }
    }

    /// Parses and validates the header at the start of `buf`, which must hold exactly
    /// one message (header plus `len` payload bytes).
    pub fn parse(buf: &[u8]) -> Result<Header, ParseError> {
        if buf.len() < HEADER_LEN {
            return Err(ParseError::Short { len: buf.len() });
        }
        let magic = u16::from_le_bytes([buf[0], buf[1]]);
        if magic != MAGIC {
            return Err(ParseError::BadMagic(magic));
        }
        if buf[2] != VERSION {
            return Err(ParseError::BadVersion(buf[2]));
        }
        let flags = buf[3];
        let kind = if flags & FLAG_REPLY == 0 {
            if flags != 0 {
                return Err(ParseError::BadFlags(flags));
            }
            Kind::Request
        } else {
            if flags & !(FLAG_REPLY | STATUS_MASK) != 0 {
                return Err(ParseError::BadFlags(flags));
            }
            Kind::Reply(Status::from_bits(flags & STATUS_MASK).ok_or(ParseError::BadFlags(flags))?)
        };
        let len = u32::from_le_bytes(buf[24..28].try_into().unwrap());
        let actual = buf.len() - HEADER_LEN;
        if len as usize != actual {
            return Err(ParseError::BadLength {
                declared: len,
                actual,
            });
        }
        Ok(Header {
            kind,
            ty: u32::from_le_bytes(buf[4..8].try_into().unwrap()),
            id: u64::from_le_bytes(buf[8..16].try_into().unwrap()),
            sent_at: u64::from_le_bytes(buf[16..24].try_into().unwrap()),
            len,
        })
    }

    /// Writes the header into the first [`HEADER_LEN`] bytes of `buf`.
    pub fn write(&self, buf: &mut [u8]) -> Result<(), ShortBuffer> {
        if buf.len() < HEADER_LEN {
            return Err(ShortBuffer {
                need: HEADER_LEN,
                have: buf.len(),
            });
        }
        buf[0..2].copy_from_slice(&MAGIC.to_le_bytes());
        buf[2] = VERSION;
        buf[3] = match self.kind {
            Kind::Request => 0,
            Kind::Reply(s) => FLAG_REPLY | s as u8,
        };
        buf[4..8].copy_from_slice(&self.ty.to_le_bytes());
        buf[8..16].copy_from_slice(&self.id.to_le_bytes());
        buf[16..24].copy_from_slice(&self.sent_at.to_le_bytes());
        buf[24..28].copy_from_slice(&self.len.to_le_bytes());
        Ok(())
    }
}

/// Encodes a whole request (header + payload) into `buf`; returns its length.
pub fn encode_request(
    buf: &mut [u8],
    ty: u32,
    id: u64,
    sent_at: u64,
    payload: &[u8],
) -> Result<usize, ShortBuffer> {
    let total = HEADER_LEN + payload.len();
    if buf.len() < total {
        return Err(ShortBuffer {
            need: total,
            have: buf.len(),
        });
    }
    Header::request(ty, id, sent_at, payload.len() as u32).write(buf)?;
    buf[HEADER_LEN..total].copy_from_slice(payload);
    Ok(total)
}

/// Turns the request held in `msg` into a reply in place: sets the reply flag and
/// `status`, and the payload length to `payload_len` (whose bytes the caller has
/// already written after the header). Returns the reply's total length.
///
/// `msg` must start with a header that [`Header::parse`] accepted.
pub fn make_reply(msg: &mut [u8], status: Status, payload_len: usize) -> usize {
    debug_assert!(msg.len() >= HEADER_LEN + payload_len);
    msg[3] = FLAG_REPLY | status as u8;
    msg[24..28].copy_from_slice(&(payload_len as u32).to_le_bytes());
    HEADER_LEN + payload_len
}

/// The payload of the `spin` handler: the service time to burn, in nanoseconds.
pub fn spin_payload(service_ns: u64) -> [u8; 8] {
    service_ns.to_le_bytes()
}

/// Reads a `spin` payload, if `payload` carries one.
pub fn parse_spin_payload(payload: &[u8]) -> Option<u64> {
    payload
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0; HEADER_LEN + payload.len()];
        let n = encode_request(&mut buf, 7, 0xdead_beef_0000_0001, 42, payload).unwrap();
        assert_eq!(n, buf.len());
        buf
    }

    #[test]
    fn round_trip() {
        let buf = request(b"hello");
        let h = Header::parse(&buf).unwrap();
        assert_eq!(h, Header::request(7, 0xdead_beef_0000_0001, 42, 5));
        assert_eq!(&buf[HEADER_LEN..], b"hello");
        assert_eq!(&buf[..2], b"PS");
    }

    #[test]
    fn reply_in_place_keeps_id_type_and_timestamp() {
        let mut buf = request(b"hello");
        buf[HEADER_LEN..HEADER_LEN + 2].copy_from_slice(b"ok");
        let n = make_reply(&mut buf, Status::HandlerError, 2);
        let h = Header::parse(&buf[..n]).unwrap();
        assert_eq!(h.kind, Kind::Reply(Status::HandlerError));
        assert_eq!(
            (h.ty, h.id, h.sent_at, h.len),
            (7, 0xdead_beef_0000_0001, 42, 2)
        );
    }

    #[test]
    fn every_status_round_trips() {
        for s in Status::ALL {
            let mut buf = request(&[]);
            make_reply(&mut buf, s, 0);
            assert_eq!(Header::parse(&buf).unwrap().kind, Kind::Reply(s));
            assert_eq!(Status::from_bits(s as u8), Some(s));
        }
        assert_eq!(Status::from_bits(7), None);
    }

    #[test]
    fn short_buffers_are_rejected() {
        let buf = request(&[]);
        for len in 0..HEADER_LEN {
            assert_eq!(Header::parse(&buf[..len]), Err(ParseError::Short { len }));
        }
        let mut small = [0u8; 10];
        assert!(Header::request(1, 1, 1, 0).write(&mut small).is_err());
        assert_eq!(
            encode_request(&mut [0u8; 30], 1, 1, 1, b"abc"),
            Err(ShortBuffer { need: 31, have: 30 })
        );
    }

    #[test]
    fn bad_magic_and_version_are_rejected() {
        let mut buf = request(&[]);
        buf[0] = b'X';
        assert_eq!(Header::parse(&buf), Err(ParseError::BadMagic(0x5358)));
        let mut buf = request(&[]);
        buf[2] = 2;
        assert_eq!(Header::parse(&buf), Err(ParseError::BadVersion(2)));
    }

    #[test]
    fn bad_flags_are_rejected() {
        // A request with stray bits, and replies with unknown status or stray bits.
        for flags in [0x01u8, 0x40, 0x87, 0x8f, 0xc0] {
            let mut buf = request(&[]);
            buf[3] = flags;
            assert_eq!(
                Header::parse(&buf),
                Err(ParseError::BadFlags(flags)),
                "{flags:#x}"
            );
        }
    }

    #[test]
    fn lying_length_fields_are_rejected() {
        let mut buf = request(b"abcd");
        buf[24..28].copy_from_slice(&5u32.to_le_bytes());
        assert_eq!(
            Header::parse(&buf),
            Err(ParseError::BadLength {
                declared: 5,
                actual: 4
            })
        );
        buf[24..28].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(
            Header::parse(&buf),
            Err(ParseError::BadLength {
                declared: 3,
                actual: 4
            })
        );
        buf[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Header::parse(&buf),
            Err(ParseError::BadLength { .. })
        ));
    }

    #[test]
    fn spin_payload_round_trips() {
        assert_eq!(parse_spin_payload(&spin_payload(123_456)), Some(123_456));
        assert_eq!(parse_spin_payload(&[1, 2, 3]), None);
    }
}
