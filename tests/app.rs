//! The daemon in-process through `App`: custom handlers and classifiers, handler
//! panics, full queues, and graceful shutdown.

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use persephone::config::Config;
use persephone::proto::{self, Header, Kind, Status, HEADER_LEN};
use persephone::{App, HandlerError, Request, Server};

fn config(workers: usize, capacity: usize, extra: &str) -> Config {
    Config::parse(&format!(
        "pin: false
dispatcher: {{ idle: park }}
workers: {{ number: {workers}, handler: echo, idle: park }}
policy: {{ kind: cfcfs }}
net: {{ bind: 127.0.0.1:0 }}
queues: {{ capacity: {capacity} }}
requests:
  - {{ id: 1, name: A }}
  - {{ id: 2, name: B }}
stats: {{ interval_ms: 0 }}
{extra}"
    ))
    .unwrap()
}

struct Client {
    sock: UdpSocket,
    server: SocketAddr,
}

impl Client {
    fn new(server: &Server) -> Client {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Client {
            sock,
            server: server.local_addr(),
        }
    }

    fn send(&self, ty: u32, id: u64, payload: &[u8]) {
        let mut buf = vec![0; HEADER_LEN + payload.len()];
        proto::encode_request(&mut buf, ty, id, 0, payload).unwrap();
        self.sock.send_to(&buf, self.server).unwrap();
    }

    fn recv(&self) -> (Header, Vec<u8>) {
        let mut buf = [0u8; 2048];
        let (n, _) = self.sock.recv_from(&mut buf).expect("no reply");
        let h = Header::parse(&buf[..n]).unwrap();
        (h, buf[HEADER_LEN..n].to_vec())
    }
}

type BoxedHandler = Box<dyn FnMut(&mut Request<'_>) -> Result<(), HandlerError> + Send>;

/// A handler factory whose handlers tell the test when they start a request of type
/// A (through `started`) and then wait for permission (`go`) to finish it.
struct Gate {
    started: mpsc::Receiver<u64>,
    go: mpsc::Sender<()>,
}

fn gated() -> (impl Fn(usize) -> BoxedHandler + Send + Sync, Gate) {
    let (started_tx, started_rx) = mpsc::channel::<u64>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = Arc::new(Mutex::new(go_rx));
    let started_tx = Arc::new(Mutex::new(started_tx));
    let factory = move |_w: usize| {
        let go_rx = go_rx.clone();
        let started_tx = started_tx.lock().unwrap().clone();
        Box::new(move |req: &mut Request<'_>| {
            if req.type_id() == 1 {
                started_tx.send(req.id()).unwrap();
                go_rx
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(30))
                    .unwrap();
            }
            req.echo();
            Ok(())
        }) as BoxedHandler
    };
    (
        factory,
        Gate {
            started: started_rx,
            go: go_tx,
        },
    )
}

/// Waits (bounded) until the published counters show `n` requests of type index `ty`
/// accepted: woken by each snapshot the dispatcher publishes (the config sets
/// `stats.interval_ms`).
fn wait_accepted(server: &Server, ty: usize, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut seen = 0;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let (number, stats) = server
            .next_stats(seen, left)
            .expect("requests never queued");
        if stats.types.get(ty).map_or(0, |t| t.accepted) >= n {
            return;
        }
        seen = number;
    }
}

#[test]
fn each_published_snapshot_is_newer_than_the_last() {
    let mut cfg = config(1, 16, "");
    cfg.stats.interval_ms = 5;
    let server = App::new(cfg).start().unwrap();
    assert_eq!(server.stats().received, 0, "the default before the first");
    let c = Client::new(&server);
    c.send(1, 7, b"");
    c.recv();
    let mut seen = 0;
    // Snapshots are numbered from 1; each wait returns a newer one, until one shows
    // the request.
    loop {
        let (n, stats) = server
            .next_stats(seen, Duration::from_secs(20))
            .expect("no snapshot");
        assert!(n > seen, "snapshot {n} after {seen}");
        seen = n;
        if stats.replies_with(Status::Ok) == 1 {
            break;
        }
    }
    assert!(server.shutdown().balanced());
}

#[test]
fn custom_handler_replies_in_place() {
    let server = App::new(config(2, 64, ""))
        .handler(|_| {
            |req: &mut Request<'_>| -> Result<(), HandlerError> {
                let n = req.payload().len();
                req.reply_buf(n)
                    .map_err(|_| HandlerError::Failed)?
                    .reverse();
                Ok(())
            }
        })
        .start()
        .unwrap();
    let c = Client::new(&server);
    c.send(2, 42, b"abc");
    let (h, body) = c.recv();
    assert_eq!((h.kind, h.id, h.ty), (Kind::Reply(Status::Ok), 42, 2));
    assert_eq!(body, b"cba");
    let stats = server.shutdown();
    assert!(stats.balanced(), "{stats}");
}

#[test]
fn the_dispatchers_load_is_measured_within_its_run_time() {
    let server = App::new(config(2, 64, "")).start().unwrap();
    let c = Client::new(&server);
    for id in 0..200 {
        c.send(1, id, b"x");
        assert_eq!(c.recv().0.id, id);
    }
    let stats = server.shutdown();
    // 200 requests, each in turns that found work: some busy time, never more than
    // the loop ran (neither is clamped to the other).
    assert!(stats.busy_ns > 0, "{stats}");
    assert!(stats.busy_ns <= stats.run_ns, "{stats}");
    // Each is sent after the previous reply, which a worker sends only after the turn
    // that dispatched the previous request: every request arrives in a later turn.
    assert!(stats.busy_turns >= 200, "{stats}");
    assert!(stats.to_string().contains("dispatcher busy"), "{stats}");
}

#[test]
fn an_idle_dispatcher_is_not_busy() {
    let server = App::new(config(2, 64, "")).start().unwrap();
    let stats = server.shutdown();
    // No request, no completion, no dispatch: no turn found work, however many ran.
    assert!(stats.run_ns > 0, "{stats}");
    assert_eq!((stats.busy_turns, stats.busy_ns), (0, 0), "{stats}");
}

#[test]
fn a_panicking_handler_answers_handler_error_and_keeps_serving() {
    let server = App::new(config(1, 64, ""))
        .handler(|_| {
            |req: &mut Request<'_>| -> Result<(), HandlerError> {
                match req.payload() {
                    b"panic" => panic!("handler panicked on purpose"),
                    b"bad" => Err(HandlerError::BadRequest),
                    _ => {
                        req.echo();
                        Ok(())
                    }
                }
            }
        })
        .start()
        .unwrap();
    let c = Client::new(&server);
    for (i, (payload, status)) in [
        (&b"panic"[..], Status::HandlerError),
        (b"fine", Status::Ok),
        (b"bad", Status::BadRequest),
        (b"panic", Status::HandlerError),
        (b"still fine", Status::Ok),
    ]
    .into_iter()
    .enumerate()
    {
        c.send(1, i as u64, payload);
        let (h, body) = c.recv();
        assert_eq!((h.id, h.kind), (i as u64, Kind::Reply(status)));
        if status == Status::Ok {
            assert_eq!(body, payload);
        } else {
            assert!(body.is_empty());
        }
    }
    let stats = server.shutdown();
    assert_eq!(stats.panics, 2, "{stats}");
    assert_eq!(stats.replies_with(Status::HandlerError), 2);
    assert!(stats.balanced(), "{stats}");
}

#[test]
fn a_full_queue_answers_queue_full_at_once() {
    let (factory, Gate { started, go }) = gated();
    let server = App::new(config(1, 1, "")).handler(factory).start().unwrap();
    let c = Client::new(&server);
    c.send(1, 0, b"");
    assert_eq!(started.recv_timeout(Duration::from_secs(20)).unwrap(), 0);
    // The worker is busy with 0: 1 fills A's queue (capacity 1), 2 finds it full.
    c.send(1, 1, b"");
    c.send(1, 2, b"");
    let (h, _) = c.recv();
    assert_eq!((h.id, h.kind), (2, Kind::Reply(Status::QueueFull)));
    go.send(()).unwrap();
    assert_eq!(started.recv_timeout(Duration::from_secs(20)).unwrap(), 1);
    go.send(()).unwrap();
    let mut ok: Vec<u64> = (0..2)
        .map(|_| c.recv())
        .map(|(h, _)| {
            assert_eq!(h.kind, Kind::Reply(Status::Ok));
            h.id
        })
        .collect();
    ok.sort();
    assert_eq!(ok, [0, 1]);
    let stats = server.shutdown();
    assert_eq!(stats.types[0].queue_full, 1);
    assert!(stats.balanced(), "{stats}");
}

#[test]
fn shutdown_drains_queued_requests() {
    let (factory, Gate { started, go }) = gated();
    let mut cfg = config(1, 16, "");
    cfg.stats.interval_ms = 5;
    let server = App::new(cfg).handler(factory).start().unwrap();
    let c = Client::new(&server);
    c.send(1, 0, b"");
    assert_eq!(started.recv_timeout(Duration::from_secs(20)).unwrap(), 0);
    c.send(2, 1, b"queued");
    // Requests not yet received when the stop comes stay in the socket: make sure
    // the dispatcher has queued 1 before stopping.
    wait_accepted(&server, 1, 1);
    let stats_flag = server.stop_flag();
    let stopper = std::thread::spawn(move || server.shutdown());
    // Shutdown waits for the running and queued requests; let them finish.
    go.send(()).unwrap();
    let mut got: Vec<(u64, Kind)> = (0..2)
        .map(|_| c.recv())
        .map(|(h, _)| (h.id, h.kind))
        .collect();
    got.sort_by_key(|g| g.0);
    assert_eq!(
        got,
        [(0, Kind::Reply(Status::Ok)), (1, Kind::Reply(Status::Ok))]
    );
    let stats = stopper.join().unwrap();
    assert!(stats_flag.load(std::sync::atomic::Ordering::Relaxed));
    assert_eq!(stats.in_flight, 0);
    assert!(stats.balanced(), "{stats}");
}

#[test]
fn requests_still_queued_after_the_drain_timeout_are_answered_shutdown() {
    let (factory, Gate { started, go }) = gated();
    let mut cfg = config(1, 16, "");
    cfg.dispatcher.drain_timeout_ms = 50;
    cfg.stats.interval_ms = 5;
    let server = App::new(cfg).handler(factory).start().unwrap();
    let c = Client::new(&server);
    c.send(1, 0, b"");
    assert_eq!(started.recv_timeout(Duration::from_secs(20)).unwrap(), 0);
    c.send(2, 1, b"");
    c.send(2, 2, b"");
    wait_accepted(&server, 1, 2);
    let stopper = std::thread::spawn(move || server.shutdown());
    // Both queued requests are answered `shutdown` while 0 is still running.
    for _ in 0..2 {
        let (h, _) = c.recv();
        assert_eq!(h.kind, Kind::Reply(Status::Shutdown), "request {}", h.id);
    }
    go.send(()).unwrap();
    let (h, _) = c.recv();
    assert_eq!((h.id, h.kind), (0, Kind::Reply(Status::Ok)));
    let stats = stopper.join().unwrap();
    assert_eq!(stats.replies_with(Status::Shutdown), 2);
    assert!(stats.balanced(), "{stats}");
}

#[test]
fn a_classifier_can_type_requests_by_payload() {
    let server = App::new(config(1, 16, ""))
        .classifier(|_h: &Header, payload: &[u8]| match payload.first() {
            Some(b'a') => Some(1),
            Some(b'b') => Some(2),
            _ => None,
        })
        .start()
        .unwrap();
    let c = Client::new(&server);
    c.send(9, 1, b"apple");
    c.send(9, 2, b"zebra");
    let mut got: Vec<(u64, Kind)> = (0..2)
        .map(|_| c.recv())
        .map(|(h, _)| (h.id, h.kind))
        .collect();
    got.sort_by_key(|g| g.0);
    assert_eq!(
        got,
        [
            (1, Kind::Reply(Status::Ok)),
            (2, Kind::Reply(Status::UnknownType))
        ]
    );
    let stats = server.shutdown();
    assert_eq!(stats.types[0].accepted, 1);
    assert!(stats.balanced(), "{stats}");
}

#[test]
fn bad_configs_and_handlers_fail_to_start_with_a_reason() {
    let mut cfg = config(1, 16, "");
    cfg.workers.handler = "nope".into();
    let e = App::new(cfg).start().unwrap_err().to_string();
    assert!(e.contains("workers.handler") && e.contains("nope"), "{e}");
    // Built with DPDK, a dpdk backend would initialise EAL in this test process
    // (tests/dpdk_*.rs cover that, each in a process of its own).
    if !cfg!(feature = "dpdk") {
        let mut cfg = config(1, 16, "");
        cfg.net.backend = persephone::config::Backend::Dpdk;
        cfg.net.ip = Some("10.0.0.1".parse().unwrap());
        let e = App::new(cfg).start().unwrap_err().to_string();
        assert!(e.contains("--features dpdk"), "{e}");
    }
}

#[test]
fn a_request_over_budget_is_answered_timeout_and_counted() {
    let mut cfg = config(1, 16, "");
    cfg.workers.budget_us = Some(1_000);
    let server = App::new(cfg)
        .handler(|_| {
            |req: &mut Request<'_>| -> Result<(), HandlerError> {
                if req.payload() == b"slow" {
                    // Well over the 1 ms budget however the machine is loaded.
                    std::thread::sleep(Duration::from_millis(20));
                }
                req.echo();
                Ok(())
            }
        })
        .start()
        .unwrap();
    let c = Client::new(&server);
    c.send(1, 1, b"slow");
    let (h, body) = c.recv();
    assert_eq!((h.id, h.kind), (1, Kind::Reply(Status::Timeout)));
    assert!(body.is_empty(), "an overrun's reply is discarded");
    c.send(1, 2, b"quick");
    let (h, body) = c.recv();
    assert_eq!(
        (h.id, h.kind, body.as_slice()),
        (2, Kind::Reply(Status::Ok), &b"quick"[..])
    );
    let stats = server.shutdown();
    assert_eq!(stats.overruns, 1, "{stats}");
    assert_eq!(stats.replies_with(Status::Timeout), 1);
    assert!(stats.balanced(), "{stats}");
}
