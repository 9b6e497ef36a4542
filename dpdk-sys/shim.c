/* shim.c - out-of-line wrappers for DPDK's static-inline fast path.
 *
 * One wrapper per inline function or macro; see shim.h for the list. Each
 * body is a single call so that what Rust calls is exactly what DPDK ships. */
#include <rte_branch_prediction.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_pause.h>

#include "shim.h"

/* src/lib.rs spells these RTE_BIT64() values out for Rust; keep them equal. */
_Static_assert(RTE_ETH_TX_OFFLOAD_IPV4_CKSUM == (1ULL << 1), "lib.rs: TX IPV4_CKSUM");
_Static_assert(RTE_ETH_TX_OFFLOAD_UDP_CKSUM == (1ULL << 2), "lib.rs: TX UDP_CKSUM");
_Static_assert(RTE_ETH_RX_OFFLOAD_IPV4_CKSUM == (1ULL << 1), "lib.rs: RX IPV4_CKSUM");
_Static_assert(RTE_ETH_RX_OFFLOAD_UDP_CKSUM == (1ULL << 2), "lib.rs: RX UDP_CKSUM");

uint16_t psp_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
			  struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t psp_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
			  struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *psp_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int psp_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
			   unsigned int count)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void psp_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

void psp_pktmbuf_reset(struct rte_mbuf *m)
{
	rte_pktmbuf_reset(m);
}

char *psp_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}

char *psp_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_prepend(m, len);
}

char *psp_pktmbuf_adj(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_adj(m, len);
}

int psp_pktmbuf_trim(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_trim(m, len);
}

void *psp_pktmbuf_mtod(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, void *);
}

void *psp_pktmbuf_mtod_offset(struct rte_mbuf *m, uint16_t offset)
{
	return rte_pktmbuf_mtod_offset(m, void *, offset);
}

uint16_t psp_pktmbuf_data_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_data_len(m);
}

void psp_pktmbuf_set_data_len(struct rte_mbuf *m, uint16_t len)
{
	m->data_len = len;
}

uint32_t psp_pktmbuf_pkt_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_pkt_len(m);
}

void psp_pktmbuf_set_pkt_len(struct rte_mbuf *m, uint32_t len)
{
	m->pkt_len = len;
}

uint16_t psp_pktmbuf_headroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_headroom(m);
}

uint16_t psp_pktmbuf_tailroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_tailroom(m);
}

uint16_t psp_pktmbuf_nb_segs(const struct rte_mbuf *m)
{
	return m->nb_segs;
}

int psp_pktmbuf_is_contiguous(const struct rte_mbuf *m)
{
	return rte_pktmbuf_is_contiguous(m);
}

uint16_t psp_pktmbuf_port(const struct rte_mbuf *m)
{
	return m->port;
}

uint64_t psp_pktmbuf_ol_flags(const struct rte_mbuf *m)
{
	return m->ol_flags;
}

void psp_pktmbuf_set_ol_flags(struct rte_mbuf *m, uint64_t ol_flags)
{
	m->ol_flags = ol_flags;
}

void psp_pktmbuf_set_tx_offload(struct rte_mbuf *m, uint64_t ol_flags,
				uint16_t l2_len, uint16_t l3_len,
				uint16_t l4_len)
{
	m->ol_flags |= ol_flags;
	m->l2_len = l2_len;
	m->l3_len = l3_len;
	m->l4_len = l4_len;
}

uint16_t psp_pktmbuf_l2_len(const struct rte_mbuf *m)
{
	return m->l2_len;
}

uint16_t psp_pktmbuf_l3_len(const struct rte_mbuf *m)
{
	return m->l3_len;
}

uint16_t psp_pktmbuf_l4_len(const struct rte_mbuf *m)
{
	return m->l4_len;
}

uint16_t psp_ipv4_cksum(const struct rte_ipv4_hdr *ipv4_hdr)
{
	return rte_ipv4_cksum(ipv4_hdr);
}

uint16_t psp_ipv4_phdr_cksum(const struct rte_ipv4_hdr *ipv4_hdr,
			     uint64_t ol_flags)
{
	return rte_ipv4_phdr_cksum(ipv4_hdr, ol_flags);
}

uint16_t psp_ipv4_udptcp_cksum(const struct rte_ipv4_hdr *ipv4_hdr,
			       const void *l4_hdr)
{
	return rte_ipv4_udptcp_cksum(ipv4_hdr, l4_hdr);
}

unsigned int psp_lcore_id(void)
{
	return rte_lcore_id();
}

int psp_errno(void)
{
	return rte_errno;
}

uint64_t psp_rdtsc(void)
{
	return rte_rdtsc();
}

uint64_t psp_rdtsc_precise(void)
{
	return rte_rdtsc_precise();
}

uint64_t psp_get_tsc_hz(void)
{
	return rte_get_tsc_hz();
}

void psp_pause(void)
{
	rte_pause();
}
