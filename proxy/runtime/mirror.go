package runtime

import (
	"context"
	"io"
	"net/http"
	neturl "net/url"
	"time"

	"github.com/weft-mesh/weft/proxy/lb"
	"github.com/weft-mesh/weft/proxy/route"
)

// maxMirrors bounds the shadow requests in flight per process; a request
// whose mirror finds no free slot is not mirrored.
const maxMirrors = 128

// defaultMirrorTimeout bounds a shadow request when its route has no timeout.
const defaultMirrorTimeout = 30 * time.Second

var mirrorSlots = make(chan struct{}, maxMirrors)

// mirror sends a fire-and-forget shadow copy of the request to m's cluster:
// same method, path (after rewrites) and headers (after the route's edits),
// with "-shadow" appended to the authority's host. It never blocks the main
// request nor touches its response; failures are only logged.
func (p *Proxy) mirror(cfg *Config, m *route.MirrorPolicy, r *http.Request, u *neturl.URL, hdr http.Header,
	host string, body *replayBody, grpc bool, timeout time.Duration) {
	c := cfg.clusters[m.Cluster]
	if c == nil {
		return
	}
	select {
	case mirrorSlots <- struct{}{}:
	default:
		return
	}
	if !m.NoSuffix {
		host = route.ShadowHost(host)
	}
	if timeout <= 0 {
		timeout = defaultMirrorTimeout
	}
	mu := *u
	out := &http.Request{
		Method:        r.Method,
		URL:           &mu,
		Proto:         r.Proto,
		ProtoMajor:    r.ProtoMajor,
		ProtoMinor:    r.ProtoMinor,
		Header:        hdr.Clone(),
		Host:          host,
		Body:          http.NoBody,
		ContentLength: 0,
	}
	if body != nil {
		out.Body, out.ContentLength = body.reader(false), r.ContentLength
	}
	go func() {
		defer func() { <-mirrorSlots }()
		ep := c.Pick(out, lb.Hash{})
		if ep == nil || !c.AdmitRequest() {
			return
		}
		defer c.ReleaseRequest()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		mu.Host = ep.Address
		ep.Begin()
		defer ep.End()
		resp, err := p.transport(c, ep, grpc).RoundTrip(out.WithContext(ctx))
		if err != nil {
			c.Observe(ep, 0, true)
			p.log.Debug("mirror failed", "cluster", m.Cluster, "err", err)
			return
		}
		c.Observe(ep, resp.StatusCode, false)
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
	}()
}
