//! header.rs - fuzz the wire-format parser and the in-place reply writer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use persephone::proto::{self, Header, Kind, Status, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(h) = Header::parse(data) else { return };
    // Whatever parses must re-encode to the same bytes.
    let mut again = vec![0u8; data.len()];
    h.write(&mut again).unwrap();
    again[HEADER_LEN..].copy_from_slice(&data[HEADER_LEN..]);
    assert_eq!(again, data);
    if h.kind == Kind::Request {
        // Turning it into a reply of any length that fits keeps id, type and time.
        let mut buf = data.to_vec();
        let n = proto::make_reply(&mut buf, Status::Ok, h.len as usize);
        let r = Header::parse(&buf[..n]).unwrap();
        assert_eq!((r.ty, r.id, r.sent_at), (h.ty, h.id, h.sent_at));
        assert_eq!(r.kind, Kind::Reply(Status::Ok));
    }
});
