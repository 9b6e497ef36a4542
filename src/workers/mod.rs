//! workers - the worker loop: take a request from the ring, run the handler, reply in
//! place on the worker's own transmit queue, report the completion.

pub mod handler;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::Thread;

use crossbeam_utils::CachePadded;

pub use handler::{Handler, HandlerError, ReplyTooLarge, Request};

use crate::idle::Idler;
use crate::net::{Packet, TxQueue};
use crate::policy::{TypeIdx, TypeInfo, WorkerIdx};
use crate::proto::{self, Status};
use crate::ring::{Consumer, Producer};
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
    pub jobs: Consumer<Job<T::Pkt>>,
    pub done: Producer<Completion<T::Pkt>>,
    pub tx: T,
    pub handler: Box<dyn Handler>,
    pub types: Arc<[TypeInfo]>,
    pub idle: Idler,
    /// Set by the dispatcher when the worker should answer what is left in its ring
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
}

impl<T: TxQueue> std::fmt::Debug for Worker<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("idx", &self.idx)
            .finish_non_exhaustive()
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
}

impl<T: TxQueue> Worker<T> {
    /// The worker loop; returns when told to stop and its ring is empty.
    pub fn run(mut self) -> WorkerReport {
        self.tx.thread_init();
        let sleeper = Sleeper::current();
        let _ = self.sleeper.set(sleeper.clone());
        let mut report = WorkerReport::default();
        // Replies sent since the last flush: a transport may batch them, and the ring
        // running dry is when they must leave.
        let mut unflushed = false;
        loop {
            if let Some(job) = self.jobs.pop() {
                self.idle.work();
                let stopping = self.stop.load(Ordering::Relaxed);
                self.serve(job, stopping, &mut report);
                unflushed = true;
                continue;
            }
            if unflushed {
                self.tx.flush();
                unflushed = false;
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
        report.tx_errors = self.tx.errors();
        report
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
        let mut c = Completion {
            ty,
            status,
            service,
            pkt,
        };
        // The ring holds as many completions as the worker may hold jobs, so this only
        // loops if the dispatcher broke that rule.
        while let Err(back) = self.done.push(c) {
            c = back;
            std::thread::yield_now();
        }
        self.doorbell.ring();
    }
}
