//! What the README tells users to run, under psp-client: `examples/custom_handler`'s
//! service (compiled in from its source) loaded with the High Bimodal preset, whose
//! type 1 and 2 requests it serves as HASH and PRIMES; and the TPC-C pair
//! `configs/tpcc-small.yml` + `configs/tpcc-client.yml`.

use std::time::Duration;

use persephone::config::Config;
use persephone::proto::Status;
use persephone::workload::Workload;
use persephone::App;
use psp_client::config::{Plan, RunArgs};
use psp_client::measure::Meta;

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
    let mut plan = Plan::new(server.local_addr(), w, 500.0, Duration::from_secs(1));
    plan.meta = Meta {
        label: "custom-handler".into(),
        policy: "darc".into(),
        workers: Some(2),
    };
    plan.warmup = Duration::from_millis(100);
    plan.timeout = Duration::from_secs(10);
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

#[test]
fn the_tpcc_pair_serves_every_transaction_type() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs");
    let mut cfg = Config::load(format!("{dir}/tpcc-small.yml")).unwrap();
    cfg.net.bind = "127.0.0.1:0".parse().unwrap();
    cfg.stats.interval_ms = 0;
    let server = App::new(cfg).start().unwrap();
    // The shipped client config, shortened and aimed at the ephemeral port; a low load
    // (flags win over the file).
    let args = RunArgs {
        config_path: Some(format!("{dir}/tpcc-client.yml").into()),
        port: Some(server.local_addr().port()),
        loads: Some(psp_client::config::Loads(vec![0.05])),
        duration: Some(Duration::from_secs(1)),
        warmup: Some(Duration::from_millis(100)),
        timeout: Some(Duration::from_secs(10)),
        quiet: true,
        ..RunArgs::default()
    };
    let mut plan = args.plan().unwrap();
    assert_eq!(plan.points.len(), 1);
    assert_eq!(plan.points[0].phases[0].workload.name, "tpcc");
    plan.outdir = None;
    let mut out = Vec::new();
    let reports = psp_client::runner::run(&plan, &mut out);
    let stats = server.shutdown();
    let r = &reports.unwrap()[0];
    let names: Vec<&str> = r.types.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Payment",
            "OrderStatus",
            "NewOrder",
            "Delivery",
            "StockLevel"
        ]
    );
    for t in &r.types {
        assert!(t.sent > 0, "{}", t.name);
        assert_eq!((t.ok, t.lost), (t.sent, 0), "{}", t.name);
        // No reply before the server burnt the service time the request carried.
        let lat = t.latency_us().unwrap();
        assert!(
            lat.at[0] >= t.service_mean_ns().unwrap() / 1e3,
            "{}: {lat:?}",
            t.name
        );
    }
    assert_eq!(stats.answered(), stats.replies_with(Status::Ok));
}
