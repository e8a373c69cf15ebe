// Command backend is the upstream for every benchmark path: a minimal
// HTTP/1.1 server on 127.0.0.1 that answers every request with the same
// small fixed body.
//
// The path picks the body: /1k answers 1 KiB, /64k 64 KiB, anything else
// -size bytes.
//
// It speaks just enough HTTP/1.1 for load generators and proxies: keep-alive
// (closed on "Connection: close" or an HTTP/1.0 request without keep-alive),
// pipelining, and request bodies framed by Content-Length (a chunked request
// body is drained chunk by chunk). It does no routing: any method and path
// gets 200 and the body. Cheap on CPU so that on a 2-core machine the
// upstream takes as little as possible from the client and the proxy.
//
//	backend -addr 127.0.0.1:18080 -size 64
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18080", "listen address (host:port)")
	size := flag.Int("size", 64, "response body size in bytes")
	flag.Parse()

	if *size < 0 || *size > 1<<20 {
		log.Fatalf("backend: -size %d out of range [0, 1MiB]", *size)
	}
	resp := &responses{def: response(*size), k1: response(1 << 10), k64: response(64 << 10)}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("backend: listen %s: %v", *addr, err)
	}
	log.Printf("backend: listening on %s, body %d bytes (/1k: 1 KiB, /64k: 64 KiB)", ln.Addr(), *size)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		ln.Close()
	}()

	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			log.Printf("backend: accept: %v", err)
			continue
		}
		go serve(c, resp)
	}
}

var path1k, path64k = []byte("/1k"), []byte("/64k")

// responses are the whole answers, head and body, by path.
type responses struct{ def, k1, k64 []byte }

func (r *responses) forPath(path []byte) []byte {
	switch string(path) {
	case "/1k":
		return r.k1
	case "/64k":
		return r.k64
	}
	return r.def
}

// response returns an answer with a body of size bytes.
func response(size int) []byte {
	body := bytes.Repeat([]byte("x"), size)
	if size > 0 {
		body[len(body)-1] = '\n'
	}
	resp := []byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n", len(body)))
	return append(resp, body...)
}

// serve answers requests on one connection until the peer closes it, a
// request asks to close it, or a request cannot be parsed.
func serve(c net.Conn, resp *responses) {
	defer c.Close()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	r := bufio.NewReaderSize(c, 8192)
	w := bufio.NewWriterSize(c, 8192)
	for {
		path, keep, err := readRequest(r)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				w.WriteString("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
				w.Flush()
			}
			return
		}
		w.Write(resp.forPath(path))
		// Flush only when no further pipelined request is already buffered.
		if r.Buffered() == 0 || !keep {
			if w.Flush() != nil {
				return
			}
		}
		if !keep {
			return
		}
	}
}

// readRequest consumes one request (head and body) and reports whether the
// connection may be kept open after it.
func readRequest(r *bufio.Reader) (path []byte, keepAlive bool, err error) {
	line, err := readLine(r)
	if err != nil {
		return nil, false, err
	}
	// METHOD SP TARGET SP VERSION
	sp := bytes.LastIndexByte(line, ' ')
	first := bytes.IndexByte(line, ' ')
	if sp < 0 || first == sp {
		return nil, false, errors.New("malformed request line")
	}
	version := line[sp+1:]
	switch string(line[first+1 : sp]) { // not kept: line is reused
	case "/1k":
		path = path1k
	case "/64k":
		path = path64k
	}
	keepAlive = string(version) == "HTTP/1.1"

	contentLength := int64(0)
	chunked := false
	for {
		h, err := readLine(r)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, false, err
		}
		if len(h) == 0 {
			break
		}
		colon := bytes.IndexByte(h, ':')
		if colon <= 0 {
			return nil, false, errors.New("malformed header")
		}
		name, value := h[:colon], bytes.TrimSpace(h[colon+1:])
		switch {
		case asciiEqualFold(name, "content-length"):
			n, perr := strconv.ParseInt(string(value), 10, 64)
			if perr != nil || n < 0 {
				return nil, false, errors.New("bad content-length")
			}
			contentLength = n
		case asciiEqualFold(name, "transfer-encoding"):
			chunked = bytes.Contains(bytes.ToLower(value), []byte("chunked"))
		case asciiEqualFold(name, "connection"):
			v := bytes.ToLower(value)
			if bytes.Contains(v, []byte("close")) {
				keepAlive = false
			} else if bytes.Contains(v, []byte("keep-alive")) {
				keepAlive = true
			}
		}
	}
	if chunked {
		return path, keepAlive, drainChunked(r)
	}
	if contentLength > 0 {
		if _, err := io.CopyN(io.Discard, r, contentLength); err != nil {
			return nil, false, err
		}
	}
	return path, keepAlive, nil
}

func drainChunked(r *bufio.Reader) error {
	for {
		line, err := readLine(r)
		if err != nil {
			return err
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		if err != nil || n < 0 {
			return errors.New("bad chunk size")
		}
		if n == 0 {
			// Trailers, then the final empty line.
			for {
				t, err := readLine(r)
				if err != nil {
					return err
				}
				if len(t) == 0 {
					return nil
				}
			}
		}
		if _, err := io.CopyN(io.Discard, r, n+2); err != nil {
			return err
		}
	}
}

// readLine returns one line without its CRLF (or LF). The slice is only valid
// until the next read.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errors.New("line too long")
		}
		if len(line) == 0 || errors.Is(err, io.EOF) {
			return nil, err
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
