package xdsscale

import (
	"google.golang.org/protobuf/encoding/protowire"
)

// The driver acts like a proxy that applies what it is sent, but it must
// not spend the machine's two cores decoding megabytes of resources the
// control plane under test competes for. It reads only what a proxy needs
// to subscribe and ACK: names, and which clusters take endpoints from EDS.

// clusterTypeEDS is envoy.config.cluster.v3.Cluster.DiscoveryType EDS.
const clusterTypeEDS = 3

// field returns the first occurrence of field num (of wire type typ) in a
// message's encoding, or nil.
func field(b []byte, num protowire.Number, typ protowire.Type) []byte {
	for len(b) > 0 {
		n, t, l := protowire.ConsumeTag(b)
		if l < 0 {
			return nil
		}
		b = b[l:]
		if n == num && t == typ {
			switch typ {
			case protowire.BytesType:
				v, l := protowire.ConsumeBytes(b)
				if l < 0 {
					return nil
				}
				return v
			case protowire.VarintType:
				_, l := protowire.ConsumeVarint(b)
				if l < 0 {
					return nil
				}
				return b[:l]
			}
		}
		l = protowire.ConsumeFieldValue(n, t, b)
		if l < 0 {
			return nil
		}
		b = b[l:]
	}
	return nil
}

// resourceName reads field 1 (a string): the name of a Cluster, Listener,
// RouteConfiguration or Secret, the cluster_name of a ClusterLoadAssignment.
func resourceName(b []byte) string { return string(field(b, 1, protowire.BytesType)) }

// edsServiceName reports whether a Cluster's encoding is an EDS cluster
// and the name its endpoints are asked for by: eds_cluster_config
// .service_name, else the cluster's name.
func edsServiceName(b []byte) (string, bool) {
	t := field(b, 2, protowire.VarintType)
	if t == nil {
		return "", false
	}
	if v, _ := protowire.ConsumeVarint(t); v != clusterTypeEDS {
		return "", false
	}
	if sn := field(field(b, 3, protowire.BytesType), 2, protowire.BytesType); len(sn) > 0 {
		return string(sn), true
	}
	return resourceName(b), true
}
