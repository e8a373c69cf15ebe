package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// roundTrip writes raw to a connection served by serve and returns every
// response read until the server closes the connection.
func roundTrip(t *testing.T, raw string) []*http.Response {
	t.Helper()
	client, server := net.Pipe()
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
	go serve(server, &responses{def: resp, k1: response(1 << 10), k64: response(64 << 10)})
	go func() {
		io.WriteString(client, raw)
	}()
	client.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(client)
	var out []*http.Response
	for {
		r, err := http.ReadResponse(br, nil)
		if err != nil {
			break
		}
		body, _ := io.ReadAll(r.Body)
		if r.Request = nil; r.StatusCode == 200 && string(body) != "ok\n" && len(body) != 1<<10 {
			t.Fatalf("body %q", body)
		}
		out = append(out, r)
	}
	client.Close()
	return out
}

func TestPipelinedKeepAliveAndClose(t *testing.T) {
	raw := "GET / HTTP/1.1\r\nHost: a\r\n\r\n" +
		"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" +
		"POST /y HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" +
		"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" +
		"GET /never HTTP/1.1\r\nHost: a\r\n\r\n"
	rs := roundTrip(t, raw)
	if len(rs) != 4 {
		t.Fatalf("got %d responses, want 4 (the one after Connection: close must not be answered)", len(rs))
	}
	for _, r := range rs {
		if r.StatusCode != 200 {
			t.Fatalf("status %d", r.StatusCode)
		}
	}
}

func TestHTTP10ClosesUnlessKeepAlive(t *testing.T) {
	if rs := roundTrip(t, "GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n"); len(rs) != 1 {
		t.Fatalf("HTTP/1.0: got %d responses, want 1", len(rs))
	}
	if rs := roundTrip(t, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n"); len(rs) != 2 {
		t.Fatalf("HTTP/1.0 keep-alive: got %d responses, want 2", len(rs))
	}
}

func TestMalformedGets400(t *testing.T) {
	rs := roundTrip(t, "NONSENSE\r\n\r\n")
	if len(rs) != 1 || rs[0].StatusCode != 400 {
		t.Fatalf("got %v", rs)
	}
	if !rs[0].Close {
		t.Fatal("400 should close the connection")
	}
}

// TestSizeByPath: /1k and /64k answer bodies of that size.
func TestSizeByPath(t *testing.T) {
	rs := roundTrip(t, "GET /1k HTTP/1.1\r\nHost: b\r\n\r\nGET / HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
	if len(rs) != 2 || rs[0].ContentLength != 1<<10 || rs[1].ContentLength != 3 {
		t.Fatalf("responses %d, lengths %v", len(rs), rs)
	}
}
