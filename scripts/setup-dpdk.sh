#!/usr/bin/env bash
# setup-dpdk.sh - install what building and testing the `dpdk` feature needs
# on Debian 12 (bookworm): the system DPDK 22.11 (headers, pkg-config file,
# shared libraries and PMD plugins), pkg-config, libclang for bindgen, and a
# C compiler for dpdk-sys's shim.
#
# Idempotent: does nothing when everything is already there. Needs root (or
# sudo) only when it has to install. The tests run with `--no-huge`, so no
# hugepages are configured here. For NIC work also install `dpdk` (testpmd,
# dpdk-devbind.py); the build and the tests do not need it.
set -euo pipefail

PACKAGES=(libdpdk-dev pkg-config libclang-dev clang gcc libc6-dev)
MIN_DPDK=22.11

have_all() {
	command -v pkg-config >/dev/null &&
		pkg-config --atleast-version="$MIN_DPDK" libdpdk &&
		command -v clang >/dev/null &&
		command -v cc >/dev/null &&
		# bindgen loads libclang (libclang-NN.so) at build time.
		PATH="$PATH:/sbin:/usr/sbin" ldconfig -p | grep -E '[[:space:]]libclang(-[0-9.]+)?[.]so' >/dev/null
}

if have_all; then
	echo "setup-dpdk: DPDK $(pkg-config --modversion libdpdk), clang and libclang already installed"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null; then
		SUDO=(sudo)
	else
		echo "setup-dpdk: run as root (or install sudo) to install: ${PACKAGES[*]}" >&2
		exit 1
	fi
else
	SUDO=()
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
"${SUDO[@]}" apt-get install -y --no-install-recommends "${PACKAGES[@]}"

if ! have_all; then
	echo "setup-dpdk: installed ${PACKAGES[*]} but DPDK >= $MIN_DPDK or libclang is still missing" >&2
	exit 1
fi
echo "setup-dpdk: DPDK $(pkg-config --modversion libdpdk) ready"
