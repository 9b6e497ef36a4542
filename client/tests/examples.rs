//! `examples/custom_handler` under psp-client: the example's service (compiled in from
//! its source) is started in-process with the documented config and loaded with the
//! High Bimodal preset, whose type 1 and 2 requests it serves as HASH and PRIMES.

use std::time::Duration;

use persephone::config::Config;
use persephone::workload::Workload;
use persephone::App;
use psp_client::config::{Plan, Point};
use psp_client::measure::Meta;
use psp_client::schedule::{Arrival, Phase, DEFAULT_SEED};

#[path = "../../examples/custom_handler/service.rs"]
mod service;

#[test]
fn the_custom_handler_example_serves_psp_client() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/quickstart.yml");
    let mut cfg = Config::load_unvalidated(path).unwrap();
    cfg.net.bind = "127.0.0.1:0".parse().unwrap();
    cfg.stats.interval_ms = 0;
    let server = App::new(cfg)
        .request_types(service::request_types())
        .handler(|_| service::Service::new())
        .start()
        .unwrap();
    let w = Workload::preset("high-bimodal").unwrap();
    let plan = Plan {
        server: server.local_addr(),
        meta: Meta {
            label: "custom-handler".into(),
            policy: "darc".into(),
            workers: Some(2),
        },
        points: vec![Point {
            tag: "rate500".into(),
            phases: vec![Phase {
                workload: w,
                rate: 500.0,
                load: None,
                duration: Duration::from_secs(1),
            }],
        }],
        arrival: Arrival::Exponential,
        warmup: Duration::from_millis(100),
        timeout: Duration::from_secs(10),
        seed: DEFAULT_SEED,
        slack: Duration::from_micros(10),
        spin: Duration::from_micros(30),
        max_concurrency: None,
        outdir: None,
        sample: None,
        realtime: false,
        progress: false,
        kv: None,
    };
    let mut out = Vec::new();
    let reports = psp_client::runner::run(&plan, &mut out);
    let stats = server.shutdown();
    let reports = reports.unwrap();
    let all = reports[0].overall();
    assert!(all.sent > 300, "{}", all.sent);
    assert_eq!(
        (all.ok, all.lost),
        (all.sent, 0),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(stats.answered(), stats.received);
    assert_eq!(
        stats
            .types
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        ["HASH", "PRIMES"]
    );
    assert!(stats.types.iter().all(|t| t.completed > 0));
}
