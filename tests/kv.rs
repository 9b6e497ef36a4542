//! The KV store served by the daemon: `workers.handler: kv` from YAML (in-process
//! through `App`, and through the `psp-app` binary), its classifier putting each
//! operation in its own queue, the operations' semantics over the wire, bounded SCAN
//! replies, and bad payloads answered `bad_request`.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command as Process, Stdio};
use std::time::Duration;

use persephone::apps::kv::{self, Command, Outcome, Reply};
use persephone::config::Config;
use persephone::proto::{self, Header, Kind, Status, HEADER_LEN};
use persephone::{App, StartError};

const YAML: &str = "pin: false
dispatcher: { idle: park }
workers: { number: 2, handler: kv, idle: park }
policy: { kind: darc, window: 100 }
net: { bind: 127.0.0.1:0, max_msg: 1024, max_amplification: 0 }
kv: { keys: 1000, value_size: 20 }
requests:
  - { id: 1, name: GET }
  - { id: 2, name: SCAN }
  - { id: 3, name: SET }
  - { id: 4, name: DEL }
stats: { interval_ms: 0 }
";

struct Client {
    sock: UdpSocket,
    server: SocketAddr,
    next_id: u64,
}

impl Client {
    fn new(server: SocketAddr) -> Client {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Client {
            sock,
            server,
            next_id: 1,
        }
    }

    /// Sends `payload` with header type `ty`; returns the reply's status and payload.
    fn raw(&mut self, ty: u32, payload: &[u8]) -> (Status, Vec<u8>) {
        let id = self.next_id;
        self.next_id += 1;
        let mut buf = vec![0; HEADER_LEN + payload.len()];
        proto::encode_request(&mut buf, ty, id, 0, payload).unwrap();
        self.sock.send_to(&buf, self.server).unwrap();
        let mut r = [0u8; 65536];
        let (n, _) = self.sock.recv_from(&mut r).expect("no reply");
        let h = Header::parse(&r[..n]).unwrap();
        assert_eq!((h.id, h.ty), (id, ty), "the reply echoes id and type");
        let Kind::Reply(status) = h.kind else {
            panic!("not a reply")
        };
        (status, r[HEADER_LEN..n].to_vec())
    }

    /// Sends `cmd` with header type 1 (the classifier decides the real type).
    fn call(&mut self, cmd: Command<'_>) -> Vec<u8> {
        let mut p = vec![0; cmd.encoded_len()];
        cmd.encode(&mut p).unwrap();
        let (status, reply) = self.raw(1, &p);
        assert_eq!(status, Status::Ok, "{cmd:?}");
        reply
    }
}

#[test]
fn kv_from_yaml_serves_get_set_del_scan_and_classifies_by_operation() {
    let server = App::new(Config::parse(YAML).unwrap()).start().unwrap();
    let mut c = Client::new(server.local_addr());

    // Pre-populated keys hold their deterministic values.
    let r = c.call(Command::Get { key: &kv::key(7) });
    let r = Reply::parse(&r).unwrap();
    assert_eq!((r.outcome, r.count, r.body.len()), (Outcome::Ok, 1, 20));
    assert!(kv::value_matches(7, r.body));
    let r = c.call(Command::Get {
        key: &kv::key(1000),
    });
    assert_eq!(Reply::parse(&r).unwrap().outcome, Outcome::NotFound);

    // SET, overwrite, DEL.
    let r = c.call(Command::Set {
        key: b"zebra",
        value: b"stripes",
    });
    assert_eq!(Reply::parse(&r).unwrap().count, 0);
    let r = c.call(Command::Get { key: b"zebra" });
    assert_eq!(Reply::parse(&r).unwrap().body, b"stripes");
    let r = c.call(Command::Set {
        key: &kv::key(7),
        value: b"new",
    });
    assert_eq!(Reply::parse(&r).unwrap().count, 1, "replaced");
    let r = c.call(Command::Del { key: b"zebra" });
    assert_eq!(Reply::parse(&r).unwrap().outcome, Outcome::Ok);
    let r = c.call(Command::Del { key: b"zebra" });
    assert_eq!(Reply::parse(&r).unwrap().outcome, Outcome::NotFound);

    // SCAN: in order, from the start key, the overwritten value included.
    let r = c.call(Command::Scan {
        start: &kv::key(5),
        end: Some(&kv::key(9)),
        limit: 0,
    });
    let r = Reply::parse(&r).unwrap();
    assert_eq!((r.count, r.more), (4, false));
    let pairs: Vec<_> = r.pairs().map(Result::unwrap).collect();
    for (j, (k, v)) in pairs.iter().enumerate() {
        let i = 5 + j as u64;
        assert_eq!(*k, kv::key(i));
        if i == 7 {
            assert_eq!(*v, b"new");
        } else {
            assert!(kv::value_matches(i, v));
        }
    }
    // An unbounded SCAN is cut at the 1024-byte buffer: (1024 - 28 - 4) / 32 = 31
    // pairs of 4 + 8 + 20 bytes, with `more` set; continuing gets the next ones.
    let r = c.call(Command::Scan {
        start: &kv::key(100),
        end: None,
        limit: 0,
    });
    let r = Reply::parse(&r).unwrap();
    assert_eq!((r.count, r.more), (31, true));
    let (last, _) = r.pairs().last().unwrap().unwrap();
    assert_eq!(last, kv::key(130));
    let mut next = last.to_vec();
    next.push(0);
    let r = c.call(Command::Scan {
        start: &next,
        end: None,
        limit: 3,
    });
    let r = Reply::parse(&r).unwrap();
    assert_eq!(r.pairs().next().unwrap().unwrap().0, kv::key(131));
    assert_eq!((r.count, r.more), (3, true));

    // Bad payloads: bad_request, and the server goes on.
    for p in [&b""[..], &[9, 0, 1, 0, 1], &[1, 0, 200, 0, 1]] {
        assert_eq!(c.raw(1, p).0, Status::BadRequest, "{p:?}");
    }
    // A bad payload with an unknown header type is unknown, not a panic.
    assert_eq!(c.raw(99, b"").0, Status::UnknownType);

    let stats = server.shutdown();
    assert_eq!(stats.answered(), stats.received);
    // The classifier queued each operation under its own type, whatever the header
    // said (every request above was sent with type 1).
    let accepted: Vec<(&str, u64)> = stats
        .types
        .iter()
        .map(|t| (t.name.as_str(), t.accepted))
        .collect();
    assert_eq!(
        accepted,
        [("GET", 2 + 1 + 3), ("SCAN", 3), ("SET", 2), ("DEL", 2)],
        "bad payloads keep their header type (GET here)"
    );
}

/// SETs from the network fill the store to `kv.max_bytes` and no further: past it a
/// SET is answered `handler_error` (counted), stores nothing, and the server serves
/// on; a DEL makes room again.
#[test]
fn sets_past_kv_max_bytes_are_refused() {
    let value = [5u8; 100];
    let key = |i: u64| (1_000_000 + i).to_be_bytes();
    let room = 3 * kv::entry_bytes(&key(0), &value);
    let pre = kv::KvConfig {
        keys: 10,
        value_size: 20,
        max_bytes: None,
    };
    let yaml = YAML.replace(
        "kv: { keys: 1000, value_size: 20 }",
        &format!(
            "kv: {{ keys: 10, value_size: 20, max_bytes: {} }}",
            pre.preload_bytes() + room
        ),
    );
    let server = App::new(Config::parse(&yaml).unwrap()).start().unwrap();
    let mut c = Client::new(server.local_addr());
    let set = |c: &mut Client, i: u64| {
        let cmd = Command::Set {
            key: &key(i),
            value: &value,
        };
        let mut p = vec![0; cmd.encoded_len()];
        cmd.encode(&mut p).unwrap();
        c.raw(1, &p).0
    };
    let statuses: Vec<Status> = (0..6).map(|i| set(&mut c, i)).collect();
    assert_eq!(
        statuses,
        [
            Status::Ok,
            Status::Ok,
            Status::Ok,
            Status::HandlerError,
            Status::HandlerError,
            Status::HandlerError
        ]
    );
    let r = c.call(Command::Get { key: &key(3) });
    assert_eq!(Reply::parse(&r).unwrap().outcome, Outcome::NotFound);
    c.call(Command::Del { key: &key(0) });
    assert_eq!(set(&mut c, 3), Status::Ok, "a DEL made room");
    let stats = server.shutdown();
    assert_eq!(stats.replies_with(Status::HandlerError), 3);
}

#[test]
fn replies_stay_within_the_amplification_bound_and_padding_lifts_it() {
    // The default bound: a reply message is at most 8 times its request's.
    let yaml = YAML.replace(", max_amplification: 0", "");
    let cfg = Config::parse(&yaml).unwrap();
    assert_eq!(cfg.net.max_amplification, 8.0);
    let server = App::new(cfg).start().unwrap();
    let mut c = Client::new(server.local_addr());
    let scan = |c: &mut Client, pad: usize| {
        let cmd = Command::Scan {
            start: &kv::key(0),
            end: None,
            limit: 0,
        };
        let mut p = vec![0; cmd.encoded_len() + pad];
        cmd.encode(&mut p).unwrap();
        let (status, r) = c.raw(2, &p);
        assert_eq!(status, Status::Ok);
        let request = HEADER_LEN + p.len();
        assert!(
            HEADER_LEN + r.len() <= 8 * request,
            "{} > 8 x {request}",
            r.len()
        );
        let r = Reply::parse(&r).unwrap();
        assert!(r.more);
        for (j, pair) in r.pairs().enumerate() {
            let (k, v) = pair.unwrap();
            assert_eq!(
                (k, kv::value_matches(j as u64, v)),
                (&kv::key(j as u64)[..], true)
            );
        }
        r.count
    };
    // A 44-byte SCAN message may get 352 bytes back: (352 - 28 - 4) / 32 = 10 pairs.
    assert_eq!(scan(&mut c, 0), 10);
    // Padded to 124 bytes, it may get 992: 30 pairs.
    assert_eq!(scan(&mut c, 80), 30);
    // A GET of a value too large for the bound fails, and succeeds when padded.
    let big = [7u8; 400];
    c.call(Command::Set {
        key: b"big",
        value: &big,
    });
    let cmd = Command::Get { key: b"big" };
    let mut p = vec![0; cmd.encoded_len()];
    cmd.encode(&mut p).unwrap();
    assert_eq!(c.raw(1, &p).0, Status::HandlerError);
    p.resize(p.len() + 40, 0);
    let (status, r) = c.raw(1, &p);
    assert_eq!(status, Status::Ok);
    assert_eq!(Reply::parse(&r).unwrap().body, big);
    server.shutdown();
}

#[test]
fn named_handlers_and_unknown_names() {
    let yaml = YAML.replace("handler: kv", "handler: upper");
    let e = App::new(Config::parse(&yaml).unwrap()).start().unwrap_err();
    let StartError::UnknownHandler { name, known, near } = &e else {
        panic!("{e}")
    };
    assert_eq!(name, "upper");
    assert!(known.contains("kv") && known.contains("spin"), "{e}");
    assert!(e.to_string().contains("workers.handler"), "{e}");
    assert_eq!(near, &None, "{e}");
    assert!(!e.to_string().contains("did you mean"), "{e}");

    // A typo of a known name is named.
    let typo = YAML.replace("handler: kv", "handler: spinn");
    let e = App::new(Config::parse(&typo).unwrap()).start().unwrap_err();
    assert!(e.to_string().contains(r#"did you mean "spin"?"#), "{e}");
    // A short name is not taken for a typo of a short known one.
    let short = YAML.replace("handler: kv", "handler: db");
    let e = App::new(Config::parse(&short).unwrap())
        .start()
        .unwrap_err();
    assert!(!e.to_string().contains("did you mean"), "{e}");

    // A program registers the name; the YAML picks it.
    let server = App::new(Config::parse(&yaml).unwrap())
        .named_handler("upper", |_| {
            |req: &mut persephone::Request<'_>| {
                let n = req.payload().len();
                req.reply_buf(n)
                    .map_err(|_| persephone::HandlerError::Failed)?
                    .make_ascii_uppercase();
                Ok(())
            }
        })
        .start()
        .unwrap();
    let mut c = Client::new(server.local_addr());
    assert_eq!(c.raw(3, b"shout"), (Status::Ok, b"SHOUT".to_vec()));
    server.shutdown();
}

#[test]
fn request_types_declared_in_code_complete_the_yaml() {
    let yaml = "pin: false\nworkers: { number: 1, handler: kv, idle: park }\nnet: { bind: 127.0.0.1:0 }\nstats: { interval_ms: 0 }\n";
    assert_eq!(Config::parse(yaml).unwrap_err().key, "requests");
    let server = App::new(Config::parse_unvalidated(yaml).unwrap())
        .request_types(kv::request_types())
        .start()
        .unwrap();
    let mut c = Client::new(server.local_addr());
    let r = c.call(Command::Set {
        key: b"k",
        value: b"v",
    });
    assert_eq!(Reply::parse(&r).unwrap().outcome, Outcome::Ok);
    let stats = server.shutdown();
    let names: Vec<&str> = stats.types.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["GET", "SCAN", "SET", "DEL"]);
    assert_eq!(stats.types[2].accepted, 1, "the SET went to SET's queue");
}

/// Stops the child on drop, so a failed assertion leaves no daemon behind.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn psp_app_serves_the_kv_store_from_configs_kv_yml() {
    let dir = std::env::temp_dir().join(format!("psp-kv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/kv.yml"))
        .unwrap()
        .replace("bind: 127.0.0.1:6789", "bind: 127.0.0.1:0");
    assert!(shipped.contains("127.0.0.1:0"));
    let cfg = dir.join("kv.yml");
    std::fs::write(&cfg, shipped).unwrap();
    let mut child = Child(
        Process::new(env!("CARGO_BIN_EXE_psp-app"))
            .arg("--cfg")
            .arg(&cfg)
            .args(["--log", "warn"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .parse()
        .unwrap();
    let mut c = Client::new(addr);
    // configs/kv.yml pre-populates 100 000 keys of 32 bytes.
    let r = c.call(Command::Get {
        key: &kv::key(99_999),
    });
    let r = Reply::parse(&r).unwrap();
    assert_eq!((r.outcome, r.body.len()), (Outcome::Ok, 32));
    assert!(kv::value_matches(99_999, r.body));
    let r = c.call(Command::Scan {
        start: &kv::key(0),
        end: None,
        limit: 256,
    });
    assert_eq!(
        Reply::parse(&r).unwrap().count,
        256,
        "a full SCAN fits max_msg"
    );
    // SIGTERM: a clean exit.
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    let rc = unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
