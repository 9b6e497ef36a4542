//! kv.rs - the `kv` workloads: GET and SCAN requests for the KV store
//! (`workers.handler: kv`, [`persephone::apps::kv`]), keys drawn uniformly or from a
//! Zipf law, and every answer checked, not only timed.
//!
//! The server pre-populates keys `0..keys` with values derived from the key
//! ([`kv::fill_value`]); the client is told the same `keys` and `value_size` and so
//! knows every answer without a model of the store:
//!
//! - GET `key(k)`: found, with exactly the value of `k`;
//! - SCAN from `key(k)`, no upper bound, limit `scan_len`: pairs `k, k+1, ...` with
//!   their values, `min(scan_len, keys - k)` of them, or fewer with `more` set if the
//!   server's buffer (`net.max_msg`) cut the reply short; `more` exactly when keys
//!   remain after the last pair.
//!
//! A reply with status `ok` that fails its check is *wrong*: it counts as a
//! `handler_error` rejection in the report (not `ok`, not a latency sample), and is
//! listed per type in the checks line and `checks.csv`. Presets: `kv` (50 % GET /
//! 50 % SCAN, like the RocksDB experiment of the Perséphone paper) and `kv-99.5`
//! (99.5 % GET / 0.5 % SCAN).

use persephone::apps::kv::{self, wire, Command, Outcome, Reply};
use persephone::workload::{ServiceDist, TypeMix, Workload};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Zipf};

use crate::schedule::Schedule;

/// Names of the kv presets.
pub const PRESETS: [&str; 2] = ["kv", "kv-99.5"];

/// How keys are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyDist {
    /// Every key equally likely.
    Uniform,
    /// Key `r - 1` with probability ∝ 1/r^s (the hottest keys are the lowest).
    Zipf(f64),
}

impl KeyDist {
    /// Parses `uniform`, `zipf` (s = 0.99, YCSB's default) or `zipf:S`.
    pub fn parse(s: &str) -> Result<KeyDist, String> {
        match s.trim() {
            "uniform" => Ok(KeyDist::Uniform),
            "zipf" => Ok(KeyDist::Zipf(0.99)),
            other => match other.strip_prefix("zipf:").map(str::parse::<f64>) {
                Some(Ok(v)) if v >= 0.0 && v.is_finite() => Ok(KeyDist::Zipf(v)),
                Some(_) => Err(format!("{s:?}: the Zipf exponent must be a number >= 0")),
                None => Err(format!("{s:?}: uniform, zipf or zipf:S")),
            },
        }
    }

    pub fn name(&self) -> String {
        match self {
            KeyDist::Uniform => "uniform".into(),
            KeyDist::Zipf(s) => format!("zipf:{s}"),
        }
    }
}

/// What the kv workload sends; `keys` and `value_size` must match the server's `kv:`
/// section.
#[derive(Debug, Clone, PartialEq)]
pub struct KvSpec {
    pub keys: u64,
    pub value_size: usize,
    /// Pairs a SCAN asks for.
    pub scan_len: u16,
    pub dist: KeyDist,
}

impl Default for KvSpec {
    /// The shipped `configs/kv.yml`: 100 000 keys of 32-byte values; SCANs of 256.
    fn default() -> Self {
        KvSpec {
            keys: 100_000,
            value_size: 32,
            scan_len: 256,
            dist: KeyDist::Uniform,
        }
    }
}

/// Nominal cost of a GET in the `kv` handler (ns): turns a `--load` into a rate, and
/// is the denominator of slowdown. Measured by `examples/kv_store_bench` on the
/// development machine over 100 000 keys (`results/kv/`); handler time only, so
/// kernel UDP's own cost per request makes a server saturate below load 1.
pub const GET_NS: u64 = 600;
/// Nominal cost of each pair a SCAN returns (ns), as [`GET_NS`]: a SCAN of 256
/// 32-byte pairs took 4.9 µs.
pub const SCAN_PAIR_NS: u64 = 17;

impl KvSpec {
    /// Checks the values (`key` names the flag or YAML key prefix for errors).
    pub fn validate(&self) -> Result<(), String> {
        if self.keys == 0 {
            return Err("keys: must be at least 1 (the server's kv.keys)".into());
        }
        if self.scan_len == 0 {
            return Err("scan_len: must be at least 1".into());
        }
        if self.value_size > wire::MAX_VALUE_LEN {
            return Err(format!(
                "value_size: {} is more than {}",
                self.value_size,
                wire::MAX_VALUE_LEN
            ));
        }
        if let KeyDist::Zipf(s) = self.dist {
            Zipf::new(self.keys as f64, s).map_err(|e| format!("dist: {e}"))?;
        }
        Ok(())
    }

    /// Nominal service time of a SCAN of `scan_len` pairs (ns).
    pub fn scan_ns(&self) -> u64 {
        GET_NS + SCAN_PAIR_NS * self.scan_len as u64
    }

    /// A kv preset with nominal service times for this spec.
    pub fn preset(&self, name: &str) -> Option<Workload> {
        let get_share = match name {
            "kv" => 0.5,
            "kv-99.5" => 0.995,
            _ => return None,
        };
        let ty = |id, name: &str, ratio, ns| TypeMix {
            id,
            name: name.into(),
            ratio,
            service: ServiceDist::Constant { ns },
            deadline_ns: None,
        };
        Some(Workload {
            name: name.into(),
            types: vec![
                ty(1, "GET", get_share, GET_NS),
                ty(2, "SCAN", 1.0 - get_share, self.scan_ns()),
            ],
        })
    }
}

/// The operation a kv request of a schedule type performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvOp {
    Get,
    Scan,
}

impl KvOp {
    /// The operation of a type named `GET` or `SCAN` (any case).
    pub fn of_type(name: &str) -> Option<KvOp> {
        if name.eq_ignore_ascii_case("GET") {
            Some(KvOp::Get)
        } else if name.eq_ignore_ascii_case("SCAN") {
            Some(KvOp::Scan)
        } else {
            None
        }
    }
}

/// Per-request keys of a schedule, and how to encode and check each request.
#[derive(Debug, Clone)]
pub struct KvPlan {
    pub spec: KvSpec,
    /// Operation of each schedule type (indexed like `Schedule::types`).
    ops: Vec<KvOp>,
    /// Key index of each request.
    keys: Vec<u64>,
}

/// Bytes of the largest request payload the kv workload sends (a SCAN).
pub const MAX_REQUEST: usize = 4 + 8 + 2 + 2;

/// The longest reply a kv request can get: a whole UDP datagram (whatever the
/// server's value size, which need not be the one a run expects).
pub const MAX_REPLY: usize = 65_507;

impl KvPlan {
    /// Draws a key for every request of `s` from a stream seeded by `seed` (apart from
    /// the schedule's own, so a kv run has the same send times as any other).
    pub fn new(spec: &KvSpec, s: &Schedule, seed: u64) -> Result<KvPlan, String> {
        spec.validate()?;
        let ops = s
            .types
            .iter()
            .map(|t| {
                KvOp::of_type(&t.name).ok_or_else(|| {
                    format!(
                        "type {} ({}): the kv workload sends GET and SCAN requests only \
                         (name the types GET and SCAN)",
                        t.id, t.name
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x006b_765f_6b65_7973);
        let n = spec.keys;
        let keys = match spec.dist {
            KeyDist::Uniform => (0..s.len()).map(|_| rng.random_range(0..n)).collect(),
            KeyDist::Zipf(e) => {
                let z = Zipf::new(n as f64, e).map_err(|e| format!("dist: {e}"))?;
                (0..s.len())
                    .map(|_| (z.sample(&mut rng) as u64).clamp(1, n) - 1)
                    .collect()
            }
        };
        Ok(KvPlan {
            spec: spec.clone(),
            ops,
            keys,
        })
    }

    /// The key index of request `i`.
    pub fn key(&self, i: usize) -> u64 {
        self.keys[i]
    }

    /// Writes request `i` (of schedule type `ty`) into `buf`; returns its length.
    pub fn encode(&self, i: usize, ty: usize, buf: &mut [u8; MAX_REQUEST]) -> usize {
        let k = kv::key(self.keys[i]);
        let cmd = match self.ops[ty] {
            KvOp::Get => Command::Get { key: &k },
            KvOp::Scan => Command::Scan {
                start: &k,
                end: None,
                limit: self.spec.scan_len,
            },
        };
        // The largest command is MAX_REQUEST bytes: it always fits.
        cmd.encode(buf).unwrap_or(0)
    }

    /// Whether `payload`, the `ok` reply to request `i` of type `ty`, is right.
    pub fn check(&self, i: usize, ty: usize, payload: &[u8]) -> bool {
        let Ok(r) = Reply::parse(payload) else {
            return false;
        };
        let k = self.keys[i];
        let n = self.spec.keys;
        let size = self.spec.value_size;
        match self.ops[ty] {
            KvOp::Get => {
                r.outcome == Outcome::Ok
                    && !r.more
                    && r.count == 1
                    && r.body.len() == size
                    && kv::value_matches(k, r.body)
            }
            KvOp::Scan => {
                let count = r.count as u64;
                let full = (self.spec.scan_len as u64).min(n - k);
                let more_ok = r.more == (k + count < n);
                // Cut short by the server's buffer: fewer pairs, `more` set.
                let count_ok = count == full || (r.more && count >= 1 && count < full);
                if r.outcome != Outcome::Ok || !more_ok || !count_ok {
                    return false;
                }
                let mut want = k;
                for p in r.pairs() {
                    match p {
                        Ok((key, v))
                            if key == kv::key(want)
                                && v.len() == size
                                && kv::value_matches(want, v) =>
                        {
                            want += 1
                        }
                        _ => return false,
                    }
                }
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{Arrival, Phase, DEFAULT_SEED};
    use persephone::apps::kv::Store;
    use persephone::policy::TypeInfo;
    use persephone::workers::Request;
    use std::time::Duration;

    fn schedule(w: Workload, n_per_s: f64) -> Schedule {
        Schedule::build(
            &[Phase {
                workload: w,
                rate: n_per_s,
                load: None,
                duration: Duration::from_secs(1),
            }],
            Duration::ZERO,
            Arrival::Exponential,
            DEFAULT_SEED,
        )
        .unwrap()
    }

    /// Serves request `i` of `plan` from `store` through the real handler; returns
    /// the reply payload.
    fn serve(store: &Store, plan: &KvPlan, s: &Schedule, i: usize, room: usize) -> Vec<u8> {
        let mut req = [0u8; MAX_REQUEST];
        let n = plan.encode(i, s.ty[i] as usize, &mut req);
        let mut buf = vec![0u8; room];
        buf[..n].copy_from_slice(&req[..n]);
        let info = TypeInfo {
            name: "KV".into(),
            mean_ns: None,
            ratio: None,
            deadline_ns: None,
        };
        let mut r = Request::detached(&mut buf, n, 0, 1, i as u64, &info);
        store.serve(&mut r).unwrap();
        let len = r.reply_len();
        buf.truncate(len);
        buf
    }

    #[test]
    fn right_answers_pass_and_wrong_ones_fail() {
        let spec = KvSpec {
            keys: 1000,
            value_size: 16,
            scan_len: 20,
            dist: KeyDist::Uniform,
        };
        let s = schedule(spec.preset("kv").unwrap(), 2000.0);
        let plan = KvPlan::new(&spec, &s, 1).unwrap();
        let store = Store::preloaded(1000, 16);
        let wrong_size = Store::preloaded(1000, 17);
        let fewer_keys = Store::preloaded(990, 16);
        let (mut gets, mut scans) = (0, 0);
        for i in 0..s.len() {
            let ty = s.ty[i] as usize;
            let op = plan.ops[ty];
            let r = serve(&store, &plan, &s, i, 4096);
            assert!(
                plan.check(i, ty, &r),
                "request {i} ({op:?} {})",
                plan.key(i)
            );
            // A reply for another key, a value of the wrong size, a store missing keys.
            let j = (0..s.len())
                .find(|&j| s.ty[j] == s.ty[i] && plan.key(j) != plan.key(i))
                .unwrap();
            assert!(!plan.check(j, ty, &r));
            assert!(!plan.check(i, ty, &serve(&wrong_size, &plan, &s, i, 4096)));
            if plan.key(i) >= 990 {
                assert!(!plan.check(i, ty, &serve(&fewer_keys, &plan, &s, i, 4096)));
            }
            // A flipped byte anywhere in the body.
            let mut bad = r.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(!plan.check(i, ty, &bad));
            match op {
                KvOp::Get => gets += 1,
                KvOp::Scan => scans += 1,
            }
        }
        assert!(gets > 500 && scans > 500, "{gets} {scans}");
    }

    #[test]
    fn scans_cut_short_by_the_buffer_are_accepted_with_more() {
        let spec = KvSpec {
            keys: 1000,
            value_size: 16,
            scan_len: 100,
            dist: KeyDist::Uniform,
        };
        let s = schedule(spec.preset("kv").unwrap(), 500.0);
        let plan = KvPlan::new(&spec, &s, 2).unwrap();
        let store = Store::preloaded(1000, 16);
        let i = (0..s.len())
            .find(|&i| plan.ops[s.ty[i] as usize] == KvOp::Scan && plan.key(i) < 900)
            .unwrap();
        let ty = s.ty[i] as usize;
        // Room for 10 pairs of 4 + 8 + 16 bytes after the 4-byte header.
        let r = serve(&store, &plan, &s, i, 4 + 10 * 28);
        let reply = Reply::parse(&r).unwrap();
        assert_eq!((reply.count, reply.more), (10, true));
        assert!(plan.check(i, ty, &r));
        // But a truncated reply must say `more`.
        let mut no_more = r.clone();
        no_more[1] = 0;
        assert!(!plan.check(i, ty, &no_more));
    }

    #[test]
    fn keys_follow_the_distribution() {
        let mut spec = KvSpec {
            keys: 100,
            ..KvSpec::default()
        };
        let s = schedule(spec.preset("kv-99.5").unwrap(), 100_000.0);
        let plan = KvPlan::new(&spec, &s, 3).unwrap();
        let mut hist = [0u32; 100];
        for i in 0..s.len() {
            hist[plan.key(i) as usize] += 1;
        }
        let expect = s.len() as f64 / 100.0;
        assert!(hist
            .iter()
            .all(|&c| (c as f64 - expect).abs() < 6.0 * expect.sqrt()));
        spec.dist = KeyDist::Zipf(0.99);
        let plan = KvPlan::new(&spec, &s, 3).unwrap();
        let mut hist = [0u32; 100];
        for i in 0..s.len() {
            hist[plan.key(i) as usize] += 1;
        }
        // Zipf(0.99) over 100 keys: key 0 takes about 19 %, key 9 about 2 %.
        let share = |k: usize| hist[k] as f64 / s.len() as f64;
        assert!((share(0) - 0.19).abs() < 0.02, "{}", share(0));
        assert!(share(0) > 5.0 * share(9));
        assert!(hist.iter().all(|&c| c > 0));
    }

    #[test]
    fn specs_and_dists_are_validated() {
        assert_eq!(KeyDist::parse("zipf").unwrap(), KeyDist::Zipf(0.99));
        assert_eq!(KeyDist::parse("zipf:1.2").unwrap(), KeyDist::Zipf(1.2));
        assert_eq!(KeyDist::parse("uniform").unwrap(), KeyDist::Uniform);
        assert!(KeyDist::parse("zipf:-1").is_err());
        assert!(KeyDist::parse("normal").is_err());
        let bad = KvSpec {
            keys: 0,
            ..KvSpec::default()
        };
        assert!(bad.validate().unwrap_err().starts_with("keys"));
        let s = schedule(Workload::preset("high-bimodal").unwrap(), 100.0);
        let e = KvPlan::new(&KvSpec::default(), &s, 1).unwrap_err();
        assert!(e.contains("GET and SCAN"), "{e}");
        assert!(KvSpec::default().preset("nope").is_none());
        let w = KvSpec::default().preset("kv-99.5").unwrap();
        assert!((w.share(0) - 0.995).abs() < 1e-12);
    }
}
