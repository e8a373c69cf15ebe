package http1

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

const benchHead = "GET /items/7?full=1 HTTP/1.1\r\nHost: catalog.default.svc.cluster.local:8080\r\nUser-Agent: fortio.org/fortio-1.66.0\r\n" +
	"Accept: */*\r\nX-Request-Id: 8f0e2b7c-4a5d-4c3e-9b1a-2f6d7e8c9a0b\r\nX-B3-Traceid: 80f198ee56343ba864fe8b2a57d3eff7\r\n\r\n"

// BenchmarkParseRequest is the codec's reading of a typical request head:
// readHead and parseRequest (the request, its URL, header map and values).
func BenchmarkParseRequest(b *testing.B) {
	r := strings.NewReader(benchHead)
	br := bufio.NewReaderSize(r, bufSize)
	var buf []byte
	tmpl := &http.Request{}
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(benchHead)
		br.Reset(r)
		head, lines, err := readHead(br, buf, Limits{}, true)
		if err != nil {
			b.Fatal(err)
		}
		buf = head[:0]
		q := new(request)
		if _, err := parseRequest(string(head), lines, tmpl, q); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseRequestNetHTTP is the same head read by net/http, for
// comparison.
func BenchmarkParseRequestNetHTTP(b *testing.B) {
	r := strings.NewReader(benchHead)
	br := bufio.NewReaderSize(r, bufSize)
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(benchHead)
		br.Reset(r)
		if _, err := http.ReadRequest(br); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServerExchange is one request and response through a Server
// over an in-memory connection (no sockets): read, handler, write.
func BenchmarkServerExchange(b *testing.B) {
	body := []byte(`{"id":7,"name":"widget","price":12.5}`)
	s := NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"application/json"}
		w.Header()["Content-Length"] = []string{"37"}
		w.Write(body)
	}), ServerOptions{})
	client, server := net.Pipe()
	go s.ServeConn(context.Background(), server)
	defer client.Close()
	br := bufio.NewReader(client)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := io.WriteString(client, benchHead); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
	}
}

// BenchmarkTransportExchange is one request through a Transport to an
// upstream on an in-memory connection answering a fixed response.
func BenchmarkTransportExchange(b *testing.B) {
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 37\r\n\r\n" + `{"id":7,"name":"widget","price":12.5}`)
	t := NewTransport(TransportOptions{MaxIdlePerHost: 4, Dial: func(context.Context, string, string) (net.Conn, error) {
		client, server := net.Pipe()
		go func() {
			br := bufio.NewReader(server)
			for {
				if _, _, err := readHead(br, nil, Limits{}, true); err != nil {
					server.Close()
					return
				}
				server.Write(answer)
			}
		}()
		return client, nil
	}})
	req, _ := http.NewRequest("GET", "http://catalog:8080/items/7?full=1", nil)
	req.Header["User-Agent"] = []string{"bench"}
	buf := make([]byte, 512)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := t.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := resp.Body.Read(buf); err != nil {
				break
			}
		}
		resp.Body.Close()
		if !bytes.Equal(buf[:2], []byte(`{"`)) {
			b.Fatalf("body %q", buf[:8])
		}
	}
}
