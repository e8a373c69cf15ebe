package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/weft-mesh/weft/demo/echo"
)

// TestDataPathProtocols sends what a proxy must carry besides short
// request/response pairs through the gateway and the app's sidecar (two
// weft proxies, mutual TLS between them; HTTP/1.1 on weft's own codec):
// server-sent events flushed one by one, chunked and large bodies both
// ways, h2c from the client, gRPC, and a WebSocket upgrade. TCP proxying
// has its own test (TestTCPRoutes).
func TestDataPathProtocols(t *testing.T) {
	m := upMesh(t, "")
	m.run("default", "stream", "app=stream,version=v1", weftBin, "demo-app", "echo", "stream")
	m.apply("default", edgeGateway+`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: stream}
spec:
  hosts: ["*"]
  gateways: [edge]
  http:
  - route:
    - destination: {host: stream, port: {number: 8080}}
`)
	base := "http://" + m.gateway
	eventually(t, 60*time.Second, "the gateway routes to the stream app", func() error {
		code, body, err := get(m.gateway, "", "/bytes?n=3", nil)
		if err != nil || code != 200 || body != "abc" {
			return fmt.Errorf("%d %q %v", code, body, err)
		}
		return nil
	})

	t.Run("server-sent events", func(t *testing.T) {
		resp, err := client.Get(base + "/sse")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		// The first event arrives while the app still holds the stream
		// open: each proxy flushed it on its own.
		if ev, err := readEvent(br); err != nil || ev != "data: 1" {
			t.Fatalf("first event %q %v", ev, err)
		}
		if code, _, err := post(base+"/release", nil); err != nil || code != 200 {
			t.Fatalf("release: %d %v", code, err)
		}
		if ev, err := readEvent(br); err != nil || ev != "data: 2" {
			t.Fatalf("second event %q %v", ev, err)
		}
	})

	t.Run("chunked response", func(t *testing.T) {
		resp, err := client.Get(base + "/bytes?n=1000003&chunked=1")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.ContentLength != -1 || !pattern(b, 1000003) {
			t.Fatalf("chunked download: %d bytes, length %d, %v", len(b), resp.ContentLength, err)
		}
	})

	t.Run("large bodies", func(t *testing.T) {
		resp, err := client.Get(base + "/bytes?n=16777216")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.ContentLength != 16<<20 || !pattern(b, 16<<20) {
			t.Fatalf("16 MiB download: %d bytes, length %d, %v", len(b), resp.ContentLength, err)
		}
		up := make([]byte, 8<<20)
		rand.Read(up)
		code, back, err := post(base+"/echo", bytes.NewReader(up))
		if err != nil || code != 200 || !bytes.Equal(back, up) {
			t.Fatalf("8 MiB upload echoed: %d, %d bytes, %v", code, len(back), err)
		}
		// A chunked upload: the body's length is not known in advance.
		pr, pw := io.Pipe()
		go func() {
			for i := 0; i < 64; i++ {
				pw.Write(up[i<<16 : (i+1)<<16])
			}
			pw.Close()
		}()
		code, back, err = post(base+"/echo", pr)
		if err != nil || code != 200 || !bytes.Equal(back, up[:64<<16]) {
			t.Fatalf("chunked 4 MiB upload echoed: %d, %d bytes, %v", code, len(back), err)
		}
	})

	t.Run("h2c", func(t *testing.T) {
		protos := new(http.Protocols)
		protos.SetUnencryptedHTTP2(true)
		h2 := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{Protocols: protos}}
		defer h2.CloseIdleConnections()
		resp, err := h2.Get(base + "/bytes?n=100000")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.ProtoMajor != 2 || !pattern(b, 100000) {
			t.Fatalf("h2c: proto %s, %d bytes, %v", resp.Proto, len(b), err)
		}
	})

	t.Run("gRPC", func(t *testing.T) {
		cc, err := grpc.NewClient(m.gateway, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		for i := 0; i < 20; i++ {
			r, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
			if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("gRPC health check %d: %v %v", i, r, err)
			}
		}
	})

	t.Run("WebSocket upgrade", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", m.gateway, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(15 * time.Second))
		var k [16]byte
		rand.Read(k[:])
		key := base64.StdEncoding.EncodeToString(k[:])
		fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: stream\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", key)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 101 || resp.Header.Get("Sec-Websocket-Accept") != echo.WebSocketAccept(key) {
			t.Fatalf("handshake: %d %v", resp.StatusCode, resp.Header)
		}
		for _, msg := range []string{"hello", "through two proxies"} {
			if err := echo.WriteFrame(c, []byte(msg), true); err != nil {
				t.Fatal(err)
			}
			op, got, err := echo.ReadFrame(br)
			if err != nil || op != 1 || string(got) != "echo: "+msg {
				t.Fatalf("frame: op %d %q %v", op, got, err)
			}
		}
	})
}

// readEvent reads one server-sent event's data line (and its blank line).
func readEvent(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return line, err
	}
	if blank, err := br.ReadString('\n'); err != nil || blank != "\n" {
		return line, fmt.Errorf("event not ended by a blank line: %q %v", blank, err)
	}
	return strings.TrimSuffix(line, "\n"), nil
}

func post(url string, body io.Reader) (int, []byte, error) {
	resp, err := client.Post(url, "application/octet-stream", body)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// pattern reports whether b is the stream app's n bytes of 'a'..'z'.
func pattern(b []byte, n int) bool {
	if len(b) != n {
		return false
	}
	for i, c := range b {
		if c != byte('a'+i%26) {
			return false
		}
	}
	return true
}
