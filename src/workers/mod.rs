//! workers - the worker loop: take a request from the dispatcher's channel, run the
//! handler, reply in place on the worker's own transmit queue, report the completion in
//! the request's own slot of the channel.

pub mod handler;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::Thread;

use crossbeam_utils::CachePadded;

pub use handler::{Handler, HandlerError, ReplyTooLarge, Request};

use crate::duplex;
use crate::idle::Idler;
use crate::net::{Packet, TxQueue};
use crate::policy::{TypeIdx, TypeInfo, WorkerIdx};
use crate::proto::{self, Status};
use crate::time::{rdtsc, Cycles};

/// A request handed to a worker.
#[derive(Debug)]
pub struct Job<P> {
    pub pkt: P,
    pub ty: TypeIdx,
}

/// What a worker reports back for each job.
#[derive(Debug)]
pub struct Completion<P> {
    pub ty: TypeIdx,
    pub status: Status,
    /// Cycles the handler ran.
    pub service: Cycles,
    /// The buffer, if the transport wants it back (kernel UDP).
    pub pkt: Option<P>,
}

/// The dispatcher's end of its channel to a worker.
pub type JobSender<P> = duplex::DispatchEnd<Job<P>, Completion<P>>;
/// A worker's end of its channel from the dispatcher.
pub type JobReceiver<P> = duplex::WorkerEnd<Job<P>, Completion<P>>;

/// The channel between the dispatcher and one worker, holding `capacity` jobs (the
/// policy's [`worker_capacity`](crate::policy::Policy::worker_capacity)).
pub fn channel<P>(capacity: usize) -> (JobSender<P>, JobReceiver<P>) {
    duplex::channel(capacity)
}

/// A thread's "I am asleep, wake me" flag, shared with whoever feeds it work.
///
/// The sleeper raises the flag, re-checks for work, then parks; the feeder publishes
/// work, then checks the flag. With a full fence on both sides one of them sees the
/// other, so no wake-up is lost (and every park is bounded anyway).
#[derive(Debug)]
pub struct Sleeper {
    parked: CachePadded<AtomicBool>,
    thread: Thread,
}

impl Sleeper {
    /// For the calling thread.
    pub fn current() -> Arc<Sleeper> {
        Arc::new(Sleeper {
            parked: CachePadded::new(AtomicBool::new(false)),
            thread: std::thread::current(),
        })
    }

    /// Parks the calling thread (the one this was made for) for at most `timeout`,
    /// unless `has_work` says there is work after the flag is raised.
    pub fn park(&self, timeout: std::time::Duration, has_work: impl FnOnce() -> bool) {
        self.parked.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if !has_work() {
            std::thread::park_timeout(timeout);
        }
        self.parked.store(false, Ordering::Relaxed);
    }

    /// Wakes the thread if it is parked (call after publishing work).
    #[inline]
    pub fn wake(&self) {
        fence(Ordering::SeqCst);
        if self.parked.load(Ordering::Relaxed) {
            self.parked.store(false, Ordering::Relaxed);
            self.thread.unpark();
        }
    }
}

/// Everything one worker thread needs.
pub struct Worker<T: TxQueue> {
    pub idx: WorkerIdx,
    /// Jobs in, completions back (in the job's own slot).
    pub jobs: JobReceiver<T::Pkt>,
    pub tx: T,
    pub handler: Box<dyn Handler>,
    pub types: Arc<[TypeInfo]>,
    pub idle: Idler,
    /// Set by the dispatcher when the worker should answer the jobs left in its channel
    /// with `shutdown` and exit.
    pub stop: Arc<AtomicBool>,
    /// Set by the worker itself once running, for the dispatcher to wake it.
    pub sleeper: Arc<std::sync::OnceLock<Arc<Sleeper>>>,
    /// The dispatcher's doorbell, rung after each completion when it sleeps.
    pub doorbell: Arc<crate::dispatcher::Doorbell>,
    /// Service budget in cycles (`workers.budget_us`): a handler that runs longer has
    /// its reply replaced by `timeout`.
    pub budget: Option<Cycles>,
    /// `net.max_amplification`: a reply is at most this many times its request's
    /// size (0: no bound).
    pub max_amplification: f64,
    /// Where the worker publishes its counters while it runs, for the periodic stats
    /// (shared with its [`WorkerLink`](crate::dispatcher::WorkerLink)).
    pub counters: Arc<WorkerCounters>,
}

impl<T: TxQueue> std::fmt::Debug for Worker<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("idx", &self.idx)
            .finish_non_exhaustive()
    }
}

/// A worker's counters as it last published them (when its channel ran dry, and
/// at exit), for the dispatcher's periodic stats; the final stats take the
/// [`WorkerReport`] the worker returns. On a line of their own: the dispatcher reads
/// it once per stats interval. Each counter is exact as of some moment, not all four
/// of the same one (a snapshot may catch a publish half done), and they trail the
/// completions the dispatcher counts by up to one run of the worker's channel.
#[derive(Debug, Default)]
pub struct WorkerCounters(CachePadded<[AtomicU64; 4]>);

impl WorkerCounters {
    fn publish(&self, r: &WorkerReport) {
        for (slot, v) in self
            .0
            .iter()
            .zip([r.panics, r.overruns, r.tx_errors, r.withheld])
        {
            slot.store(v, Ordering::Relaxed);
        }
    }

    /// The counters last published (`served` is not).
    pub fn read(&self) -> WorkerReport {
        let [panics, overruns, tx_errors, withheld] =
            [0, 1, 2, 3].map(|i| self.0[i].load(Ordering::Relaxed));
        WorkerReport {
            served: 0,
            panics,
            overruns,
            tx_errors,
            withheld,
        }
    }
}

/// Counters a worker returns when it exits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerReport {
    pub served: u64,
    pub panics: u64,
    /// Requests whose handler overran the budget (answered `timeout`).
    pub overruns: u64,
    pub tx_errors: u64,
    /// Replies the wire format had no status for (see [`TxQueue::withheld`]).
    pub withheld: u64,
}

impl<T: TxQueue> Worker<T> {
    /// The worker loop; returns when told to stop and no job is waiting.
    pub fn run(mut self) -> WorkerReport {
        self.tx.thread_init();
        let sleeper = Sleeper::current();
        let _ = self.sleeper.set(sleeper.clone());
        let mut report = WorkerReport::default();
        // Replies sent since the last flush: a transport may batch them, and the
        // channel running dry is when they must leave.
        let mut unflushed = false;
        // What `counters` holds: written only when something changed.
        let mut published = WorkerReport::default();
        loop {
            if let Some(job) = self.jobs.take() {
                self.idle.work();
                let stopping = self.stop.load(Ordering::Relaxed);
                self.serve(job, stopping, &mut report);
                unflushed = true;
                continue;
            }
            if unflushed {
                self.tx.flush();
                unflushed = false;
                self.publish(&mut report, &mut published);
            }
            if self.stop.load(Ordering::Acquire) && self.jobs.is_empty() {
                break;
            }
            let (jobs, stop) = (&self.jobs, &self.stop);
            self.idle.idle(|d| {
                sleeper.park(d, || !jobs.is_empty() || stop.load(Ordering::Relaxed));
            });
        }
        self.tx.flush();
        self.publish(&mut report, &mut published);
        report
    }

    /// Brings `report`'s transmit counters up to date and publishes what changed
    /// since `published`.
    fn publish(&self, report: &mut WorkerReport, published: &mut WorkerReport) {
        report.tx_errors = self.tx.errors();
        report.withheld = self.tx.withheld();
        let now = WorkerReport {
            served: 0,
            ..*report
        };
        if now != *published {
            self.counters.publish(&now);
            *published = now;
        }
    }

    #[inline]
    fn serve(&mut self, job: Job<T::Pkt>, stopping: bool, report: &mut WorkerReport) {
        let Job { mut pkt, ty } = job;
        let start = rdtsc();
        let msg_len = pkt.msg().len();
        let (status, reply_len) = if stopping {
            (Status::Shutdown, 0)
        } else {
            let info = &self.types[ty];
            let handler = &mut self.handler;
            let amp = self.max_amplification;
            let mut req = Request::new(pkt.buf_mut(), msg_len, ty, info, amp);
            match catch_unwind(AssertUnwindSafe(|| handler.handle(&mut req))) {
                Ok(Ok(())) => (Status::Ok, req.reply_len()),
                Ok(Err(e)) => (e.status(), 0),
                Err(_) => {
                    report.panics += 1;
                    (Status::HandlerError, 0)
                }
            }
        };
        let service = rdtsc().wrapping_sub(start);
        let (status, reply_len) = match self.budget {
            Some(b) if service > b && status == Status::Ok => {
                report.overruns += 1;
                (Status::Timeout, 0)
            }
            _ => (status, reply_len),
        };
        let len = proto::make_reply(pkt.buf_mut(), status, reply_len);
        pkt.set_len(len);
        let pkt = self.tx.send(pkt);
        report.served += 1;
        // Written over the job's slot: the dispatcher collects it from there.
        self.jobs.complete(Completion {
            ty,
            status,
            service,
            pkt,
        });
        self.doorbell.ring();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Told to stop, a worker answers every job still waiting in its channel with
    /// `shutdown` (without running the handler), completes each in its slot, and exits
    /// once none is left.
    #[test]
    fn a_stopping_worker_answers_waiting_jobs_with_shutdown() {
        use crate::net::mem::{Cycle, Mem};
        use crate::net::{RxQueue, Split, Transport};
        use std::sync::atomic::AtomicU64;

        let mut mem = Mem::new(Cycle::new(&[7]), 8);
        let counters = mem.counters(1);
        let Split {
            mut rx, workers, ..
        } = mem.split(1).unwrap();
        let tx = workers.into_iter().next().unwrap();
        let (mut jobs, jobs_in) = channel(4);
        let mut pkts = Vec::new();
        rx.rx_burst(&mut pkts, 3).unwrap();
        assert_eq!(pkts.len(), 3);
        for pkt in pkts {
            jobs.push(Job { pkt, ty: 0 }).unwrap();
        }
        let ran = Arc::new(AtomicU64::new(0));
        let ran2 = ran.clone();
        let worker = Worker {
            idx: 0,
            jobs: jobs_in,
            tx,
            handler: Box::new(move |_req: &mut Request<'_>| -> Result<(), HandlerError> {
                ran2.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }),
            types: vec![TypeInfo {
                name: "T".into(),
                mean_ns: None,
                ratio: None,
                deadline_ns: None,
            }]
            .into(),
            idle: Idler::new(
                crate::config::IdleStrategy::Yield,
                std::time::Duration::from_millis(1),
            ),
            stop: Arc::new(AtomicBool::new(true)),
            sleeper: Arc::new(std::sync::OnceLock::new()),
            doorbell: Arc::new(crate::dispatcher::Doorbell::disabled()),
            budget: None,
            max_amplification: 0.0,
            counters: Default::default(),
        };
        let report = std::thread::spawn(move || worker.run()).join().unwrap();
        assert_eq!(report.served, 3);
        assert_eq!(
            ran.load(Ordering::Relaxed),
            0,
            "the handler ran while stopping"
        );
        let statuses: Vec<Status> = std::iter::from_fn(|| jobs.pop())
            .map(|c| c.status)
            .collect();
        assert_eq!(statuses, [Status::Shutdown; 3]);
        assert_eq!(jobs.outstanding(), 0);
        assert_eq!(counters.tx(1).sent.load(Ordering::Relaxed), 3);
    }

    /// A job and its completion share one slot of the worker's channel; for every
    /// transport that slot is one cache line, so a round trip moves one line.
    #[test]
    fn a_channel_slot_is_one_line_for_every_transport() {
        fn slot<P>() -> usize {
            duplex::slot_size::<Job<P>, Completion<P>>()
        }
        assert_eq!(slot::<crate::net::udp::UdpPkt>(), 64);
        assert_eq!(slot::<crate::net::mem::MemPkt>(), 64);
        #[cfg(feature = "dpdk")]
        assert_eq!(slot::<crate::net::dpdk::DpdkPkt>(), 64);
    }
}
