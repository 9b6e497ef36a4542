//! psp_mb.rs - fuzz the PSP_MB edge (`net.wire: psp_mb`): any datagram is either
//! dropped or becomes a native request carrying its id, type and run_ns, whose ok
//! reply goes back as the 16-byte PSP_MB reply; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use persephone::net::psp_mb::{self, Message};
use persephone::net::Packet;
use persephone::proto::{self, Header, Status};

/// A datagram in a buffer of some capacity.
struct Buf(Vec<u8>, usize);

impl Packet for Buf {
    fn msg(&self) -> &[u8] {
        &self.0[..self.1]
    }
    fn buf_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
    fn set_len(&mut self, len: usize) {
        self.1 = len;
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the spare room past the datagram (buffers can be small).
    let Some((&room, data)) = data.split_first() else { return };
    let mut buf = data.to_vec();
    buf.resize(data.len() + usize::from(room % 64), 0);
    let mut p = Buf(buf, data.len());
    let parsed = Message::parse(data);
    if !psp_mb::to_native(&mut p) {
        assert!(parsed.is_none() || p.0.len() < psp_mb::NATIVE_LEN);
        assert_eq!(p.msg(), data, "a dropped datagram is left as it was");
        return;
    }
    let m = parsed.expect("converted, so it parsed");
    let h = Header::parse(p.msg()).expect("a valid native request");
    assert_eq!((h.id, h.ty), (u64::from(m.id), m.ty));
    assert_eq!(
        proto::parse_spin_payload(&p.msg()[proto::HEADER_LEN..]),
        Some(u64::from(m.run_ns))
    );
    let n = proto::make_reply(p.buf_mut(), Status::Ok, 0);
    p.set_len(n);
    assert!(psp_mb::to_psp_mb(&mut p));
    let r = Message::parse(p.msg()).expect("a PSP_MB reply");
    assert_eq!(p.msg().len(), psp_mb::LEN);
    assert_eq!(r, Message { run_ns: 0, ..m });
});
