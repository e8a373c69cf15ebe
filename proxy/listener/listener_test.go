package listener

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

func testListener(t testing.TB, hcm *hcmv3.HttpConnectionManager) *listenerv3.Listener {
	tc, err := anypb.New(hcm)
	if err != nil {
		t.Fatal(err)
	}
	return &listenerv3.Listener{
		Name: "0.0.0.0_80",
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080}}}},
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name: HTTPConnectionManager, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: tc}}}}},
	}
}

func TestParse(t *testing.T) {
	s, err := Parse(testListener(t, &hcmv3.HttpConnectionManager{
		StatPrefix:     "x",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "http.80"}},
		HttpFilters:    []*hcmv3.HttpFilter{{Name: RouterFilter}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if s.Address != "127.0.0.1:8080" || s.RouteConfigName != "http.80" || s.RouteConfig != nil {
		t.Errorf("spec = %+v", s)
	}
	_, err = Parse(testListener(t, &hcmv3.HttpConnectionManager{
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{}},
	}))
	if err == nil || !strings.Contains(err.Error(), `listener "0.0.0.0_80": filter_chains[0].filters[0].typed_config.rds.route_config_name: empty`) {
		t.Errorf("err = %v", err)
	}
	_, err = Parse(testListener(t, &hcmv3.HttpConnectionManager{}))
	if err == nil || !strings.Contains(err.Error(), "route_specifier") {
		t.Errorf("err = %v", err)
	}
}

func TestServerProtocolsAndDrain(t *testing.T) {
	release := make(chan struct{})
	s, err := Listen("l", "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, r.Proto)
	}), ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + s.Addr().String()

	// HTTP/1.1 and h2c with prior knowledge on the same port.
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	for want, c := range map[string]*http.Client{
		"HTTP/1.1": {Transport: &http.Transport{}},
		"HTTP/2.0": {Transport: &http.Transport{Protocols: p}},
	} {
		resp, err := c.Get(base + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != want {
			t.Errorf("served %q, want %q", b, want)
		}
		c.CloseIdleConnections()
	}

	// An h2c upgrade request is answered over HTTP/1.1.
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("upgrade request: %v %v", resp, err)
	}
	conn.Close()

	// Shutdown waits for the in-flight request.
	done := make(chan string, 1)
	go func() {
		resp, err := http.Get(base + "/slow")
		if err != nil {
			done <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- string(b)
	}()
	for s.Active() == 0 {
		time.Sleep(time.Millisecond)
	}
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if got := <-done; got != "HTTP/1.1" {
		t.Errorf("in-flight request got %q", got)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
}
