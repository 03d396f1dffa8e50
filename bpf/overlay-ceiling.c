// SPDX-License-Identifier: GPL-2.0
// A measuring instrument, not a datapath: scripts/bench-pod-network --ceiling attaches these
// two tc programs to its own 2-node lab to learn how fast pod-to-pod over VXLAN could go if
// everything but the VXLAN device were skipped (the pod-side bridge, routing, netfilter and
// the receiving veth's backlog), as an eBPF datapath would. They know only the bench's two
// pods and do no conntrack, NAT or policy, so they would break Services: never in a product.
//
// Built per node with clang -target bpf and these constants (network byte order as u32):
//   REMOTE_POD  the other node's bench pod;  VXLAN  ifindex of this node's VXLAN device;
//   LOCAL_POD   this node's bench pod;  POD_MAC, BRIDGE_MAC  its eth0 and weft0 addresses;
//   POD_PEER    ifindex of the pod's veth end on this node.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>

static long (*bpf_redirect_neigh)(__u32 ifindex, void *params, int plen, __u64 flags) = (void *)152;
static long (*bpf_redirect_peer)(__u32 ifindex, __u64 flags) = (void *)155;

#define SEC(name) __attribute__((section(name), used))

static __attribute__((always_inline)) struct iphdr *ipv4(struct __sk_buff *skb) {
  void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
  struct ethhdr *eth = data;
  struct iphdr *ip = data + sizeof(*eth);
  if ((void *)(ip + 1) > end || eth->h_proto != __builtin_bswap16(ETH_P_IP))
    return 0;
  return ip;
}

// Ingress of the pod's veth end: to the other bench pod, straight out of the VXLAN device
// (the neighbour lookup fills in the remote VTEP's MAC from the permanent ARP entry).
SEC("tc") int from_pod(struct __sk_buff *skb) {
  struct iphdr *ip = ipv4(skb);
  if (!ip || ip->daddr != REMOTE_POD)
    return TC_ACT_OK;
  return bpf_redirect_neigh(VXLAN, 0, 0, 0);
}

// Ingress of the VXLAN device: to this node's bench pod, straight into its namespace.
SEC("tc") int from_vxlan(struct __sk_buff *skb) {
  struct iphdr *ip = ipv4(skb);
  if (!ip || ip->daddr != LOCAL_POD)
    return TC_ACT_OK;
  struct ethhdr *eth = (void *)ip - sizeof(*eth); // the checked packet range, not a reload
  unsigned char pod[ETH_ALEN] = {POD_MAC}, bridge[ETH_ALEN] = {BRIDGE_MAC};
  __builtin_memcpy(eth->h_dest, pod, ETH_ALEN);
  __builtin_memcpy(eth->h_source, bridge, ETH_ALEN);
  return bpf_redirect_peer(POD_PEER, 0);
}

char _license[] SEC("license") = "GPL";
