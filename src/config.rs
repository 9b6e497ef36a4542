//! config.rs - the daemon's YAML configuration: schema, defaults and validation.
//!
//! Parsing is strict (`deny_unknown_fields`): a misspelt key is an error, not a silently
//! ignored default. [`Config::validate`] then checks what types cannot express and names
//! the offending key in every message ("workers.number is 4 but cpus lists 3 cores").

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

/// A configuration error, with the dotted key it is about when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the offending key (`policy.delta`), or empty for whole-file errors.
    pub key: String,
    pub msg: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, msg: impl Into<String>) -> ConfigError {
        ConfigError {
            key: key.into(),
            msg: msg.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.msg)
        } else {
            write!(f, "{}: {}", self.key, self.msg)
        }
    }
}

impl std::error::Error for ConfigError {}

/// How a polling thread waits when it finds no work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IdleStrategy {
    /// Busy-poll with `spin_loop` hints: lowest latency; needs a dedicated core.
    #[default]
    Spin,
    /// `sched_yield` between polls: shares a core with other runnable threads.
    Yield,
    /// Spin briefly, then yield, then sleep until woken (workers by the dispatcher,
    /// the dispatcher by its socket or a worker's completion), at most `max_park_us`:
    /// frees the core when idle (tests, laptops, 2-core machines) at the cost of an
    /// OS wake-up (tens of microseconds) after an idle spell.
    Park,
}

impl IdleStrategy {
    /// The YAML spelling.
    pub fn name(self) -> &'static str {
        match self {
            IdleStrategy::Spin => "spin",
            IdleStrategy::Yield => "yield",
            IdleStrategy::Park => "park",
        }
    }
}

/// The whole server configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Cores to pin to: `cpus[0]` runs the dispatcher, `cpus[1..]` the workers.
    #[serde(default)]
    pub cpus: Vec<usize>,
    /// Pin threads to `cpus` (default true). With `pin: false`, `cpus` may be empty.
    #[serde(default = "yes")]
    pub pin: bool,
    #[serde(default)]
    pub dispatcher: DispatcherConfig,
    pub workers: WorkersConfig,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub net: NetConfig,
    #[serde(default)]
    pub queues: QueuesConfig,
    /// The request types this server knows, in priority-neutral config order. May be
    /// left out of the YAML when the program declares them
    /// ([`crate::App::request_type`]); a started server needs at least one.
    #[serde(default)]
    pub requests: Vec<RequestType>,
    #[serde(default)]
    pub stats: StatsConfig,
    /// The KV store's pre-population (`workers.handler: kv`, see [`crate::apps::kv`]).
    #[serde(default)]
    pub kv: Option<crate::apps::kv::KvConfig>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatcherConfig {
    #[serde(default)]
    pub idle: IdleStrategy,
    /// Most packets taken from the network per receive call.
    #[serde(default = "default_batch")]
    pub rx_batch: usize,
    /// Upper bound of a `park` sleep, in microseconds (wake-ups are signalled; this
    /// only bounds how late a stats line or a stop request is noticed).
    #[serde(default = "default_max_park_us")]
    pub max_park_us: u64,
    /// On shutdown, how long queued and in-flight requests may take to finish before
    /// the rest are answered `shutdown` (milliseconds).
    #[serde(default = "default_drain_ms")]
    pub drain_timeout_ms: u64,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            idle: IdleStrategy::default(),
            rx_batch: default_batch(),
            max_park_us: default_max_park_us(),
            drain_timeout_ms: default_drain_ms(),
        }
    }
}

fn default_batch() -> usize {
    32
}
fn default_max_park_us() -> u64 {
    5000
}
fn default_drain_ms() -> u64 {
    2000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkersConfig {
    /// Number of worker threads.
    pub number: usize,
    /// Built-in handler name (`spin`, `echo`), unless the program supplies its own.
    #[serde(default = "default_handler")]
    pub handler: String,
    #[serde(default)]
    pub idle: IdleStrategy,
    /// Upper bound of a `park` sleep, in microseconds.
    #[serde(default = "default_max_park_us")]
    pub max_park_us: u64,
    /// Per-request service budget in microseconds: a request whose handler runs longer
    /// is answered `timeout` (its reply discarded) and counted. Handlers are not
    /// preempted, so the worker's time is not reclaimed; this bounds what a client is
    /// told, and makes overruns visible.
    #[serde(default)]
    pub budget_us: Option<u64>,
}

fn default_handler() -> String {
    "spin".into()
}

/// Which scheduling policy the dispatcher runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PolicyKind {
    /// Centralized FCFS: one logical queue, any idle worker.
    Cfcfs,
    /// Decentralized FCFS: requests assigned to per-worker queues on arrival.
    Dfcfs,
    /// Dynamic Application-aware Reserved Cores.
    #[default]
    Darc,
    /// Shortest (expected) job first, centralized and non-preemptive.
    Sjf,
    /// Earliest deadline first: arrival + slo × the type's expected service time.
    Edf,
}

impl PolicyKind {
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Cfcfs => "cfcfs",
            PolicyKind::Dfcfs => "dfcfs",
            PolicyKind::Darc => "darc",
            PolicyKind::Sjf => "sjf",
            PolicyKind::Edf => "edf",
        }
    }

    /// Every policy, in the order help texts list them.
    pub const ALL: [PolicyKind; 5] = [
        PolicyKind::Cfcfs,
        PolicyKind::Dfcfs,
        PolicyKind::Darc,
        PolicyKind::Sjf,
        PolicyKind::Edf,
    ];

    /// `kinds` for a message: `darc`, `darc or sjf`, `darc, sjf or edf`.
    pub fn names(kinds: &[PolicyKind]) -> String {
        match kinds {
            [] => String::new(),
            [one] => one.name().to_string(),
            [rest @ .., last] => {
                let rest: Vec<&str> = rest.iter().map(|k| k.name()).collect();
                format!("{} or {}", rest.join(", "), last.name())
            }
        }
    }
}

/// How d-FCFS picks a worker for each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Assign {
    /// Cycle through the workers (like RSS over uniform flows).
    #[default]
    RoundRobin,
    /// Uniformly at random (seeded): each worker is then an independent M/M/1 queue.
    Random,
    /// Join the shortest queue.
    Jsq,
}

impl Assign {
    /// The YAML spelling.
    pub fn name(self) -> &'static str {
        match self {
            Assign::RoundRobin => "round_robin",
            Assign::Random => "random",
            Assign::Jsq => "jsq",
        }
    }
}

/// How DARC learns per-type service times and ratios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Measure service times and arrival ratios online and re-reserve as they move.
    #[default]
    Dynamic,
    /// Reserve once from `requests[].mean_ns` and `requests[].ratio`.
    Static,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(default)]
    pub kind: PolicyKind,
    /// DARC: types whose mean service times are within `delta` (relative) of a group's
    /// first type join that group.
    #[serde(default = "default_delta")]
    pub delta: f64,
    /// DARC: completions per profiling window.
    #[serde(default = "default_window")]
    pub window: u64,
    /// DARC, SJF, EDF: how service times are learnt.
    #[serde(default)]
    pub profile: Profile,
    /// EDF: a request's deadline is its arrival plus `slo` times its type's expected
    /// service time: it bounds the wait before the request starts, so one started at
    /// its deadline finishes at a slowdown of about `slo + 1`.
    #[serde(default = "default_slo")]
    pub slo: f64,
    /// DARC: manual reservation, cores reserved to each group from the shortest;
    /// overrides the computed demand (e.g. `[3]` reserves 3 cores to the shortest
    /// group, the rest to the longer ones).
    #[serde(default)]
    pub n_resas: Option<Vec<usize>>,
    /// DARC: the worker that serves types left without a reservation (default: the
    /// last worker).
    #[serde(default)]
    pub spillway: Option<usize>,
    /// d-FCFS: how a worker is chosen.
    #[serde(default)]
    pub assign: Assign,
    /// d-FCFS: requests a worker may hold (its queue depth).
    #[serde(default = "default_depth")]
    pub depth: usize,
    /// Seed of the policy's own randomness (d-FCFS `random`).
    #[serde(default = "default_seed")]
    pub seed: u64,
}

impl PolicyConfig {
    /// The keys of policies other than `kinds` that differ from their defaults, each
    /// with the policy that reads it: settings that change nothing (a value equal to
    /// the default cannot be told from an absent key). Not `depth`: in the daemon it
    /// also sizes the buffer pool, under every policy. Shared by the daemon's config
    /// check and psp-sim's, whose runs may name several policies.
    pub fn foreign_keys(&self, kinds: &[PolicyKind]) -> Vec<(&'static [PolicyKind], &'static str)> {
        use PolicyKind::{Darc, Dfcfs, Edf, Sjf};
        let d = PolicyConfig::default();
        let readers: [(&'static [PolicyKind], &'static str, bool); 8] = [
            (&[Darc], "delta", self.delta != d.delta),
            (&[Darc], "window", self.window != d.window),
            (&[Darc, Sjf, Edf], "profile", self.profile != d.profile),
            (&[Darc], "n_resas", self.n_resas.is_some()),
            (&[Darc], "spillway", self.spillway.is_some()),
            (&[Edf], "slo", self.slo != d.slo),
            (&[Dfcfs], "assign", self.assign != d.assign),
            (&[Dfcfs], "seed", self.seed != d.seed),
        ];
        readers
            .into_iter()
            .filter(|&(readers, _, set)| set && !readers.iter().any(|r| kinds.contains(r)))
            .map(|(readers, key, _)| (readers, key))
            .collect()
    }
}

impl Config {
    /// This server config under policy `kind` ([`PolicyConfig::switched_to`]), with the
    /// request types' EDF deadlines dropped under any other policy.
    pub fn switch_policy(&mut self, kind: PolicyKind) {
        self.policy = self.policy.switched_to(kind);
        if kind != PolicyKind::Edf {
            for r in &mut self.requests {
                r.deadline_ns = None;
            }
        }
    }
}

impl PolicyConfig {
    /// This config under policy `kind`: the settings only other policies read go back
    /// to their defaults (they would change nothing, and draw a warning), the rest
    /// stay. For running one server config under each policy in turn.
    pub fn switched_to(&self, kind: PolicyKind) -> PolicyConfig {
        let d = PolicyConfig::default();
        let mut p = self.clone();
        p.kind = kind;
        for (_, key) in self.foreign_keys(&[kind]) {
            match key {
                "delta" => p.delta = d.delta,
                "window" => p.window = d.window,
                "profile" => p.profile = d.profile,
                "n_resas" => p.n_resas = None,
                "spillway" => p.spillway = None,
                "slo" => p.slo = d.slo,
                "assign" => p.assign = d.assign,
                "seed" => p.seed = d.seed,
                other => unreachable!("foreign_keys named {other}, which is not a setting"),
            }
        }
        p
    }
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            kind: PolicyKind::default(),
            delta: default_delta(),
            window: default_window(),
            profile: Profile::default(),
            n_resas: None,
            spillway: None,
            assign: Assign::default(),
            depth: default_depth(),
            seed: default_seed(),
            slo: default_slo(),
        }
    }
}

/// `net.bind`: a socket address, or `host:port` resolved ([`crate::net::resolve`]); the
/// error names the key (the YAML error's path stops at `net`) and quotes the value.
fn socket_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    crate::net::resolve(&String::deserialize(d)?)
        .map_err(|e| serde::de::Error::custom(format_args!("bind: {e}")))
}

fn default_delta() -> f64 {
    0.2
}
fn default_window() -> u64 {
    50_000
}
fn default_slo() -> f64 {
    10.0
}
fn default_depth() -> usize {
    64
}
fn default_seed() -> u64 {
    1
}

/// Which network backend carries requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Kernel UDP sockets (always available).
    #[default]
    Udp,
    /// DPDK (cargo feature `dpdk`).
    Dpdk,
}

/// What requests and replies look like on the wire (`net.wire`, and psp-client's
/// `--wire`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Wire {
    // Plain text, no rustdoc links: psp-client's --help shows these lines.
    /// Our header (src/proto.rs)
    #[default]
    Native,
    /// Perséphone's 16-byte PSP_MB requests (src/net/psp_mb.rs)
    #[value(name = "psp_mb", alias = "psp-mb")]
    PspMb,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    #[serde(default)]
    pub backend: Backend,
    /// The wire format: `native` (default) or `psp_mb`.
    #[serde(default)]
    pub wire: Wire,
    /// UDP: address to bind (port 0 picks an ephemeral port); a host name
    /// (`localhost:6789`) is resolved, its first IPv4 address taken.
    #[serde(default = "default_bind", deserialize_with = "socket_addr")]
    pub bind: SocketAddr,
    /// Largest request (header + payload) accepted, in bytes.
    #[serde(default = "default_max_msg")]
    pub max_msg: usize,
    /// Largest reply as a multiple of its request's size (header included), so a
    /// spoofed request cannot turn the server into an amplifier. A handler asking for
    /// more gets `ReplyTooLarge` (clients that need big replies pad their requests).
    /// 0 turns the bound off (trusted networks only).
    #[serde(default = "default_max_amplification")]
    pub max_amplification: f64,
    /// Request buffers in the pool (bounds memory; 0 = derived from queue capacity).
    #[serde(default)]
    pub buffers: usize,
    /// UDP: kernel receive buffer size (SO_RCVBUF) in bytes; 0 leaves the default.
    #[serde(default = "default_rcvbuf")]
    pub rcvbuf: usize,
    /// DPDK: EAL arguments (e.g. `["--no-huge", "--no-pci", "--vdev=net_memif0"]`).
    #[serde(default)]
    pub eal_args: Vec<String>,
    /// DPDK: port id.
    #[serde(default)]
    pub port: u16,
    /// DPDK: our IPv4 address (answered in ARP, checked on receive).
    #[serde(default)]
    pub ip: Option<std::net::Ipv4Addr>,
    /// DPDK: UDP port we serve.
    #[serde(default = "default_udp_port")]
    pub udp_port: u16,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            backend: Backend::default(),
            wire: Wire::default(),
            bind: default_bind(),
            max_msg: default_max_msg(),
            max_amplification: default_max_amplification(),
            buffers: 0,
            rcvbuf: default_rcvbuf(),
            eal_args: Vec::new(),
            port: 0,
            ip: None,
            udp_port: default_udp_port(),
        }
    }
}

fn default_bind() -> SocketAddr {
    "127.0.0.1:6789".parse().unwrap()
}
fn default_max_msg() -> usize {
    2048
}
fn default_max_amplification() -> f64 {
    8.0
}
fn default_rcvbuf() -> usize {
    4 << 20
}
fn default_udp_port() -> u16 {
    6789
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueuesConfig {
    /// Capacity of each request type's queue at the dispatcher; a request arriving to a
    /// full queue is answered `queue_full` at once.
    #[serde(default = "default_capacity")]
    pub capacity: usize,
}

impl Default for QueuesConfig {
    fn default() -> Self {
        QueuesConfig {
            capacity: default_capacity(),
        }
    }
}

fn default_capacity() -> usize {
    4096
}

/// One request type.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RequestType {
    /// Wire type id (the header's `type`); 0 is reserved.
    pub id: u32,
    pub name: String,
    /// Mean service time in nanoseconds: the `spin` handler's default work, and DARC's
    /// input in static mode.
    #[serde(default)]
    pub mean_ns: Option<u64>,
    /// Share of arrivals (DARC static mode); need not sum to 1, shares are normalised.
    #[serde(default)]
    pub ratio: Option<f64>,
    /// EDF: this type's deadline, nanoseconds after arrival, in place of `policy.slo`
    /// times its expected service time (e.g. the type's latency SLO).
    #[serde(default)]
    pub deadline_ns: Option<u64>,
}

impl RequestType {
    /// A type with no `mean_ns`, `ratio` or `deadline_ns` (set the fields to give them).
    pub fn new(id: u32, name: impl Into<String>) -> RequestType {
        RequestType {
            id,
            name: name.into(),
            mean_ns: None,
            ratio: None,
            deadline_ns: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsConfig {
    /// Period of the stats line in milliseconds; 0 turns it off.
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            interval_ms: default_interval(),
        }
    }
}

fn default_interval() -> u64 {
    1000
}

/// Most request types a server may declare (the typed queues and the dispatcher's
/// per-type counters are fixed-size arrays of this many).
pub const MAX_TYPES: usize = crate::policy::MAX_TYPES;
/// Most workers a server may run (the policies keep a bit per worker).
pub const MAX_WORKERS: usize = crate::policy::WorkerSet::CAPACITY;
/// Largest `queues.capacity` (the typed queues index their slots with 32 bits).
pub const MAX_QUEUE_CAPACITY: usize = 1 << 24;
/// Most memory typed queues may take: request types × capacity (rounded up to a
/// power of two) slots (see [`QueuesConfig::validate_total`]).
pub const MAX_QUEUE_BYTES: usize = 1 << 30;
/// Most memory `net.buffers` request buffers of `net.max_msg` bytes may take.
pub const MAX_BUFFER_BYTES: usize = 4 << 30;
/// Largest `policy.depth` in the daemon: each worker's channel holds that many jobs,
/// allocated up front (64 bytes each). (The simulator takes more: its worker queues
/// grow as needed.)
pub const MAX_DEPTH: usize = 1 << 16;
/// Longest `dispatcher.drain_timeout_ms` and `stats.interval_ms`: one day.
pub const MAX_MS: u64 = 86_400_000;
/// Longest `requests[].deadline_ns` (a day): a bounded deadline comes, so EDF starves
/// no type.
pub const MAX_DEADLINE_NS: u64 = MAX_MS * 1_000_000;

/// Prefixes a section-relative error key (`delta`) with its section (`policy.delta`).
fn in_section(section: &str, mut e: ConfigError) -> ConfigError {
    e.key = if e.key.is_empty() {
        section.to_string()
    } else if e.key.starts_with('[') {
        format!("{section}{}", e.key)
    } else {
        format!("{section}.{}", e.key)
    };
    e
}

impl WorkersConfig {
    /// Checks a worker count (`workers.number`); the error's key is `number`. Shared
    /// with `psp-sim`, which names its `--workers` instead.
    pub fn validate_number(number: usize) -> Result<(), ConfigError> {
        if number == 0 {
            return Err(ConfigError::new("number", "must be at least 1"));
        }
        if number > MAX_WORKERS {
            return Err(ConfigError::new(
                "number",
                format!("is {number} but at most {MAX_WORKERS} workers are supported"),
            ));
        }
        Ok(())
    }
}

impl PolicyConfig {
    /// Checks the policy's settings for a server of `workers` workers. Error keys are
    /// the field names (`delta`, `window`, `depth`, `n_resas`, `spillway`), which
    /// [`Config::validate`] reports as `policy.delta` etc. and `psp-sim` as its flags
    /// (`--delta`): the daemon and the simulator refuse the same settings.
    pub fn validate(&self, workers: usize) -> Result<(), ConfigError> {
        let err = |k: &str, m: String| Err(ConfigError::new(k, m));
        if !(self.delta.is_finite() && self.delta >= 0.0 && self.delta <= 10.0) {
            return err("delta", format!("must be in [0, 10], got {}", self.delta));
        }
        if self.window == 0 {
            return err("window", "must be at least 1 completion".into());
        }
        if !(self.slo.is_finite() && (0.0..=1e6).contains(&self.slo)) {
            return err("slo", format!("must be in [0, 1000000], got {}", self.slo));
        }
        if self.depth == 0 {
            return err("depth", "must be at least 1".into());
        }
        if let Some(n) = &self.n_resas {
            let total = n.iter().fold(0usize, |a, &b| a.saturating_add(b));
            if total > workers {
                return err(
                    "n_resas",
                    format!("reserves {total} workers but there are only {workers}"),
                );
            }
        }
        if let Some(s) = self.spillway {
            if s >= workers {
                return err(
                    "spillway",
                    format!(
                        "worker {s} does not exist (there are {workers} workers, numbered \
                         from 0)"
                    ),
                );
            }
        }
        Ok(())
    }

    /// Whether the policy works from the request types' `mean_ns` (and, for DARC,
    /// `ratio`) alone: the static profile of DARC, SJF and EDF, under which every type
    /// must give them.
    pub fn needs_type_hints(&self) -> bool {
        matches!(
            self.kind,
            PolicyKind::Darc | PolicyKind::Sjf | PolicyKind::Edf
        ) && self.profile == Profile::Static
    }

    /// Checks that `types` (`mean_ns`, `ratio` of each request type, in order) give
    /// what the policy needs (see [`PolicyConfig::needs_type_hints`]). Error keys are
    /// `[i].mean_ns`, `[i].ratio`, or empty for the whole list, which
    /// [`Config::validate`] reports under `requests`.
    pub fn validate_types(
        &self,
        types: impl IntoIterator<Item = (Option<u64>, Option<f64>)>,
    ) -> Result<(), ConfigError> {
        if !self.needs_type_hints() {
            return Ok(());
        }
        let mut total = 0.0;
        for (i, (mean_ns, ratio)) in types.into_iter().enumerate() {
            if mean_ns.is_none_or(|m| m == 0) {
                return Err(ConfigError::new(
                    format!("[{i}].mean_ns"),
                    "is required (and > 0) with the static profile",
                ));
            }
            if self.kind != PolicyKind::Darc {
                continue;
            }
            match ratio {
                None => {
                    return Err(ConfigError::new(
                        format!("[{i}].ratio"),
                        "is required with the static profile",
                    ))
                }
                Some(r) => total += r,
            }
        }
        if self.kind == PolicyKind::Darc && (total.is_nan() || total <= 0.0) {
            return Err(ConfigError::new(
                "",
                "ratios sum to 0; DARC static mode needs shares",
            ));
        }
        Ok(())
    }
}

impl QueuesConfig {
    /// Checks what `n_types` queues of this capacity take, in slots of `slot_bytes`
    /// (the capacity rounded up to a power of two per type): at most
    /// [`MAX_QUEUE_BYTES`]. Error key `capacity`.
    pub fn validate_total(&self, n_types: usize, slot_bytes: usize) -> Result<(), ConfigError> {
        let rounded = self.capacity.next_power_of_two();
        let bytes = n_types.saturating_mul(rounded).saturating_mul(slot_bytes);
        if bytes > MAX_QUEUE_BYTES {
            return Err(ConfigError::new(
                "capacity",
                format!(
                    "{n_types} request types × {} (rounded up to {rounded}) queue slots of \
                     {slot_bytes} bytes take {} MiB, more than the {} MiB allowed: lower it",
                    self.capacity,
                    bytes >> 20,
                    MAX_QUEUE_BYTES >> 20
                ),
            ));
        }
        Ok(())
    }

    /// Checks `capacity` (error key `capacity`): at least 1 and at most
    /// [`MAX_QUEUE_CAPACITY`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.capacity == 0 {
            return Err(ConfigError::new("capacity", "must be at least 1"));
        }
        if self.capacity > MAX_QUEUE_CAPACITY {
            return Err(ConfigError::new(
                "capacity",
                format!("{} is too large (max 2^24)", self.capacity),
            ));
        }
        Ok(())
    }
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        Config::read(path.as_ref(), Config::parse)
    }

    /// Reads and parses a config file without validating it (see
    /// [`Config::parse_unvalidated`]).
    pub fn load_unvalidated(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        Config::read(path.as_ref(), Config::parse_unvalidated)
    }

    fn read(
        path: &Path,
        parse: fn(&str) -> Result<Config, ConfigError>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new("", format!("cannot read {}: {e}", path.display())))?;
        parse(&text).map_err(|mut e| {
            if e.key.is_empty() {
                e.msg = format!("{}: {}", path.display(), e.msg);
            } else {
                e.msg = format!("{} (in {})", e.msg, path.display());
            }
            e
        })
    }

    /// Parses and validates YAML text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let cfg = Config::parse_unvalidated(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses YAML text without [`Config::validate`], for a program that completes the
    /// config in code (e.g. declares its request types with
    /// [`crate::App::request_type`]); [`crate::App::start`] validates the result.
    pub fn parse_unvalidated(text: &str) -> Result<Config, ConfigError> {
        serde_yaml::from_str(text).map_err(|e| {
            let mut msg = e.to_string();
            let loc = match e.location() {
                Some(l) => {
                    // Said once, in front: drop the message's own " at line L column C".
                    let tail = format!(" at line {} column {}", l.line(), l.column());
                    if let Some(m) = msg.strip_suffix(&tail) {
                        msg = m.to_string();
                    }
                    format!("line {}, column {}: ", l.line(), l.column())
                }
                None => String::new(),
            };
            // The YAML error's path ends at the struct (`net: bind: ...`, from
            // `socket_addr`): name the key in dotted form, as validation errors do.
            if let Some(m) = msg.strip_prefix("net: bind: ") {
                msg = format!("net.bind: {m}");
            }
            // serde_yaml places a duplicate key at the start of its mapping (line 1 for
            // a top-level one): point at the second occurrence instead.
            if let Some(at) = duplicate_key_line(text, &msg) {
                return ConfigError::new("", at);
            }
            ConfigError::new("", format!("{loc}{msg}"))
        })
    }

    /// Settings that are valid but have no effect here, each with why (logged at
    /// start): a section for another handler or policy, most likely a mistake.
    pub fn unused_settings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.kv.is_some() && self.workers.handler != "kv" {
            out.push(format!(
                "kv: is set but workers.handler is {:?}: only the kv handler reads it",
                self.workers.handler
            ));
        }
        if !self.pin && !self.cpus.is_empty() {
            out.push("cpus is set but pin is false: threads are not pinned".into());
        }
        let n = &self.net;
        let d = NetConfig::default();
        // The other backend's keys, and whether each differs from its default.
        let (read, ignored, other_backends_keys) = match n.backend {
            Backend::Udp => (
                "udp",
                "dpdk",
                vec![
                    ("eal_args", !n.eal_args.is_empty()),
                    ("port", n.port != d.port),
                    ("ip", n.ip.is_some()),
                    ("udp_port", n.udp_port != d.udp_port),
                ],
            ),
            Backend::Dpdk => (
                "dpdk",
                "udp",
                vec![("bind", n.bind != d.bind), ("rcvbuf", n.rcvbuf != d.rcvbuf)],
            ),
        };
        for (key, set) in other_backends_keys {
            if set {
                out.push(format!(
                    "net.{key} is set but net.backend is {read}: only the {ignored} backend \
                     reads it"
                ));
            }
        }
        let p = &self.policy;
        for (readers, key) in p.foreign_keys(&[p.kind]) {
            out.push(format!(
                "policy.{key} is set but policy.kind is {}: only {} reads it",
                p.kind.name(),
                PolicyKind::names(readers)
            ));
        }
        if p.kind == PolicyKind::Dfcfs
            && p.assign != Assign::Random
            && p.seed != PolicyConfig::default().seed
        {
            out.push(format!(
                "policy.seed is set but policy.assign is {}: only random assignment reads it",
                p.assign.name()
            ));
        }
        if p.kind != PolicyKind::Edf {
            for (i, r) in self.requests.iter().enumerate() {
                if r.deadline_ns.is_some() {
                    out.push(format!(
                        "requests[{i}].deadline_ns is set but policy.kind is {}: only edf \
                         reads it",
                        p.kind.name()
                    ));
                }
            }
        }
        if p.kind == PolicyKind::Darc && p.n_resas.as_ref().is_some_and(|n| n.is_empty()) {
            out.push(
                "policy.n_resas is empty: every group's cores come from its demand, as \
                 without it"
                    .into(),
            );
        }
        for (section, idle, max_park_us) in [
            (
                "dispatcher",
                self.dispatcher.idle,
                self.dispatcher.max_park_us,
            ),
            ("workers", self.workers.idle, self.workers.max_park_us),
        ] {
            if idle != IdleStrategy::Park && max_park_us != default_max_park_us() {
                out.push(format!(
                    "{section}.max_park_us is set but {section}.idle is {}: only park \
                     sleeps",
                    idle.name()
                ));
            }
        }
        out
    }

    /// Checks every constraint the types do not express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |k: &str, m: String| Err(ConfigError::new(k, m));
        let w = &self.workers;
        WorkersConfig::validate_number(w.number).map_err(|e| in_section("workers", e))?;
        if self.pin {
            if self.cpus.len() != w.number + 1 {
                return err(
                    "cpus",
                    format!(
                        "workers.number is {} but cpus lists {} cores (one for the dispatcher \
                         plus one per worker are needed; or set pin: false)",
                        w.number,
                        self.cpus.len()
                    ),
                );
            }
            let online = available_cpus();
            let mut seen = HashSet::new();
            for (i, c) in self.cpus.iter().enumerate() {
                if !seen.insert(*c) {
                    return err(&format!("cpus[{i}]"), format!("core {c} is listed twice"));
                }
                if let Some(online) = &online {
                    if !online.contains(c) {
                        return err(
                            &format!("cpus[{i}]"),
                            format!(
                                "core {c} is not available to this process (have {online:?}); \
                                 this config needs {} cores; on a smaller machine set \
                                 pin: false (threads then share cores: for trying it, not \
                                 for measuring)",
                                self.cpus.len()
                            ),
                        );
                    }
                }
            }
        }
        if w.budget_us == Some(0) {
            return err(
                "workers.budget_us",
                "must be at least 1 (or absent for no budget)".into(),
            );
        }
        if w.max_park_us == 0 {
            return err("workers.max_park_us", "must be at least 1".into());
        }
        let d = &self.dispatcher;
        if d.rx_batch == 0 || d.rx_batch > 1024 {
            return err(
                "dispatcher.rx_batch",
                format!("must be in 1..=1024, got {}", d.rx_batch),
            );
        }
        if d.max_park_us == 0 {
            return err("dispatcher.max_park_us", "must be at least 1".into());
        }
        if d.drain_timeout_ms > MAX_MS {
            return err(
                "dispatcher.drain_timeout_ms",
                format!(
                    "must be at most {MAX_MS} (a day), got {}",
                    d.drain_timeout_ms
                ),
            );
        }
        if self.stats.interval_ms > MAX_MS {
            return err(
                "stats.interval_ms",
                format!(
                    "must be at most {MAX_MS} (a day; 0 for no stats line), got {}",
                    self.stats.interval_ms
                ),
            );
        }
        let p = &self.policy;
        p.validate(w.number).map_err(|e| in_section("policy", e))?;
        if p.depth > MAX_DEPTH {
            return err(
                "policy.depth",
                format!(
                    "must be at most {MAX_DEPTH} (each worker's channel holds this many \
                     jobs, allocated at start), got {}",
                    p.depth
                ),
            );
        }
        self.queues
            .validate()
            .map_err(|e| in_section("queues", e))?;
        let n = &self.net;
        if n.max_msg < crate::proto::HEADER_LEN || n.max_msg > 65_507 {
            return err(
                "net.max_msg",
                format!(
                    "must be in {}..=65507 bytes, got {}",
                    crate::proto::HEADER_LEN,
                    n.max_msg
                ),
            );
        }
        if n.wire == Wire::PspMb {
            let need = crate::net::psp_mb::NATIVE_LEN;
            if n.max_msg < need {
                return err(
                    "net.max_msg",
                    format!(
                        "must be at least {need} bytes with net.wire: psp_mb (a request \
                         is rewritten in place into our header and the spin payload), got {}",
                        n.max_msg
                    ),
                );
            }
            if self.workers.handler == "kv" {
                return err(
                    "net.wire",
                    "psp_mb carries no kv operation, only a service time: use \
                     workers.handler: spin (or echo) with it, or net.wire: native for kv"
                        .to_string(),
                );
            }
        }
        if n.buffers.saturating_mul(n.max_msg) > MAX_BUFFER_BYTES {
            return err(
                "net.buffers",
                format!(
                    "{} buffers of net.max_msg {} bytes take {} MiB, more than the {} MiB \
                     allowed: lower it (0 sizes the pool from the queues)",
                    n.buffers,
                    n.max_msg,
                    n.buffers.saturating_mul(n.max_msg) >> 20,
                    MAX_BUFFER_BYTES >> 20
                ),
            );
        }
        let a = n.max_amplification;
        if !(a.is_finite() && (a == 0.0 || a >= 1.0)) {
            return err(
                "net.max_amplification",
                format!("must be 0 (no bound) or at least 1, got {a}"),
            );
        }
        if n.backend == Backend::Dpdk {
            match n.ip {
                None => return err("net.ip", "is required with net.backend: dpdk".into()),
                Some(ip)
                    if ip.is_broadcast()
                        || ip.is_multicast()
                        || ip.is_unspecified()
                        || ip.is_loopback() =>
                {
                    return err(
                        "net.ip",
                        format!(
                            "{ip} cannot be a server's address on a NIC (broadcast, multicast, \
                             0.0.0.0 or loopback: requests from 127.0.0.0/8 are dropped as \
                             bad_source)"
                        ),
                    )
                }
                Some(_) => {}
            }
            if n.udp_port == 0 {
                return err("net.udp_port", "must be a port, 1-65535".into());
            }
        }
        if self.requests.is_empty() {
            return err(
                "requests",
                "must list at least one request type (or declare them with App::request_type)"
                    .into(),
            );
        }
        if self.requests.len() > MAX_TYPES {
            return err(
                "requests",
                format!(
                    "lists {} types, at most {MAX_TYPES} are supported",
                    self.requests.len()
                ),
            );
        }
        // A slot is an arrival time and a packet handle: 16 bytes over UDP, 32 over
        // DPDK; the larger bounds both.
        self.queues
            .validate_total(self.requests.len(), 32)
            .map_err(|e| in_section("queues", e))?;
        let mut ids = HashSet::new();
        let mut names = HashSet::new();
        for (i, r) in self.requests.iter().enumerate() {
            let k = |f: &str| format!("requests[{i}].{f}");
            if r.id == 0 {
                return err(&k("id"), "0 is reserved; type ids start at 1".into());
            }
            if !ids.insert(r.id) {
                return err(&k("id"), format!("type id {} is used twice", r.id));
            }
            if r.name.is_empty() {
                return err(&k("name"), "must not be empty".into());
            }
            if !names.insert(r.name.as_str()) {
                return err(&k("name"), format!("type name {:?} is used twice", r.name));
            }
            if let Some(d) = r.deadline_ns {
                if d > MAX_DEADLINE_NS {
                    return err(
                        &k("deadline_ns"),
                        format!("must be at most {MAX_DEADLINE_NS} (a day), got {d}"),
                    );
                }
            }
            if let Some(ratio) = r.ratio {
                if !(ratio.is_finite() && ratio >= 0.0) {
                    return err(
                        &k("ratio"),
                        format!("must be a non-negative number, got {ratio}"),
                    );
                }
            }
        }
        p.validate_types(self.requests.iter().map(|r| (r.mean_ns, r.ratio)))
            .map_err(|e| in_section("requests", e))?;
        if let Some(n) = p.n_resas.as_ref().filter(|_| p.kind == PolicyKind::Darc) {
            // A group holds at least one type: entries past the types' count never
            // apply, and were ignored without a word.
            if n.len() > self.requests.len() {
                return err(
                    "policy.n_resas",
                    format!(
                        "has {} entries, but there are {} request types (at most one group \
                         each)",
                        n.len(),
                        self.requests.len()
                    ),
                );
            }
        }
        if let Some(kv) = &self.kv {
            kv.validate(n.max_msg)?;
        }
        Ok(())
    }

    /// Threads that poll (dispatcher + workers).
    pub fn polling_threads(&self) -> usize {
        1 + self.workers.number
    }
}

/// The cores this process may run on, if the OS tells.
pub fn available_cpus() -> Option<Vec<usize>> {
    core_affinity::get_core_ids().map(|ids| ids.into_iter().map(|c| c.id).collect())
}

/// For serde's "duplicate field `K`": "line N: duplicate key K (first on line M)",
/// if `text` has two block-style `K:` lines at one indentation with no line of less
/// indentation between them (one mapping's keys, not two mappings' alike).
fn duplicate_key_line(text: &str, msg: &str) -> Option<String> {
    let key = msg.split("duplicate field `").nth(1)?.split('`').next()?;
    // Indentation of each line that holds something (not blank, not a comment).
    let indents: Vec<Option<usize>> = text
        .lines()
        .map(|l| {
            let body = l.trim_start();
            (!body.is_empty() && !body.starts_with('#')).then_some(l.len() - body.len())
        })
        .collect();
    let keyed: Vec<(usize, usize)> = text
        .lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let body = l.trim_start();
            let rest = body.strip_prefix(key)?;
            rest.trim_start()
                .starts_with(':')
                .then_some((i, l.len() - body.len()))
        })
        .collect();
    keyed.iter().enumerate().find_map(|(j, &(second, indent))| {
        let &(first, _) = keyed[..j].iter().rev().find(|&&(first, ind)| {
            ind == indent
                && indents[first + 1..second]
                    .iter()
                    .flatten()
                    .all(|&i| i >= indent)
        })?;
        Some(format!(
            "line {}: duplicate key {key} (first on line {})",
            second + 1,
            first + 1
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "
pin: false
workers: { number: 2 }
requests:
  - { id: 1, name: SHORT, mean_ns: 1000, ratio: 0.5 }
  - { id: 2, name: LONG, mean_ns: 100000, ratio: 0.5 }
";

    fn parse_err(yaml: &str) -> ConfigError {
        Config::parse(yaml).expect_err("config should be rejected")
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::parse(BASE).unwrap();
        assert_eq!(c.policy.kind, PolicyKind::Darc);
        assert_eq!(c.policy.delta, 0.2);
        assert_eq!(c.queues.capacity, 4096);
        assert_eq!(c.net.backend, Backend::Udp);
        assert_eq!(c.workers.handler, "spin");
        assert_eq!(c.workers.idle, IdleStrategy::Spin);
        assert_eq!(c.stats.interval_ms, 1000);
    }

    #[test]
    fn a_core_the_machine_lacks_is_named_with_the_way_out() {
        // No machine this runs on has core 100000 available to the tests.
        let e =
            parse_err("cpus: [0, 100000]\nworkers: { number: 1 }\nrequests: [{id: 1, name: A}]");
        let msg = e.to_string();
        assert!(
            msg.contains("cpus[1]") && msg.contains("core 100000"),
            "{msg}"
        );
        assert!(
            msg.contains("needs 2 cores") && msg.contains("pin: false"),
            "{msg}"
        );
    }

    #[test]
    fn shipped_configs_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yml") {
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                if name.contains("client") {
                    continue; // client configs have their own schema (psp-client)
                }
                // Shipped configs may pin cores this machine lacks; check all else.
                let text = std::fs::read_to_string(&path).unwrap();
                let mut cfg: Config = serde_yaml::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                cfg.pin = false;
                cfg.validate()
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                n += 1;
            }
        }
        assert!(n >= 1, "no configs found in {}", dir.display());
    }

    #[test]
    fn invalid_configs_name_the_key() {
        let cases: &[(&str, &str)] = &[
            ("workers: { number: 0 }\nrequests: [{id: 1, name: A}]\npin: false", "workers.number"),
            (
                "cpus: [0, 1]\nworkers: { number: 4 }\nrequests: [{id: 1, name: A}]",
                "workers.number is 4 but cpus lists 2 cores",
            ),
            ("pin: false\nworkers: { number: 1 }\nrequests: []", "requests"),
            (
                "pin: false\nworkers: { number: 1 }\npolicy: { kind: edf, slo: 2000000 }\n\
                 requests: [{id: 1, name: A}]",
                "policy.slo",
            ),
            (
                "pin: false\nworkers: { number: 1 }\npolicy: { kind: edf }\n\
                 requests: [{id: 1, name: A, deadline_ns: 86400000000001}]",
                "requests[0].deadline_ns",
            ),
            (
                "pin: false\nworkers: { number: 1 }\nrequests: [{id: 1, name: A}, {id: 1, name: B}]",
                "requests[1].id",
            ),
            (
                "pin: false\nworkers: { number: 1 }\nrequests: [{id: 1, name: A}, {id: 2, name: A}]",
                "requests[1].name",
            ),
            ("pin: false\nworkers: { number: 1 }\nrequests: [{id: 0, name: A}]", "requests[0].id"),
            (
                "pin: false\nworkers: { number: 1 }\nqueues: { capacity: 0 }\nrequests: [{id: 1, name: A}]",
                "queues.capacity",
            ),
            (
                "pin: false\nworkers: { number: 1 }\npolicy: { delta: -1 }\nrequests: [{id: 1, name: A}]",
                "policy.delta",
            ),
            (
                "pin: false\nworkers: { number: 1 }\npolicy: { kind: dfcfs, depth: 100000000 }\nrequests: [{id: 1, name: A}]",
                "policy.depth: must be at most 65536",
            ),
            (
                "pin: false\nworkers: { number: 1 }\nqueues: { capacity: 16777216 }\nrequests: [{id: 1, name: A}, {id: 2, name: B}, {id: 3, name: C}, {id: 4, name: D}, {id: 5, name: E}]",
                "queues.capacity: 5 request types × 16777216",
            ),
            (
                "pin: false\nworkers: { number: 1 }\ndispatcher: { drain_timeout_ms: 18446744073709551615 }\nrequests: [{id: 1, name: A}]",
                "dispatcher.drain_timeout_ms",
            ),
            (
                "pin: false\nworkers: { number: 1 }\nstats: { interval_ms: 100000000000 }\nrequests: [{id: 1, name: A}]",
                "stats.interval_ms",
            ),
            (
                "pin: false\nworkers: { number: 1 }\npolicy: { kind: fifo }\nrequests: [{id: 1, name: A}]",
                "unknown variant `fifo`",
            ),
            (
                "pin: false\nworkers: { number: 1, colour: red }\nrequests: [{id: 1, name: A}]",
                "unknown field `colour`",
            ),
            (
                "pin: false\nworkers: { number: 2 }\npolicy: { n_resas: [3] }\nrequests: [{id: 1, name: A}]",
                "policy.n_resas",
            ),
            (
                "pin: false\nworkers: { number: 2 }\npolicy: { spillway: 2 }\nrequests: [{id: 1, name: A}]",
                "policy.spillway",
            ),
            (
                "pin: false\nworkers: { number: 1 }\npolicy: { profile: static }\nrequests: [{id: 1, name: A}]",
                "requests[0].mean_ns",
            ),
            (
                "pin: false\nworkers: { number: 1 }\nnet: { max_msg: 4 }\nrequests: [{id: 1, name: A}]",
                "net.max_msg",
            ),
            (
                "pin: false\nworkers: { number: 1 }\nnet: { buffers: 100000000000 }\nrequests: [{id: 1, name: A}]",
                "net.buffers",
            ),
            (
                "pin: false\nworkers: { number: 1 }\nnet: { wire: psp_mb, max_msg: 35 }\nrequests: [{id: 1, name: A}]",
                "net.max_msg: must be at least 36 bytes with net.wire: psp_mb",
            ),
            (
                "pin: false\nworkers: { number: 1, handler: kv }\nnet: { wire: psp_mb }\nrequests: [{id: 1, name: GET}]",
                "net.wire: psp_mb carries no kv operation",
            ),
            (
                "pin: false\nworkers: { number: 1 }\nnet: { wire: psp }\nrequests: [{id: 1, name: A}]",
                "unknown variant `psp`, expected `native` or `psp_mb`",
            ),
            (
                "pin: false\nworkers: { number: 1 }\nnet: { backend: dpdk }\nrequests: [{id: 1, name: A}]",
                "net.ip",
            ),
            (
                "pin: false\nworkers: { number: 1 }\nnet: { backend: dpdk, ip: 255.255.255.255 }\nrequests: [{id: 1, name: A}]",
                "net.ip",
            ),
            (
                "pin: false\nworkers: { number: 1 }\nnet: { backend: dpdk, ip: 127.0.0.1 }\nrequests: [{id: 1, name: A}]",
                "net.ip: 127.0.0.1 cannot be a server's address on a NIC",
            ),
            (
                "pin: false\nworkers: { number: 1 }\nnet: { backend: dpdk, ip: 10.0.0.1, udp_port: 0 }\nrequests: [{id: 1, name: A}]",
                "net.udp_port",
            ),
            (
                "pin: false\nworkers: { number: 1 }\ndispatcher: { rx_batch: 0 }\nrequests: [{id: 1, name: A}]",
                "dispatcher.rx_batch",
            ),
            (
                "pin: false\nworkers: { number: 1, budget_us: 0 }\nrequests: [{id: 1, name: A}]",
                "workers.budget_us",
            ),
            (
                "pin: false\nworkers: { number: 1 }\nnet: { max_amplification: 0.5 }\nrequests: [{id: 1, name: A}]",
                "net.max_amplification",
            ),
            (
                "pin: false\nworkers: { number: 1, handler: kv }\nkv: { keys: 10, value_size: 4096 }\nrequests: [{id: 1, name: GET}]",
                "kv.value_size",
            ),
            (
                "pin: false\nworkers: { number: 1 }\nkv: { keyz: 10 }\nrequests: [{id: 1, name: A}]",
                "unknown field `keyz`",
            ),
            (
                "pin: false\nworkers: { number: 1 }\nnet: { bind: \"no such host.invalid:1\" }\nrequests: [{id: 1, name: A}]",
                "cannot resolve \"no such host.invalid:1\"",
            ),
            (
                "pin: false\nworkers: { number: 3 }\npolicy: { n_resas: [1, 0, 1] }\nrequests: [{id: 1, name: A}, {id: 2, name: B}]",
                "policy.n_resas: has 3 entries, but there are 2 request types",
            ),
            ("cpus: [0, 0]\nworkers: { number: 1 }\nrequests: [{id: 1, name: A}]", "cpus[1]"),
            (
                "cpus: [0, 100000]\nworkers: { number: 1 }\nrequests: [{id: 1, name: A}]",
                "cpus[1]",
            ),
        ];
        for (yaml, want) in cases {
            let e = parse_err(yaml);
            let text = e.to_string();
            assert!(
                text.contains(want),
                "for {yaml:?}: got {text:?}, want it to mention {want:?}"
            );
        }
    }

    /// `net.bind` takes a host name too (`localhost:0`), as psp-client's `--server` does.
    #[test]
    fn bind_resolves_a_host_name() {
        let c = Config::parse(&format!("{BASE}net: {{ bind: localhost:0 }}\n")).unwrap();
        assert!(c.net.bind.ip().is_loopback(), "{}", c.net.bind);
        assert_eq!(c.net.bind.port(), 0);
    }

    #[test]
    fn settings_with_no_effect_are_named() {
        let base = Config::parse(BASE).unwrap();
        assert!(base.unused_settings().is_empty());
        let c = Config::parse(&format!(
            "{BASE}policy: {{ kind: cfcfs, n_resas: [1], spillway: 1 }}\nkv: {{ keys: 10 }}\n"
        ))
        .unwrap();
        let u = c.unused_settings();
        assert_eq!(u.len(), 3, "{u:?}");
        assert!(
            u[0].starts_with("kv: is set but workers.handler is \"spin\""),
            "{u:?}"
        );
        assert!(
            u[1].starts_with("policy.n_resas is set but policy.kind is cfcfs"),
            "{u:?}"
        );
        assert!(u[2].starts_with("policy.spillway"), "{u:?}");
        // Every key of another policy, when it differs from its default.
        let c = Config::parse(&format!(
            "{BASE}policy: {{ kind: cfcfs, delta: 0.3, window: 10, profile: static, \
             assign: jsq, seed: 7 }}\n"
        ))
        .unwrap();
        let u = c.unused_settings();
        assert_eq!(u.len(), 5, "{u:?}");
        assert!(
            u[0].starts_with("policy.delta is set but policy.kind is cfcfs: only darc"),
            "{u:?}"
        );
        assert!(u[3].starts_with("policy.assign"), "{u:?}");
        assert!(u[3].ends_with("only dfcfs reads it"), "{u:?}");
        assert!(
            u[2].ends_with("only darc, sjf or edf reads it"),
            "profile: {u:?}"
        );
        // A type's deadline: EDF's alone.
        let with_deadline = "pin: false\nworkers: { number: 2 }\nrequests:\n  \
                             - { id: 1, name: A }\n  - { id: 2, name: B, deadline_ns: 50000 }\n";
        let c = Config::parse(&format!("{with_deadline}policy: {{ kind: sjf }}\n")).unwrap();
        assert_eq!(c.requests[1].deadline_ns, Some(50_000));
        assert_eq!(
            c.unused_settings(),
            ["requests[1].deadline_ns is set but policy.kind is sjf: only edf reads it"]
        );
        let c = Config::parse(&format!("{with_deadline}policy: {{ kind: edf }}\n")).unwrap();
        assert_eq!(c.unused_settings(), Vec::<String>::new());
        // EDF's slo, and the profile SJF and EDF read too.
        let c = Config::parse(&format!("{BASE}policy: {{ kind: sjf, slo: 3 }}\n")).unwrap();
        assert_eq!(
            c.unused_settings(),
            ["policy.slo is set but policy.kind is sjf: only edf reads it"]
        );
        for kind in ["sjf", "edf"] {
            let c = Config::parse(&format!(
                "{BASE}policy: {{ kind: {kind}, profile: static, slo: 3 }}\n"
            ))
            .unwrap();
            let expect: &[&str] = if kind == "edf" {
                &[]
            } else {
                &["policy.slo is set but policy.kind is sjf: only edf reads it"]
            };
            assert_eq!(c.unused_settings(), expect, "{kind}");
        }
        // SJF's static profile needs every type's mean, not its ratio.
        let e = parse_err(
            "pin: false\nworkers: { number: 2 }\npolicy: { kind: sjf, profile: static }\n\
             requests:\n  - { id: 1, name: A, mean_ns: 1000 }\n  - { id: 2, name: B }\n",
        );
        assert_eq!(e.key, "requests[1].mean_ns", "{e}");
        Config::parse(
            "pin: false\nworkers: { number: 2 }\npolicy: { kind: sjf, profile: static }\n\
             requests:\n  - { id: 1, name: A, mean_ns: 1000 }\n",
        )
        .unwrap();
        let c = Config::parse(&format!(
            "{BASE}policy: {{ kind: darc, assign: random, seed: 3, depth: 8, delta: 0.3 }}\n"
        ))
        .unwrap();
        // `depth` sizes the buffer pool under every policy: no warning for it.
        let u = c.unused_settings();
        assert_eq!(u.len(), 2, "{u:?}");
        assert!(
            u[1].starts_with("policy.seed is set but policy.kind is darc"),
            "{u:?}"
        );
        let c = Config::parse(&format!(
            "{BASE}net: {{ eal_args: [--no-pci], ip: 10.0.0.1, port: 1, udp_port: 7 }}\n"
        ))
        .unwrap();
        let u = c.unused_settings();
        assert_eq!(u.len(), 4, "{u:?}");
        assert!(
            u[0].starts_with("net.eal_args is set but net.backend is udp: only the dpdk"),
            "{u:?}"
        );
        let c = Config::parse(&format!(
            "{BASE}net: {{ backend: dpdk, ip: 10.0.0.1, bind: 127.0.0.1:7, rcvbuf: 1 }}\n"
        ))
        .unwrap();
        let u = c.unused_settings();
        assert_eq!(u.len(), 2, "{u:?}");
        assert!(
            u[0].starts_with("net.bind is set but net.backend is dpdk: only the udp"),
            "{u:?}"
        );
        let c = Config::parse(&format!("{BASE}cpus: [0, 1]\n")).unwrap();
        assert_eq!(
            c.unused_settings(),
            ["cpus is set but pin is false: threads are not pinned"]
        );
        // Settings that the policy's or the idle strategy's own choices leave unread.
        let c = Config::parse(&format!(
            "{}policy: {{ kind: dfcfs, seed: 7 }}\n\
             dispatcher: {{ idle: spin, max_park_us: 50 }}\n\
             workers: {{ number: 2, idle: yield, max_park_us: 50 }}\n",
            BASE.replace("workers: { number: 2 }\n", "")
        ))
        .unwrap();
        assert_eq!(
            c.unused_settings(),
            [
                "policy.seed is set but policy.assign is round_robin: only random \
                 assignment reads it",
                "dispatcher.max_park_us is set but dispatcher.idle is spin: only park sleeps",
                "workers.max_park_us is set but workers.idle is yield: only park sleeps",
            ]
        );
        let c = Config::parse(&format!(
            "{BASE}policy: {{ kind: dfcfs, assign: random, seed: 7 }}\n\
             dispatcher: {{ idle: park, max_park_us: 50 }}\n"
        ))
        .unwrap();
        assert_eq!(c.unused_settings(), Vec::<String>::new());
        let c = Config::parse(&format!("{BASE}policy: {{ kind: darc, n_resas: [] }}\n")).unwrap();
        assert_eq!(
            c.unused_settings(),
            ["policy.n_resas is empty: every group's cores come from its demand, as without it"]
        );
    }

    #[test]
    fn switching_policy_resets_only_the_other_policies_settings() {
        let every = PolicyConfig {
            kind: PolicyKind::Darc,
            delta: 0.5,
            window: 10,
            profile: Profile::Static,
            slo: 3.0,
            n_resas: Some(vec![1]),
            spillway: Some(0),
            assign: Assign::Jsq,
            depth: 8,
            seed: 9,
        };
        for kind in PolicyKind::ALL {
            let p = every.switched_to(kind);
            assert_eq!(p.kind, kind);
            assert!(p.foreign_keys(&[kind]).is_empty(), "{kind:?}: {p:?}");
            // What `kind` reads is kept, the rest is back to its default.
            assert_eq!(p.depth, 8, "{kind:?}");
            let (darc, dfcfs) = (kind == PolicyKind::Darc, kind == PolicyKind::Dfcfs);
            assert_eq!(p.slo == 3.0, kind == PolicyKind::Edf, "{kind:?}");
            assert_eq!(p.window == 10, darc, "{kind:?}");
            assert_eq!(p.delta == 0.5, darc, "{kind:?}");
            assert_eq!(p.n_resas.is_some(), darc, "{kind:?}");
            assert_eq!(p.spillway.is_some(), darc, "{kind:?}");
            assert_eq!(p.assign == Assign::Jsq, dfcfs, "{kind:?}");
            assert_eq!(p.seed == 9, dfcfs, "{kind:?}");
            assert_eq!(
                p.profile == Profile::Static,
                every
                    .foreign_keys(&[kind])
                    .iter()
                    .all(|&(_, k)| k != "profile"),
                "{kind:?}"
            );
        }
    }

    /// A whole server config switched to a policy draws no no-effect warning: EDF's
    /// per-type deadlines go too, under any other policy.
    #[test]
    fn switching_a_config_drops_edfs_deadlines_under_other_policies() {
        let base = Config::parse(
            "pin: false\nworkers: { number: 2 }\npolicy: { kind: edf, slo: 4 }\nrequests:\n  \
             - { id: 1, name: A, deadline_ns: 9000 }\n",
        )
        .unwrap();
        for kind in PolicyKind::ALL {
            let mut c = base.clone();
            c.switch_policy(kind);
            assert_eq!(c.unused_settings(), Vec::<String>::new(), "{kind:?}");
            let kept = kind == PolicyKind::Edf;
            assert_eq!(c.requests[0].deadline_ns.is_some(), kept, "{kind:?}");
        }
    }

    #[test]
    fn policy_checks_are_shared_and_keyed_by_field() {
        // psp-sim calls these very checks and names its flags after the keys.
        let p = |f: fn(&mut PolicyConfig)| {
            let mut p = PolicyConfig::default();
            f(&mut p);
            p
        };
        let key = |p: PolicyConfig, workers| p.validate(workers).unwrap_err().key;
        assert_eq!(key(p(|p| p.delta = f64::NAN), 4), "delta");
        assert_eq!(key(p(|p| p.window = 0), 4), "window");
        assert_eq!(key(p(|p| p.depth = 0), 4), "depth");
        assert_eq!(
            key(p(|p| p.n_resas = Some(vec![usize::MAX, 2])), 4),
            "n_resas"
        );
        assert_eq!(key(p(|p| p.spillway = Some(4)), 4), "spillway");
        PolicyConfig::default().validate(4).unwrap();
        let stat = p(|p| p.profile = Profile::Static);
        assert!(stat.needs_type_hints());
        let e = stat.validate_types([(Some(1000), Some(0.5)), (None, None)]);
        assert_eq!(e.unwrap_err().key, "[1].mean_ns");
        let e = stat.validate_types([(Some(1000), Some(0.0))]);
        assert_eq!(e.unwrap_err().key, "");
        stat.validate_types([(Some(1000), Some(0.5))]).unwrap();
        // SJF and EDF rank by the means alone: no ratios needed.
        for kind in [PolicyKind::Sjf, PolicyKind::Edf] {
            let mut p = stat.clone();
            p.kind = kind;
            p.validate_types([(Some(1000), None), (Some(5), None)])
                .unwrap();
            let e = p.validate_types([(Some(1000), None), (Some(0), None)]);
            assert_eq!(e.unwrap_err().key, "[1].mean_ns", "{kind:?}");
        }
        assert_eq!(key(p(|p| p.slo = f64::NAN), 4), "slo");
        assert_eq!(key(p(|p| p.slo = -1.0), 4), "slo");
        p(|p| p.slo = 0.0).validate(4).unwrap();
        // Other policies need no hints.
        PolicyConfig::default()
            .validate_types([(None, None)])
            .unwrap();
        let e = QueuesConfig {
            capacity: MAX_QUEUE_CAPACITY + 1,
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.key, "capacity");
        assert_eq!(WorkersConfig::validate_number(0).unwrap_err().key, "number");
        let e = Config::parse(&format!(
            "{BASE}policy: {{ profile: static }}\nqueues: {{ capacity: 0 }}"
        ));
        assert_eq!(e.unwrap_err().key, "queues.capacity");
    }

    #[test]
    fn requests_may_come_from_code() {
        let yaml = "pin: false\nworkers: { number: 1 }\n";
        let e = parse_err(yaml);
        assert_eq!(e.key, "requests");
        assert!(e.msg.contains("App::request_type"), "{e}");
        let mut c = Config::parse_unvalidated(yaml).unwrap();
        assert!(c.requests.is_empty());
        c.requests.push(RequestType::new(1, "A"));
        c.validate().unwrap();
    }

    #[test]
    fn yaml_syntax_errors_have_line_and_column() {
        let e = parse_err("workers: { number: 1\nrequests: [");
        assert!(e.to_string().contains("line"), "{e}");
    }

    /// A key given twice is placed at its second occurrence (serde_yaml says line 1,
    /// the start of the mapping), top-level or nested.
    #[test]
    fn a_duplicate_key_names_both_lines() {
        let e = parse_err(
            "pin: false\ndispatcher: { idle: park }\nrequests: [{ id: 1, name: A }]\ndispatcher: { idle: spin }\n",
        );
        assert!(
            e.to_string()
                .contains("line 4: duplicate key dispatcher (first on line 2)"),
            "{e}"
        );
        let e = parse_err("pin: false\nnet:\n  bind: 127.0.0.1:0\n  max_msg: 2048\n  bind: 127.0.0.1:1\nrequests: [{ id: 1, name: A }]\n");
        assert!(
            e.to_string()
                .contains("line 5: duplicate key bind (first on line 3)"),
            "{e}"
        );
        // The same key in two mappings is no duplicate: the pair is the one within one.
        let e = parse_err("pin: false\ndispatcher:\n  idle: park\nworkers:\n  number: 1\n  idle: park\n  idle: spin\nrequests: [{ id: 1, name: A }]\n");
        assert!(
            e.to_string()
                .contains("line 7: duplicate key idle (first on line 6)"),
            "{e}"
        );
    }

    /// A bad `net.bind` names the key in dotted form, and the position once.
    #[test]
    fn a_bad_bind_address_names_net_bind_and_its_line_once() {
        let e = parse_err(
            "pin: false\nnet: { bind: 127.0.0.1:99999 }\nrequests: [{ id: 1, name: A }]\n",
        );
        let text = e.to_string();
        assert!(
            text.starts_with("line 2, column 6: net.bind: \"127.0.0.1:99999\" is not a HOST:PORT"),
            "{text}"
        );
        assert_eq!(text.matches("line").count(), 1, "{text}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let e = Config::load("/nonexistent/psp.yml").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/psp.yml"), "{e}");
    }
}
