//! kv_store_bench - what the KV store's operations cost without the network: GET,
//! SCAN and SET through the real handler (`Store::serve` on a request buffer), on 1
//! and on N threads sharing the store, so the lock's cost under sharing shows.
//!
//! ```sh
//! cargo run --release --example kv_store_bench -- [keys] [value_size] [scan_len] [threads]
//! ```
//! Prints ns per operation (median of 5 rounds) per thread count. Numbers for this
//! machine are in `results/kv/README.md`.

use std::sync::{Arc, Barrier};
use std::time::Instant;

use persephone::apps::kv::{self, Command, Store};
use persephone::policy::TypeInfo;
use persephone::Request;

/// xorshift64*: cheap, seeded, good enough to pick keys.
fn next(s: &mut u64) -> u64 {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    s.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// Makes request `r` (a random number) into the buffer; returns the payload length.
type Make = Arc<dyn Fn(u64, &mut [u8]) -> usize + Send + Sync>;

/// Runs `ops` operations made by `make` on `threads` threads at once; returns ns/op.
fn run(store: &Arc<Store>, threads: usize, ops: usize, make: &Make) -> f64 {
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let store = store.clone();
            let barrier = barrier.clone();
            let make = make.clone();
            std::thread::spawn(move || {
                let info = TypeInfo {
                    name: "KV".into(),
                    mean_ns: None,
                    ratio: None,
                    deadline_ns: None,
                };
                let mut buf = vec![0u8; 65_536];
                let mut seed = 0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1);
                barrier.wait();
                let start = Instant::now();
                for i in 0..ops {
                    let n = make(next(&mut seed), &mut buf);
                    let mut req = Request::detached(&mut buf, n, 0, 1, i as u64, &info);
                    store.serve(&mut req).expect("a valid request");
                    std::hint::black_box(req.reply_len());
                }
                start.elapsed().as_nanos() as f64 / ops as f64
            })
        })
        .collect();
    let per_thread: Vec<f64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    per_thread.iter().sum::<f64>() / threads as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| {
            a.parse()
                .expect("numbers: keys value_size scan_len threads")
        })
        .collect();
    let arg = |i: usize, d: u64| args.get(i).copied().unwrap_or(d);
    let (keys, value_size, scan_len, max_threads) = (
        arg(0, 100_000),
        arg(1, 32) as usize,
        arg(2, 256) as u16,
        arg(3, 2),
    );
    let store = Arc::new(Store::preloaded(keys, value_size));
    let get: Make = Arc::new(move |r, buf| {
        let k = kv::key(r % keys);
        Command::Get { key: &k }.encode(buf).unwrap()
    });
    let scan: Make = Arc::new(move |r, buf| {
        let k = kv::key(r % keys);
        Command::Scan {
            start: &k,
            end: None,
            limit: scan_len,
        }
        .encode(buf)
        .unwrap()
    });
    // Overwrites with the value already there: the store keeps its contents.
    let set: Make = Arc::new(move |r, buf| {
        let i = r % keys;
        let k = kv::key(i);
        let mut v = vec![0u8; value_size];
        kv::fill_value(i, &mut v);
        Command::Set { key: &k, value: &v }.encode(buf).unwrap()
    });
    println!(
        "keys {keys}, values {value_size} B, SCAN of {scan_len} pairs; ns per operation \
         (median of 5 rounds)"
    );
    println!(
        "{:>8} {:>10} {:>10} {:>10}",
        "threads", "GET", "SCAN", "SET"
    );
    for threads in 1..=max_threads as usize {
        let m = |f: &Make, ops| median((0..5).map(|_| run(&store, threads, ops, f)).collect());
        println!(
            "{threads:>8} {:>10.0} {:>10.0} {:>10.0}",
            m(&get, 200_000),
            m(&scan, 5_000),
            m(&set, 100_000)
        );
    }
}
