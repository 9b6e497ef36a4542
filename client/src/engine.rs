//! engine.rs - plays a [`Schedule`] over UDP: one sender thread that sends each request
//! at its scheduled time and never waits for replies, one receiver thread that matches
//! replies to requests by id.
//!
//! Both threads work on arrays preallocated before the run and indexed by request
//! number (the low 40 bits of the wire id): no hashing, no allocation per request.
//!
//! - **Sender.** Sleeps while the next send is more than `spin` away (with the thread's
//!   timer slack lowered to 1 µs), then spins on the TSC for the last stretch. When it
//!   falls behind, every request already due goes out in one `sendmmsg`. It stamps the
//!   TSC just before each send call; lateness is judged later against the schedule.
//! - **Receiver.** Blocks in `recvmmsg` (a short read timeout lets it notice the end),
//!   stamps each batch with the TSC and records (time, status) in the request's slot.
//!   Replies that do not parse are counted `malformed`; replies whose id is from another
//!   run, out of range, of the wrong type or already answered are counted `unexpected`.
//!   With a kv schedule it also checks each `ok` reply's payload ([`crate::kv`]) and
//!   marks wrong answers ([`WRONG`]). Nothing from the network can make it panic.
//! - **End.** After the last send the receiver keeps listening until every sent request
//!   is answered or `timeout` has passed since the last send.
//!
//! The [`Outcome`] holds raw TSC stamps; [`crate::measure`] turns them into reports.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use persephone::config::Wire;
use persephone::net::psp_mb;
use persephone::proto::{self, Header, Kind, Status};
use persephone::time::{rdtsc, Clock, Cycles};

use crate::kv;
use crate::schedule::Schedule;
use crate::sys::{self, RecvBatch, SendBatch};

/// Bits of the wire id that carry the request number; the bits above carry the run's
/// epoch, so stray replies to an earlier run are recognised.
pub const INDEX_BITS: u32 = 40;
/// [`INDEX_BITS`] in `PSP_MB`'s 32-bit ids: 4 bits are left for the epoch.
const PSP_MB_INDEX_BITS: u32 = 28;

/// How requests are written and replies read: the wire format, and the run's epoch in
/// the ids' high bits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Codec {
    wire: Wire,
    epoch: u64,
}

impl Codec {
    /// The ids of run `epoch` (its low 24 bits, or 4 with `PSP_MB`) in `wire`.
    pub(crate) fn new(wire: Wire, epoch: u32) -> Codec {
        let epoch = match wire {
            Wire::Native => epoch & 0xff_ffff,
            Wire::PspMb => epoch & 0xf,
        };
        Codec {
            wire,
            epoch: epoch.into(),
        }
    }

    fn index_bits(&self) -> u32 {
        match self.wire {
            Wire::Native => INDEX_BITS,
            Wire::PspMb => PSP_MB_INDEX_BITS,
        }
    }

    /// Whether the ids can number `n` requests.
    pub(crate) fn check_len(&self, n: usize) -> io::Result<()> {
        let bits = self.index_bits();
        if n as u64 >= 1 << bits {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a point of {n} requests is too long for {bits}-bit request numbers{}: \
                     shorten --duration or lower the rate",
                    if self.wire == Wire::PspMb {
                        " (PSP_MB ids have 32 bits)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        Ok(())
    }

    #[inline]
    fn id(&self, i: usize) -> u64 {
        (self.epoch << self.index_bits()) | i as u64
    }

    /// The request number in `id`, if `id` is of this run.
    #[inline]
    fn index(&self, id: u64) -> Option<u64> {
        let bits = self.index_bits();
        (id >> bits == self.epoch).then_some(id & ((1 << bits) - 1))
    }
}

/// How to play a schedule.
#[derive(Debug, Clone)]
pub struct Options {
    pub server: SocketAddr,
    /// A request without a reply this long after its scheduled send is lost.
    pub timeout: Duration,
    /// At most this many requests outstanding (sent, not answered); `None`: unlimited.
    /// When the cap is reached the sender waits (up to `timeout`), and the wait shows up
    /// as late sends and as latency, never as omitted samples.
    pub max_concurrency: Option<u64>,
    /// The sender sleeps while the next send is further away than this, then spins.
    pub spin: Duration,
    /// Raise `spin` while running to how late this machine's sleeps wake (see
    /// [`Spin`]), `spin` being the floor.
    pub spin_adapt: bool,
    /// Set (by a signal, see [`crate::interrupt`]) to stop sending: the run then ends
    /// as if its schedule ended there ([`Outcome::tried`]).
    pub stop: Option<Arc<AtomicBool>>,
    /// Delay between starting the threads and time 0 of the schedule.
    pub lead: Duration,
    /// Socket buffer sizes (SO_RCVBUF/SO_SNDBUF), bytes.
    pub socket_buffer: usize,
    /// Tag of this run in the ids' high bits (24 bits are used; 4 with `PSP_MB`).
    pub epoch: u32,
    /// The wire format the server speaks.
    pub wire: Wire,
    /// Run the sender and receiver threads in the real-time FIFO class, so that a
    /// machine shared with the server and other work runs them the moment a send is
    /// due or a reply arrives (needs root or CAP_SYS_NICE).
    pub realtime: bool,
}

impl Options {
    pub fn new(server: SocketAddr) -> Options {
        Options {
            server,
            timeout: Duration::from_secs(1),
            max_concurrency: None,
            spin: Duration::from_micros(30),
            spin_adapt: false,
            stop: None,
            lead: Duration::from_millis(5),
            socket_buffer: 8 << 20,
            epoch: 1,
            wire: Wire::Native,
            realtime: false,
        }
    }
}

/// Status byte of a slot with no reply.
pub const NO_REPLY: u8 = 0;
/// Bit set in a slot's status byte when an `ok` reply failed its payload check.
pub const WRONG: u8 = 0x80;

/// What happened to every request, as raw timestamps.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub clock: Clock,
    /// TSC value of time 0 of the schedule.
    pub start: Cycles,
    /// TSC just before each request's send call; 0 if it was never sent.
    pub sent_at: Vec<Cycles>,
    /// TSC when each request's reply was received; 0 if none was.
    pub reply_at: Vec<Cycles>,
    /// [`NO_REPLY`], or 1 + the reply's [`Status`] wire value, with [`WRONG`] set if
    /// the payload of an `ok` reply failed its check.
    pub status: Vec<u8>,
    /// Replies that failed to parse, or were not replies.
    pub malformed: u64,
    /// Replies that matched no outstanding request.
    pub unexpected: u64,
    /// Sends the kernel refused (those requests count as lost and late).
    pub send_errors: u64,
    /// Receive calls that failed other than by timing out (e.g. ICMP port unreachable).
    pub recv_errors: u64,
    /// Replies the kernel dropped at the client's own socket, its receive buffer full
    /// (the receiver fell behind): the daemon answered them, the client counts them
    /// lost. `None` where the kernel does not say (non-Linux, or DPDK).
    pub socket_drops: Option<u64>,
    /// The first send or receive error, for the user.
    pub first_error: Option<String>,
    /// The most the sender's spin reached, if it adapted it (`Options::spin_adapt`)
    /// and raised it.
    pub spin_raised: Option<Duration>,
    /// Requests the sender went through: the whole schedule, unless the run was
    /// stopped (`Options::stop`) before its end.
    pub tried: usize,
    /// Requests the schedule held (more than `tried` if stopped; the runner then cuts
    /// the schedule and the arrays above to `tried`).
    pub scheduled: usize,
}

impl Outcome {
    /// The scheduled send time of request `i` (whose offset is `at_ns`), in TSC cycles.
    #[inline]
    pub fn target(&self, at_ns: u64) -> Cycles {
        self.start + self.clock.ns_to_cycles(at_ns as f64)
    }

    /// The status of request `i`'s reply, if one came.
    pub fn reply_status(&self, i: usize) -> Option<Status> {
        (self.status[i] & !WRONG)
            .checked_sub(1)
            .and_then(Status::from_bits)
    }

    /// Whether request `i` got an `ok` reply whose payload failed its check.
    pub fn wrong(&self, i: usize) -> bool {
        self.status[i] & WRONG != 0
    }
}

/// Counters the caller may watch while a run is in progress.
#[derive(Debug, Default)]
pub struct Live {
    /// Requests handed to the kernel so far.
    pub sent: AtomicU64,
    /// Replies matched so far.
    pub answered: AtomicU64,
    /// Requests settled so far: answered, or unanswered past their timeout (see
    /// [`Settled`]); `--max-concurrency` counts the requests tried and not settled.
    pub settled: AtomicU64,
    /// Requests the sender has been through, sent or not (a send can fail).
    pub tried: AtomicU64,
    /// Requests handed to the network or about to be: set before each send call,
    /// so that a reply to a request beyond it is known not to be one.
    pub handed: AtomicU64,
    /// Set when the sender has finished.
    pub sender_done: AtomicBool,
}

/// Which requests still count against `--max-concurrency`: those tried and not yet
/// *settled*. A request settles once, by whichever comes first: its reply, its send
/// failing, or its timeout passing unanswered. So a request lost in the network frees
/// its place when its timeout passes, instead of shrinking the cap for the rest of
/// the run.
#[derive(Debug, Default)]
pub(crate) struct Settled {
    /// Requests below this index are past their timeout, and settled.
    passed: usize,
    /// Requests settled so far.
    pub(crate) count: u64,
    /// Requests at or past `passed` whose send failed (settled then), in order.
    unsent: std::collections::VecDeque<usize>,
}

impl Settled {
    /// Request `i` could not be sent (in order of `i`): it holds no place.
    pub(crate) fn unsent(&mut self, i: usize) {
        if i >= self.passed {
            self.count += 1;
            self.unsent.push_back(i);
        }
    }

    /// Request `i`'s reply was just matched (once per request: duplicates are not).
    #[inline]
    pub(crate) fn answered(&mut self, i: usize) {
        // Below `passed` it was settled when its timeout passed.
        if i >= self.passed {
            self.count += 1;
        }
    }

    /// Settles the requests among the first `tried` whose timeout ends at or before
    /// `now` (`timeout_end(i)`), counting those with no reply in `status`.
    pub(crate) fn pass(
        &mut self,
        tried: usize,
        now: Cycles,
        timeout_end: impl Fn(usize) -> Cycles,
        status: &[u8],
    ) {
        while self.passed < tried && timeout_end(self.passed) <= now {
            if self.unsent.front() == Some(&self.passed) {
                self.unsent.pop_front();
            } else if status[self.passed] == NO_REPLY {
                self.count += 1;
            }
            self.passed += 1;
        }
    }
}

/// Plays `schedule` against `opts.server`. `watch` is called on the calling thread
/// about every 100 ms while the run is in progress (for progress display).
pub fn run(
    schedule: &Schedule,
    opts: &Options,
    live: &Live,
    mut watch: impl FnMut(&Live),
) -> io::Result<Outcome> {
    let n = schedule.len();
    let codec = Codec::new(opts.wire, opts.epoch);
    codec.check_len(n)?;
    let bind: SocketAddr = if opts.server.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal address")
    } else {
        "[::]:0".parse().expect("literal address")
    };
    let sock = UdpSocket::bind(bind)?;
    sock.connect(opts.server)?;
    sys::set_buffers(&sock, opts.socket_buffer);
    // Short enough to notice the end of the run promptly, long enough not to spin;
    // shorter under `--max-concurrency`, whose places the receiver frees as requests
    // time out.
    let poll = if opts.max_concurrency.is_some() { 1 } else { 5 };
    sock.set_read_timeout(Some(Duration::from_millis(poll)))?;
    let rx_sock = sock.try_clone()?;

    let clock = Clock::tsc();
    // Preallocate every per-request slot before time 0.
    let mut sent_at = vec![0 as Cycles; n];
    let mut reply_at = vec![0 as Cycles; n];
    let mut status = vec![NO_REPLY; n];
    // Written by the sender when it finishes: the receiver's deadline.
    let deadline = AtomicU64::new(u64::MAX);
    let timeout_c = clock.duration_to_cycles(opts.timeout);
    let start = rdtsc() + clock.duration_to_cycles(opts.lead);

    // Requests whose send failed, from the sender to the receiver (which settles
    // them, see `Settled`).
    let (unsent_tx, unsent_rx) = std::sync::mpsc::channel::<usize>();
    let rt_error = std::sync::Mutex::new(None);
    let set_priority = || {
        if opts.realtime {
            if let Err(e) = sys::set_realtime() {
                if let Ok(mut slot) = rt_error.lock() {
                    slot.get_or_insert(e);
                }
            }
        }
    };
    let (tx, rx) = std::thread::scope(|s| {
        let sender = s.spawn(|| {
            set_priority();
            send_loop(
                schedule,
                opts,
                &sock,
                clock,
                start,
                codec,
                &mut sent_at,
                live,
                &deadline,
                timeout_c,
                unsent_tx,
            )
        });
        let receiver = s.spawn(|| {
            set_priority();
            recv_loop(
                schedule,
                &rx_sock,
                codec,
                &mut reply_at,
                &mut status,
                live,
                &deadline,
                |i| start + clock.ns_to_cycles(schedule.at_ns[i] as f64) + timeout_c,
                unsent_rx,
            )
        });
        while !(sender.is_finished() && receiver.is_finished()) {
            watch(live);
            // Progress display only: the joins below are the synchronisation.
            std::thread::sleep(Duration::from_millis(100));
        }
        watch(live);
        (sender.join(), receiver.join())
    });
    if let Some(e) = rt_error.into_inner().ok().flatten() {
        return Err(io::Error::new(
            e.kind(),
            format!("--realtime: cannot move the threads to SCHED_FIFO ({e}); it needs root or CAP_SYS_NICE"),
        ));
    }
    let tx = tx.map_err(|_| io::Error::other("the sender thread panicked"))?;
    let rx = rx.map_err(|_| io::Error::other("the receiver thread panicked"))?;
    // The socket is this run's alone (bound to a fresh port): all its drops are ours.
    let socket_drops = persephone::net::udp::socket_drops(&sock);
    Ok(Outcome {
        clock,
        start,
        sent_at,
        reply_at,
        status,
        malformed: rx.malformed,
        unexpected: rx.unexpected,
        send_errors: tx.errors,
        recv_errors: rx.errors,
        socket_drops,
        first_error: tx.first_error.or(rx.first_error),
        // Worth a line when it rose past the floor by more than its margin.
        spin_raised: (tx.spin > opts.spin + Duration::from_micros(10)).then_some(tx.spin),
        tried: tx.tried,
        scheduled: n,
    })
}

#[derive(Debug, Default)]
struct SendStats {
    errors: u64,
    first_error: Option<String>,
    /// The most its spin reached.
    spin: Duration,
    /// Requests gone through (all of them unless stopped).
    tried: usize,
}

#[allow(clippy::too_many_arguments)]
fn send_loop(
    schedule: &Schedule,
    opts: &Options,
    sock: &UdpSocket,
    clock: Clock,
    start: Cycles,
    codec: Codec,
    sent_at: &mut [Cycles],
    live: &Live,
    deadline: &AtomicU64,
    timeout_c: Cycles,
    unsent: std::sync::mpsc::Sender<usize>,
) -> SendStats {
    sys::set_timer_slack(1_000);
    let mut st = SendStats::default();
    let mut batch = SendBatch::default();
    let n = schedule.len();
    let mean_gap = Duration::from_nanos(schedule.end_ns() / (n as u64).max(1));
    let mut spin = Spin::new(clock, opts.spin, opts.spin_adapt, mean_gap);
    let target = |i: usize| start + clock.ns_to_cycles(schedule.at_ns[i] as f64);
    let mut sent = 0u64;
    let mut i = 0;
    let stopped = || {
        opts.stop
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
    };
    while i < n {
        // Stopped while waiting: request `i` is not due, and is not sent.
        if !spin.wait_until(target(i), &stopped) {
            break;
        }
        // How many requests this batch may take.
        let mut room = usize::MAX;
        if let Some(max) = opts.max_concurrency {
            // Requests 0..i were all tried; the receiver settles them (answered, or
            // unanswered past their timeout).
            let give_up = target(i) + timeout_c;
            let outstanding = || (i as u64).saturating_sub(live.settled.load(Ordering::Relaxed));
            while outstanding() >= max && rdtsc() < give_up && !stopped() {
                std::thread::yield_now();
            }
            if stopped() {
                break;
            }
            // Past `give_up` the request goes out regardless, alone.
            room = max.saturating_sub(outstanding()).max(1) as usize;
        }
        // Everything due by now goes in one batch (within the cap).
        let now = rdtsc();
        let first = i;
        while i < n && !batch.is_full() && i - first < room && (i == first || target(i) <= now) {
            let sent_at_field = target(i);
            // 28 + 16 bytes always fit the 64-byte buffer.
            batch.push(|buf| encode_request(schedule, codec, i, sent_at_field, buf).unwrap_or(0));
            i += 1;
        }
        // Before the call: a reply to any of these may come back before it returns.
        live.handed.store(i as u64, Ordering::Release);
        let before = rdtsc().max(1);
        let (ok, err) = batch.send(sock);
        stamp_sends(&mut sent_at[first..first + ok], before, rdtsc().max(1));
        sent += ok as u64;
        if let Some(e) = err {
            // The failed datagram stays unsent (sent_at 0: late and lost); the ones
            // after it in the batch go out again from the next iteration.
            st.errors += 1;
            st.first_error.get_or_insert_with(|| format!("send: {e}"));
            i = first + ok + 1;
            // It holds no `--max-concurrency` place: the receiver settles it.
            let _ = unsent.send(first + ok);
        }
        live.sent.store(sent, Ordering::Relaxed);
        live.tried.store(i as u64, Ordering::Release);
    }
    deadline.store(rdtsc() + timeout_c, Ordering::Release);
    live.sender_done.store(true, Ordering::Release);
    st.spin = Duration::from_nanos(clock.cycles_to_ns(spin.max) as u64);
    st.tried = i;
    st
}

/// Stamps the datagrams one send call took, in order: the first left as the call
/// began, the others by the time it returned (over loopback the call delivers each in
/// turn, a few microseconds apiece), so that a catch-up batch's later sends are judged
/// by when they may have left, not by when the first did.
fn stamp_sends(sent_at: &mut [Cycles], before: Cycles, after: Cycles) {
    if let Some((first, rest)) = sent_at.split_first_mut() {
        *first = before;
        rest.fill(after);
    }
}

/// The longest the sender sleeps before looking at `Options::stop` again.
const MAX_NAP: Duration = Duration::from_millis(100);

/// How the sender waits for a send's time: it sleeps while the send is more than
/// `cur` away, then spins on the TSC. Adapting, a sleep that wakes later than `cur`
/// allowed for raises `cur` to that lateness plus 10 µs (at most 1 ms), and each
/// sleep that did not lowers it by 1/256 of its excess over the floor. A VM's
/// wake-ups after a sleep of milliseconds can come 100–200 µs late, far past the
/// default 30 µs: without this nearly every send at a low rate is late.
#[derive(Debug, Clone)]
pub(crate) struct Spin {
    clock: Clock,
    pub(crate) cur: Cycles,
    /// The highest `cur` has been.
    pub(crate) max: Cycles,
    floor: Cycles,
    cap: Cycles,
    margin: Cycles,
    adapt: bool,
}

impl Spin {
    /// `floor` is where the spin starts and returns to; adapting, it rises to at most
    /// a quarter of `mean_gap` (the schedule's mean time between sends) or 1 ms,
    /// whichever is less: past that the sender would spin away most of a core (and
    /// a real-time sender would take it from the server beside it).
    pub(crate) fn new(clock: Clock, floor: Duration, adapt: bool, mean_gap: Duration) -> Spin {
        let cap = (mean_gap / 4).min(Duration::from_millis(1));
        let floor = clock.duration_to_cycles(floor);
        Spin {
            clock,
            cur: floor,
            max: floor,
            floor,
            cap: clock.duration_to_cycles(cap).max(floor),
            margin: clock.duration_to_cycles(Duration::from_micros(10)),
            adapt,
        }
    }

    /// A sleep meant to end at `meant` ended at `woke`.
    #[inline]
    pub(crate) fn woke(&mut self, meant: Cycles, woke: Cycles) {
        if !self.adapt {
            return;
        }
        let late = woke.saturating_sub(meant);
        if late + self.margin > self.cur {
            self.cur = (late + self.margin).min(self.cap);
            self.max = self.max.max(self.cur);
        } else {
            // Rounded up: it comes back to the floor itself.
            self.cur -= (self.cur - self.floor).div_ceil(256);
        }
    }

    /// Sleeps while `target` is more than `cur` away, then spins until it: returns
    /// `true` then, or `false` as soon as `stopped` (looked at before every sleep, of
    /// at most 100 ms, and when the time comes).
    #[inline]
    fn wait_until(&mut self, target: Cycles, stopped: &impl Fn() -> bool) -> bool {
        loop {
            let now = rdtsc();
            if now >= target {
                return !stopped();
            }
            let left = target - now;
            if left > self.cur {
                if stopped() {
                    return false;
                }
                let nap = (left - self.cur).min(self.clock.duration_to_cycles(MAX_NAP));
                std::thread::sleep(Duration::from_nanos(self.clock.cycles_to_ns(nap) as u64));
                self.woke(now + nap, rdtsc());
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

#[derive(Debug, Default)]
struct RecvStats {
    malformed: u64,
    unexpected: u64,
    errors: u64,
    first_error: Option<String>,
}

#[allow(clippy::too_many_arguments)]
fn recv_loop(
    schedule: &Schedule,
    sock: &UdpSocket,
    codec: Codec,
    reply_at: &mut [Cycles],
    status: &mut [u8],
    live: &Live,
    deadline: &AtomicU64,
    timeout_end: impl Fn(usize) -> Cycles,
    unsent: std::sync::mpsc::Receiver<usize>,
) -> RecvStats {
    let mut st = RecvStats::default();
    // A kv reply can be as long as a UDP datagram: a server whose value size is not the
    // one this run expects sends longer ones, which must arrive whole to be checked
    // (and counted wrong), not cut short and counted malformed.
    let mut batch = match &schedule.kv {
        Some(_) => RecvBatch::new(crate::kv::MAX_REPLY),
        None => RecvBatch::default(),
    };
    let mut answered = 0u64;
    let mut settled = Settled::default();
    loop {
        match batch.recv(sock) {
            Ok(k) => {
                let now = rdtsc();
                // Loaded after the receive: covers every request a reply here can be to.
                let handed = live.handed.load(Ordering::Acquire) as usize;
                for j in 0..k {
                    match record_reply(batch.get(j), schedule, codec, reply_at, status, now, handed)
                    {
                        Reply::Matched(i) => {
                            answered += 1;
                            settled.answered(i);
                        }
                        Reply::Malformed => st.malformed += 1,
                        Reply::Unexpected => st.unexpected += 1,
                    }
                }
                live.answered.store(answered, Ordering::Relaxed);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // E.g. ECONNREFUSED when nothing listens on the server port. Count it and
                // keep listening; the run's lost requests will tell the rest.
                st.errors += 1;
                st.first_error
                    .get_or_insert_with(|| format!("receive: {e}"));
                if st.errors > 1000 {
                    // Back off from a socket that errors on every call.
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        // At least every read timeout: requests whose send failed, or past their
        // timeout, free their places under `--max-concurrency`.
        while let Ok(i) = unsent.try_recv() {
            settled.unsent(i);
        }
        let tried = live.tried.load(Ordering::Acquire) as usize;
        settled.pass(tried, rdtsc(), &timeout_end, status);
        live.settled.store(settled.count, Ordering::Relaxed);
        if live.sender_done.load(Ordering::Acquire) {
            let sent = live.sent.load(Ordering::Relaxed);
            if answered >= sent || rdtsc() >= deadline.load(Ordering::Acquire) {
                break;
            }
        }
    }
    st
}

/// What became of one received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Matched to request `.0`'s slot.
    Matched(usize),
    /// Not a reply (no header, or a request).
    Malformed,
    /// A reply to no outstanding request of this run.
    Unexpected,
}

/// Requests of `schedule` whose service time `wire` cannot carry, sent saturated:
/// those past 2^32 - 1 ns with `PSP_MB` (its run_ns has 32 bits), none natively.
pub(crate) fn saturated_service_times(schedule: &Schedule, wire: Wire) -> usize {
    match wire {
        Wire::PspMb => schedule
            .service_ns
            .iter()
            .filter(|&&ns| ns > u64::from(u32::MAX))
            .count(),
        Wire::Native => 0,
    }
}

/// Writes request `i` of `schedule` into `buf` in the codec's wire format: the id
/// carries the codec's epoch and `i`, a native header's timestamp `sent_at_field`
/// (`PSP_MB` has none, and carries the service time in 32 bits of ns, saturated).
/// Returns the length, or `None` if `buf` is too small (never for 64 bytes or more).
#[inline]
pub(crate) fn encode_request(
    schedule: &Schedule,
    codec: Codec,
    i: usize,
    sent_at_field: Cycles,
    buf: &mut [u8],
) -> Option<usize> {
    let ty_idx = schedule.ty[i] as usize;
    let ty = &schedule.types[ty_idx];
    let id = codec.id(i);
    if codec.wire == Wire::PspMb {
        let m = psp_mb::Message {
            // 4 bits of epoch and 28 of index.
            id: id as u32,
            ty: ty.id,
            run_ns: u32::try_from(schedule.service_ns[i]).unwrap_or(u32::MAX),
        };
        return m.write(buf);
    }
    let mut payload = [0u8; kv::MAX_REQUEST];
    let len = match &schedule.kv {
        Some(plan) => plan.encode(i, ty_idx, &mut payload),
        None => {
            payload[..8].copy_from_slice(&proto::spin_payload(schedule.service_ns[i]));
            8
        }
    };
    proto::encode_request(buf, ty.id, id, sent_at_field, &payload[..len]).ok()
}

/// Matches the datagram `msg`, received at `now`, to its request's slot: records the
/// time and status (checking a kv answer's payload). `handed` bounds the requests
/// handed to the network so far: a reply to a later one (which no server has seen)
/// is unexpected, not a latency of 0. Anything from the network may come here;
/// nothing makes it panic.
#[inline]
pub(crate) fn record_reply(
    msg: &[u8],
    schedule: &Schedule,
    codec: Codec,
    reply_at: &mut [Cycles],
    status: &mut [u8],
    now: Cycles,
    handed: usize,
) -> Reply {
    let (id, ty, s) = match codec.wire {
        Wire::Native => match Header::parse(msg) {
            Ok(Header {
                kind: Kind::Reply(s),
                id,
                ty,
                ..
            }) => (id, ty, s),
            _ => return Reply::Malformed,
        },
        // A PSP_MB reply has no status: it is an `ok` one (its run_ns zeroed; with
        // run_ns set it is a request, e.g. from an echo server).
        Wire::PspMb => match psp_mb::Message::parse(msg) {
            Some(m) if m.run_ns == 0 => (m.id.into(), m.ty, Status::Ok),
            _ => return Reply::Malformed,
        },
    };
    let Some(idx) = codec
        .index(id)
        .filter(|&i| i < handed.min(schedule.len()) as u64)
    else {
        return Reply::Unexpected;
    };
    let idx = idx as usize;
    if schedule.types[schedule.ty[idx] as usize].id != ty || status[idx] != NO_REPLY {
        return Reply::Unexpected;
    }
    reply_at[idx] = now;
    status[idx] = 1 + s as u8;
    if let (Some(plan), Status::Ok) = (&schedule.kv, s) {
        let ty = schedule.ty[idx] as usize;
        if !plan.check(idx, ty, msg.get(proto::HEADER_LEN..).unwrap_or(&[])) {
            status[idx] |= WRONG;
        }
    }
    Reply::Matched(idx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{Arrival, Phase};
    use persephone::workload::Workload;

    /// High Bimodal's 1 µs and 100 µs requests, 1 ms apart.
    fn schedule(n: u64) -> Schedule {
        Schedule::build(
            &[Phase {
                workload: Workload::preset("high-bimodal").unwrap(),
                rate: 1000.0,
                load: None,
                duration: Duration::from_millis(n),
            }],
            Duration::ZERO,
            Arrival::Uniform,
            1,
        )
        .unwrap()
    }

    #[test]
    fn psp_mb_requests_are_what_perséphone_sends_and_its_replies_match() {
        let mut s = schedule(5);
        let last = s.len() - 1;
        assert!(last >= 2, "a few requests");
        s.service_ns[last] = 1 << 40; // past 32 bits of ns
        assert_eq!(
            saturated_service_times(&s, Wire::PspMb),
            1,
            "counted for the warning"
        );
        assert_eq!(saturated_service_times(&s, Wire::Native), 0);
        let codec = Codec::new(Wire::PspMb, 0x13); // 4 bits kept: 3
        let (mut reply_at, mut status) = (vec![0; s.len()], vec![NO_REPLY; s.len()]);
        for i in 0..s.len() {
            let mut buf = [0u8; 64];
            let len = encode_request(&s, codec, i, 99, &mut buf).unwrap();
            assert_eq!(len, 16);
            let m = psp_mb::Message::parse(&buf[..len]).unwrap();
            let ty = s.types[s.ty[i] as usize].id;
            assert_eq!((m.id, m.ty), ((3 << 28) | i as u32, ty));
            let want = if i == last {
                u32::MAX
            } else {
                s.service_ns[i] as u32
            };
            assert_eq!(m.run_ns, want, "the service time, saturated");
            // Echoed as a request (run_ns kept): not a reply.
            let rec = |msg: &[u8], r: &mut [Cycles], st: &mut [u8]| {
                record_reply(msg, &s, codec, r, st, 7, s.len())
            };
            assert_eq!(
                rec(&buf[..len], &mut reply_at, &mut status),
                Reply::Malformed
            );
            // Perséphone's reply: run_ns zeroed.
            buf[12..16].fill(0);
            // Before its request is handed to the network, it can only be forged: not
            // a latency of 0, and the real one still matches.
            let early = record_reply(&buf[..len], &s, codec, &mut reply_at, &mut status, 7, i);
            assert_eq!(early, Reply::Unexpected, "a reply before its request");
            assert_eq!(status[i], NO_REPLY);
            let r = rec(&buf[..len], &mut reply_at, &mut status);
            assert_eq!(r, Reply::Matched(i));
            assert_eq!(status[i], 1 + Status::Ok as u8);
            let again = rec(&buf[..len], &mut reply_at, &mut status);
            assert_eq!(again, Reply::Unexpected, "a second reply");
        }
        // Another run's epoch, and an index past the schedule.
        let mut other = [0u8; 16];
        let m = |id| psp_mb::Message {
            id,
            ty: 1,
            run_ns: 0,
        };
        m(2 << 28).write(&mut other).unwrap();
        let r = record_reply(&other, &s, codec, &mut reply_at, &mut status, 7, s.len());
        assert_eq!(r, Reply::Unexpected);
        m((3 << 28) | 1000).write(&mut other).unwrap();
        let r = record_reply(&other, &s, codec, &mut reply_at, &mut status, 7, s.len());
        assert_eq!(r, Reply::Unexpected);
        // A native reply is not a PSP_MB one.
        let mut native = [0u8; 64];
        let n = encode_request(&s, Codec::new(Wire::Native, 1), 0, 0, &mut native).unwrap();
        proto::make_reply(&mut native, Status::Ok, 0);
        let r = record_reply(
            &native[..n - 8],
            &s,
            codec,
            &mut reply_at,
            &mut status,
            7,
            s.len(),
        );
        assert_eq!(r, Reply::Malformed);
    }

    #[test]
    fn native_ids_carry_24_bits_of_epoch_and_psp_mb_ids_4() {
        let n = Codec::new(Wire::Native, 0x0123_4567);
        assert_eq!(n.id(5), (0x23_4567 << 40) | 5);
        assert_eq!(n.index(n.id(5)), Some(5));
        let p = Codec::new(Wire::PspMb, 0x0123_4567);
        assert_eq!(p.id(5), (7 << 28) | 5);
        assert_eq!(p.index(p.id(5)), Some(5));
        assert_eq!(p.index(n.id(5)), None);
        assert!(p.check_len((1 << 28) - 1).is_ok());
        let e = p.check_len(1 << 28).unwrap_err().to_string();
        assert!(
            e.contains("28-bit request numbers (PSP_MB ids have 32 bits)"),
            "{e}"
        );
    }

    /// A sleep that wakes past the send's time raises the spin to that lateness and
    /// a margin (capped at 1 ms); sleeps that wake in time let it decay toward the
    /// floor; a fixed spin (`--spin-us`) never moves.
    #[test]
    fn the_spin_follows_late_wake_ups() {
        let us = |n: u64| n * 1_000; // Clock::NANOS: cycles are nanoseconds
        let mut s = Spin::new(
            Clock::NANOS,
            Duration::from_micros(30),
            true,
            Duration::from_millis(10),
        );
        assert_eq!(s.cur, us(30));
        s.woke(us(1_000), us(1_005)); // 5 µs late: within 30
        assert_eq!(s.cur, us(30), "at the floor already");
        s.woke(us(1_000), us(1_100)); // 100 µs late
        assert_eq!(s.cur, us(110));
        s.woke(us(1_000), us(1_050)); // within 110: decays by 1/256 of the excess
        assert_eq!(s.cur, us(110) - us(80).div_ceil(256));
        for _ in 0..5_000 {
            s.woke(us(1_000), us(1_000));
        }
        assert_eq!(s.cur, us(30), "back at the floor");
        assert_eq!(s.max, us(110), "the most it reached");
        s.woke(0, us(60_000)); // a wake-up 60 ms late (a descheduled vCPU)
        assert_eq!(s.cur, us(1_000), "capped");
        // At a high rate the spin stays within a quarter of the gap between sends.
        let mut busy = Spin::new(
            Clock::NANOS,
            Duration::from_micros(30),
            true,
            Duration::from_micros(200),
        );
        busy.woke(0, us(500));
        assert_eq!(busy.cur, us(50));
        let mut dense = Spin::new(
            Clock::NANOS,
            Duration::from_micros(30),
            true,
            Duration::from_micros(100),
        );
        dense.woke(0, us(500));
        assert_eq!(dense.cur, us(30), "never below the floor");
        let mut fixed = Spin::new(
            Clock::NANOS,
            Duration::from_micros(30),
            false,
            Duration::from_millis(10),
        );
        fixed.woke(us(1_000), us(1_500));
        assert_eq!(fixed.cur, us(30));
    }

    #[test]
    fn a_batch_after_its_first_datagram_is_stamped_when_the_call_returned() {
        let mut sent_at = [0; 4];
        stamp_sends(&mut sent_at[..3], 100, 130);
        assert_eq!(sent_at, [100, 130, 130, 0]);
        stamp_sends(&mut sent_at[3..], 200, 210);
        assert_eq!(sent_at[3], 200, "a batch of one: when the call began");
        stamp_sends(&mut [], 1, 2);
    }

    /// Every request tried settles exactly once, answered or timed out, in whichever
    /// order the reply and the timeout come.
    #[test]
    fn each_request_settles_once() {
        // Request i's timeout ends at 10 * (i + 1).
        let end = |i: usize| 10 * (i as Cycles + 1);
        let mut status = [NO_REPLY; 5];
        let mut s = Settled::default();
        // 0 answered in time.
        status[0] = 1;
        s.answered(0);
        assert_eq!(s.count, 1);
        // At 25: 0 and 1 are past their timeouts; 1 had no reply and settles now.
        s.pass(5, 25, end, &status);
        assert_eq!(s.count, 2);
        // 1's reply comes late: already settled.
        status[1] = 1;
        s.answered(1);
        assert_eq!(s.count, 2);
        // 2 answered before its timeout: settled once, not again when it passes.
        status[2] = 1;
        s.answered(2);
        s.pass(5, 30, end, &status);
        assert_eq!(s.count, 3);
        // 3's send failed: settled at once, not again when its timeout passes.
        s.unsent(3);
        assert_eq!(s.count, 4);
        // Requests not yet tried do not settle, however late it is.
        s.pass(3, 1_000, end, &status);
        assert_eq!(s.count, 4);
        s.pass(5, 1_000, end, &status);
        assert_eq!(
            s.count, 5,
            "3 was settled when its send failed, 4 times out"
        );
        // A failure reported after its timeout passed was settled by the timeout.
        s.unsent(4);
        assert_eq!(s.count, 5);
    }
}
