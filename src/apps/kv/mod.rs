//! kv - an in-memory ordered key-value store served by persephone: GET, SET, DEL and
//! SCAN over a key range, with a classifier that gives each operation its own request
//! type so DARC can reserve cores for the short GETs while SCANs run elsewhere.
//!
//! The payload encoding is in [`wire`]. From YAML (`psp-app`), name the handler and
//! declare one request type per operation you want scheduled apart; the classifier
//! finds them by name:
//!
//! ```yaml
//! workers: { number: 2, handler: kv }
//! kv: { keys: 100000, value_size: 32 }   # pre-populated keys 0..keys (see `key`, `fill_value`)
//! # Room for SCAN replies; replies may be any multiple of their request (trusted
//! # networks only: by default a reply is at most 8x its request, see `wire`).
//! net: { max_msg: 16384, max_amplification: 0 }
//! requests:
//!   - { id: 1, name: GET }
//!   - { id: 2, name: SCAN }
//!   - { id: 3, name: SET }
//!   - { id: 4, name: DEL }
//! ```
//!
//! From code, the same with [`crate::App`]:
//!
//! ```no_run
//! use std::sync::Arc;
//! use persephone::apps::kv;
//! use persephone::{config::Config, App};
//!
//! let cfg = Config::load("configs/kv.yml")?;
//! let store = Arc::new(kv::Store::preloaded(1000, 32));
//! let server = App::new(cfg)
//!     .request_types(kv::request_types())
//!     .classifier(kv::OpClassifier::standard())
//!     .handler(kv::factory(store.clone()))
//!     .start()?;
//! println!("KV store on {}", server.local_addr());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # One shared store, not per-worker shards
//!
//! The dispatcher sends each request to whichever worker the policy picks — DARC picks
//! by request *type*, never by key — so a worker must be able to answer for any key.
//! Per-worker shards would need key-based routing that would fight the policy (a hot
//! key's shard would queue GETs behind its own SCANs). So all workers share one
//! [`Store`]: a `BTreeMap` (SCAN needs keys in order) behind a `std::sync::RwLock`.
//! GETs and SCANs only read, so they run in parallel on every core; SET and DEL take
//! the write lock briefly. The costs, measured in `results/kv/`: every operation
//! writes the lock's reader count (one cache line shared by all workers — fine at a
//! handful of cores, the first thing to shard by key range beyond that), and a writer
//! waits for running SCANs while new readers wait for the writer (std's lock prefers
//! writers), so write-heavy mixes with long SCANs would see GETs stall behind them.
//! No request allocates except SET (the stored copy of its key and value).

pub mod wire;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use serde::Deserialize;

use crate::config::{ConfigError, RequestType};
use crate::dispatcher::Classifier;
use crate::policy::WorkerIdx;
use crate::proto::{Header, HEADER_LEN};
use crate::workers::{Handler, HandlerError, Request};

pub use wire::{Command, Op, Outcome, Reply, WireError};

/// Largest reply payload a UDP datagram can carry after the header: SCAN replies stop
/// here even when the request buffer is larger.
pub const MAX_REPLY_LEN: usize = 65_507 - HEADER_LEN;

/// The `kv:` section of the config: what to pre-populate the store with.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvConfig {
    /// Keys `0..keys` are stored at start, each as [`key`]`(i)` with the value
    /// [`fill_value`]`(i, ..)` of `value_size` bytes.
    #[serde(default)]
    pub keys: u64,
    /// Bytes of each pre-populated value.
    #[serde(default = "default_value_size")]
    pub value_size: usize,
    /// Most bytes the store may hold ([`Store::bytes`]: keys, values and each entry's
    /// fixed size); a SET past it is refused (`handler_error`). Default: what the
    /// pre-populated keys take plus [`DEFAULT_HEADROOM`].
    #[serde(default)]
    pub max_bytes: Option<u64>,
}

fn default_value_size() -> usize {
    32
}

impl Default for KvConfig {
    fn default() -> Self {
        KvConfig {
            keys: 0,
            value_size: default_value_size(),
            max_bytes: None,
        }
    }
}

/// Most keys `kv.keys` may pre-populate (about 100 bytes of memory each, plus values).
pub const MAX_PRELOAD_KEYS: u64 = 1 << 27;

/// Room for SETs beyond the pre-populated keys when `kv.max_bytes` is not given.
pub const DEFAULT_HEADROOM: u64 = 1 << 30;

/// What a stored pair counts for in [`Store::bytes`]: its key and value, and the
/// entry's own fixed size (B-tree nodes' spare room aside).
pub fn entry_bytes(key: &[u8], value: &[u8]) -> u64 {
    let heap_key = if key.len() > INLINE_KEY { key.len() } else { 0 };
    (ENTRY_SIZE + heap_key + value.len()) as u64
}

const ENTRY_SIZE: usize = std::mem::size_of::<(Key, Box<[u8]>)>();

impl KvConfig {
    /// What the pre-populated keys take in [`Store::bytes`].
    pub fn preload_bytes(&self) -> u64 {
        // key(i) is 8 bytes, stored inline: the entry and the value.
        let entry = (ENTRY_SIZE as u64).saturating_add(self.value_size as u64);
        self.keys.saturating_mul(entry)
    }

    /// The store's bound: `max_bytes`, or the pre-populated keys plus
    /// [`DEFAULT_HEADROOM`].
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
            .unwrap_or_else(|| self.preload_bytes().saturating_add(DEFAULT_HEADROOM))
    }

    /// Checks the section against the buffer size `max_msg` (`net.max_msg`): a GET of
    /// any pre-populated key must fit in its reply.
    pub fn validate(&self, max_msg: usize) -> Result<(), ConfigError> {
        if self.keys > MAX_PRELOAD_KEYS {
            return Err(ConfigError::new(
                "kv.keys",
                format!(
                    "{} keys is more than the {MAX_PRELOAD_KEYS} allowed",
                    self.keys
                ),
            ));
        }
        let reply = (HEADER_LEN + wire::REPLY_HEADER_LEN).saturating_add(self.value_size);
        if reply > max_msg.min(MAX_REPLY_LEN + HEADER_LEN) {
            return Err(ConfigError::new(
                "kv.value_size",
                format!(
                    "a GET reply for a {}-byte value takes {reply} bytes, more than net.max_msg \
                     ({max_msg}) allows",
                    self.value_size
                ),
            ));
        }
        if let Some(m) = self.max_bytes.filter(|&m| m < self.preload_bytes()) {
            return Err(ConfigError::new(
                "kv.max_bytes",
                format!(
                    "{m} is less than the {} keys pre-populated take ({} bytes, counting {} \
                     per entry besides its value)",
                    self.keys,
                    self.preload_bytes(),
                    ENTRY_SIZE
                ),
            ));
        }
        Ok(())
    }
}

/// The `i`-th pre-populated key: `i` as 8 big-endian bytes, so that byte order is
/// numeric order and a SCAN from `key(i)` visits `key(i)`, `key(i + 1)`, ...
pub fn key(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

/// The index of a key made by [`key`], if `k` is one.
pub fn key_index(k: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(k.try_into().ok()?))
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fills `out` with the value pre-populated under [`key`]`(i)`: a splitmix64 stream
/// seeded by `i`. Clients recompute it to check GET and SCAN answers.
pub fn fill_value(i: u64, out: &mut [u8]) {
    let mut s = i;
    for chunk in out.chunks_mut(8) {
        let w = splitmix64(&mut s).to_le_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
}

/// Whether `v` is the value [`fill_value`] makes for key index `i` at `v`'s length
/// (no allocation).
pub fn value_matches(i: u64, v: &[u8]) -> bool {
    let mut s = i;
    v.chunks(8).all(|chunk| {
        let w = splitmix64(&mut s).to_le_bytes();
        chunk == &w[..chunk.len()]
    })
}

/// Keys up to this long are stored inside the B-tree's nodes.
const INLINE_KEY: usize = 22;

/// A stored key: short keys (the common case) inline, so the B-tree compares keys
/// without chasing a pointer per comparison (measured with `examples/kv_store_bench`
/// over 100 000 8-byte keys: GET 0.6 µs inline against 0.8 µs boxed, SET 0.65 against
/// 0.95); longer ones on the heap. Orders as its bytes.
#[derive(Clone)]
enum Key {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Heap(Box<[u8]>),
}

impl Key {
    fn new(k: &[u8]) -> Key {
        if k.len() <= INLINE_KEY {
            let mut bytes = [0; INLINE_KEY];
            bytes[..k.len()].copy_from_slice(k);
            Key::Inline {
                len: k.len() as u8,
                bytes,
            }
        } else {
            Key::Heap(k.into())
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..*len as usize],
            Key::Heap(b) => b,
        }
    }
}

impl std::borrow::Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

// Ord, Eq and Borrow must agree: all three are the byte string's.
impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Key) -> std::cmp::Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_slice())
    }
}

type Map = BTreeMap<Key, Box<[u8]>>;

/// The map and what it holds ([`entry_bytes`] summed), changed together.
#[derive(Debug, Default)]
struct Inner {
    map: Map,
    bytes: u64,
}

/// The store: an ordered map shared by every worker (see the module docs for why),
/// bounded in bytes: anyone on the network may SET, so what they can make it hold
/// has a limit.
#[derive(Debug)]
pub struct Store {
    inner: RwLock<Inner>,
    max_bytes: u64,
    /// SETs refused for want of room.
    refused: AtomicU64,
}

impl Default for Store {
    fn default() -> Store {
        Store {
            inner: RwLock::default(),
            max_bytes: u64::MAX,
            refused: AtomicU64::new(0),
        }
    }
}

/// A SET that would take the store past its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreFull {
    /// What the store holds, and its bound ([`Store::bytes`], [`Store::max_bytes`]).
    pub bytes: u64,
    pub max_bytes: u64,
}

impl std::fmt::Display for StoreFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the store holds {} of its {} bytes (kv.max_bytes)",
            self.bytes, self.max_bytes
        )
    }
}

impl std::error::Error for StoreFull {}

impl Store {
    /// An empty store, unbounded (see [`Store::with_max_bytes`]).
    pub fn new() -> Store {
        Store::default()
    }

    /// A store holding keys `0..keys` ([`key`]) with `value_size`-byte values
    /// ([`fill_value`]), unbounded.
    pub fn preloaded(keys: u64, value_size: usize) -> Store {
        let mut v = vec![0u8; value_size];
        let mut bytes = 0;
        let map: Map = (0..keys)
            .map(|i| {
                fill_value(i, &mut v);
                bytes += entry_bytes(&key(i), &v);
                (Key::new(&key(i)), Box::from(&v[..]))
            })
            .collect();
        Store {
            inner: RwLock::new(Inner { map, bytes }),
            ..Store::default()
        }
    }

    /// This store, refusing SETs that would take it past `max_bytes` ([`Store::bytes`]).
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Store {
        self.max_bytes = max_bytes;
        self
    }

    /// A store pre-populated and bounded as `cfg` says.
    pub fn from_config(cfg: &KvConfig) -> Store {
        Store::preloaded(cfg.keys, cfg.value_size).with_max_bytes(cfg.max_bytes())
    }

    // A panic while a lock is held cannot leave the map half-updated (BTreeMap
    // operations complete or unwind before changing it, and `bytes` is updated after
    // them), so a poisoned lock is used as is.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.read().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the store holds: [`entry_bytes`] of every pair.
    pub fn bytes(&self) -> u64 {
        self.read().bytes
    }

    /// The bound on [`Store::bytes`] (`u64::MAX`: none).
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// SETs refused so far because the store was full.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// A copy of the value under `key`.
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.read().map.get(key).map(|v| v.to_vec())
    }

    /// Stores `value` under `key`; returns whether an old value was replaced, or
    /// refuses (storing nothing) if that would take the store past its bound. A SET
    /// that does not grow the store (an overwrite by a value no longer) always goes.
    pub fn set(&self, key: &[u8], value: &[u8]) -> Result<bool, StoreFull> {
        let new = entry_bytes(key, value);
        let mut inner = self.write();
        let old = inner.map.get(key).map_or(0, |v| entry_bytes(key, v));
        let bytes = inner.bytes - old + new;
        if new > old && bytes > self.max_bytes {
            let full = StoreFull {
                bytes: inner.bytes,
                max_bytes: self.max_bytes,
            };
            drop(inner);
            let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(refused = n, "kv: SET refused: {full}");
            }
            return Err(full);
        }
        let replaced = inner.map.insert(Key::new(key), value.into()).is_some();
        inner.bytes = bytes;
        Ok(replaced)
    }

    /// Removes `key`; returns whether it was there.
    pub fn del(&self, key: &[u8]) -> bool {
        let mut inner = self.write();
        match inner.map.remove(key) {
            Some(v) => {
                inner.bytes -= entry_bytes(key, &v);
                true
            }
            None => false,
        }
    }

    /// Calls `take` on each pair with `start <= key < end` (no upper bound if `end` is
    /// `None`) in key order until it returns `false` (it refuses a pair: no room).
    /// Returns whether it stopped on a refused pair, i.e. the range holds more.
    pub fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        take: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> bool {
        scan_map(&self.read().map, start, end, take)
    }

    /// Serves one request payload (see [`wire`]) into `req`'s reply.
    pub fn serve(&self, req: &mut Request<'_>) -> Result<(), HandlerError> {
        let cmd = Command::parse(req.payload()).map_err(|_| HandlerError::BadRequest)?;
        fn fail<E>(_: E) -> HandlerError {
            HandlerError::Failed
        }
        match cmd {
            Command::Get { key } => {
                let inner = self.read();
                match inner.map.get(key) {
                    Some(v) => {
                        let n = wire::REPLY_HEADER_LEN + v.len();
                        let out = req.reply_buf(n).map_err(fail)?;
                        wire::encode_reply(out, Outcome::Ok, false, 1).map_err(fail)?;
                        out[wire::REPLY_HEADER_LEN..].copy_from_slice(v);
                    }
                    None => reply_header(req, Outcome::NotFound, 0)?,
                }
            }
            Command::Set { key, value } => {
                let replaced = self.set(key, value).map_err(fail)?;
                reply_header(req, Outcome::Ok, replaced as u16)?;
            }
            Command::Del { key } => {
                let outcome = if self.del(key) {
                    (Outcome::Ok, 1)
                } else {
                    (Outcome::NotFound, 0)
                };
                reply_header(req, outcome.0, outcome.1)?;
            }
            Command::Scan { start, end, limit } => {
                let inner = self.read();
                let limit = if limit == 0 { u16::MAX } else { limit };
                let mut range = range(&inner.map, start, end);
                // The bounds are consumed: from here on the reply may overwrite them.
                let room = req.max_reply_len().min(MAX_REPLY_LEN);
                let mut w =
                    wire::ScanWriter::new(req.reply_buf(room).map_err(fail)?).map_err(fail)?;
                let more = loop {
                    match range.next() {
                        None => break false,
                        Some((k, v)) => {
                            if w.count() == limit || !w.push(k.as_slice(), v) {
                                break true;
                            }
                        }
                    }
                };
                if more && w.count() == 0 {
                    // The first pair does not fit (as a GET whose value does not):
                    // `more` with no pair would leave no key to continue from.
                    return Err(HandlerError::Failed);
                }
                let n = w.finish(more);
                req.reply_buf(n).map_err(fail)?;
            }
        }
        Ok(())
    }
}

fn reply_header(req: &mut Request<'_>, outcome: Outcome, count: u16) -> Result<(), HandlerError> {
    let out = req
        .reply_buf(wire::REPLY_HEADER_LEN)
        .map_err(|_| HandlerError::Failed)?;
    wire::encode_reply(out, outcome, false, count).map_err(|_| HandlerError::Failed)?;
    Ok(())
}

/// The pairs of `[start, end)`; empty (not a panic, as `BTreeMap::range` would) when
/// `end <= start`.
fn range<'m>(
    map: &'m Map,
    start: &[u8],
    end: Option<&[u8]>,
) -> std::collections::btree_map::Range<'m, Key, Box<[u8]>> {
    let upper = match end {
        // [start, start) is empty; BTreeMap allows it (it panics on start > end).
        Some(e) if e <= start => Bound::Excluded(start),
        Some(e) => Bound::Excluded(e),
        None => Bound::Unbounded,
    };
    map.range::<[u8], _>((Bound::Included(start), upper))
}

fn scan_map(
    map: &Map,
    start: &[u8],
    end: Option<&[u8]>,
    mut take: impl FnMut(&[u8], &[u8]) -> bool,
) -> bool {
    for (k, v) in range(map, start, end) {
        if !take(k.as_slice(), v) {
            return true;
        }
    }
    false
}

/// Serves a shared [`Store`] on one worker (made by [`factory`], one per worker; each
/// holds a reference to the same store).
#[derive(Debug, Clone)]
pub struct StoreHandler {
    store: Arc<Store>,
}

impl StoreHandler {
    pub fn new(store: Arc<Store>) -> StoreHandler {
        StoreHandler { store }
    }
}

impl Handler for StoreHandler {
    fn handle(&mut self, req: &mut Request<'_>) -> Result<(), HandlerError> {
        self.store.serve(req)
    }
}

/// A handler factory for [`crate::App::handler`]: every worker serves `store`.
pub fn factory(store: Arc<Store>) -> impl Fn(WorkerIdx) -> StoreHandler + Send + Sync + 'static {
    move |_| StoreHandler::new(store.clone())
}

/// The standard request types: GET 1, SCAN 2, SET 3, DEL 4 (the ids
/// `psp-client --workload kv` sends and [`OpClassifier::standard`] uses).
pub fn request_types() -> Vec<RequestType> {
    [(1, Op::Get), (2, Op::Scan), (3, Op::Set), (4, Op::Del)]
        .into_iter()
        .map(|(id, op)| RequestType::new(id, op.name()))
        .collect()
}

/// Classifies KV requests by operation (the payload's first byte), so GETs and SCANs
/// queue apart and DARC can reserve cores for GETs whatever type the client wrote in
/// the header. Operations without a type of their own, and payloads that are not KV
/// requests (answered `bad_request` by the handler), keep the header's type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpClassifier {
    /// Type id per operation, indexed by `op as usize - 1`.
    types: [Option<u32>; 4],
}

impl OpClassifier {
    /// Maps no operation (every request keeps its header type).
    pub fn new() -> OpClassifier {
        OpClassifier::default()
    }

    /// Requests of operation `op` get type `type_id`.
    pub fn with(mut self, op: Op, type_id: u32) -> OpClassifier {
        self.types[op as usize - 1] = Some(type_id);
        self
    }

    /// The ids of [`request_types`].
    pub fn standard() -> OpClassifier {
        OpClassifier::from_types(&request_types())
    }

    /// Each operation gets the type named like it (`GET`, `SET`, `DEL`, `SCAN`, any
    /// case) among `types`, if there is one.
    pub fn from_types(types: &[RequestType]) -> OpClassifier {
        Op::ALL.into_iter().fold(OpClassifier::new(), |c, op| {
            match types
                .iter()
                .find(|t| t.name.eq_ignore_ascii_case(op.name()))
            {
                Some(t) => c.with(op, t.id),
                None => c,
            }
        })
    }

    /// The type id requests of `op` get, if mapped.
    pub fn type_of(&self, op: Op) -> Option<u32> {
        self.types[op as usize - 1]
    }

    /// Whether no operation is mapped.
    pub fn is_empty(&self) -> bool {
        self.types.iter().all(Option::is_none)
    }
}

impl Classifier for OpClassifier {
    #[inline]
    fn classify(&mut self, header: &Header, payload: &[u8]) -> Option<u32> {
        payload
            .first()
            .and_then(|&b| Op::from_byte(b))
            .and_then(|op| self.type_of(op))
            .or(Some(header.ty))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::TypeInfo;
    use proptest::prelude::*;

    fn info() -> TypeInfo {
        TypeInfo {
            name: "KV".into(),
            mean_ns: None,
            ratio: None,
            deadline_ns: None,
        }
    }

    /// Serves `cmd` from a buffer of `room` bytes; returns the reply payload or the error.
    fn call(store: &Store, cmd: Command<'_>, room: usize) -> Result<Vec<u8>, HandlerError> {
        let mut buf = vec![0u8; room.max(cmd.encoded_len())];
        let n = cmd.encode(&mut buf).unwrap();
        raw(store, &mut buf, n)
    }

    fn raw(store: &Store, buf: &mut [u8], n: usize) -> Result<Vec<u8>, HandlerError> {
        let info = info();
        let mut req = Request::detached(buf, n, 0, 1, 1, &info);
        store.serve(&mut req)?;
        let len = req.reply_len();
        Ok(buf[..len].to_vec())
    }

    fn get(store: &Store, k: &[u8]) -> Option<Vec<u8>> {
        let r = call(store, Command::Get { key: k }, 256).unwrap();
        let r = Reply::parse(&r).unwrap();
        match r.outcome {
            Outcome::Ok => {
                assert_eq!(r.count, 1);
                Some(r.body.to_vec())
            }
            Outcome::NotFound => {
                assert_eq!((r.count, r.body.len()), (0, 0));
                None
            }
        }
    }

    type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

    /// SCAN through the handler: (pairs, more).
    fn scan(
        store: &Store,
        start: &[u8],
        end: Option<&[u8]>,
        limit: u16,
        room: usize,
    ) -> (Pairs, bool) {
        let r = call(store, Command::Scan { start, end, limit }, room).unwrap();
        assert!(r.len() <= room.max(16), "reply {} > buffer {room}", r.len());
        let r = Reply::parse(&r).unwrap();
        assert_eq!(r.outcome, Outcome::Ok);
        let pairs: Vec<_> = r
            .pairs()
            .map(|p| p.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
            .collect();
        assert_eq!(pairs.len(), r.count as usize);
        (pairs, r.more)
    }

    #[test]
    fn set_get_del() {
        let s = Store::new();
        assert_eq!(get(&s, b"a"), None);
        let r = call(
            &s,
            Command::Set {
                key: b"a",
                value: b"1",
            },
            64,
        )
        .unwrap();
        assert_eq!(
            Reply::parse(&r).unwrap().count,
            0,
            "a new key replaces nothing"
        );
        assert_eq!(get(&s, b"a"), Some(b"1".to_vec()));
        let r = call(
            &s,
            Command::Set {
                key: b"a",
                value: b"22",
            },
            64,
        )
        .unwrap();
        assert_eq!(Reply::parse(&r).unwrap().count, 1, "an overwrite says so");
        assert_eq!(get(&s, b"a"), Some(b"22".to_vec()));
        call(
            &s,
            Command::Set {
                key: b"e",
                value: b"",
            },
            64,
        )
        .unwrap();
        assert_eq!(get(&s, b"e"), Some(vec![]), "empty values are values");
        let r = call(&s, Command::Del { key: b"a" }, 64).unwrap();
        let r = Reply::parse(&r).unwrap();
        assert_eq!((r.outcome, r.count), (Outcome::Ok, 1));
        assert_eq!(get(&s, b"a"), None);
        let r = call(&s, Command::Del { key: b"a" }, 64).unwrap();
        assert_eq!(Reply::parse(&r).unwrap().outcome, Outcome::NotFound);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn scan_returns_the_range_in_key_order() {
        let s = Store::new();
        // Inserted out of order; byte order is the order.
        for k in ["d", "b", "a", "c", "bb", "e"] {
            s.set(k.as_bytes(), k.to_uppercase().as_bytes()).unwrap();
        }
        let keys = |p: &Pairs| -> Vec<String> {
            p.iter()
                .map(|(k, _)| String::from_utf8(k.clone()).unwrap())
                .collect()
        };
        let (p, more) = scan(&s, b"b", Some(b"d"), 0, 512);
        assert_eq!(keys(&p), ["b", "bb", "c"], "start inclusive, end exclusive");
        assert!(!more);
        assert_eq!(p[1].1, b"BB");
        let (p, more) = scan(&s, b"", None, 0, 512);
        assert_eq!(keys(&p), ["a", "b", "bb", "c", "d", "e"]);
        assert!(!more);
        let (p, more) = scan(&s, b"f", None, 0, 512);
        assert!(p.is_empty() && !more, "past the last key");
        // A limit stops early and says more remain, unless nothing does.
        let (p, more) = scan(&s, b"b", None, 2, 512);
        assert_eq!(keys(&p), ["b", "bb"]);
        assert!(more);
        let (p, more) = scan(&s, b"d", None, 2, 512);
        assert_eq!(keys(&p), ["d", "e"]);
        assert!(!more, "exactly `limit` left is not more");
        // Continuing from the last key + 0x00 gets the rest.
        let (p, _) = scan(&s, b"bb\0", None, 0, 512);
        assert_eq!(keys(&p), ["c", "d", "e"]);
    }

    #[test]
    fn empty_and_inverted_ranges_are_empty_not_panics() {
        let s = Store::preloaded(10, 4);
        for (a, b) in [(5u64, 5u64), (6, 5), (9, 0)] {
            let (p, more) = scan(&s, &key(a), Some(&key(b)), 0, 512);
            assert!(p.is_empty() && !more, "[{a}, {b})");
        }
        assert!(!s.scan(b"z", Some(b"a"), |_, _| true));
    }

    #[test]
    fn scan_replies_are_bounded_by_the_buffer() {
        let s = Store::preloaded(1000, 32);
        // 4-byte header + pairs of 4 + 8 + 32 = 44 bytes: 500 bytes hold 11 pairs.
        let (p, more) = scan(&s, &key(100), None, 0, 500);
        assert_eq!(p.len(), 11);
        assert!(more);
        for (j, (k, v)) in p.iter().enumerate() {
            let i = 100 + j as u64;
            assert_eq!(k, &key(i));
            assert!(value_matches(i, v));
        }
        // The full range fits a large buffer exactly.
        let (p, more) = scan(&s, &key(990), None, 0, 4 + 10 * 44);
        assert_eq!((p.len(), more), (10, false));
        // A buffer too small for one pair fails: `more` with no pair would leave no
        // key to continue from.
        let cmd = Command::Scan {
            start: &key(0),
            end: None,
            limit: 0,
        };
        assert_eq!(call(&s, cmd, 40), Err(HandlerError::Failed));
    }

    #[test]
    fn preloaded_values_are_deterministic() {
        let s = Store::preloaded(100, 20);
        assert_eq!(s.len(), 100);
        let mut want = [0u8; 20];
        fill_value(42, &mut want);
        assert_eq!(get(&s, &key(42)), Some(want.to_vec()));
        assert!(value_matches(42, &want));
        assert!(!value_matches(43, &want));
        assert_ne!(want, [0; 20]);
        assert_eq!(get(&s, &key(100)), None);
        assert_eq!(key_index(&key(77)), Some(77));
        assert_eq!(key_index(b"short"), None);
        assert!(key(1) < key(256), "byte order is numeric order");
    }

    #[test]
    fn malformed_payloads_are_bad_requests() {
        let s = Store::preloaded(10, 8);
        for p in [
            &[][..],
            &[7, 0, 1, 0, 1],
            &[1, 0, 9, 0, 1],
            &[1, 0, 1, 0, 1, 2],
        ] {
            let mut buf = p.to_vec();
            buf.resize(64, 0);
            assert_eq!(
                raw(&s, &mut buf, p.len()),
                Err(HandlerError::BadRequest),
                "{p:?}"
            );
        }
    }

    /// Distinct SETs (what anyone on the network may send) fill the store to its
    /// bound and no further; past it a SET is refused, stores nothing and is
    /// answered `handler_error`; overwrites that do not grow it and DELs still go.
    #[test]
    fn sets_stop_at_the_bound() {
        let value = [7u8; 100];
        let per = entry_bytes(b"key-0000", &value);
        let s = Store::new().with_max_bytes(10 * per + per / 2);
        let set = |s: &Store, i: u32| {
            let k = format!("key-{i:04}");
            call(
                s,
                Command::Set {
                    key: k.as_bytes(),
                    value: &value,
                },
                64,
            )
        };
        for i in 0..10 {
            set(&s, i).unwrap();
        }
        assert_eq!((s.len(), s.bytes()), (10, 10 * per));
        for i in 10..20 {
            assert_eq!(set(&s, i), Err(HandlerError::Failed), "SET {i}");
        }
        assert_eq!((s.len(), s.bytes(), s.refused()), (10, 10 * per, 10));
        assert_eq!(get(&s, b"key-0010"), None, "a refused SET stored nothing");
        // Full: an overwrite no larger goes, a larger one does not.
        assert_eq!(s.set(b"key-0003", &[1; 100]), Ok(true));
        assert_eq!(get(&s, b"key-0003"), Some(vec![1; 100]));
        let e = s.set(b"key-0003", &[1; 200]).unwrap_err();
        assert_eq!((e.bytes, e.max_bytes), (10 * per, s.max_bytes()));
        assert!(e.to_string().contains("kv.max_bytes"), "{e}");
        // A DEL makes room; a long (heap) key counts its bytes.
        assert!(s.del(b"key-0000"));
        assert_eq!(s.bytes(), 9 * per);
        let long = [b'k'; 100];
        assert!(entry_bytes(&long, &value) > per);
        set(&s, 10).unwrap();
        assert_eq!(s.bytes(), 10 * per);
        // Preloaded stores count what they hold.
        let p = Store::preloaded(100, 32);
        let cfg = KvConfig {
            keys: 100,
            value_size: 32,
            max_bytes: None,
        };
        assert_eq!(p.bytes(), cfg.preload_bytes());
        assert_eq!(
            Store::from_config(&cfg).max_bytes(),
            cfg.preload_bytes() + DEFAULT_HEADROOM
        );
    }

    #[test]
    fn a_value_too_large_for_the_buffer_fails_cleanly() {
        let s = Store::new();
        s.set(b"big", &[1; 100]).unwrap();
        assert_eq!(
            call(&s, Command::Get { key: b"big" }, 50),
            Err(HandlerError::Failed)
        );
        // Nor does a SCAN whose first pair does not fit answer `more` with no pair
        // (no key to continue from): it fails the same way. One that fits goes.
        s.set(b"c", b"small").unwrap();
        let scan_from = |start: &'static [u8]| Command::Scan {
            start,
            end: None,
            limit: 0,
        };
        assert_eq!(call(&s, scan_from(b"big"), 50), Err(HandlerError::Failed));
        assert_eq!(
            scan(&s, b"c", None, 0, 50),
            (vec![(b"c".to_vec(), b"small".to_vec())], false)
        );
        let (p, more) = scan(&s, b"", None, 0, 200);
        assert_eq!((p.len(), more), (2, false), "with room, both");
    }

    #[test]
    fn the_classifier_maps_ops_to_types_by_name() {
        let types = vec![RequestType::new(7, "get"), RequestType::new(9, "SCAN")];
        let mut c = OpClassifier::from_types(&types);
        assert_eq!(c.type_of(Op::Get), Some(7));
        assert_eq!(c.type_of(Op::Set), None);
        let h = |ty| Header {
            kind: crate::proto::Kind::Request,
            ty,
            id: 1,
            sent_at: 0,
            len: 0,
        };
        let mut p = [0u8; 16];
        let n = Command::Scan {
            start: b"",
            end: None,
            limit: 0,
        }
        .encode(&mut p)
        .unwrap();
        assert_eq!(
            c.classify(&h(1), &p[..n]),
            Some(9),
            "the header's type is overridden"
        );
        let n = Command::Set {
            key: b"k",
            value: b"",
        }
        .encode(&mut p)
        .unwrap();
        assert_eq!(c.classify(&h(3), &p[..n]), Some(3), "unmapped: header type");
        assert_eq!(c.classify(&h(5), &[]), Some(5));
        assert_eq!(c.classify(&h(5), &[200]), Some(5));
        assert!(OpClassifier::new().is_empty());
        let std = OpClassifier::standard();
        assert_eq!(
            Op::ALL.map(|op| std.type_of(op)),
            [Some(1), Some(3), Some(4), Some(2)]
        );
    }

    #[test]
    fn config_errors_name_the_key() {
        let ok = KvConfig {
            keys: 10,
            value_size: 2048 - 32,
            max_bytes: None,
        };
        ok.validate(2048).unwrap();
        let e = KvConfig {
            value_size: 2048 - 31,
            ..ok.clone()
        }
        .validate(2048)
        .unwrap_err();
        assert_eq!(e.key, "kv.value_size");
        let e = KvConfig {
            keys: MAX_PRELOAD_KEYS + 1,
            ..ok
        }
        .validate(2048)
        .unwrap_err();
        assert_eq!(e.key, "kv.keys");
        let small = KvConfig {
            keys: 10,
            value_size: 32,
            max_bytes: Some(100),
        };
        let e = small.validate(2048).unwrap_err();
        assert_eq!(e.key, "kv.max_bytes");
        // A value too large for any reply is that error, whatever max_bytes says (the
        // bound's arithmetic allocates nothing: this aborted psp-app).
        for value_size in [100_000_000_000_000, usize::MAX] {
            let e = KvConfig {
                keys: 1,
                value_size,
                max_bytes: Some(1),
            }
            .validate(2048)
            .unwrap_err();
            assert_eq!(e.key, "kv.value_size", "{value_size}");
        }
        assert!(e.to_string().contains("10 keys pre-populated"), "{e}");
        KvConfig {
            max_bytes: Some(small.preload_bytes()),
            ..small
        }
        .validate(2048)
        .unwrap();
    }

    proptest! {
        /// Whatever the bytes, the handler answers or refuses; it never panics and never
        /// writes a reply longer than its buffer.
        #[test]
        fn arbitrary_payloads_never_panic(p in proptest::collection::vec(any::<u8>(), 0..64), room in 0usize..96) {
            let s = Store::preloaded(50, 8);
            let mut buf = p.clone();
            buf.resize(p.len().max(room), 0);
            let cap = buf.len();
            if let Ok(r) = raw(&s, &mut buf, p.len()) {
                prop_assert!(r.len() <= cap);
            }
        }

        /// SCAN agrees with a model: the sorted keys of the range, cut at the limit;
        /// GET finds every key.
        #[test]
        fn scan_matches_a_model(
            // Lengths on both sides of the inline/heap boundary of stored keys.
            keys in proptest::collection::btree_set(proptest::collection::vec(0u8..3, 1..30), 0..40),
            start in proptest::collection::vec(0u8..3, 0..26),
            end in proptest::option::of(proptest::collection::vec(0u8..3, 1..26)),
            limit in 0u16..8,
        ) {
            let s = Store::new();
            for k in &keys {
                s.set(k, k).unwrap();
            }
            let want: Vec<&Vec<u8>> = keys
                .iter()
                .filter(|k| k.as_slice() >= start.as_slice() && end.as_ref().is_none_or(|e| k.as_slice() < e.as_slice()))
                .collect();
            let (got, more) = scan(&s, &start, end.as_deref(), limit, 4096);
            let n = if limit == 0 { want.len() } else { want.len().min(limit as usize) };
            prop_assert_eq!(got.len(), n);
            prop_assert_eq!(more, n < want.len());
            for ((k, v), w) in got.iter().zip(&want) {
                prop_assert_eq!(k, *w);
                prop_assert_eq!(v, *w);
            }
            for k in &keys {
                prop_assert_eq!(s.get(k), Some(k.clone()));
            }
        }
    }
}
