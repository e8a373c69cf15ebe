package xdsscale

import (
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

// runDelta speaks incremental ADS as the weft proxy does with delta on:
// SDS, CDS and LDS by wildcard; EDS and RDS subscribed by name as
// clusters and listeners come and go.
func (s *stream) runDelta() error {
	first := true
	send := func(req *discovery.DeltaDiscoveryRequest) error {
		if first {
			req.Node = s.meta.Node()
			first = false
		}
		return s.dlt.Send(req)
	}
	for _, t := range []string{typeSecret, typeCluster, typeListener} {
		if err := send(&discovery.DeltaDiscoveryRequest{TypeUrl: t}); err != nil {
			return err
		}
	}
	clusterEDS := map[string]string{}           // cluster -> EDS name ("" when not EDS)
	listenerRDS := map[string]map[string]bool{} // listener -> route tables
	for {
		resp, err := s.dlt.Recv()
		if err != nil {
			return err
		}
		t := resp.GetTypeUrl()
		names := make([]string, 0, len(resp.GetResources()))
		for _, r := range resp.GetResources() {
			names = append(names, r.GetName())
			b := r.GetResource().GetValue()
			switch t {
			case typeCluster:
				n, _ := edsServiceName(b)
				clusterEDS[r.GetName()] = n
			case typeListener:
				rds := map[string]bool{}
				if err := routeNames(b, rds); err != nil {
					return err
				}
				listenerRDS[r.GetName()] = rds
			}
		}
		for _, n := range resp.GetRemovedResources() {
			delete(clusterEDS, n)
			delete(listenerRDS, n)
		}
		if err := send(&discovery.DeltaDiscoveryRequest{TypeUrl: t, ResponseNonce: resp.GetNonce()}); err != nil {
			return err
		}
		s.recordAck(t, names, resp.GetRemovedResources())
		var want map[string]bool
		sub := ""
		switch t {
		case typeCluster:
			want, sub = map[string]bool{}, typeEndpoint
			for _, n := range clusterEDS {
				if n != "" {
					want[n] = true
				}
			}
		case typeListener:
			want, sub = map[string]bool{}, typeRoute
			for _, rds := range listenerRDS {
				for n := range rds {
					want[n] = true
				}
			}
		}
		if sub == "" {
			continue
		}
		s.mu.Lock()
		cur := s.eds
		if sub == typeRoute {
			cur = s.rds
		}
		var add, drop []string
		for n := range want {
			if !cur[n] {
				add = append(add, n)
			}
		}
		for n := range cur {
			if !want[n] {
				drop = append(drop, n)
			}
		}
		if sub == typeRoute {
			s.rds = want
		} else {
			s.eds = want
		}
		s.mu.Unlock()
		if len(add)+len(drop) > 0 {
			if err := send(&discovery.DeltaDiscoveryRequest{TypeUrl: sub, ResourceNamesSubscribe: add, ResourceNamesUnsubscribe: drop}); err != nil {
				return err
			}
		}
	}
}
