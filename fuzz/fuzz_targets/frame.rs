//! frame.rs - fuzz the Ethernet/IPv4/UDP/ARP parser and the in-place reply writers:
//! any accepted request becomes a reply that the peer's own parser accepts.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use persephone::net::frame::{self, Frame, Local, RxChecks, TxChecksums, HEADERS_LEN};

const LOCAL: Local = Local {
    mac: [0x02, 0, 0, 0, 0, 1],
    ip: Ipv4Addr::new(10, 0, 0, 1),
    udp_port: 6789,
};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the checksum policy; the rest is the frame.
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let checks = if mode & 1 == 0 {
        RxChecks::ALL
    } else {
        RxChecks {
            ip: false,
            udp: false,
        }
    };
    let mut buf = bytes.to_vec();
    match frame::parse(&buf, &LOCAL, checks) {
        Ok(Frame::Udp {
            payload_len,
            src,
            src_mac,
        }) => {
            assert!(HEADERS_LEN + payload_len <= buf.len());
            let n = frame::udp_reply_in_place(&mut buf, &LOCAL, payload_len, TxChecksums::Software)
                .expect("an accepted request has room for its reply");
            let peer = Local {
                mac: src_mac,
                ip: *src.ip(),
                udp_port: src.port(),
            };
            match frame::parse(&buf[..n], &peer, RxChecks::ALL) {
                Ok(Frame::Udp {
                    payload_len: back,
                    src: from,
                    ..
                }) => {
                    assert_eq!(back, payload_len);
                    assert_eq!((*from.ip(), from.port()), (LOCAL.ip, LOCAL.udp_port));
                }
                // A peer on a broadcast/multicast MAC or address cannot receive it
                // back as unicast; everything else must parse.
                Err(e) => assert!(
                    src_mac[0] & 1 == 1
                        || src.ip().is_broadcast()
                        || src.ip().is_multicast()
                        || src.ip().is_unspecified(),
                    "{e:?}"
                ),
                Ok(other) => panic!("reply parsed as {other:?}"),
            }
        }
        Ok(Frame::ArpRequest {
            sender_mac,
            sender_ip,
        }) => {
            if let Some(n) = frame::arp_reply_in_place(&mut buf, &LOCAL) {
                let peer = Local {
                    mac: sender_mac,
                    ip: sender_ip,
                    udp_port: 0,
                };
                if let Ok(f) = frame::parse(&buf[..n], &peer, RxChecks::ALL) {
                    assert_eq!(
                        f,
                        Frame::ArpReply {
                            sender_mac: LOCAL.mac,
                            sender_ip: LOCAL.ip
                        }
                    );
                }
            }
        }
        Ok(Frame::ArpReply { .. }) | Err(_) => {}
    }
});
