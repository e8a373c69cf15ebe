package xdsscale

import (
	"fmt"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
)

// runSotW speaks State of the World ADS as the weft proxy does: SDS, CDS
// and LDS by wildcard; EDS for every EDS cluster once CDS is ACKed, RDS
// for every route table the listeners name once LDS is ACKed.
func (s *stream) runSotW() error {
	nonces := map[string]string{}
	versions := map[string]string{}
	first := true
	send := func(t string, names []string) error {
		req := &discovery.DiscoveryRequest{TypeUrl: t, VersionInfo: versions[t], ResponseNonce: nonces[t], ResourceNames: names}
		if first {
			req.Node = s.meta.Node()
			first = false
		}
		return s.sotw.Send(req)
	}
	for _, t := range []string{typeSecret, typeCluster, typeListener} {
		if err := send(t, nil); err != nil {
			return err
		}
	}
	for {
		resp, err := s.sotw.Recv()
		if err != nil {
			return err
		}
		t := resp.GetTypeUrl()
		nonces[t], versions[t] = resp.GetNonce(), resp.GetVersionInfo()
		names := make([]string, 0, len(resp.GetResources()))
		var eds []string
		var rds map[string]bool
		switch t {
		case typeCluster:
			for _, a := range resp.GetResources() {
				names = append(names, resourceName(a.GetValue()))
				if n, ok := edsServiceName(a.GetValue()); ok {
					eds = append(eds, n)
				}
			}
		case typeListener:
			rds = map[string]bool{}
			for _, a := range resp.GetResources() {
				names = append(names, resourceName(a.GetValue()))
				if err := routeNames(a.GetValue(), rds); err != nil {
					return err
				}
			}
		default:
			for _, a := range resp.GetResources() {
				names = append(names, resourceName(a.GetValue()))
			}
		}
		// Wildcard types replace the whole set; named ones update theirs.
		var removed []string
		if t == typeCluster || t == typeListener || t == typeSecret {
			s.mu.Lock()
			keep := setOf(names)
			for n := range s.have[t] {
				if !keep[n] {
					removed = append(removed, n)
				}
			}
			s.mu.Unlock()
		}
		if err := send(t, s.subscription(t)); err != nil {
			return err
		}
		s.recordAck(t, names, removed)
		switch t {
		case typeCluster:
			if s.resubscribe(typeEndpoint, setOf(eds)) {
				if err := send(typeEndpoint, s.subscription(typeEndpoint)); err != nil {
					return err
				}
			}
		case typeListener:
			if s.resubscribe(typeRoute, rds) {
				if err := send(typeRoute, s.subscription(typeRoute)); err != nil {
					return err
				}
			}
		}
	}
}

// subscription returns the names a request of type t carries (sorted
// once per change of subscription, as a proxy keeps them).
func (s *stream) subscription(t string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.sorted[t]; ok {
		return n
	}
	var n []string
	switch t {
	case typeEndpoint:
		n = sortedSet(s.eds)
	case typeRoute:
		n = sortedSet(s.rds)
	default:
		return nil
	}
	s.sorted[t] = n
	return n
}

// resubscribe replaces the EDS or RDS subscription, reporting whether it
// changed.
func (s *stream) resubscribe(t string, want map[string]bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.eds
	if t == typeRoute {
		cur = s.rds
	}
	same := len(cur) == len(want)
	for n := range want {
		same = same && cur[n]
	}
	if same {
		return false
	}
	if t == typeRoute {
		s.rds = want
	} else {
		s.eds = want
	}
	delete(s.sorted, t)
	return true
}

// routeNames adds the RDS route tables a listener's HTTP connection
// managers name.
func routeNames(b []byte, into map[string]bool) error {
	var l listener.Listener
	if err := proto.Unmarshal(b, &l); err != nil {
		return fmt.Errorf("decode listener: %w", err)
	}
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			tc := f.GetTypedConfig()
			if tc == nil || tc.GetTypeUrl() != "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager" {
				continue
			}
			var m hcm.HttpConnectionManager
			if err := tc.UnmarshalTo(&m); err != nil {
				return fmt.Errorf("listener %s: decode HCM: %w", l.GetName(), err)
			}
			if n := m.GetRds().GetRouteConfigName(); n != "" {
				into[n] = true
			}
		}
	}
	return nil
}
