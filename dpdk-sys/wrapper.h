/* wrapper.h - the DPDK headers that bindgen reads for dpdk-sys.
 *
 * rte_config.h comes first through `-include rte_config.h` (build.rs passes it
 * to both bindgen and cc, as DPDK's pkg-config cflags ask), so nothing here
 * needs to include it. */
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_udp.h>
#include <rte_arp.h>

#include "shim.h"
