/* shim.h - real symbols for DPDK's static-inline functions and macros.
 *
 * DPDK keeps its fast path (rx/tx burst, mbuf alloc/free, data pointers) in
 * static-inline functions and macros, which have no symbol that Rust can
 * link against. Each psp_* function below wraps exactly one of them, with the
 * same arguments and result, and adds no logic of its own. shim.c is compiled
 * with DPDK's own cflags (-march, -include rte_config.h), so the inlined code is
 * the code DPDK intends. */
#ifndef PSP_DPDK_SHIM_H
#define PSP_DPDK_SHIM_H

#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;
struct rte_ipv4_hdr;

/* ethdev fast path */
uint16_t psp_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
			  struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t psp_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
			  struct rte_mbuf **tx_pkts, uint16_t nb_pkts);

/* mbuf allocation */
struct rte_mbuf *psp_pktmbuf_alloc(struct rte_mempool *mp);
int psp_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
			   unsigned int count);
void psp_pktmbuf_free(struct rte_mbuf *m);
void psp_pktmbuf_reset(struct rte_mbuf *m);

/* mbuf data area */
char *psp_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *psp_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *psp_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int psp_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
void *psp_pktmbuf_mtod(struct rte_mbuf *m);
void *psp_pktmbuf_mtod_offset(struct rte_mbuf *m, uint16_t offset);
uint16_t psp_pktmbuf_data_len(const struct rte_mbuf *m);
void psp_pktmbuf_set_data_len(struct rte_mbuf *m, uint16_t len);
uint32_t psp_pktmbuf_pkt_len(const struct rte_mbuf *m);
void psp_pktmbuf_set_pkt_len(struct rte_mbuf *m, uint32_t len);
uint16_t psp_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t psp_pktmbuf_tailroom(const struct rte_mbuf *m);
uint16_t psp_pktmbuf_nb_segs(const struct rte_mbuf *m);
int psp_pktmbuf_is_contiguous(const struct rte_mbuf *m);
uint16_t psp_pktmbuf_port(const struct rte_mbuf *m);

/* offload metadata */
uint64_t psp_pktmbuf_ol_flags(const struct rte_mbuf *m);
void psp_pktmbuf_set_ol_flags(struct rte_mbuf *m, uint64_t ol_flags);
void psp_pktmbuf_set_tx_offload(struct rte_mbuf *m, uint64_t ol_flags,
				uint16_t l2_len, uint16_t l3_len,
				uint16_t l4_len);
uint16_t psp_pktmbuf_l2_len(const struct rte_mbuf *m);
uint16_t psp_pktmbuf_l3_len(const struct rte_mbuf *m);
uint16_t psp_pktmbuf_l4_len(const struct rte_mbuf *m);

/* IPv4/UDP checksums (software path, and the pseudo-header for offload) */
uint16_t psp_ipv4_cksum(const struct rte_ipv4_hdr *ipv4_hdr);
uint16_t psp_ipv4_phdr_cksum(const struct rte_ipv4_hdr *ipv4_hdr,
			     uint64_t ol_flags);
uint16_t psp_ipv4_udptcp_cksum(const struct rte_ipv4_hdr *ipv4_hdr,
			       const void *l4_hdr);

/* EAL: lcore, errno, time */
unsigned int psp_lcore_id(void);
int psp_errno(void);
uint64_t psp_rdtsc(void);
uint64_t psp_rdtsc_precise(void);
uint64_t psp_get_tsc_hz(void);
void psp_pause(void);

#endif /* PSP_DPDK_SHIM_H */
