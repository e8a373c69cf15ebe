package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weft-mesh/weft/kube/inject"
)

// consoleURL is the console's address on this host: Service istiod-leader,
// which routes to the leading control plane replica, where the proxies'
// telemetry goes.
func (m *mesh) consoleURL(ctx context.Context) (string, error) {
	svc, err := m.c.Kube.CoreV1().Services(inject.SystemNamespace).Get(ctx, inject.LeaderServiceName, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("http://%s:%d", svc.Spec.ClusterIP, inject.APIPort), nil
}

// consoleGet GETs path from the console with the API token (the console
// logs in with it off loopback).
func (m *mesh) consoleGet(ctx context.Context, path string) (int, string, error) {
	base, err := m.consoleURL(ctx)
	if err != nil {
		return 0, "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+m.apiToken)
	resp, err := apiClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// bookinfoEdges are the traffic graph's edges Bookinfo's traffic through
// the gateway makes, as "FROM -> TO" of the graph's node IDs.
func (m *mesh) bookinfoEdges() []string {
	svc := func(name string) string { return "service:" + name + "." + m.ns + ".svc.cluster.local" }
	wl := func(name string) string { return "workload:" + m.ns + "/" + name }
	return []string{
		wl("productpage-v1") + " -> " + svc("details"),
		wl("productpage-v1") + " -> " + svc("reviews"),
		wl("reviews-v2") + " -> " + svc("ratings"),
		wl("reviews-v3") + " -> " + svc("ratings"),
		svc("reviews") + " -> " + wl("reviews-v1"),
	}
}

// waitGraph waits until the console's traffic graph (last 30 s) holds
// every edge of Bookinfo's traffic, sending pages meanwhile.
func (m *mesh) waitGraph(t *testing.T, timeout time.Duration) time.Duration {
	t.Helper()
	return eventually(t, timeout, "the console's graph of Bookinfo", func() error {
		if _, err := m.versions("", 10); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		code, body, err := m.consoleGet(ctx, "/api/v1/graph?window=30s")
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("graph: %d %v %.200s", code, err, body)
		}
		var g struct {
			Edges []struct{ Source, Target string } `json:"edges"`
		}
		if err := json.Unmarshal([]byte(body), &g); err != nil {
			return fmt.Errorf("graph: %v", err)
		}
		have := map[string]bool{}
		for _, e := range g.Edges {
			have[e.Source+" -> "+e.Target] = true
		}
		for _, e := range m.bookinfoEdges() {
			if !have[e] {
				return fmt.Errorf("no edge %s among %d", e, len(g.Edges))
			}
		}
		return nil
	})
}

// TestConsole: the console, through Service istiod-leader (what
// `kubectl -n istio-system port-forward svc/istiod-leader 15080` opens),
// logs in with the API token and shows Bookinfo's whole traffic graph,
// although the proxies' xDS streams are spread over both replicas.
func TestConsole(t *testing.T) {
	m := meshFor(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, body, err := m.consoleGet(ctx, "/")
	if err != nil || code != http.StatusOK || !strings.Contains(body, "<html") {
		t.Fatalf("the console page: %d %v %.200s", code, err, body)
	}
	base, err := m.consoleURL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := apiClient.Get(base + "/api/v1/graph")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the graph without the token: %d, want 401", resp.StatusCode)
	}
	// The Service's names are the console's own; another name is a web
	// page rebinding its name (internal/hostguard).
	for host, want := range map[string]int{
		inject.LeaderServiceName + "." + inject.SystemNamespace + ".svc:15080":              http.StatusOK,
		inject.ControlPlaneName + "." + inject.SystemNamespace + ".svc.cluster.local:15080": http.StatusOK,
		"evil.example:15080": http.StatusForbidden,
	} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/graph", nil)
		req.Host = host
		req.Header.Set("Authorization", "Bearer "+m.apiToken)
		resp, err := apiClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("the graph with Host %s: %d, want %d", host, resp.StatusCode, want)
		}
	}
	t.Logf("the console's graph holds Bookinfo's traffic after %s", m.waitGraph(t, 2*time.Minute).Round(time.Millisecond))
}
