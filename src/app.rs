//! app.rs - assembling a daemon from a config: transport, policy, dispatcher, workers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use thiserror::Error;

use crate::apps::kv;
use crate::config::{Backend, Config, ConfigError, IdleStrategy, RequestType, Wire};
use crate::dispatcher::{self, Classifier, Dispatcher, Doorbell, Stats, WorkerLink};
use crate::idle::Idler;
use crate::net::{psp_mb::PspMb, udp::Udp, Transport};
use crate::policy::{self, TypeInfo, WorkerIdx};
use crate::time::Clock;
use crate::workers::{self, handler, Handler, Worker, WorkerCounters, WorkerReport};

/// Makes one handler per worker (called once per worker at start-up).
pub type HandlerFactory = Arc<dyn Fn(WorkerIdx) -> Box<dyn Handler> + Send + Sync>;

/// The handlers `workers.handler` can name without code: the built-in `spin` and
/// `echo`, and the [`kv`] store (pre-populated from the config's `kv:` section, its
/// operations classified to the request types named `GET`, `SET`, `DEL`, `SCAN`).
pub const NAMED_HANDLERS: [&str; 3] = ["spin", "echo", "kv"];

/// The most request buffers `net.buffers: 0` gives (256 MiB at the default
/// `net.max_msg` of 2 KiB); a config whose queues hold more gets a warning at start.
const AUTO_BUFFERS_MAX: usize = 1 << 17;

/// What to do about a bind error, where there is something to say.
fn bind_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            " (another psp-app, or another program, has that port: stop it, pick another \
             port, or port 0 for any free one, printed at start)"
        }
        std::io::ErrorKind::AddrNotAvailable => {
            " (no interface of this machine has that address: 127.0.0.1 or 0.0.0.0?)"
        }
        _ => "",
    }
}

/// Why a daemon did not start.
#[derive(Debug, Error)]
pub enum StartError {
    #[error("invalid config: {0}")]
    Config(#[from] ConfigError),
    #[error(
        "workers.handler: unknown handler {name:?} ({}known: {known}; or supply one with \
         App::handler)",
        near.as_ref().map(|n| format!("did you mean {n:?}? ")).unwrap_or_default()
    )]
    UnknownHandler {
        name: String,
        known: String,
        /// The known name nearest to `name`, when it is a likely typo (two edits or
        /// fewer, and fewer than the known name's length).
        near: Option<String>,
    },
    #[error(
        "net.backend is dpdk but this build has no DPDK support: rebuild with `--features dpdk`"
    )]
    DpdkNotBuilt,
    // The io::Error is in the message and deliberately not a `source`: a chain
    // printed with `{:#}` (as psp-app does) would say it twice.
    #[error("net.bind: cannot bind {addr}: {error}{}", bind_hint(error))]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("{what}: {error}")]
    Io {
        what: &'static str,
        error: std::io::Error,
    },
    #[error("cannot pin {thread} to core {core}")]
    Pin { thread: String, core: usize },
    #[error("cannot start thread {name}: {error}")]
    Spawn { name: String, error: std::io::Error },
}

/// A daemon under construction: a config plus, optionally, the program's own handler,
/// classifier and request types.
///
/// ```no_run
/// use persephone::{App, config::Config, workers::{Request, HandlerError}};
///
/// let cfg = Config::load("configs/quickstart.yml").unwrap();
/// let server = App::new(cfg)
///     .handler(|_worker| |req: &mut Request<'_>| -> Result<(), HandlerError> {
///         req.echo();
///         Ok(())
///     })
///     .start()
///     .unwrap();
/// println!("serving on {}", server.local_addr());
/// let stats = server.shutdown();
/// println!("{stats}");
/// ```
///
/// The handler is, in order: the one given to [`App::handler`]; else the one
/// registered with [`App::named_handler`] under `workers.handler`; else the handler of
/// that name among [`NAMED_HANDLERS`].
pub struct App {
    cfg: Config,
    handler: Option<HandlerFactory>,
    named: Vec<(String, HandlerFactory)>,
    classifier: Option<Box<dyn Classifier>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("cfg", &self.cfg)
            .field("custom_handler", &self.handler.is_some())
            .field(
                "named_handlers",
                &self.named.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("custom_classifier", &self.classifier.is_some())
            .finish()
    }
}

impl App {
    /// A daemon serving `cfg` (validated by [`App::start`], after the program's
    /// additions).
    pub fn new(cfg: Config) -> App {
        App {
            cfg,
            handler: None,
            named: Vec::new(),
            classifier: None,
        }
    }

    /// Serves requests with handlers made by `factory` (one per worker, given the
    /// worker's index) instead of the built-in `workers.handler`.
    pub fn handler<F, H>(mut self, factory: F) -> App
    where
        F: Fn(WorkerIdx) -> H + Send + Sync + 'static,
        H: Handler + 'static,
    {
        self.handler = Some(Arc::new(move |w| Box::new(factory(w)) as Box<dyn Handler>));
        self
    }

    /// Registers a handler factory under `name`, for `workers.handler: name` in the
    /// config to select: one binary can then serve several services, chosen by YAML.
    /// A registered name shadows a built-in one.
    ///
    /// ```no_run
    /// use persephone::{App, config::Config, workers::{Request, HandlerError}};
    ///
    /// fn upper(req: &mut Request<'_>) -> Result<(), HandlerError> {
    ///     let n = req.payload().len();
    ///     req.reply_buf(n).map_err(|_| HandlerError::Failed)?.make_ascii_uppercase();
    ///     Ok(())
    /// }
    ///
    /// let cfg = Config::load("my-service.yml")?;    // workers: { handler: upper, ... }
    /// let server = App::new(cfg)
    ///     .named_handler("upper", |_| upper)
    ///     .named_handler("echo2", |_| persephone::workers::handler::Echo)
    ///     .start()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn named_handler<F, H>(mut self, name: impl Into<String>, factory: F) -> App
    where
        F: Fn(WorkerIdx) -> H + Send + Sync + 'static,
        H: Handler + 'static,
    {
        let f: HandlerFactory = Arc::new(move |w| Box::new(factory(w)) as Box<dyn Handler>);
        self.named.push((name.into(), f));
        self
    }

    /// Classifies requests with `c` instead of the header's type field: the type can
    /// come from the payload (the [`kv::OpClassifier`] reads the operation byte).
    ///
    /// ```no_run
    /// use persephone::{App, config::Config, proto::Header};
    ///
    /// let cfg = Config::load("configs/quickstart.yml")?;
    /// // Payloads starting with b'L' are LONG (type 2), the rest SHORT (type 1).
    /// let server = App::new(cfg)
    ///     .classifier(|_h: &Header, payload: &[u8]| {
    ///         Some(if payload.first() == Some(&b'L') { 2 } else { 1 })
    ///     })
    ///     .start()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn classifier(mut self, c: impl Classifier + 'static) -> App {
        self.classifier = Some(Box::new(c));
        self
    }

    /// Declares a request type in code, replacing the config's type with the same id
    /// if there is one (so a program can fix its types and let YAML tune the rest).
    ///
    /// ```no_run
    /// use persephone::{App, config::{Config, RequestType}};
    ///
    /// // A config without `requests:` is completed in code and validated at start.
    /// let cfg = Config::load_unvalidated("configs/quickstart.yml")?;
    /// let server = App::new(cfg)
    ///     .request_type(RequestType::new(1, "GET"))
    ///     .request_type(RequestType { mean_ns: Some(500_000), ..RequestType::new(2, "SCAN") })
    ///     .start()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn request_type(mut self, t: RequestType) -> App {
        match self.cfg.requests.iter_mut().find(|r| r.id == t.id) {
            Some(r) => *r = t,
            None => self.cfg.requests.push(t),
        }
        self
    }

    /// [`App::request_type`] for each of `types`.
    pub fn request_types(self, types: impl IntoIterator<Item = RequestType>) -> App {
        types.into_iter().fold(self, App::request_type)
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Validates, binds, spawns the dispatcher and the workers, and returns at once.
    pub fn start(mut self) -> Result<Server, StartError> {
        // Before the DPDK keys are checked: without DPDK in the build, they are moot.
        if self.cfg.net.backend == Backend::Dpdk && !cfg!(feature = "dpdk") {
            return Err(StartError::DpdkNotBuilt);
        }
        self.cfg.validate()?;
        for why in self.cfg.unused_settings() {
            tracing::warn!("{why}");
        }
        let clock = Clock::tsc();
        let factory = self.resolve_handler(clock)?;
        match self.cfg.net.backend {
            Backend::Udp => {
                let n = &self.cfg.net;
                let udp =
                    Udp::bind(n.bind, n.max_msg, self.buffers(), n.rcvbuf).map_err(|error| {
                        StartError::Bind {
                            addr: n.bind,
                            error,
                        }
                    })?;
                let addr = udp.local_addr().map_err(|error| StartError::Io {
                    what: "local address",
                    error,
                })?;
                start_on(self.launch(factory, clock), udp, addr)
            }
            Backend::Dpdk => start_dpdk(self.launch(factory, clock)),
        }
    }

    fn launch(self, factory: HandlerFactory, clock: Clock) -> Launch {
        Launch {
            cfg: self.cfg,
            factory,
            classifier: self.classifier,
            clock,
        }
    }

    /// The handler factory (see the order on [`App`]); a named app may also install
    /// its classifier when the program gave none.
    fn resolve_handler(&mut self, clock: Clock) -> Result<HandlerFactory, StartError> {
        if let Some(f) = &self.handler {
            return Ok(f.clone());
        }
        let name = self.cfg.workers.handler.clone();
        if let Some((_, f)) = self.named.iter().rev().find(|(n, _)| *n == name) {
            return Ok(f.clone());
        }
        match name.as_str() {
            "kv" => {
                let pre = self.cfg.kv.clone().unwrap_or_default();
                let store = Arc::new(kv::Store::from_config(&pre));
                tracing::info!(
                    keys = pre.keys,
                    value_size = pre.value_size,
                    "kv store pre-populated"
                );
                if self.classifier.is_none() {
                    let c = kv::OpClassifier::from_types(&self.cfg.requests);
                    if c.is_empty() {
                        tracing::warn!(
                            "workers.handler is kv but no request type is named GET, SET, DEL \
                             or SCAN: requests keep the type in their header"
                        );
                    }
                    self.classifier = Some(Box::new(c));
                }
                let f = kv::factory(store);
                Ok(Arc::new(move |w| Box::new(f(w)) as Box<dyn Handler>))
            }
            _ if handler::builtin(&name, clock).is_some() => Ok(Arc::new(move |_| {
                handler::builtin(&name, clock).expect("checked above")
            })),
            _ => {
                let mut known: Vec<&str> = self.named.iter().map(|(n, _)| n.as_str()).collect();
                known.extend(NAMED_HANDLERS);
                let near = known
                    .iter()
                    .map(|k| (strsim::damerau_levenshtein(&name, k), *k))
                    // Two edits, fewer for a short name ("db" is not a typo of "kv").
                    .filter(|&(d, k)| d <= 2.min(k.len().saturating_sub(1)))
                    .min()
                    .map(|(_, k)| k.to_string());
                Err(StartError::UnknownHandler {
                    known: known.join(", "),
                    name,
                    near,
                })
            }
        }
    }

    /// Request buffers for the pool: enough for full queues plus everything in flight,
    /// unless `net.buffers` says otherwise.
    fn buffers(&self) -> usize {
        let (buffers, short) = buffers_for(&self.cfg);
        if let Some(why) = short {
            tracing::warn!("{why}");
        }
        buffers
    }
}

/// Request buffers for `c`'s pool, and why that is too few, if it is: a pool smaller
/// than the queues can hold runs out before a queue is full, and then datagrams wait
/// in the kernel and are dropped there instead of being answered `queue_full`.
fn buffers_for(c: &Config) -> (usize, Option<String>) {
    let queued = c.requests.len() * c.queues.capacity;
    let in_flight = c.workers.number * (c.policy.depth + 1);
    let enough = queued + in_flight + 2 * c.dispatcher.rx_batch;
    let (buffers, what) = if c.net.buffers > 0 {
        (c.net.buffers, "")
    } else {
        (
            enough.min(AUTO_BUFFERS_MAX),
            " (0: automatic, at most 131072)",
        )
    };
    let short = (buffers < enough).then(|| {
        format!(
            "net.buffers{what} gives {buffers} request buffers, fewer than the queues \
             and workers can hold ({enough}): when the buffers run out the dispatcher stops \
             receiving, and the kernel queues and then drops datagrams (counted as \
             no_buffer stalls and kernel_overflow) instead of their being answered \
             queue_full; lower queues.capacity or set net.buffers"
        )
    });
    (buffers, short)
}

/// `net.backend: dpdk`: initialises EAL from `net.eal_args`, claims `net.port` and
/// serves `net.ip`:`net.udp_port` on it (see `net::dpdk`).
#[cfg(feature = "dpdk")]
fn start_dpdk(l: Launch) -> Result<Server, StartError> {
    use crate::net::dpdk;
    let cfg = &l.cfg;
    let dpdk_err = |what: &'static str| {
        move |e: dpdk::Error| StartError::Io {
            what,
            error: e.into(),
        }
    };
    let n = &cfg.net;
    let ip = n.ip.ok_or_else(|| {
        ConfigError::new("net.ip", "is required with net.backend: dpdk".to_string())
    })?;
    dpdk::init_eal(&n.eal_args).map_err(dpdk_err("DPDK EAL"))?;
    let workers = cfg.workers.number;
    let packets = if n.buffers > 0 {
        n.buffers
    } else {
        cfg.requests.len() * cfg.queues.capacity
            + workers * (cfg.policy.depth + 1)
            + 2 * cfg.dispatcher.rx_batch
    };
    let mbufs = dpdk::DpdkConfig::mbufs_for(packets, workers + 1);
    if mbufs == dpdk::DpdkConfig::MAX_MBUFS {
        tracing::warn!(
            packets,
            mbufs,
            "the DPDK mempool is at its cap: it may hold fewer requests than asked ({})",
            if n.buffers > 0 {
                "lower net.buffers"
            } else {
                "lower queues.capacity, or set net.buffers"
            }
        );
    }
    let transport = dpdk::Dpdk::new(&dpdk::DpdkConfig {
        port: n.port,
        ip,
        udp_port: n.udp_port,
        max_msg: n.max_msg,
        mbufs,
        start_timeout: Duration::from_secs(10),
    })
    .map_err(|e| match e {
        dpdk::Error::Mempool { .. } => StartError::Io {
            what: "DPDK mempool (its size: net.buffers, or queues.capacity x request types \
                   when 0; EAL memory: -m in net.eal_args)",
            error: e.into(),
        },
        e => dpdk_err("DPDK port")(e),
    })?;
    let addr = SocketAddr::from((ip, n.udp_port));
    start_on(l, transport, addr)
}

#[cfg(not(feature = "dpdk"))]
fn start_dpdk(_: Launch) -> Result<Server, StartError> {
    Err(StartError::DpdkNotBuilt)
}

fn pin(cfg: &Config, thread: &str, slot: usize) -> Result<(), StartError> {
    if !cfg.pin {
        return Ok(());
    }
    let core = cfg.cpus[slot];
    if core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        Ok(())
    } else {
        Err(StartError::Pin {
            thread: thread.into(),
            core,
        })
    }
}

/// What starting a server needs besides its transport.
struct Launch {
    cfg: Config,
    factory: HandlerFactory,
    classifier: Option<Box<dyn Classifier>>,
    clock: Clock,
}

/// [`start_with`] over `transport`, speaking `net.wire` on it.
fn start_on<X: Transport>(
    l: Launch,
    transport: X,
    local_addr: SocketAddr,
) -> Result<Server, StartError>
where
    X::Rx: 'static,
    X::Tx: 'static,
{
    match l.cfg.net.wire {
        Wire::Native => start_with(l, transport, local_addr),
        Wire::PspMb => {
            tracing::info!(
                "net.wire: psp_mb: Perséphone's 16-byte requests; only ok replies are sent \
                 (the rest are counted as withheld), with UDP checksum 0"
            );
            start_with(l, PspMb(transport), local_addr)
        }
    }
}

fn start_with<X: Transport>(
    l: Launch,
    transport: X,
    local_addr: SocketAddr,
) -> Result<Server, StartError>
where
    X::Rx: 'static,
    X::Tx: 'static,
{
    let Launch {
        cfg,
        factory,
        classifier,
        clock,
    } = l;
    let n = cfg.workers.number;
    let infos: Vec<TypeInfo> = cfg
        .requests
        .iter()
        .map(|r| TypeInfo {
            name: r.name.clone(),
            mean_ns: r.mean_ns,
            ratio: r.ratio,
            deadline_ns: r.deadline_ns,
        })
        .collect();
    let policy = policy::build(&cfg.policy, &infos, n, clock);
    let capacity = policy.worker_capacity();
    warn_if_oversubscribed(&cfg);

    let crate::net::Split {
        rx,
        tx: dtx,
        workers: txs,
    } = transport.split(n).map_err(|error| StartError::Io {
        what: "splitting the transport",
        error,
    })?;
    let doorbell = Arc::new(if cfg.dispatcher.idle == IdleStrategy::Park {
        Doorbell::new().map_err(|error| StartError::Io {
            what: "eventfd",
            error,
        })?
    } else {
        Doorbell::disabled()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let stop_workers = Arc::new(AtomicBool::new(false));
    let types: Arc<[TypeInfo]> = infos.clone().into();

    let mut links = Vec::with_capacity(n);
    let mut worker_threads = Vec::with_capacity(n);
    for (i, tx) in txs.into_iter().enumerate() {
        let (jobs_out, jobs_in) = workers::channel(capacity);
        let sleeper = Arc::new(OnceLock::new());
        let counters = Arc::new(WorkerCounters::default());
        links.push(WorkerLink {
            jobs: jobs_out,
            sleeper: sleeper.clone(),
            counters: counters.clone(),
        });
        let worker = Worker {
            idx: i,
            jobs: jobs_in,
            tx,
            handler: factory(i),
            types: types.clone(),
            idle: Idler::new(
                cfg.workers.idle,
                Duration::from_micros(cfg.workers.max_park_us),
            ),
            stop: stop_workers.clone(),
            sleeper,
            doorbell: doorbell.clone(),
            budget: cfg
                .workers
                .budget_us
                .map(|us| clock.ns_to_cycles(us as f64 * 1e3)),
            max_amplification: cfg.net.max_amplification,
            counters,
        };
        let name = format!("psp-worker-{i}");
        let cfg2 = cfg.clone();
        let thread_name = name.clone();
        let h = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                if let Err(e) = pin(&cfg2, &thread_name, 1 + i) {
                    tracing::error!("{e}");
                }
                worker.run()
            })
            .map_err(|error| StartError::Spawn { name, error })?;
        worker_threads.push(h);
    }

    let published = Arc::new(dispatcher::Published::default());
    let settings = dispatcher::Settings {
        rx_batch: cfg.dispatcher.rx_batch,
        idle: Idler::new(
            cfg.dispatcher.idle,
            Duration::from_micros(cfg.dispatcher.max_park_us),
        ),
        wake_workers: cfg.workers.idle == IdleStrategy::Park,
        stats_interval: (cfg.stats.interval_ms > 0)
            .then(|| Duration::from_millis(cfg.stats.interval_ms)),
        drain_timeout: Duration::from_millis(cfg.dispatcher.drain_timeout_ms),
        clock,
    };
    let d = Dispatcher::new(dispatcher::Parts {
        rx,
        tx: dtx,
        policy,
        types: cfg.requests.iter().map(|r| r.id).zip(infos).collect(),
        queue_capacity: cfg.queues.capacity,
        classifier,
        workers: links,
        settings,
        doorbell,
        stop: stop.clone(),
        stop_workers: stop_workers.clone(),
        published: published.clone(),
    });
    let cfg2 = cfg.clone();
    let dispatcher_thread = std::thread::Builder::new()
        .name("psp-dispatcher".into())
        .spawn(move || {
            if let Err(e) = pin(&cfg2, "psp-dispatcher", 0) {
                tracing::error!("{e}");
            }
            d.run()
        })
        .map_err(|error| StartError::Spawn {
            name: "psp-dispatcher".into(),
            error,
        })?;
    tracing::info!(
        addr = %local_addr,
        policy = cfg.policy.kind.name(),
        workers = n,
        "serving"
    );
    Ok(Server {
        local_addr,
        stop,
        stop_workers,
        published,
        dispatcher: Some(dispatcher_thread),
        workers: worker_threads,
    })
}

fn warn_if_oversubscribed(cfg: &Config) {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let spinning = (cfg.dispatcher.idle == IdleStrategy::Spin) as usize
        + if cfg.workers.idle == IdleStrategy::Spin {
            cfg.workers.number
        } else {
            0
        };
    if cfg.polling_threads() > cores && spinning > 0 {
        tracing::warn!(
            threads = cfg.polling_threads(),
            cores,
            "more polling threads than cores and some spin when idle: expect millisecond \
             latencies; set dispatcher.idle and workers.idle to park (or yield)"
        );
    }
    if !cfg.pin && cfg.polling_threads() > cores && spinning == 0 {
        // Parked threads may share cores (tests, demos, small machines): worth
        // knowing when reading latencies, not a mistake to warn about.
        tracing::info!(
            threads = cfg.polling_threads(),
            cores,
            "more threads than cores: they share them, and latencies include waiting \
             for one"
        );
    }
}

/// A running daemon.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    stop_workers: Arc<AtomicBool>,
    published: Arc<dispatcher::Published>,
    dispatcher: Option<JoinHandle<Stats>>,
    workers: Vec<JoinHandle<WorkerReport>>,
}

impl Server {
    /// The address requests go to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The latest published counters (every `stats.interval_ms`; the default before
    /// the first).
    pub fn stats(&self) -> Stats {
        self.published.latest().1
    }

    /// Waits up to `timeout` for the counters the dispatcher publishes after snapshot
    /// number `seen` (0: any); returns them with their number, or `None` on timeout.
    /// Snapshots come every `stats.interval_ms` (never if it is 0).
    pub fn next_stats(&self, seen: u64, timeout: Duration) -> Option<(u64, Stats)> {
        self.published.newer_than(seen, timeout)
    }

    /// A flag that starts a graceful shutdown when set (e.g. from a signal handler).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Whether the dispatcher has exited (after a stop, or a crash).
    pub fn is_finished(&self) -> bool {
        self.dispatcher.as_ref().is_none_or(|d| d.is_finished())
    }

    /// Stops receiving, lets queued and running requests finish (up to
    /// `dispatcher.drain_timeout_ms`, then answers the rest `shutdown`), joins every
    /// thread and returns the final counters.
    pub fn shutdown(mut self) -> Stats {
        self.stop.store(true, Ordering::Release);
        self.join()
    }

    fn join(&mut self) -> Stats {
        // The dispatcher's final stats hold none of the workers' counters: their exit
        // reports are added below. Its last published snapshot holds them as they were
        // then: they are not added again.
        let (mut stats, add_reports) = match self.dispatcher.take().map(JoinHandle::join) {
            Some(Ok(s)) => (s, true),
            Some(Err(_)) => {
                tracing::error!(
                    "the dispatcher thread panicked: the counters are its last snapshot's"
                );
                (self.stats(), false)
            }
            None => (Stats::default(), true),
        };
        self.stop_workers.store(true, Ordering::Release);
        let abandoned = stats.abandoned > 0;
        for w in self.workers.drain(..) {
            if abandoned && !w.is_finished() {
                // A handler that never returns cannot be joined; leave it.
                continue;
            }
            if let Ok(r) = w.join() {
                if add_reports {
                    stats.add_worker(&r);
                }
            }
        }
        stats
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.dispatcher.is_some() {
            self.stop.store(true, Ordering::Release);
            self.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DPDK config in a build without DPDK is refused for that first: not for the
    /// DPDK keys it lacks, which would be moot.
    #[cfg(not(feature = "dpdk"))]
    #[test]
    fn a_dpdk_config_without_dpdk_says_so_first() {
        let mut cfg = config(8, 0);
        cfg.net.backend = Backend::Dpdk;
        assert!(cfg.validate().is_err(), "net.ip is missing");
        let Err(e) = App::new(cfg).start() else {
            panic!("started without DPDK in the build")
        };
        assert!(matches!(e, StartError::DpdkNotBuilt), "{e}");
    }

    /// Two types, two workers, queues `capacity` deep, `net.buffers: buffers`.
    fn config(capacity: usize, buffers: usize) -> Config {
        Config::parse(&format!(
            "workers: {{ number: 2 }}
pin: false
net: {{ backend: udp, bind: 127.0.0.1:0, buffers: {buffers} }}
queues: {{ capacity: {capacity} }}
requests:
  - {{ id: 1, name: A }}
  - {{ id: 2, name: B }}
"
        ))
        .unwrap()
    }

    #[test]
    fn the_automatic_pool_holds_full_queues_or_says_why_not() {
        let (n, short) = buffers_for(&config(1000, 0));
        assert!(n >= 2000 + 2 && short.is_none(), "{n} {short:?}");
        // Past the automatic pool's cap: capped, and said.
        let (n, short) = buffers_for(&config(100_000, 0));
        assert_eq!(n, AUTO_BUFFERS_MAX);
        let why = short.expect("a warning");
        assert!(
            why.contains("net.buffers (0: automatic, at most 131072) gives 131072"),
            "{why}"
        );
        // An explicit pool too small for the queues is said too.
        let (n, short) = buffers_for(&config(1000, 64));
        assert_eq!(n, 64);
        assert!(short
            .expect("a warning")
            .starts_with("net.buffers gives 64"));
    }
}
