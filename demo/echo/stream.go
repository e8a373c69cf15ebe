package echo

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/weft-mesh/weft/demo/internal/demoapp"
)

// ServeStream runs the streaming app on 127.0.0.1:$PORT until ctx is done:
// what a proxy must carry besides short request/response pairs, for tests
// and for trying by hand. HTTP/1.1 and h2c share the port.
//
//	GET  /sse             "data: 1" at once, "data: 2" after POST /release
//	POST /release         lets the waiting /sse stream go on
//	GET  /bytes?n=N[&chunked=1]
//	                      N bytes ('a'..'z' repeated); chunked=1 sends
//	                      them in flushed pieces of unknown length
//	POST /echo            the request body back, as it arrives
//	GET  /ws              a WebSocket: each text frame comes back as
//	                      "echo: TEXT"
//	gRPC grpc.health.v1.Health/Check: SERVING
func ServeStream(ctx context.Context) error {
	ln, err := demoapp.Listen("echo stream")
	if err != nil {
		return err
	}
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: StreamHandler(), Protocols: protos, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); ctx.Err() == nil {
		return err
	}
	return nil
}

// StreamHandler returns the streaming app's handler (HTTP/1.1 and h2c).
func StreamHandler() http.Handler {
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	s := &streamApp{release: make(chan struct{}, 1), grpc: gs}
	return s
}

type streamApp struct {
	release chan struct{}
	grpc    *grpc.Server
}

func (s *streamApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 2 && r.Header.Get("Content-Type") == "application/grpc" {
		s.grpc.ServeHTTP(w, r)
		return
	}
	switch r.URL.Path {
	case "/sse":
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: 1\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-s.release:
		case <-time.After(30 * time.Second):
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: 2\n\n")
	case "/release":
		select {
		case s.release <- struct{}{}:
		default:
		}
	case "/bytes":
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n < 0 || n > 64<<20 {
			http.Error(w, "n: want 0 to 64 MiB", http.StatusBadRequest)
			return
		}
		chunked := r.URL.Query().Get("chunked") == "1"
		if !chunked {
			w.Header().Set("Content-Length", strconv.Itoa(n))
		}
		buf := make([]byte, 32<<10)
		for off := 0; off < n; {
			m := min(len(buf), n-off)
			for i := range buf[:m] {
				buf[i] = byte('a' + (off+i)%26)
			}
			if _, err := w.Write(buf[:m]); err != nil {
				return
			}
			if chunked {
				w.(http.Flusher).Flush()
			}
			off += m
		}
	case "/echo":
		// Read and write at once: without this, net/http's HTTP/1.1
		// server discards the rest of a chunked body once the answer
		// starts.
		_ = http.NewResponseController(w).EnableFullDuplex()
		w.Header().Set("Content-Type", "application/octet-stream")
		if r.ContentLength >= 0 {
			w.Header().Set("Content-Length", strconv.FormatInt(r.ContentLength, 10))
		}
		io.Copy(w, r.Body)
	case "/ws":
		serveWebSocket(w, r)
	default:
		http.NotFound(w, r)
	}
}

// serveWebSocket answers a WebSocket handshake (RFC 6455) and echoes text
// frames of up to 125 bytes, enough to show an upgraded connection works.
func serveWebSocket(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if r.Header.Get("Upgrade") != "websocket" || key == "" {
		http.Error(w, "want a WebSocket handshake", http.StatusBadRequest)
		return
	}
	c, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer c.Close()
	fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", WebSocketAccept(key))
	if rw.Flush() != nil {
		return
	}
	for {
		op, msg, err := ReadFrame(rw.Reader)
		if err != nil || op == 8 { // close
			return
		}
		if op == 1 {
			if WriteFrame(rw.Writer, []byte("echo: "+string(msg)), false) != nil || rw.Flush() != nil {
				return
			}
		}
	}
}

// WebSocketAccept is the Sec-WebSocket-Accept for a Sec-WebSocket-Key.
func WebSocketAccept(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// ReadFrame reads one WebSocket frame with a payload of at most 125
// bytes, unmasking it.
func ReadFrame(br *bufio.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	n := int(h[1] & 0x7f)
	if n > 125 {
		return 0, nil, fmt.Errorf("frame of %d bytes: only short frames here", n)
	}
	var mask [4]byte
	masked := h[1]&0x80 != 0
	if masked {
		if _, err := io.ReadFull(br, mask[:]); err != nil {
			return 0, nil, err
		}
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		return 0, nil, err
	}
	if masked {
		for i := range payload {
			payload[i] ^= mask[i%4]
		}
	}
	return h[0] & 0x0f, payload, nil
}

// WriteFrame writes a final text frame of at most 125 bytes; a client's
// frames are masked.
func WriteFrame(w io.Writer, payload []byte, masked bool) error {
	if len(payload) > 125 {
		return fmt.Errorf("frame of %d bytes: only short frames here", len(payload))
	}
	b := []byte{0x81, byte(len(payload))}
	p := payload
	if masked {
		b[1] |= 0x80
		var mask [4]byte
		binary.BigEndian.PutUint32(mask[:], uint32(time.Now().UnixNano()))
		b = append(b, mask[:]...)
		p = make([]byte, len(payload))
		for i := range payload {
			p[i] = payload[i] ^ mask[i%4]
		}
	}
	_, err := w.Write(append(b, p...))
	return err
}
