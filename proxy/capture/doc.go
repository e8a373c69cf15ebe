// Package capture is weft's transparent traffic capture, built once for
// every place a sidecar runs next to an app that does not know about it
// (Kubernetes pods now, VMs later):
//
//   - the netfilter rules (Config, Rulesets, Apply, Cleanup) that redirect
//     a workload's TCP to the sidecar's capture ports, written natively
//     through netlink (nf_tables) into a table of weft's own; `weft
//     iptables` runs them, as Istio's istio-iptables does;
//   - each redirected connection's original destination (OriginalDst,
//     SO_ORIGINAL_DST), and the Conn wrapper that reports it as the
//     connection's local address, so the proxy's filter chain matching,
//     RBAC and ORIGINAL_DST clusters see where the client meant to go.
package capture
