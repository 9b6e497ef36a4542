//! frame.rs - Ethernet/IPv4/UDP and ARP frames, parsed and rewritten over plain bytes.
//!
//! The DPDK transport hands this module the bytes of each received frame. [`parse`]
//! validates it once, at the edge, and says either what it is ([`Frame`]: a UDP
//! datagram for us, an ARP request for our address, an ARP reply) or why it is
//! dropped ([`Drop`], counted by name in [`Drops`]). The reply is then written in
//! place over the request's own bytes ([`udp_reply_in_place`], [`arp_reply_in_place`]);
//! [`write_udp_headers`] and [`write_arp_request`] build frames from scratch for a
//! client. Everything works on `&[u8]`/`&mut [u8]`, so it is tested (and fuzzed)
//! without EAL, and no input makes it panic: every length is checked before it is
//! used.
//!
//! Scope: Ethernet II without VLAN tags, IPv4 without options or fragments, UDP.
//! Anything else is dropped under a named reason, never answered.
//!
//! ```text
//! offset  0 Ethernet  dst MAC, src MAC, ethertype            14 bytes
//! offset 14 IPv4      version/IHL .. src IP, dst IP          20 bytes (IHL 5)
//! offset 34 UDP       src port, dst port, length, checksum    8 bytes
//! offset 42 payload   our header (proto.rs) + handler payload
//! ```

#![forbid(unsafe_code)]

use std::net::{Ipv4Addr, SocketAddrV4};

/// An Ethernet MAC address.
pub type Mac = [u8; 6];

/// The broadcast MAC address.
pub const BROADCAST: Mac = [0xff; 6];
/// Ethernet header length.
pub const ETH_LEN: usize = 14;
/// IPv4 header length (we accept no options).
pub const IPV4_LEN: usize = 20;
/// UDP header length.
pub const UDP_LEN: usize = 8;
/// Offset of the UDP payload in a frame: Ethernet + IPv4 + UDP headers.
pub const HEADERS_LEN: usize = ETH_LEN + IPV4_LEN + UDP_LEN;
/// Length of an ARP frame for IPv4 over Ethernet (without padding).
pub const ARP_FRAME_LEN: usize = ETH_LEN + 28;
/// Largest UDP payload in one frame of a 1500-byte MTU.
pub const MAX_PAYLOAD_1500: usize = 1500 - IPV4_LEN - UDP_LEN;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const IPPROTO_UDP: u8 = 17;
const IP_TTL: u8 = 64;
/// Don't Fragment, in the IPv4 flags/fragment-offset field.
const IP_DF: u16 = 0x4000;
/// More Fragments flag and fragment offset mask.
const IP_MF_OFFSET: u16 = 0x3fff;
const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;

// Field offsets inside a frame.
const IP: usize = ETH_LEN;
const UDP: usize = ETH_LEN + IPV4_LEN;
const ARP: usize = ETH_LEN;

/// Our addresses: what a frame must be sent to, and what replies are sent from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Local {
    pub mac: Mac,
    pub ip: Ipv4Addr,
    pub udp_port: u16,
}

/// Which checksums [`parse`] verifies in software (those the NIC has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxChecks {
    /// Verify the IPv4 header checksum.
    pub ip: bool,
    /// Verify the UDP checksum (when the sender set one; 0 means none in IPv4).
    pub udp: bool,
}

impl RxChecks {
    /// Verify everything in software.
    pub const ALL: RxChecks = RxChecks {
        ip: true,
        udp: true,
    };
}

/// A valid frame, and what to do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A UDP datagram to our IP and port: its payload is
    /// `frame[HEADERS_LEN..HEADERS_LEN + payload_len]`.
    Udp {
        payload_len: usize,
        src: SocketAddrV4,
        src_mac: Mac,
    },
    /// An ARP request asking who has our IP: answer with [`arp_reply_in_place`].
    ArpRequest {
        sender_mac: Mac,
        sender_ip: Ipv4Addr,
    },
    /// An ARP reply addressed to our IP (how a client learns the server's MAC).
    ArpReply {
        sender_mac: Mac,
        sender_ip: Ipv4Addr,
    },
}

/// Why a frame is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// Shorter than its headers.
    Runt,
    /// Sent to another MAC (or a UDP datagram sent to broadcast).
    NotOurMac,
    /// Neither IPv4 nor ARP (IPv6, VLAN-tagged, LLDP, ...).
    NotIpv4,
    /// IPv4 version not 4, header length below 5 words, or a total length that
    /// does not fit the frame.
    BadIpHeader,
    /// IPv4 options (IHL > 5): not supported.
    IpOptions,
    /// An IPv4 fragment: not reassembled.
    Fragment,
    /// Not UDP.
    NotUdp,
    /// Sent to another IPv4 address.
    NotOurIp,
    /// Sent to another UDP port.
    NotOurPort,
    /// From an address a reply must not go to: a group (multicast or broadcast)
    /// source MAC (or ARP sender MAC), a broadcast, multicast, unspecified or loopback
    /// source IPv4 address, or UDP source port 0. Answering would turn one spoofed
    /// request into a broadcast, or put a reply to 127.0.0.0/8 on the wire (the
    /// kernel drops such "martians" too). Our own address is accepted, as the kernel's
    /// `accept_local` does: a port looped back to itself (the ring PMD's tests) talks
    /// to itself.
    BadSource,
    /// The IPv4 header checksum does not verify.
    BadIpChecksum,
    /// UDP length below 8 or not equal to the IPv4 payload length.
    BadUdpLength,
    /// The UDP checksum does not verify.
    BadUdpChecksum,
    /// An ARP packet that is not IPv4 over Ethernet, or truncated.
    BadArp,
    /// A well-formed ARP packet that is not for us (or a request for another IP).
    ArpNotForUs,
}

/// Dropped frames, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drops {
    pub runt: u64,
    pub not_our_mac: u64,
    pub not_ipv4: u64,
    pub bad_ip_header: u64,
    pub ip_options: u64,
    pub fragment: u64,
    pub not_udp: u64,
    pub not_our_ip: u64,
    pub not_our_port: u64,
    pub bad_source: u64,
    pub bad_ip_checksum: u64,
    pub bad_udp_length: u64,
    pub bad_udp_checksum: u64,
    pub bad_arp: u64,
    pub arp_not_for_us: u64,
}

impl Drops {
    /// Counts one drop.
    #[inline]
    pub fn count(&mut self, d: Drop) {
        *self.slot(d) += 1;
    }

    fn slot(&mut self, d: Drop) -> &mut u64 {
        match d {
            Drop::Runt => &mut self.runt,
            Drop::NotOurMac => &mut self.not_our_mac,
            Drop::NotIpv4 => &mut self.not_ipv4,
            Drop::BadIpHeader => &mut self.bad_ip_header,
            Drop::IpOptions => &mut self.ip_options,
            Drop::Fragment => &mut self.fragment,
            Drop::NotUdp => &mut self.not_udp,
            Drop::NotOurIp => &mut self.not_our_ip,
            Drop::NotOurPort => &mut self.not_our_port,
            Drop::BadSource => &mut self.bad_source,
            Drop::BadIpChecksum => &mut self.bad_ip_checksum,
            Drop::BadUdpLength => &mut self.bad_udp_length,
            Drop::BadUdpChecksum => &mut self.bad_udp_checksum,
            Drop::BadArp => &mut self.bad_arp,
            Drop::ArpNotForUs => &mut self.arp_not_for_us,
        }
    }

    /// Every counter with its name, in a fixed order.
    pub fn named(&self) -> [(&'static str, u64); 15] {
        [
            ("runt", self.runt),
            ("not_our_mac", self.not_our_mac),
            ("not_ipv4", self.not_ipv4),
            ("bad_ip_header", self.bad_ip_header),
            ("ip_options", self.ip_options),
            ("fragment", self.fragment),
            ("not_udp", self.not_udp),
            ("not_our_ip", self.not_our_ip),
            ("not_our_port", self.not_our_port),
            ("bad_source", self.bad_source),
            ("bad_ip_checksum", self.bad_ip_checksum),
            ("bad_udp_length", self.bad_udp_length),
            ("bad_udp_checksum", self.bad_udp_checksum),
            ("bad_arp", self.bad_arp),
            ("arp_not_for_us", self.arp_not_for_us),
        ]
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        self.named().iter().map(|(_, v)| v).sum()
    }
}

impl std::fmt::Display for Drops {
    /// The non-zero counters as `name=value` pairs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for (k, v) in self.named() {
            if v > 0 {
                if !first {
                    f.write_str(" ")?;
                }
                write!(f, "{k}={v}")?;
                first = false;
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
fn mac_at(b: &[u8], at: usize) -> Mac {
    let mut m = [0; 6];
    m.copy_from_slice(&b[at..at + 6]);
    m
}

#[inline]
fn ip_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// Validates `frame` (the bytes of one received Ethernet frame, possibly padded)
/// against our addresses, verifying the checksums `checks` asks for.
pub fn parse(frame: &[u8], local: &Local, checks: RxChecks) -> Result<Frame, Drop> {
    if frame.len() < ETH_LEN {
        return Err(Drop::Runt);
    }
    let dst_mac = mac_at(frame, 0);
    let src_mac = mac_at(frame, 6);
    match be16(frame, 12) {
        ETHERTYPE_IPV4 => {}
        ETHERTYPE_ARP => return parse_arp(frame, local, dst_mac),
        _ => return Err(Drop::NotIpv4),
    }
    if dst_mac != local.mac {
        return Err(Drop::NotOurMac);
    }
    if frame.len() < HEADERS_LEN {
        return Err(Drop::Runt);
    }
    let ip = &frame[IP..];
    let (version, ihl) = (ip[0] >> 4, usize::from(ip[0] & 0x0f));
    let total = usize::from(be16(ip, 2));
    if version != 4 || ihl < 5 || total < ihl * 4 || total > ip.len() {
        return Err(Drop::BadIpHeader);
    }
    if ihl != 5 {
        return Err(Drop::IpOptions);
    }
    if checks.ip && checksum(0, &ip[..IPV4_LEN]) != 0 {
        return Err(Drop::BadIpChecksum);
    }
    if be16(ip, 6) & IP_MF_OFFSET != 0 {
        return Err(Drop::Fragment);
    }
    if ip[9] != IPPROTO_UDP {
        return Err(Drop::NotUdp);
    }
    if ip_at(ip, 16) != local.ip {
        return Err(Drop::NotOurIp);
    }
    let udp_len = usize::from(be16(frame, UDP + 4));
    if total < IPV4_LEN + UDP_LEN || udp_len != total - IPV4_LEN {
        return Err(Drop::BadUdpLength);
    }
    if be16(frame, UDP + 2) != local.udp_port {
        return Err(Drop::NotOurPort);
    }
    let src_ip = ip_at(ip, 12);
    let src_port = be16(frame, UDP);
    if src_mac[0] & 1 != 0
        || src_ip.is_broadcast()
        || src_ip.is_multicast()
        || src_ip.is_unspecified()
        || src_ip.is_loopback()
        || src_port == 0
    {
        return Err(Drop::BadSource);
    }
    if checks.udp && be16(frame, UDP + 6) != 0 {
        let segment = &frame[UDP..UDP + udp_len];
        if checksum(pseudo_header_sum(ip, udp_len), segment) != 0 {
            return Err(Drop::BadUdpChecksum);
        }
    }
    Ok(Frame::Udp {
        payload_len: udp_len - UDP_LEN,
        src: SocketAddrV4::new(src_ip, src_port),
        src_mac,
    })
}

fn parse_arp(frame: &[u8], local: &Local, dst_mac: Mac) -> Result<Frame, Drop> {
    if dst_mac != local.mac && dst_mac != BROADCAST {
        return Err(Drop::NotOurMac);
    }
    if frame.len() < ARP_FRAME_LEN {
        return Err(Drop::BadArp);
    }
    let a = &frame[ARP..];
    // htype Ethernet, ptype IPv4, hlen 6, plen 4.
    if be16(a, 0) != 1 || be16(a, 2) != ETHERTYPE_IPV4 || a[4] != 6 || a[5] != 4 {
        return Err(Drop::BadArp);
    }
    let sender_mac = mac_at(a, 8);
    let sender_ip = ip_at(a, 14);
    if ip_at(a, 24) != local.ip {
        return Err(Drop::ArpNotForUs);
    }
    if sender_mac[0] & 1 != 0 {
        // A group address: the reply would be a broadcast (see `BadSource`).
        return Err(Drop::BadSource);
    }
    match be16(a, 6) {
        ARP_REQUEST => Ok(Frame::ArpRequest {
            sender_mac,
            sender_ip,
        }),
        ARP_REPLY => Ok(Frame::ArpReply {
            sender_mac,
            sender_ip,
        }),
        _ => Err(Drop::BadArp),
    }
}

/// How the UDP and IPv4 checksums of an outgoing frame are filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxChecksums {
    /// Computed here, in software.
    Software,
    /// Left to the NIC (`RTE_ETH_TX_OFFLOAD_IPV4_CKSUM` and `_UDP_CKSUM`): the
    /// IPv4 checksum is zeroed and the UDP checksum field holds the pseudo-header
    /// sum, as DPDK's offload contract asks.
    Offload,
    /// The IPv4 checksum computed here; the UDP checksum 0, "none" (RFC 768), for
    /// peers that send it back unchanged with new contents (`net.wire: psp_mb`).
    IpOnly,
}

/// Turns the UDP request in `frame` (accepted by [`parse`] as [`Frame::Udp`]) into a
/// reply in place: the payload, already written at `HEADERS_LEN..`, is
/// `payload_len` bytes long. Swaps MAC, IP and port (replies leave from `local`),
/// sets the lengths, a fresh TTL and the checksums. Returns the reply frame's
/// length, or `None` if `frame` is too short for the headers and payload.
pub fn udp_reply_in_place(
    frame: &mut [u8],
    local: &Local,
    payload_len: usize,
    csum: TxChecksums,
) -> Option<usize> {
    if frame.len() < HEADERS_LEN {
        return None;
    }
    let peer_mac = mac_at(frame, 6);
    let peer = SocketAddrV4::new(ip_at(frame, IP + 12), be16(frame, UDP));
    write_udp_headers(
        frame,
        (local.mac, SocketAddrV4::new(local.ip, local.udp_port)),
        (peer_mac, peer),
        payload_len,
        csum,
    )
}

/// Writes Ethernet, IPv4 and UDP headers for a datagram from `src` to `dst`
/// (MAC and address each) in front of the `payload_len` bytes already at
/// `frame[HEADERS_LEN..]`. Returns the frame length, or `None` if `frame` is too
/// short or the payload too long for one IPv4 packet.
pub fn write_udp_headers(
    frame: &mut [u8],
    src: (Mac, SocketAddrV4),
    dst: (Mac, SocketAddrV4),
    payload_len: usize,
    csum: TxChecksums,
) -> Option<usize> {
    let len = HEADERS_LEN.checked_add(payload_len)?;
    let total = u16::try_from(IPV4_LEN + UDP_LEN + payload_len).ok()?;
    if frame.len() < len {
        return None;
    }
    frame[0..6].copy_from_slice(&dst.0);
    frame[6..12].copy_from_slice(&src.0);
    put16(frame, 12, ETHERTYPE_IPV4);

    let ip = &mut frame[IP..IP + IPV4_LEN];
    ip[0] = 0x45;
    ip[1] = 0;
    put16(ip, 2, total);
    put16(ip, 4, 0); // identification: unused with DF
    put16(ip, 6, IP_DF);
    ip[8] = IP_TTL;
    ip[9] = IPPROTO_UDP;
    put16(ip, 10, 0);
    ip[12..16].copy_from_slice(&src.1.ip().octets());
    ip[16..20].copy_from_slice(&dst.1.ip().octets());
    if csum != TxChecksums::Offload {
        let c = checksum(0, ip);
        put16(ip, 10, c);
    }

    let udp_len = total - IPV4_LEN as u16;
    put16(frame, UDP, src.1.port());
    put16(frame, UDP + 2, dst.1.port());
    put16(frame, UDP + 4, udp_len);
    put16(frame, UDP + 6, 0);
    let pseudo = pseudo_header_sum(&frame[IP..IP + IPV4_LEN], usize::from(udp_len));
    let c = match csum {
        // RFC 768: a computed 0 is sent as all ones (0 means "no checksum").
        TxChecksums::Software => match checksum(pseudo, &frame[UDP..len]) {
            0 => 0xffff,
            c => c,
        },
        // The NIC adds the segment to this (uncomplemented) pseudo-header sum.
        TxChecksums::Offload => fold(pseudo),
        TxChecksums::IpOnly => 0,
    };
    put16(frame, UDP + 6, c);
    Some(len)
}

/// Turns the ARP request in `frame` (accepted by [`parse`] as
/// [`Frame::ArpRequest`]) into the reply "our IP is at our MAC", in place.
/// Returns the reply's length (the frame keeps any padding it had), or `None` if
/// `frame` is too short.
pub fn arp_reply_in_place(frame: &mut [u8], local: &Local) -> Option<usize> {
    if frame.len() < ARP_FRAME_LEN {
        return None;
    }
    let asker_mac = mac_at(frame, ARP + 8);
    let mut asker_ip = [0; 4];
    asker_ip.copy_from_slice(&frame[ARP + 14..ARP + 18]);
    frame[0..6].copy_from_slice(&asker_mac);
    frame[6..12].copy_from_slice(&local.mac);
    let a = &mut frame[ARP..ARP_FRAME_LEN];
    put16(a, 6, ARP_REPLY);
    a[8..14].copy_from_slice(&local.mac);
    a[14..18].copy_from_slice(&local.ip.octets());
    a[18..24].copy_from_slice(&asker_mac);
    a[24..28].copy_from_slice(&asker_ip);
    Some(frame.len().clamp(ARP_FRAME_LEN, 60))
}

/// Writes a broadcast ARP request "who has `target`? tell `ip` at `mac`" into
/// `frame`; returns its length (60: padded to the Ethernet minimum), or `None` if
/// `frame` is shorter than that.
pub fn write_arp_request(
    frame: &mut [u8],
    mac: Mac,
    ip: Ipv4Addr,
    target: Ipv4Addr,
) -> Option<usize> {
    const PADDED: usize = 60;
    let f = frame.get_mut(..PADDED)?;
    f.fill(0);
    f[0..6].copy_from_slice(&BROADCAST);
    f[6..12].copy_from_slice(&mac);
    put16(f, 12, ETHERTYPE_ARP);
    let a = &mut f[ARP..ARP_FRAME_LEN];
    put16(a, 0, 1);
    put16(a, 2, ETHERTYPE_IPV4);
    a[4] = 6;
    a[5] = 4;
    put16(a, 6, ARP_REQUEST);
    a[8..14].copy_from_slice(&mac);
    a[14..18].copy_from_slice(&ip.octets());
    a[24..28].copy_from_slice(&target.octets());
    Some(PADDED)
}

/// The one's-complement sum of the IPv4 pseudo-header (source, destination,
/// protocol, UDP length) of the IPv4 header `ip`, not yet folded.
fn pseudo_header_sum(ip: &[u8], udp_len: usize) -> u32 {
    sum(0, &ip[12..20]) + u32::from(IPPROTO_UDP) + udp_len as u32
}

/// Adds `bytes` as big-endian 16-bit words (an odd last byte padded with 0) to
/// `acc`. The accumulator cannot overflow for any frame (< 2^16 words of 2^16).
#[inline]
fn sum(mut acc: u32, bytes: &[u8]) -> u32 {
    let mut words = bytes.chunks_exact(2);
    for w in &mut words {
        acc += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

#[inline]
fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The RFC 1071 Internet checksum of `bytes`, starting from the partial sum
/// `initial`: the value to store in a checksum field, or 0 when verifying a
/// header whose checksum field is included and correct.
#[inline]
pub fn checksum(initial: u32, bytes: &[u8]) -> u16 {
    !fold(sum(initial, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER_MAC: Mac = [0x02, 0, 0, 0, 0, 0x01];
    const CLIENT_MAC: Mac = [0x02, 0, 0, 0, 0, 0x02];

    fn local() -> Local {
        Local {
            mac: SERVER_MAC,
            ip: Ipv4Addr::new(10, 0, 0, 1),
            udp_port: 6789,
        }
    }

    fn client() -> (Mac, SocketAddrV4) {
        (
            CLIENT_MAC,
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 4000),
        )
    }

    fn server() -> (Mac, SocketAddrV4) {
        (
            SERVER_MAC,
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 6789),
        )
    }

    /// A request frame built by the client-side builder.
    fn request(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0; HEADERS_LEN + payload.len()];
        f[HEADERS_LEN..].copy_from_slice(payload);
        let n = write_udp_headers(
            &mut f,
            client(),
            server(),
            payload.len(),
            TxChecksums::Software,
        )
        .unwrap();
        assert_eq!(n, f.len());
        f
    }

    /// An independent checksum: a bit-serial one's-complement adder over 16-bit
    /// words, with the end-around carry applied after every word (not folded
    /// once at the end as `checksum` does).
    fn reference_checksum(chunks: &[&[u8]]) -> u16 {
        let bytes: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let mut acc: u16 = 0;
        for i in (0..bytes.len()).step_by(2) {
            let hi = bytes[i];
            let lo = bytes.get(i + 1).copied().unwrap_or(0);
            let (s, carry) = acc.overflowing_add(u16::from_be_bytes([hi, lo]));
            acc = s + u16::from(carry);
        }
        !acc
    }

    /// The frame's UDP checksum recomputed by `reference_checksum` over the
    /// pseudo-header and segment with the checksum field zeroed.
    fn reference_udp_checksum(f: &[u8]) -> u16 {
        let udp_len = usize::from(be16(f, UDP + 4));
        let mut seg = f[UDP..UDP + udp_len].to_vec();
        seg[6] = 0;
        seg[7] = 0;
        let pseudo = [
            &f[IP + 12..IP + 20],
            &[0, IPPROTO_UDP][..],
            &(udp_len as u16).to_be_bytes()[..],
        ]
        .concat();
        match reference_checksum(&[&pseudo, &seg]) {
            0 => 0xffff,
            c => c,
        }
    }

    fn reference_ip_checksum(f: &[u8]) -> u16 {
        let mut h = f[IP..IP + IPV4_LEN].to_vec();
        h[10] = 0;
        h[11] = 0;
        reference_checksum(&[&h])
    }

    #[test]
    fn checksum_of_a_known_ipv4_header() {
        // The worked example from Wikipedia's "IPv4 header checksum" article.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(0, &h), 0xb861);
        assert_eq!(reference_checksum(&[&h]), 0xb861);
        h[10] = 0xb8;
        h[11] = 0x61;
        assert_eq!(checksum(0, &h), 0, "a correct header verifies to 0");
    }

    #[test]
    fn a_captured_frame_parses() {
        // A UDP datagram 10.0.0.2:4000 -> 10.0.0.1:6789 carrying "hi", assembled by
        // hand; its two checksums were computed outside this code base, with
        // Python's struct module summing 16-bit words (0x26cd and 0x5949).
        let f: [u8; 44] = [
            0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00,
            0x45, 0x00, 0x00, 0x1e, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x26, 0xcd, 0x0a, 0x00,
            0x00, 0x02, 0x0a, 0x00, 0x00, 0x01, 0x0f, 0xa0, 0x1a, 0x85, 0x00, 0x0a, 0x59, 0x49,
            b'h', b'i',
        ];
        assert_eq!(reference_ip_checksum(&f), 0x26cd);
        assert_eq!(reference_udp_checksum(&f), 0x5949);
        assert_eq!(
            parse(&f, &local(), RxChecks::ALL),
            Ok(Frame::Udp {
                payload_len: 2,
                src: client().1,
                src_mac: CLIENT_MAC
            })
        );
        // Our own builder produces exactly these bytes.
        assert_eq!(request(b"hi"), f);
    }

    #[test]
    fn padded_frames_use_the_ip_length() {
        let mut f = request(b"x");
        f.resize(60, 0); // Ethernet minimum, padded by the sender's NIC
        assert_eq!(
            parse(&f, &local(), RxChecks::ALL),
            Ok(Frame::Udp {
                payload_len: 1,
                src: client().1,
                src_mac: CLIENT_MAC
            })
        );
    }

    #[test]
    fn reply_in_place_swaps_addresses_and_fixes_lengths_and_checksums() {
        let req = request(b"ping");
        for reply_payload in [
            &b"pong"[..],
            b"",
            b"a much longer reply than the request was",
            b"odd",
        ] {
            let mut f = vec![0u8; 256];
            f[..req.len()].copy_from_slice(&req);
            f[HEADERS_LEN..HEADERS_LEN + reply_payload.len()].copy_from_slice(reply_payload);
            let n =
                udp_reply_in_place(&mut f, &local(), reply_payload.len(), TxChecksums::Software)
                    .unwrap();
            assert_eq!(n, HEADERS_LEN + reply_payload.len());
            let f = &f[..n];
            assert_eq!(&f[0..6], &CLIENT_MAC);
            assert_eq!(&f[6..12], &SERVER_MAC);
            assert_eq!(&f[IP + 12..IP + 16], &[10, 0, 0, 1]);
            assert_eq!(&f[IP + 16..IP + 20], &[10, 0, 0, 2]);
            assert_eq!(be16(f, IP + 2) as usize, n - ETH_LEN);
            assert_eq!(be16(f, UDP), 6789);
            assert_eq!(be16(f, UDP + 2), 4000);
            assert_eq!(be16(f, UDP + 4) as usize, UDP_LEN + reply_payload.len());
            assert_eq!(be16(f, IP + 10), reference_ip_checksum(f));
            assert_eq!(be16(f, UDP + 6), reference_udp_checksum(f));
            assert_eq!(&f[HEADERS_LEN..], reply_payload);
            // The client, parsing with its own addresses, accepts the reply.
            let client_local = Local {
                mac: CLIENT_MAC,
                ip: Ipv4Addr::new(10, 0, 0, 2),
                udp_port: 4000,
            };
            assert_eq!(
                parse(f, &client_local, RxChecks::ALL),
                Ok(Frame::Udp {
                    payload_len: reply_payload.len(),
                    src: server().1,
                    src_mac: SERVER_MAC
                })
            );
        }
    }

    #[test]
    fn offload_leaves_the_pseudo_header_sum() {
        let mut f = request(b"ping");
        udp_reply_in_place(&mut f, &local(), 4, TxChecksums::Offload).unwrap();
        assert_eq!(be16(&f, IP + 10), 0, "the NIC fills the IPv4 checksum");
        // What the NIC does: sum the segment, starting from the value in the
        // checksum field, and store the complement.
        let nic = !fold(sum(0, &f[UDP..]));
        put16(&mut f, UDP + 6, nic);
        assert_eq!(nic, reference_udp_checksum(&f));
    }

    #[test]
    fn ip_only_sends_no_udp_checksum_and_a_valid_ip_one() {
        let mut f = request(b"ping");
        let n = udp_reply_in_place(&mut f, &local(), 4, TxChecksums::IpOnly).unwrap();
        assert_eq!(be16(&f, UDP + 6), 0, "none");
        assert_eq!(checksum(0, &f[IP..IP + IPV4_LEN]), 0, "the IPv4 one holds");
        let client = Local {
            mac: CLIENT_MAC,
            ip: *client().1.ip(),
            udp_port: client().1.port(),
        };
        assert!(matches!(
            parse(&f[..n], &client, RxChecks::ALL),
            Ok(Frame::Udp { payload_len: 4, .. })
        ));
    }

    #[test]
    fn zero_udp_checksum_means_none() {
        let mut f = request(b"abc");
        put16(&mut f, UDP + 6, 0);
        assert!(matches!(
            parse(&f, &local(), RxChecks::ALL),
            Ok(Frame::Udp { .. })
        ));
    }

    /// Applies `edit` to a valid request and returns what `parse` says.
    fn parse_edited(edit: impl FnOnce(&mut Vec<u8>)) -> Result<Frame, Drop> {
        let mut f = request(b"payload!");
        edit(&mut f);
        parse(&f, &local(), RxChecks::ALL)
    }

    /// Recomputes the IPv4 checksum after an edit, so that the reason tested is
    /// the one reported.
    fn fix_ip(f: &mut [u8]) {
        put16(f, IP + 10, 0);
        let c = checksum(0, &f[IP..IP + IPV4_LEN]);
        put16(f, IP + 10, c);
    }

    #[test]
    fn every_drop_reason() {
        assert_eq!(parse(&[0; 13], &local(), RxChecks::ALL), Err(Drop::Runt));
        assert_eq!(parse_edited(|f| f.truncate(41)), Err(Drop::Runt));
        assert_eq!(parse_edited(|f| f[0] = 0x04), Err(Drop::NotOurMac));
        assert_eq!(
            parse_edited(|f| f[0..6].copy_from_slice(&BROADCAST)),
            Err(Drop::NotOurMac)
        );
        assert_eq!(parse_edited(|f| put16(f, 12, 0x86dd)), Err(Drop::NotIpv4));
        assert_eq!(parse_edited(|f| put16(f, 12, 0x8100)), Err(Drop::NotIpv4));
        assert_eq!(parse_edited(|f| f[IP] = 0x65), Err(Drop::BadIpHeader));
        assert_eq!(parse_edited(|f| f[IP] = 0x44), Err(Drop::BadIpHeader));
        assert_eq!(
            parse_edited(|f| {
                put16(f, IP + 2, 200);
                fix_ip(f)
            }),
            Err(Drop::BadIpHeader),
            "total length beyond the frame"
        );
        assert_eq!(
            parse_edited(|f| {
                f[IP] = 0x46;
                fix_ip(f)
            }),
            Err(Drop::IpOptions)
        );
        assert_eq!(parse_edited(|f| f[IP + 8] = 1), Err(Drop::BadIpChecksum));
        assert_eq!(
            parse_edited(|f| {
                put16(f, IP + 6, 0x2000);
                fix_ip(f)
            }),
            Err(Drop::Fragment),
            "more fragments"
        );
        assert_eq!(
            parse_edited(|f| {
                put16(f, IP + 6, 0x0001);
                fix_ip(f)
            }),
            Err(Drop::Fragment),
            "fragment offset"
        );
        assert_eq!(
            parse_edited(|f| {
                f[IP + 9] = 6;
                fix_ip(f)
            }),
            Err(Drop::NotUdp)
        );
        assert_eq!(
            parse_edited(|f| {
                f[IP + 19] = 9;
                fix_ip(f)
            }),
            Err(Drop::NotOurIp)
        );
        assert_eq!(
            parse_edited(|f| put16(f, UDP + 4, 7)),
            Err(Drop::BadUdpLength)
        );
        assert_eq!(
            parse_edited(|f| put16(f, UDP + 4, 100)),
            Err(Drop::BadUdpLength)
        );
        assert_eq!(
            parse_edited(|f| put16(f, UDP + 2, 53)),
            Err(Drop::NotOurPort)
        );
        // Sources a reply must not go to (checked before the UDP checksum).
        assert_eq!(parse_edited(|f| f[6] |= 1), Err(Drop::BadSource));
        assert_eq!(parse_edited(|f| put16(f, UDP, 0)), Err(Drop::BadSource));
        for src in [
            [255, 255, 255, 255],
            [224, 0, 0, 1],
            [0, 0, 0, 0],
            [127, 0, 0, 1],
        ] {
            assert_eq!(
                parse_edited(|f| {
                    f[IP + 12..IP + 16].copy_from_slice(&src);
                    fix_ip(f)
                }),
                Err(Drop::BadSource),
                "{src:?}"
            );
        }
        assert_eq!(
            parse_edited(|f| f[HEADERS_LEN] ^= 1),
            Err(Drop::BadUdpChecksum)
        );
        // The same corruption passes when the NIC said it verified the checksums.
        let mut f = request(b"payload!");
        f[HEADERS_LEN] ^= 1;
        let trusted = RxChecks {
            ip: false,
            udp: false,
        };
        assert!(matches!(
            parse(&f, &local(), trusted),
            Ok(Frame::Udp { .. })
        ));
    }

    #[test]
    fn drops_are_counted_by_name() {
        let mut d = Drops::default();
        d.count(Drop::Fragment);
        d.count(Drop::Fragment);
        d.count(Drop::NotOurPort);
        assert_eq!((d.fragment, d.not_our_port, d.total()), (2, 1, 3));
        assert_eq!(d.to_string(), "fragment=2 not_our_port=1");
        assert_eq!(Drops::default().to_string(), "none");
    }

    #[test]
    fn arp_request_for_us_is_answered_in_place() {
        let mut f = [0u8; 64];
        let client_ip = Ipv4Addr::new(10, 0, 0, 2);
        let n = write_arp_request(&mut f, CLIENT_MAC, client_ip, local().ip).unwrap();
        assert_eq!(n, 60);
        // RFC 826 layout: broadcast, htype 1, ptype IPv4, hlen 6, plen 4, op 1.
        assert_eq!(
            &f[..14],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 2, 8, 6]
        );
        assert_eq!(
            &f[14..42],
            &[
                0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 2, 10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 10, 0, 0,
                1
            ]
        );
        assert_eq!(
            parse(&f[..n], &local(), RxChecks::ALL),
            Ok(Frame::ArpRequest {
                sender_mac: CLIENT_MAC,
                sender_ip: client_ip
            })
        );
        let m = arp_reply_in_place(&mut f[..n], &local()).unwrap();
        assert_eq!(m, 60);
        assert_eq!(&f[0..6], &CLIENT_MAC);
        assert_eq!(&f[6..12], &SERVER_MAC);
        assert_eq!(be16(&f, ARP + 6), ARP_REPLY);
        let client_local = Local {
            mac: CLIENT_MAC,
            ip: client_ip,
            udp_port: 4000,
        };
        assert_eq!(
            parse(&f[..m], &client_local, RxChecks::ALL),
            Ok(Frame::ArpReply {
                sender_mac: SERVER_MAC,
                sender_ip: local().ip
            })
        );
    }

    #[test]
    fn arp_not_for_us_is_dropped() {
        let mut f = [0u8; 60];
        write_arp_request(
            &mut f,
            CLIENT_MAC,
            Ipv4Addr::new(10, 0, 0, 2),
            Ipv4Addr::new(10, 0, 0, 9),
        )
        .unwrap();
        assert_eq!(parse(&f, &local(), RxChecks::ALL), Err(Drop::ArpNotForUs));
        f[ARP + 5] = 16; // IPv6 plen
        assert_eq!(parse(&f, &local(), RxChecks::ALL), Err(Drop::BadArp));
        assert_eq!(parse(&f[..30], &local(), RxChecks::ALL), Err(Drop::BadArp));
        f[0] = 0x04;
        assert_eq!(parse(&f, &local(), RxChecks::ALL), Err(Drop::NotOurMac));
        // A request for us from a group sender MAC would be answered to a group.
        let mut f = [0u8; 60];
        write_arp_request(&mut f, BROADCAST, Ipv4Addr::new(10, 0, 0, 2), local().ip).unwrap();
        assert_eq!(parse(&f, &local(), RxChecks::ALL), Err(Drop::BadSource));
    }

    #[test]
    fn builders_refuse_short_buffers() {
        let mut f = [0u8; HEADERS_LEN + 3];
        assert_eq!(
            udp_reply_in_place(&mut f[..41], &local(), 0, TxChecksums::Software),
            None
        );
        assert_eq!(
            udp_reply_in_place(&mut f, &local(), 4, TxChecksums::Software),
            None
        );
        assert_eq!(
            write_udp_headers(
                &mut vec![0; 70_000],
                client(),
                server(),
                65_508,
                TxChecksums::Software
            ),
            None,
            "longer than an IPv4 packet"
        );
        assert_eq!(arp_reply_in_place(&mut f[..41], &local()), None);
        assert_eq!(
            write_arp_request(&mut f, CLIENT_MAC, local().ip, local().ip),
            None
        );
    }

    proptest::proptest! {
        /// No byte string makes the parser panic, and whatever it accepts as UDP has
        /// its payload inside the frame.
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..128)) {
            if let Ok(Frame::Udp { payload_len, .. }) = parse(&bytes, &local(), RxChecks::ALL) {
                proptest::prop_assert!(HEADERS_LEN + payload_len <= bytes.len());
            }
        }

        /// Valid requests with one byte flipped are dropped (or, if the flip is
        /// in the payload and undetectable by the checksum, still well formed).
        #[test]
        fn corrupted_requests_are_caught(
            payload in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            at in 0usize..106,
            bit in 0u8..8,
        ) {
            let mut f = request(&payload);
            let at = at % f.len();
            f[at] ^= 1 << bit;
            match parse(&f, &local(), RxChecks::ALL) {
                Err(_) => {}
                Ok(Frame::Udp { payload_len, .. }) => {
                    // Nothing protects the source MAC; and a checksum flipped to 0
                    // reads as "no checksum" (the payload is intact then).
                    let unprotected = (6..12).contains(&at)
                        || ((UDP + 6..UDP + 8).contains(&at) && be16(&f, UDP + 6) == 0);
                    proptest::prop_assert!(unprotected, "flip at {} accepted", at);
                    proptest::prop_assert_eq!(payload_len, payload.len());
                }
                Ok(other) => proptest::prop_assert!(false, "{:?}", other),
            }
        }

        /// Replies of any length verify with the reference checksum.
        #[test]
        fn replies_verify(
            req in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            reply in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
        ) {
            let mut f = request(&req);
            f.resize(HEADERS_LEN + reply.len().max(req.len()), 0);
            f[HEADERS_LEN..HEADERS_LEN + reply.len()].copy_from_slice(&reply);
            let n = udp_reply_in_place(&mut f, &local(), reply.len(), TxChecksums::Software).unwrap();
            proptest::prop_assert_eq!(be16(&f, IP + 10), reference_ip_checksum(&f[..n]));
            proptest::prop_assert_eq!(be16(&f, UDP + 6), reference_udp_checksum(&f[..n]));
        }
    }
}
