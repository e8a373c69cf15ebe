package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// endpointHealth returns the health status ("" when none) the gateway
// ACKed for the endpoint at addr, and whether it has the endpoint at all.
func (m *mesh) endpointHealth(addr string) (string, bool, error) {
	resp, err := http.Get("http://" + m.api + "/api/v1/proxies/istio-ingressgateway/config/endpoints")
	if err != nil {
		return "", false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		return "", false, fmt.Errorf("%d %s %v", resp.StatusCode, b, err)
	}
	dump := strings.Join(strings.Fields(string(b)), "")
	host, port, _ := strings.Cut(addr, ":")
	ep := fmt.Sprintf(`{"endpoint":{"address":{"socket_address":{"address":%q,"port_value":%s}}}`, host, port)
	i := strings.Index(dump, ep)
	if i < 0 {
		return "", false, nil
	}
	rest := dump[i+len(ep):]
	if strings.HasPrefix(rest, `,"health_status":"`) {
		rest = strings.TrimPrefix(rest, `,"health_status":"`)
		return rest[:strings.IndexByte(rest, '"')], true, nil
	}
	return "", true, nil
}

// TestInstanceKilledUnderLoad is the pod-churn case through the ingress
// gateway: of three instances one is SIGKILLed (its weft run, sidecar and
// all) while 32 clients send requests, and not one request fails. The
// requests routed to it before the mesh knew are retried on the others
// (Istio's default retry policy, and Istio's circuit breakers, which let
// any number of retries run at once); then the gateway gets the instance's
// endpoint as UNHEALTHY, as soon as its sidecar's xDS stream dropped.
func TestInstanceKilledUnderLoad(t *testing.T) {
	m := upMesh(t, "")
	var instances []*proc
	for _, v := range []string{"v1", "v2", "v3"} {
		instances = append(instances, m.echo("default", "echo", v))
	}
	m.apply("default", edge("")) // no retries field: Istio's default retry policy
	waitServing(t, m, 3)
	victim := m.inbound("default", "echo", "v2")

	l := startLoad(m.gateway, 32, func(code int, body string) bool { return code == 200 && echoLine.MatchString(body) })
	l.waitOK(t, 500)
	instances[1].kill()
	eventually(t, 30*time.Second, "the killed instance's endpoint unhealthy at the gateway", func() error {
		h, ok, err := m.endpointHealth(victim)
		if err == nil && (!ok || h != "UNHEALTHY") {
			err = fmt.Errorf("endpoint %s: present %v, health %q", victim, ok, h)
		}
		return err
	})
	l.waitOK(t, l.ok.Load()+500) // and the load goes on without it
	l.finish(t)
	for _, live := range []string{"v1", "v3"} {
		if h, ok, err := m.endpointHealth(m.inbound("default", "echo", live)); err != nil || !ok || h != "" {
			t.Errorf("live instance %s: present %v, health %q, %v", live, ok, h, err)
		}
	}
}
