//! Raw FFI bindings to the system DPDK (>= 22.11), for persephone-rs.
//!
//! This is a pure `-sys` crate: declarations only, no safe wrappers. The root
//! crate's `net::dpdk` module (cargo feature `dpdk`) builds the safe transport
//! on top of it.
//!
//! What is here:
//! - bindgen output for the parts of EAL, ethdev, mempool and mbuf that a UDP
//!   transport uses (`rte_eal_*`, `rte_eth_*`, `rte_pktmbuf_*`,
//!   `rte_mempool_*`, `rte_lcore_*`, ...), the Ethernet/IPv4/UDP/ARP header
//!   structs and the `RTE_*` constants that go with them;
//! - `psp_*` functions from a small C shim (`shim.c`, declared in `shim.h`)
//!   that give DPDK's static-inline fast path real symbols:
//!   [`psp_eth_rx_burst`], [`psp_eth_tx_burst`], [`psp_pktmbuf_alloc`],
//!   [`psp_pktmbuf_free`], [`psp_pktmbuf_mtod`], [`psp_errno`],
//!   [`psp_rdtsc`], and so on. Each wraps one inline function or macro and
//!   adds no logic.
//!
//! Build: `build.rs` finds DPDK with `pkg-config libdpdk`, passes DPDK's own
//! cflags (`-include rte_config.h`, `-march=...`) to both cc and bindgen, and
//! checks that the virtual-device PMDs (`net_ring`, `net_null`, `net_memif`)
//! sit in the directory EAL autoloads drivers from ([`EAL_PMD_PATH`]), so
//! `--vdev=net_ring0` and friends work without EAL's `-d` option. Shared
//! DPDK builds only. On Debian 12, `scripts/setup-dpdk.sh` installs
//! everything needed.
//!
//! `rte_arp_hdr` and `rte_arp_ipv4` are opaque (right size and alignment, no
//! fields): they are both packed and aligned in C, which Rust cannot express.
//!
//! EAL initialises once per process; see `tests/` for argument lists that
//! run without NICs or hugepages.
//!
//! Without DPDK (no `libdpdk.pc` for pkg-config, or `DPDK_SYS_FORCE_STUB=1`
//! at build time) the crate still builds, as an empty stub whose only item is
//! [`AVAILABLE`]` = false`, so that a workspace containing it builds on any
//! machine. Dependents that cannot work without DPDK turn on the `required`
//! feature, which makes the stub a compile error naming the fix.

/// Whether this build has DPDK: `false` for the stub built when pkg-config
/// found no DPDK (then nothing else is in this crate).
pub const AVAILABLE: bool = cfg!(not(dpdk_sys_stub));

#[cfg(all(dpdk_sys_stub, feature = "required"))]
compile_error!(concat!(
    "DPDK not found by pkg-config: run scripts/setup-dpdk.sh (",
    env!("DPDK_SYS_STUB_REASON"),
    ")"
));

#[cfg(not(dpdk_sys_stub))]
mod bindings {
    #![allow(
        non_camel_case_types,
        non_upper_case_globals,
        non_snake_case,
        dead_code,
        missing_docs,
        unsafe_op_in_unsafe_fn,
        clippy::all,
        clippy::pedantic,
        clippy::undocumented_unsafe_blocks
    )]
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

#[cfg(not(dpdk_sys_stub))]
pub use bindings::*;

#[cfg(not(dpdk_sys_stub))]
mod offloads {
    //! Offload capability bits that DPDK defines with `RTE_BIT64()`, a
    //! function-like macro bindgen cannot evaluate. shim.c checks each value
    //! against DPDK's own macro with a `_Static_assert`.

    /// `RTE_ETH_TX_OFFLOAD_IPV4_CKSUM`: the port computes IPv4 header checksums.
    pub const RTE_ETH_TX_OFFLOAD_IPV4_CKSUM: u64 = 1 << 1;
    /// `RTE_ETH_TX_OFFLOAD_UDP_CKSUM`: the port computes UDP checksums.
    pub const RTE_ETH_TX_OFFLOAD_UDP_CKSUM: u64 = 1 << 2;
    /// `RTE_ETH_RX_OFFLOAD_IPV4_CKSUM`: the port checks IPv4 header checksums.
    pub const RTE_ETH_RX_OFFLOAD_IPV4_CKSUM: u64 = 1 << 1;
    /// `RTE_ETH_RX_OFFLOAD_UDP_CKSUM`: the port checks UDP checksums.
    pub const RTE_ETH_RX_OFFLOAD_UDP_CKSUM: u64 = 1 << 2;
}
#[cfg(not(dpdk_sys_stub))]
pub use offloads::*;

/// The directory EAL scans for driver plugins at `rte_eal_init`
/// (`RTE_EAL_PMD_PATH` of the DPDK this crate was built against), or `None`
/// if that DPDK has none; then drivers must be loaded with EAL's `-d`.
///
/// `net_ring`, `net_null` and `net_memif` are found there without `-d`; a
/// transport that sees zero ports after `rte_eal_init` can name this
/// directory in its error.
#[cfg(not(dpdk_sys_stub))]
pub const EAL_PMD_PATH: Option<&str> = option_env!("DPDK_SYS_EAL_PMD_PATH");

#[cfg(all(test, not(dpdk_sys_stub)))]
mod tests {
    use super::*;
    use std::mem::{align_of, size_of};

    /// The wire-header structs the transport overlays on packet bytes have
    /// their on-the-wire sizes, and alignment no stricter than DPDK's.
    #[test]
    fn header_layouts() {
        assert_eq!(size_of::<rte_ether_addr>(), 6);
        assert_eq!(size_of::<rte_ether_hdr>(), 14);
        assert_eq!(align_of::<rte_ether_hdr>(), 2);
        assert_eq!(size_of::<rte_ipv4_hdr>(), 20);
        assert_eq!(align_of::<rte_ipv4_hdr>(), 1);
        assert_eq!(size_of::<rte_udp_hdr>(), 8);
        assert_eq!(size_of::<rte_arp_ipv4>(), 20);
        assert_eq!(size_of::<rte_arp_hdr>(), 28);
        assert_eq!(align_of::<rte_arp_hdr>(), 2);
    }

    #[test]
    fn pmd_path_has_the_vdev_drivers() {
        let dir = std::path::Path::new(EAL_PMD_PATH.expect("Debian's DPDK sets RTE_EAL_PMD_PATH"));
        for pmd in [
            "librte_net_ring.so",
            "librte_net_null.so",
            "librte_net_memif.so",
        ] {
            assert!(dir.join(pmd).exists(), "{pmd} in {}", dir.display());
        }
    }
}
