//! dpdk.rs - plays a [`Schedule`] over DPDK (`--backend dpdk`): one polling thread
//! that sends each request at its scheduled time and polls the RX queues in between.
//!
//! The contract is [`crate::engine`]'s: the same open-loop schedule, request ids,
//! per-request slots indexed by request number, and the same [`Outcome`], so the
//! tables, CSV, JSON and plots cannot tell the two backends apart. What differs:
//!
//! - **One thread.** A DPDK queue is polled, not slept on, and the client owns one
//!   TX queue and every RX queue ([`DpdkClient`] is single-threaded): the loop sends
//!   every request that is due (at most [`MAX_BURST`] before it polls again, so a
//!   backlog cannot hold replies in the RX ring), then polls RX once and stamps each
//!   reply with the TSC as it is taken. The thread registers with EAL
//!   ([`dpdk::register_thread`]), so it gets an lcore id and the mempool's per-lcore
//!   cache; the calling thread only watches progress, like the UDP engine's.
//! - **Idle.** While the next send is more than `spin` away and RX is empty, the
//!   thread yields its core (`sched_yield`: on a core of its own that returns at
//!   once, on a core shared with the server it lets the server run). It never sleeps:
//!   a reply is stamped when it is polled, so sleeping would add to every latency.
//! - **Send failures.** A request the port would not take (empty mempool, or TX queue
//!   still full after [`TX_RETRIES`](persephone::net::dpdk::TX_RETRIES) attempts) is
//!   counted as a send error and stays unsent: late and lost.
//! - **Receive side.** Replies whose header does not parse are `malformed`, as over
//!   UDP; so are frames the client's Ethernet/IPv4/UDP parser drops (bad checksums,
//!   lengths; a kernel socket would have dropped them unseen) and frames in chained
//!   mbufs, which it does not read (a reply too large for one mbuf). UDP datagrams to our
//!   address from anyone but the server count as `unexpected`.
//! - **End.** As over UDP: after the last send, polling goes on until every sent
//!   request is answered or `timeout` has passed since the last send.
//!
//! The client is opened once per run ([`crate::runner`]) and kept across points; each
//! point's epoch in the ids sets its replies apart from a previous point's stragglers.

use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;

use persephone::net::dpdk::{self, DpdkClient, MAX_BURST};
use persephone::time::{rdtsc, Clock, Cycles};

use crate::engine::{self, Codec, Live, Options, Outcome, Reply, NO_REPLY};
use crate::schedule::Schedule;

/// Plays `schedule` through `client`. `watch` is called on the calling thread about
/// every 100 ms while the run is in progress (for progress display).
pub fn run(
    schedule: &Schedule,
    opts: &Options,
    client: &mut DpdkClient,
    live: &Live,
    mut watch: impl FnMut(&Live),
) -> io::Result<Outcome> {
    let n = schedule.len();
    let codec = Codec::new(opts.wire, opts.epoch);
    codec.check_len(n)?;
    let clock = Clock::tsc();
    // Preallocate every per-request slot before time 0.
    let mut slots = Slots {
        sent_at: vec![0; n],
        reply_at: vec![0; n],
        status: vec![NO_REPLY; n],
    };
    let start = rdtsc() + clock.duration_to_cycles(opts.lead);
    let stats = std::thread::scope(|s| {
        let poller = std::thread::Builder::new()
            .name("psp-dpdk-poll".into())
            .spawn_scoped(s, || {
                dpdk::register_thread();
                poll_loop(
                    schedule, opts, client, clock, start, codec, &mut slots, live,
                )
            })?;
        while !poller.is_finished() {
            watch(live);
            // Progress display only: the join below is the synchronisation.
            std::thread::sleep(Duration::from_millis(100));
        }
        watch(live);
        poller
            .join()
            .map_err(|_| io::Error::other("the DPDK polling thread panicked"))
    })?;
    Ok(Outcome {
        clock,
        start,
        sent_at: slots.sent_at,
        reply_at: slots.reply_at,
        status: slots.status,
        malformed: stats.malformed,
        unexpected: stats.unexpected,
        send_errors: stats.send_errors,
        recv_errors: 0,
        socket_drops: None,
        first_error: (stats.send_errors > 0).then(|| {
            "DPDK send: the port did not take the request (mempool empty or TX queue full)"
                .to_string()
        }),
        spin_raised: None,
        tried: stats.tried,
        scheduled: n,
    })
}

/// The per-request arrays of an [`Outcome`], filled by the polling thread.
#[derive(Debug)]
struct Slots {
    sent_at: Vec<Cycles>,
    reply_at: Vec<Cycles>,
    status: Vec<u8>,
}

#[derive(Debug, Default)]
struct PollStats {
    malformed: u64,
    unexpected: u64,
    send_errors: u64,
    /// Requests gone through (all, unless `opts.stop` was set).
    tried: usize,
}

#[allow(clippy::too_many_arguments)]
fn poll_loop(
    schedule: &Schedule,
    opts: &Options,
    client: &mut DpdkClient,
    clock: Clock,
    start: Cycles,
    codec: Codec,
    slots: &mut Slots,
    live: &Live,
) -> PollStats {
    let mut st = PollStats::default();
    // The schedule's end, or where `opts.stop` cut it.
    let mut n = schedule.len();
    let target = |i: usize| start + clock.ns_to_cycles(schedule.at_ns[i] as f64);
    let spin_c = clock.duration_to_cycles(opts.spin);
    let timeout_c = clock.duration_to_cycles(opts.timeout);
    // Frame-level drops and foreign datagrams are counted by the client; this run
    // reports what it adds to them.
    let before = client.counters();
    let (mut sent, mut answered) = (0u64, 0u64);
    let mut settled = engine::Settled::default();
    let timeout_end = |i: usize| target(i) + timeout_c;
    let mut i = 0;
    // Set once the last request is sent: when to stop waiting for replies.
    let mut deadline: Option<Cycles> = None;
    loop {
        if i < n
            && opts
                .stop
                .as_ref()
                .is_some_and(|f| f.load(Ordering::Relaxed))
        {
            n = i;
        }
        // Send what is due, a burst at most, then look at RX again.
        let mut burst = 0;
        while i < n && burst < MAX_BURST {
            let due = target(i);
            let now = rdtsc();
            if due > now {
                break;
            }
            if let Some(max) = opts.max_concurrency {
                // Wait for replies (up to `timeout` past the scheduled time); the wait
                // shows up as lateness and latency, never as an omitted sample.
                settled.pass(i, now, timeout_end, &slots.status);
                if (i as u64).saturating_sub(settled.count) >= max && now < due + timeout_c {
                    break;
                }
            }
            let stamp = rdtsc().max(1);
            if client.send_with(|buf| engine::encode_request(schedule, codec, i, due, buf)) {
                slots.sent_at[i] = stamp;
                sent += 1;
            } else {
                st.send_errors += 1;
                settled.unsent(i);
            }
            i += 1;
            burst += 1;
        }
        if burst > 0 {
            live.sent.store(sent, Ordering::Relaxed);
        }

        let got = client.recv(|msg| {
            let now = rdtsc();
            match engine::record_reply(
                msg,
                schedule,
                codec,
                &mut slots.reply_at,
                &mut slots.status,
                now,
                i,
            ) {
                Reply::Matched(i) => {
                    answered += 1;
                    settled.answered(i);
                }
                Reply::Malformed => st.malformed += 1,
                Reply::Unexpected => st.unexpected += 1,
            }
        });
        if got > 0 {
            live.answered.store(answered, Ordering::Relaxed);
        }

        if i == n {
            let end = *deadline.get_or_insert_with(|| {
                live.sender_done.store(true, Ordering::Release);
                rdtsc() + timeout_c
            });
            if answered >= sent || rdtsc() >= end {
                break;
            }
        }
        if got == 0 && burst == 0 && (i == n || target(i) > rdtsc() + spin_c) {
            std::thread::yield_now();
        }
    }
    let after = client.counters();
    st.malformed += after.frames.total() - before.frames.total();
    st.malformed += after.chained - before.chained;
    st.unexpected += after.foreign - before.foreign;
    st.tried = n;
    st
}

/// Opens the DPDK client of a run: initialises EAL (once per process) and connects
/// (claims the port, starts it, waits for the link, resolves the server by ARP).
pub fn open(cfg: &crate::config::DpdkBackend) -> anyhow::Result<DpdkClient> {
    use anyhow::Context;
    dpdk::init_eal(&cfg.eal_args).context("dpdk.eal_args: cannot initialise DPDK's EAL")?;
    let c = &cfg.client;
    DpdkClient::connect(c).with_context(|| {
        format!(
            "dpdk: cannot reach {} from port {} (ip {}, udp_port {}, rx_queues {}): is the \
             server running (over memif: started first, and dpdk.rx_queues at least its \
             workers + 1: the server answers ARP on the queue after its workers')?",
            c.server, c.port, c.ip, c.udp_port, c.rx_queues
        )
    })
}
