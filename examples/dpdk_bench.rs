//! dpdk_bench.rs - round-trip latency over DPDK memif and kernel UDP: a bare DPDK echo
//! server (no scheduler), closed-loop ping clients for DPDK and for UDP, and the plot.
//! `scripts/bench-dpdk.sh` runs them all; each piece also runs alone:
//!
//! ```text
//! dpdk_bench echo --eal "<EAL args>" --ip 10.0.0.1 [--udp-port 6789]
//! dpdk_bench ping --cfg configs/dpdk-memif-client.yml --out q.csv [-n 200000]
//! dpdk_bench udp-ping --server 127.0.0.1:6789 --out q.csv [-n 200000]
//! dpdk_bench plot --dir results/dpdk
//! ```
//!
//! A ping sends one request (our header, type 1, 8 payload bytes), waits for its
//! reply, and records the round trip in TSC cycles; after a warm-up it writes the
//! latency quantiles (0.1 % steps plus the tail) as `quantile,rtt_ns` CSV.

#[cfg(not(feature = "dpdk"))]
fn main() {
    eprintln!("dpdk_bench: rebuild with `--features dpdk`");
    std::process::exit(2);
}

#[cfg(feature = "dpdk")]
fn main() -> std::process::ExitCode {
    match bench::main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dpdk_bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "dpdk")]
mod bench {
    use std::fmt::Write as _;
    use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use anyhow::{bail, Context, Result};
    use clap::{Parser, Subcommand};
    use persephone::net::dpdk::{self, ClientSection, Dpdk, DpdkClient, DpdkConfig};
    use persephone::net::{Packet, RxQueue, Transport, TxQueue};
    use persephone::proto::{self, Header, Kind, Status, HEADER_LEN};
    use persephone::time::{rdtsc, Clock};

    #[derive(Debug, Parser)]
    #[command(about = "DPDK and UDP round-trip latency: echo server, ping clients, plot")]
    struct Args {
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(Debug, Subcommand)]
    enum Cmd {
        /// Bare DPDK echo server: rx_burst, reply in place, tx. No dispatcher, no
        /// rings, no workers: the floor under psp-app over the same port.
        Echo {
            /// EAL arguments, space-separated.
            #[arg(long)]
            eal: String,
            #[arg(long, default_value_t = 0)]
            port: u16,
            #[arg(long)]
            ip: Ipv4Addr,
            #[arg(long, default_value_t = 6789)]
            udp_port: u16,
        },
        /// DPDK ping client, configured by a client YAML (`server` and `dpdk`).
        Ping {
            #[arg(long)]
            cfg: PathBuf,
            #[arg(long)]
            out: PathBuf,
            #[arg(short, default_value_t = 200_000)]
            n: u64,
            #[arg(long, default_value_t = 20_000)]
            warmup: u64,
            /// Yield the core between empty polls (when sharing it with the server).
            #[arg(long)]
            yield_idle: bool,
        },
        /// Kernel UDP ping client.
        UdpPing {
            #[arg(long)]
            server: SocketAddr,
            #[arg(long)]
            out: PathBuf,
            #[arg(short, default_value_t = 200_000)]
            n: u64,
            #[arg(long, default_value_t = 20_000)]
            warmup: u64,
        },
        /// Cost of handing a core between two threads with sched_yield (run it under
        /// `taskset -c <one cpu>`): what psp-app pays per dispatcher-to-worker
        /// hand-off when both share a core.
        Switch {
            #[arg(short, default_value_t = 100_000)]
            n: u64,
        },
        /// Summary CSV and SVG plot from the quantile CSVs in a directory.
        Plot {
            #[arg(long)]
            dir: PathBuf,
        },
    }

    pub fn main() -> Result<()> {
        match Args::parse().cmd {
            Cmd::Echo {
                eal,
                port,
                ip,
                udp_port,
            } => echo(&eal, port, ip, udp_port),
            Cmd::Ping {
                cfg,
                out,
                n,
                warmup,
                yield_idle,
            } => ping_dpdk(&cfg, &out, n, warmup, yield_idle),
            Cmd::UdpPing {
                server,
                out,
                n,
                warmup,
            } => ping_udp(server, &out, n, warmup),
            Cmd::Switch { n } => {
                switch(n);
                Ok(())
            }
            Cmd::Plot { dir } => plot(&dir),
        }
    }

    fn echo(eal: &str, port: u16, ip: Ipv4Addr, udp_port: u16) -> Result<()> {
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, stop.clone())?;
        }
        let args: Vec<String> = eal.split_whitespace().map(String::from).collect();
        dpdk::init_eal(&args)?;
        let t = Dpdk::new(&DpdkConfig {
            port,
            ip,
            udp_port,
            max_msg: 2048,
            mbufs: 8191,
            start_timeout: Duration::from_secs(10),
        })?;
        // One worker queue: the echo loop receives and transmits on one thread.
        let parts = t.split(1)?;
        let (mut rx, mut tx) = (parts.rx, parts.workers.into_iter().next().unwrap());
        println!("listening on {ip}:{udp_port}");
        let mut pkts = Vec::with_capacity(32);
        let mut served = 0u64;
        while !stop.load(Ordering::Relaxed) {
            if rx.rx_burst(&mut pkts, 32)? == 0 {
                std::hint::spin_loop();
                continue;
            }
            for mut p in pkts.drain(..) {
                if Header::parse(p.msg()).is_ok() {
                    let len = p.msg().len();
                    let n = proto::make_reply(p.buf_mut(), Status::Ok, len - HEADER_LEN);
                    p.set_len(n);
                    tx.send(p);
                    served += 1;
                }
            }
            tx.flush(); // the replies of this burst leave together
        }
        println!("served {served}, tx drops {}", tx.errors());
        Ok(())
    }

    fn request(id: u64) -> [u8; HEADER_LEN + 8] {
        let mut buf = [0u8; HEADER_LEN + 8];
        proto::encode_request(&mut buf, 1, id, 0, &0u64.to_le_bytes()).expect("fits");
        buf
    }

    fn check_reply(p: &[u8], id: u64) -> bool {
        matches!(Header::parse(p), Ok(h) if h.id == id && h.kind == Kind::Reply(Status::Ok))
    }

    fn ping_dpdk(cfg: &Path, out: &Path, n: u64, warmup: u64, yield_idle: bool) -> Result<()> {
        #[derive(serde::Deserialize)]
        struct File {
            server: String,
            dpdk: ClientSection,
        }
        let text =
            std::fs::read_to_string(cfg).with_context(|| format!("reading {}", cfg.display()))?;
        let f: File = serde_yaml::from_str(&text).with_context(|| cfg.display().to_string())?;
        let server: SocketAddrV4 = f.server.parse().context("server")?;
        let ccfg = f.dpdk.client_config(server).map_err(anyhow::Error::msg)?;
        dpdk::init_eal(&f.dpdk.eal_args)?;
        let mut c = DpdkClient::connect(&ccfg)?;
        let clock = Clock::tsc();
        let mut samples = Vec::with_capacity(n as usize);
        let mut lost = 0u64;
        for id in 0..warmup + n {
            let req = request(id);
            let t0 = rdtsc();
            if !c.send(&req) {
                lost += 1;
                continue;
            }
            let deadline = Instant::now() + Duration::from_secs(1);
            let mut done = false;
            while !done {
                if c.recv(|p| done |= check_reply(p, id)) == 0 && yield_idle {
                    std::thread::yield_now();
                }
                if !done && Instant::now() > deadline {
                    lost += 1;
                    break;
                }
            }
            let t1 = rdtsc();
            if done && id >= warmup {
                samples.push(clock.cycles_to_ns(t1.wrapping_sub(t0)));
            }
        }
        finish(samples, lost, out, &format!("dpdk {server}"))
    }

    fn ping_udp(server: SocketAddr, out: &Path, n: u64, warmup: u64) -> Result<()> {
        let sock = UdpSocket::bind("0.0.0.0:0")?;
        sock.connect(server)?;
        sock.set_read_timeout(Some(Duration::from_secs(1)))?;
        let clock = Clock::tsc();
        let mut samples = Vec::with_capacity(n as usize);
        let mut lost = 0u64;
        let mut buf = [0u8; 2048];
        for id in 0..warmup + n {
            let t0 = rdtsc();
            sock.send(&request(id))?;
            let done = loop {
                match sock.recv(&mut buf) {
                    Ok(len) if check_reply(&buf[..len], id) => break true,
                    Ok(_) => continue, // a late reply to an earlier, lost request
                    Err(_) => break false,
                }
            };
            let t1 = rdtsc();
            if !done {
                lost += 1;
            } else if id >= warmup {
                samples.push(clock.cycles_to_ns(t1.wrapping_sub(t0)));
            }
        }
        finish(samples, lost, out, &format!("udp {server}"))
    }

    fn switch(n: u64) {
        use std::sync::atomic::AtomicU64;
        let turn = Arc::new(AtomicU64::new(0));
        let other = turn.clone();
        let peer = std::thread::spawn(move || {
            for i in 0..n {
                while other.load(Ordering::Acquire) != 2 * i + 1 {
                    std::thread::yield_now();
                }
                other.store(2 * i + 2, Ordering::Release);
            }
        });
        let start = Instant::now();
        for i in 0..n {
            turn.store(2 * i + 1, Ordering::Release);
            while turn.load(Ordering::Acquire) != 2 * i + 2 {
                std::thread::yield_now();
            }
        }
        let per_switch = start.elapsed().as_nanos() as f64 / (2 * n) as f64;
        let _ = peer.join();
        println!("sched_yield hand-off between two threads: {per_switch:.0} ns");
    }

    /// Quantiles written: every 0.1 %, plus the tail.
    fn grid() -> Vec<f64> {
        let mut q: Vec<f64> = (0..=1000).map(|i| f64::from(i) / 1000.0).collect();
        q.extend([0.9995, 0.9999, 0.99995, 0.99999]);
        q.sort_by(f64::total_cmp);
        q
    }

    fn quantile(sorted: &[f64], q: f64) -> f64 {
        let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[i]
    }

    fn finish(mut samples: Vec<f64>, lost: u64, out: &Path, what: &str) -> Result<()> {
        if samples.is_empty() {
            bail!("{what}: no samples ({lost} lost)");
        }
        samples.sort_by(f64::total_cmp);
        let mut csv = String::from("quantile,rtt_ns\n");
        for q in grid() {
            let _ = writeln!(csv, "{q},{:.1}", quantile(&samples, q));
        }
        std::fs::write(out, csv).with_context(|| format!("writing {}", out.display()))?;
        println!(
            "{what}: n={} lost={lost} p50={:.2}us p99={:.2}us p99.9={:.2}us max={:.2}us",
            samples.len(),
            quantile(&samples, 0.5) / 1e3,
            quantile(&samples, 0.99) / 1e3,
            quantile(&samples, 0.999) / 1e3,
            samples[samples.len() - 1] / 1e3,
        );
        if lost > 0 {
            bail!("{what}: {lost} requests lost");
        }
        Ok(())
    }

    /// The runs the plot knows, in plot order: file stem, label, colour.
    const RUNS: [(&str, &str, &str); 3] = [
        (
            "bare-memif",
            "bare DPDK memif echo (no scheduler)",
            "#2a9d8f",
        ),
        ("psp-app-memif", "psp-app over DPDK memif", "#e76f51"),
        ("psp-app-udp", "psp-app over kernel UDP", "#264653"),
    ];

    /// One run's latency quantiles, as plotted.
    struct Curve {
        stem: &'static str,
        label: &'static str,
        colour: &'static str,
        /// (quantile, round trip in ns)
        points: Vec<(f64, f64)>,
    }

    impl Curve {
        fn at(&self, q: f64) -> f64 {
            self.points
                .iter()
                .find(|(p, _)| (*p - q).abs() < 1e-9)
                .map_or(f64::NAN, |p| p.1)
        }
    }

    fn plot(dir: &Path) -> Result<()> {
        let mut curves = Vec::new();
        for (stem, label, colour) in RUNS {
            let path = dir.join(format!("{stem}.csv"));
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let points: Vec<(f64, f64)> = text
                .lines()
                .skip(1)
                .filter_map(|l| {
                    let (q, v) = l.split_once(',')?;
                    Some((q.parse().ok()?, v.parse().ok()?))
                })
                .collect();
            if points.is_empty() {
                bail!("{}: no data", path.display());
            }
            curves.push(Curve {
                stem,
                label,
                colour,
                points,
            });
        }
        let mut summary = String::from("run,p50_us,p99_us,p99.9_us,max_us\n");
        for c in &curves {
            let _ = writeln!(
                summary,
                "{},{:.3},{:.3},{:.3},{:.3}",
                c.stem,
                c.at(0.5) / 1e3,
                c.at(0.99) / 1e3,
                c.at(0.999) / 1e3,
                c.at(1.0) / 1e3
            );
        }
        std::fs::write(dir.join("summary.csv"), &summary)?;
        print!("{summary}");
        std::fs::write(dir.join("latency.svg"), svg(&curves))?;
        Ok(())
    }

    /// Latency CDF: x = round-trip time (log scale), y = quantile on a "nines" scale
    /// (0, 0.9, 0.99, 0.999, 0.9999 equally spaced), one line per run.
    fn svg(curves: &[Curve]) -> String {
        let (w, h, left, right, top, bottom) = (760.0, 440.0, 70.0, 50.0, 40.0, 110.0);
        let (pw, ph) = (w - left - right, h - top - bottom);
        let all = curves.iter().flat_map(|c| c.points.iter().map(|p| p.1));
        let lo = all.clone().fold(f64::INFINITY, f64::min).max(1.0);
        let hi = all.fold(0.0, f64::max).max(lo * 10.0);
        let (x0, x1) = ((lo / 1e3).log10().floor(), (hi / 1e3).log10().ceil());
        let max_nines = 4.0;
        let x = |ns: f64| left + ((ns.max(1.0) / 1e3).log10() - x0) / (x1 - x0) * pw;
        let y = |q: f64| {
            let nines = (-(1.0 - q).max(1e-4).log10()).min(max_nines);
            top + ph - nines / max_nines * ph
        };
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
             font-family=\"sans-serif\" font-size=\"12\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">\
             Round-trip latency, 1 worker, echo (closed loop, one request in flight)</text>\n",
            w / 2.0
        );
        for e in (x0 as i32)..=(x1 as i32) {
            let xv = left + (f64::from(e) - x0) / (x1 - x0) * pw;
            let label = 10f64.powi(e);
            let _ = writeln!(
                s,
                "<line x1=\"{xv:.1}\" y1=\"{top}\" x2=\"{xv:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\
                 <text x=\"{xv:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label} µs</text>",
                top + ph,
                top + ph + 16.0
            );
        }
        for (q, label) in [
            (0.0, "0"),
            (0.9, "p90"),
            (0.99, "p99"),
            (0.999, "p99.9"),
            (0.9999, "p99.99"),
        ] {
            let yv = y(q);
            let _ = writeln!(
                s,
                "<line x1=\"{left}\" y1=\"{yv:.1}\" x2=\"{:.1}\" y2=\"{yv:.1}\" stroke=\"#ddd\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>",
                left + pw,
                left - 6.0,
                yv + 4.0
            );
        }
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{y50:.1}\" x2=\"{:.1}\" y2=\"{y50:.1}\" stroke=\"#bbb\" \
             stroke-dasharray=\"4 3\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">p50</text>",
            left + pw,
            left - 6.0,
            y(0.5) + 4.0,
            y50 = y(0.5)
        );
        for (i, c) in curves.iter().enumerate() {
            let path: Vec<String> = c
                .points
                .iter()
                .filter(|(q, _)| *q <= 0.9999)
                .map(|(q, v)| format!("{:.1},{:.1}", x(*v), y(*q)))
                .collect();
            let _ = writeln!(
                s,
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>",
                c.colour,
                path.join(" ")
            );
            let ly = top + ph + 40.0 + 18.0 * i as f64;
            let _ = writeln!(
                s,
                "<line x1=\"{left}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{}\" \
                 stroke-width=\"3\"/><text x=\"{:.1}\" y=\"{:.1}\">{}: p50 {:.2} µs, p99 {:.2} µs, \
                 p99.9 {:.2} µs</text>",
                left + 24.0,
                c.colour,
                left + 30.0,
                ly + 4.0,
                c.label,
                c.at(0.5) / 1e3,
                c.at(0.99) / 1e3,
                c.at(0.999) / 1e3
            );
        }
        s.push_str("</svg>\n");
        s
    }
}
