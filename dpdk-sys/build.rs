//! Build script for dpdk-sys: find the system DPDK, compile the C shim, and
//! generate bindings.
//!
//! Without DPDK: when `pkg-config libdpdk` finds no DPDK >= 22.11 (or
//! `DPDK_SYS_FORCE_STUB=1` is set, to try this path on a machine that has
//! DPDK), the script generates nothing, compiles nothing and sets the cfg
//! `dpdk_sys_stub`: the library is then empty except `AVAILABLE = false`, its
//! tests compile to nothing, and the build prints no warning. The package is a
//! member of the root workspace (cargo #6745: a path dependency cannot be
//! excluded), so `cargo test --workspace` on a fresh machine depends on this.
//! With the `required` feature (turned on by the root crate's `dpdk`
//! feature) the stub is a compile error instead: "DPDK not found by
//! pkg-config: run scripts/setup-dpdk.sh".
//!
//! Steps:
//! 1. `pkg-config libdpdk` (>= 22.11) gives the link flags (emitted as
//!    `rustc-link-lib`) and the cflags. DPDK's cflags matter beyond `-I`: they
//!    carry `-include rte_config.h` and a `-march` (Debian: `-march=corei7`),
//!    and DPDK's headers do not compile without them, so they go verbatim to
//!    both cc and bindgen.
//! 2. The vdev PMDs we test and run with are checked to be where EAL
//!    autoloads drivers from (see [`VDEV_PMDS`]).
//! 3. `shim.c` is compiled with cc into a static library.
//! 4. bindgen reads `wrapper.h` with a tight allowlist and writes
//!    `$OUT_DIR/bindings.rs`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The oldest DPDK whose ABI these bindings were generated against.
const MIN_DPDK: &str = "22.11";

/// Virtual-device PMDs that the tests and the DPDK transport rely on.
///
/// How they get loaded (measured on Debian 12, DPDK 22.11.11): with a
/// shared-library build, every PMD is its own `librte_net_*.so`, and EAL has
/// two ways to load one: the `-d <path>` option, and, for shared builds only,
/// every `.so` in the directory `RTE_EAL_PMD_PATH` (a compile-time constant in
/// `rte_build_config.h`; Debian: `/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0`),
/// which `rte_eal_init` scans by itself. That scan finds `net_ring`,
/// `net_null`, `net_memif`, the vdev bus and the `ring_mp_mc` mempool driver,
/// so `--vdev=net_ring0` works with no `-d` and nothing linked. This crate
/// relies on it.
///
/// Linking the PMDs explicitly was tried and dropped: a PMD exports no
/// symbol (it registers itself from an ELF constructor), so rustc's default
/// `-Wl,--as-needed` drops it from the binary. Turning that off for one
/// library needs the `-l dylib:-as-needed=...` modifier, which is nightly-only
/// (rustc 1.95), and a `cargo:rustc-link-arg=-Wl,--no-as-needed` would reach
/// only this package's own targets, never the root crate's binaries. Static
/// `+whole-archive` linking of the `.a` drivers would register each driver a
/// second time next to the autoloaded `.so`. (With `--no-as-needed`, a C
/// program linking both works too: the symlinked `.so` is the same file, so
/// `dlopen` dedups it.)
///
/// So the build only checks that these drivers are in the plugin directory
/// and warns if not, and exports the directory as `dpdk_sys::EAL_PMD_PATH`
/// and `DEP_DPDK_PMD_PATH` (build-script metadata) for diagnostics.
const VDEV_PMDS: &[&str] = &[
    "librte_bus_vdev",
    "librte_mempool_ring",
    "librte_net_ring",
    "librte_net_null",
    "librte_net_memif",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets this"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets this"));
    for file in ["build.rs", "wrapper.h", "shim.h", "shim.c"] {
        println!("cargo:rerun-if-changed={file}");
    }
    println!("cargo:rustc-check-cfg=cfg(dpdk_sys_stub)");
    println!("cargo:rerun-if-env-changed={FORCE_STUB}");

    if env::var_os(FORCE_STUB).is_some_and(|v| v == "1") {
        return stub(&format!("{FORCE_STUB}=1"));
    }
    let dpdk = match pkg_config::Config::new()
        .atleast_version(MIN_DPDK)
        .probe("libdpdk")
    {
        Ok(dpdk) => dpdk,
        Err(e) => return stub(&format!("need DPDK >= {MIN_DPDK}: {e}")),
    };
    let cflags = dpdk_cflags();

    match pmd_path(&dpdk.include_paths) {
        Some(dir) => {
            check_vdev_pmds(&dir);
            println!("cargo:pmd_path={dir}");
            println!("cargo:rustc-env=DPDK_SYS_EAL_PMD_PATH={dir}");
        }
        None => println!(
            "cargo:warning=RTE_EAL_PMD_PATH not found in rte_build_config.h: \
             EAL will not autoload PMDs; pass `-d <driver.so>` in the EAL arguments"
        ),
    }

    // Dependents with a build script of their own see these as
    // DEP_DPDK_INCLUDE / DEP_DPDK_VERSION (thanks to `links = "dpdk"`).
    let includes = env::join_paths(&dpdk.include_paths).expect("include paths are valid");
    println!("cargo:include={}", includes.to_string_lossy());
    println!("cargo:version={}", dpdk.version);

    compile_shim(&manifest_dir, &cflags);
    generate_bindings(&manifest_dir, &out_dir, &cflags);
}

/// Set to `1` to build the stub even where DPDK is installed (tests the path a
/// fresh machine takes).
const FORCE_STUB: &str = "DPDK_SYS_FORCE_STUB";

/// Builds the empty stub library: no shim, no bindings, `AVAILABLE = false`.
/// `why` ends up in the compile error that the `required` feature turns on.
fn stub(why: &str) {
    println!("cargo:rustc-cfg=dpdk_sys_stub");
    println!("cargo:stub=1");
    // One line, so that it survives as a rustc-env value.
    let why: String = why
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(300)
        .collect();
    println!("cargo:rustc-env=DPDK_SYS_STUB_REASON={why}");
}

/// `pkg-config --cflags libdpdk`, split into arguments, with
/// `-include rte_config.h` guaranteed to be present.
///
/// The pkg-config crate exposes only `-I` and `-D`; DPDK needs the rest
/// (`-include`, `-march`), so ask pkg-config directly. It runs with the same
/// environment (`PKG_CONFIG_PATH`, ...) as the probe above.
fn dpdk_cflags() -> Vec<String> {
    let mut flags: Vec<String> = pkg_config_output(&["--cflags", "libdpdk"])
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let has_config = flags
        .windows(2)
        .any(|w| w[0] == "-include" && w[1].ends_with("rte_config.h"));
    if !has_config {
        flags.push("-include".into());
        flags.push("rte_config.h".into());
    }
    flags
}

fn pkg_config_output(args: &[&str]) -> String {
    let exe = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into());
    let out = Command::new(&exe)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{exe}`: {e}"));
    assert!(
        out.status.success(),
        "`{exe} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("pkg-config prints UTF-8")
}

/// `RTE_EAL_PMD_PATH` from `rte_build_config.h`, if DPDK was built with one.
fn pmd_path(include_paths: &[PathBuf]) -> Option<String> {
    include_paths.iter().find_map(|dir| {
        let text = std::fs::read_to_string(dir.join("rte_build_config.h")).ok()?;
        text.lines().find_map(|line| {
            let rest = line.strip_prefix("#define RTE_EAL_PMD_PATH")?;
            let path = rest.trim().trim_matches('"');
            (!path.is_empty()).then(|| path.to_owned())
        })
    })
}

/// Warn about each of [`VDEV_PMDS`] missing from the plugin directory.
fn check_vdev_pmds(dir: &str) {
    for pmd in VDEV_PMDS {
        let so = Path::new(dir).join(format!("{pmd}.so"));
        if !so.exists() {
            println!(
                "cargo:warning={} not found: EAL will not autoload it; install it or pass `-d`",
                so.display()
            );
        }
    }
}

fn compile_shim(manifest_dir: &Path, cflags: &[String]) {
    let mut build = cc::Build::new();
    build
        .file(manifest_dir.join("shim.c"))
        .include(manifest_dir)
        .warnings(true)
        .extra_warnings(true)
        .opt_level(3);
    for flag in cflags {
        build.flag(flag);
    }
    build.compile("psp_dpdk_shim");
}

fn generate_bindings(manifest_dir: &Path, out_dir: &Path, cflags: &[String]) {
    let bindings = bindgen::Builder::default()
        .header(manifest_dir.join("wrapper.h").to_string_lossy())
        .clang_args(cflags)
        .clang_arg(format!("-I{}", manifest_dir.display()))
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        // Only what a UDP transport over ethdev needs. A broad allowlist drags
        // in all of DPDK and, through it, compiler intrinsics headers (AMX and
        // friends) that bindgen cannot translate.
        .allowlist_function("rte_eal_.*")
        .allowlist_function("rte_eth_.*")
        .allowlist_function("rte_pktmbuf_.*")
        .allowlist_function("rte_mempool_.*")
        .allowlist_function("rte_mbuf.*")
        .allowlist_function("rte_ether_.*")
        .allowlist_function("rte_ipv4_.*")
        .allowlist_function("rte_udp_.*")
        .allowlist_function("rte_arp_.*")
        .allowlist_function("rte_lcore_.*")
        .allowlist_function("rte_get_main_lcore")
        .allowlist_function("rte_thread_(un)?register")
        .allowlist_function("rte_socket_id")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_get_tsc_hz")
        .allowlist_function("psp_.*")
        .allowlist_type("rte_ether_(addr|hdr)")
        .allowlist_type("rte_vlan_hdr")
        .allowlist_type("rte_ipv4_hdr")
        .allowlist_type("rte_udp_hdr")
        .allowlist_type("rte_arp_(hdr|ipv4)")
        .allowlist_var("RTE_MBUF_.*")
        .allowlist_var("RTE_PKTMBUF_.*")
        .allowlist_var("RTE_ETH_.*")
        .allowlist_var("RTE_ETHER_.*")
        .allowlist_var("RTE_IPV4_.*")
        .allowlist_var("RTE_ARP_.*")
        .allowlist_var("RTE_MEMPOOL_.*")
        .allowlist_var("RTE_MAX_(LCORE|ETHPORTS|NUMA_NODES)")
        .allowlist_var("RTE_CACHE_LINE_SIZE")
        .allowlist_var("SOCKET_ID_ANY")
        .allowlist_var("LCORE_ID_ANY")
        .allowlist_var("E_RTE_.*")
        // Packed *and* aligned(2): Rust rejects `#[repr(packed, align)]`
        // (E0588). Opaque keeps their exact size and alignment; the transport
        // parses ARP from bytes anyway.
        .opaque_type("rte_arp_ipv4")
        .opaque_type("rte_arp_hdr")
        // A packed bitfield struct whose derived Debug does not compile. The
        // allowlist above does not reach rte_flow today; this keeps a wider
        // allowlist from breaking on it.
        .no_debug("rte_flow_item_gtp_psc")
        .derive_default(true)
        .prepend_enum_name(false)
        // DPDK's Doxygen would turn into rustdoc with broken links and
        // would-be doctests; read the headers instead.
        .generate_comments(false)
        .layout_tests(true)
        .wrap_unsafe_ops(true)
        .generate()
        .expect("bindgen failed on wrapper.h (is libclang installed? try scripts/setup-dpdk.sh)");
    bindings
        .write_to_file(out_dir.join("bindings.rs"))
        .expect("cannot write bindings.rs");
}
