//! handler.rs - the request handler API and the built-in handlers (`spin`, `echo`).

use std::fmt;

use crate::policy::{TypeIdx, TypeInfo};
use crate::proto::{self, HEADER_LEN};
use crate::time::{rdtsc, Clock};

/// Serves requests on one worker. Each worker owns its handler (per-worker state
/// needs no locks); the factory given to [`crate::App::handler`] makes one per worker.
///
/// A handler that panics is caught: the request is answered
/// [`proto::Status::HandlerError`] and the worker goes on with the same handler value,
/// so keep state consistent across panics or rebuild it.
///
/// The reply is written into the request's own buffer ([`Request::reply`],
/// [`Request::reply_buf`], [`Request::echo`]); its status is `ok` unless `handle`
/// returns an error ([`HandlerError::BadRequest`]: `bad_request`,
/// [`HandlerError::Failed`]: `handler_error`). A handler can be tried without a daemon
/// on a [`Request::detached`] buffer:
///
/// ```
/// use persephone::policy::TypeInfo;
/// use persephone::{Handler, HandlerError, Request};
///
/// /// Per-worker state: how many requests this worker served.
/// struct Counter {
///     served: u64,
/// }
///
/// impl Handler for Counter {
///     fn handle(&mut self, req: &mut Request<'_>) -> Result<(), HandlerError> {
///         if req.payload().is_empty() {
///             return Err(HandlerError::BadRequest);
///         }
///         self.served += 1;
///         req.reply(&self.served.to_le_bytes())
///             .map_err(|_| HandlerError::Failed)
///     }
/// }
///
/// let info = TypeInfo { name: "COUNT".into(), mean_ns: None, ratio: None, deadline_ns: None };
/// let mut h = Counter { served: 0 };
/// let mut buf = [7u8; 64]; // a 1-byte payload, and room for the reply
/// let mut req = Request::detached(&mut buf, 1, 0, 1, 42, &info);
/// h.handle(&mut req).unwrap();
/// assert_eq!((req.id(), req.reply_len()), (42, 8));
/// assert_eq!(buf[..8], 1u64.to_le_bytes());
/// let mut req = Request::detached(&mut buf, 0, 0, 1, 43, &info);
/// assert_eq!(h.handle(&mut req), Err(HandlerError::BadRequest));
/// ```
///
/// Give it to the daemon with [`crate::App::handler`] (one per worker, from a factory).
pub trait Handler: Send {
    /// Serves `req`, writing the reply payload into it (see [`Request::reply`]). Return
    /// an error to answer with an error status instead.
    fn handle(&mut self, req: &mut Request<'_>) -> Result<(), HandlerError>;
}

impl<F> Handler for F
where
    F: FnMut(&mut Request<'_>) -> Result<(), HandlerError> + Send,
{
    fn handle(&mut self, req: &mut Request<'_>) -> Result<(), HandlerError> {
        self(req)
    }
}

/// Why a handler did not serve a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandlerError {
    /// The request payload is malformed (answered [`proto::Status::BadRequest`]).
    BadRequest,
    /// Serving failed (answered [`proto::Status::HandlerError`]).
    Failed,
}

impl HandlerError {
    pub fn status(self) -> proto::Status {
        match self {
            HandlerError::BadRequest => proto::Status::BadRequest,
            HandlerError::Failed => proto::Status::HandlerError,
        }
    }
}

/// The reply does not fit in the request's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyTooLarge {
    pub len: usize,
    pub max: usize,
}

impl fmt::Display for ReplyTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "reply of {} bytes exceeds the {}-byte buffer",
            self.len, self.max
        )
    }
}

impl std::error::Error for ReplyTooLarge {}

/// A request being served, and the buffer its reply is written into (the same
/// memory: writing the reply may overwrite the request payload).
#[derive(Debug)]
pub struct Request<'a> {
    ty: TypeIdx,
    type_id: u32,
    id: u64,
    info: &'a TypeInfo,
    /// From the first payload byte to the end of the buffer.
    buf: &'a mut [u8],
    len: usize,
    reply_len: usize,
    /// Largest reply payload allowed (buffer room and the amplification bound).
    max_reply: usize,
}

impl<'a> Request<'a> {
    /// A view of the message in `msg_buf` (header + `len` payload bytes, validated by
    /// the dispatcher), of type `ty` described by `info`. A reply message may be at most
    /// `max_amplification` times the request's length (0: only the buffer bounds it).
    pub(crate) fn new(
        msg_buf: &'a mut [u8],
        msg_len: usize,
        ty: TypeIdx,
        info: &'a TypeInfo,
        max_amplification: f64,
    ) -> Self {
        let type_id = u32::from_le_bytes(msg_buf[4..8].try_into().unwrap());
        let id = u64::from_le_bytes(msg_buf[8..16].try_into().unwrap());
        let room = msg_buf.len() - HEADER_LEN;
        let max_reply = if max_amplification > 0.0 {
            let total = (msg_len as f64 * max_amplification) as usize;
            room.min(total.saturating_sub(HEADER_LEN))
        } else {
            room
        };
        Request {
            ty,
            type_id,
            id,
            info,
            buf: &mut msg_buf[HEADER_LEN..],
            len: msg_len - HEADER_LEN,
            reply_len: 0,
            max_reply,
        }
    }

    /// A request over a stand-alone buffer (tests, benchmarks, offline use): `buf`
    /// holds the payload in its first `len` bytes and room for the reply.
    pub fn detached(
        buf: &'a mut [u8],
        len: usize,
        ty: TypeIdx,
        type_id: u32,
        id: u64,
        info: &'a TypeInfo,
    ) -> Self {
        assert!(len <= buf.len());
        let max_reply = buf.len();
        Request {
            ty,
            type_id,
            id,
            info,
            buf,
            len,
            reply_len: 0,
            max_reply,
        }
    }

    /// Index of the request's type in the config's `requests`.
    pub fn type_idx(&self) -> TypeIdx {
        self.ty
    }

    /// Wire id of the request's type.
    pub fn type_id(&self) -> u32 {
        self.type_id
    }

    /// The type's configured name.
    pub fn type_name(&self) -> &str {
        &self.info.name
    }

    /// The type's configured mean service time, if any.
    pub fn mean_ns(&self) -> Option<u64> {
        self.info.mean_ns
    }

    /// The request id chosen by the client.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The request payload.
    pub fn payload(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Largest reply payload that fits.
    /// Largest reply payload allowed: the buffer's room, and at most
    /// `net.max_amplification` times the request's size.
    pub fn max_reply_len(&self) -> usize {
        self.max_reply
    }

    /// Replies with a copy of `bytes`.
    pub fn reply(&mut self, bytes: &[u8]) -> Result<(), ReplyTooLarge> {
        self.reply_buf(bytes.len())?.copy_from_slice(bytes);
        Ok(())
    }

    /// Sets the reply length to `len` and returns those bytes to fill in. They start
    /// out holding the request payload (and whatever followed it in the buffer).
    pub fn reply_buf(&mut self, len: usize) -> Result<&mut [u8], ReplyTooLarge> {
        if len > self.max_reply {
            return Err(ReplyTooLarge {
                len,
                max: self.max_reply,
            });
        }
        self.reply_len = len;
        Ok(&mut self.buf[..len])
    }

    /// Replies with the request payload itself, unchanged (no copy).
    pub fn echo(&mut self) {
        self.reply_len = self.len;
    }

    /// Length of the reply payload set so far (0 until the handler sets one).
    pub fn reply_len(&self) -> usize {
        self.reply_len
    }
}

/// Longest service time the `spin` handler burns for one request (requests come from
/// the network: a bogus value must not wedge a worker for hours).
pub const MAX_SPIN_NS: u64 = 1_000_000_000;

/// Fake work: busy-waits for the service time carried in the request payload (a
/// little-endian u64 of nanoseconds, see [`proto::spin_payload`]) or, without one, the
/// type's configured `mean_ns`. Replies with an empty payload.
#[derive(Debug, Clone)]
pub struct Spin {
    clock: Clock,
}

impl Spin {
    pub fn new(clock: Clock) -> Spin {
        Spin { clock }
    }
}

impl Handler for Spin {
    fn handle(&mut self, req: &mut Request<'_>) -> Result<(), HandlerError> {
        let start = rdtsc();
        let ns = proto::parse_spin_payload(req.payload())
            .or(req.mean_ns())
            .unwrap_or(0)
            .min(MAX_SPIN_NS);
        self.clock.spin_until(start, ns);
        Ok(())
    }
}

/// Replies with the request payload.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Handler for Echo {
    fn handle(&mut self, req: &mut Request<'_>) -> Result<(), HandlerError> {
        req.echo();
        Ok(())
    }
}

/// Names of the built-in handlers (config `workers.handler`).
pub const BUILTIN: [&str; 2] = ["spin", "echo"];

/// A built-in handler by name.
pub fn builtin(name: &str, clock: Clock) -> Option<Box<dyn Handler>> {
    match name {
        "spin" => Some(Box::new(Spin::new(clock))),
        "echo" => Some(Box::new(Echo)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn info(mean_ns: Option<u64>) -> TypeInfo {
        TypeInfo {
            name: "T".into(),
            mean_ns,
            ratio: None,
            deadline_ns: None,
        }
    }

    #[test]
    fn echo_replies_with_the_payload() {
        let info = info(None);
        let mut buf = *b"hello.....";
        let mut r = Request::detached(&mut buf, 5, 0, 1, 9, &info);
        Echo.handle(&mut r).unwrap();
        assert_eq!(r.reply_len(), 5);
        assert_eq!(r.id(), 9);
    }

    #[test]
    fn replies_are_bounded_relative_to_the_request() {
        let info = info(None);
        // A 40-byte request (28 header + 12 payload) in a 2048-byte buffer.
        let mut msg = vec![0u8; 2048];
        let r = Request::new(&mut msg, 40, 0, &info, 4.0);
        assert_eq!(r.max_reply_len(), 4 * 40 - HEADER_LEN);
        let mut r = Request::new(&mut msg, 40, 0, &info, 4.0);
        assert!(r.reply(&[0; 4 * 40 - HEADER_LEN + 1]).is_err());
        r.echo();
        assert_eq!(r.reply_len(), 12);
        // No bound: the buffer's room.
        let r = Request::new(&mut msg, 40, 0, &info, 0.0);
        assert_eq!(r.max_reply_len(), 2048 - HEADER_LEN);
        // The bound never exceeds the room.
        let r = Request::new(&mut msg, 1000, 0, &info, 8.0);
        assert_eq!(r.max_reply_len(), 2048 - HEADER_LEN);
    }

    #[test]
    fn reply_is_bounded_by_the_buffer() {
        let info = info(None);
        let mut buf = [0u8; 8];
        let mut r = Request::detached(&mut buf, 2, 0, 1, 9, &info);
        assert_eq!(r.reply(&[1; 9]), Err(ReplyTooLarge { len: 9, max: 8 }));
        r.reply(&[7; 8]).unwrap();
        assert_eq!(r.reply_len(), 8);
        assert_eq!(buf, [7; 8]);
    }

    #[test]
    fn spin_burns_the_requested_time_or_the_types_mean() {
        let clock = Clock::tsc();
        let mut spin = Spin::new(clock);
        let info_with_mean = info(Some(300_000));
        let mut buf = [0u8; 16];
        buf[..8].copy_from_slice(&proto::spin_payload(200_000));
        let t = Instant::now();
        spin.handle(&mut Request::detached(
            &mut buf,
            8,
            0,
            1,
            1,
            &info_with_mean,
        ))
        .unwrap();
        assert!(
            t.elapsed() >= Duration::from_micros(180),
            "{:?}",
            t.elapsed()
        );
        // No payload: the type's mean applies.
        let t = Instant::now();
        spin.handle(&mut Request::detached(
            &mut buf,
            0,
            0,
            1,
            1,
            &info_with_mean,
        ))
        .unwrap();
        assert!(
            t.elapsed() >= Duration::from_micros(270),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn closures_are_handlers() {
        let info = info(None);
        let mut h = |r: &mut Request<'_>| {
            if r.payload().is_empty() {
                Err(HandlerError::BadRequest)
            } else {
                r.reply(b"ok").map_err(|_| HandlerError::Failed)
            }
        };
        let mut buf = [1u8; 4];
        assert_eq!(
            h.handle(&mut Request::detached(&mut buf, 0, 0, 1, 1, &info)),
            Err(HandlerError::BadRequest)
        );
        assert!(h
            .handle(&mut Request::detached(&mut buf, 1, 0, 1, 1, &info))
            .is_ok());
        assert_eq!(HandlerError::BadRequest.status(), proto::Status::BadRequest);
    }
}
