package http1

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// bufferBeforeChunking is how much of a body of unknown length is held
// back: a response that ends within it is sent with a Content-Length
// (as net/http does), a longer one or a flushed one is sent chunked.
const bufferBeforeChunking = 2 << 10

// response is the http.ResponseWriter of one request, reused by the
// connection for the next.
type response struct {
	c           *conn
	req         *http.Request
	header      http.Header
	status      int
	wroteHeader bool
	committed   bool  // the head is in the write buffer
	length      int64 // declared Content-Length, -1 when unknown
	written     int64
	chunked     bool
	noBody      bool // HEAD, 1xx, 204, 304: no body bytes are sent
	closeAfter  bool
	http10      bool
	keep10      bool // an HTTP/1.0 client asked for keep-alive
	pending     []byte
	err         error
}

func (w *response) reset(c *conn, q *request) {
	h := w.header
	if h == nil {
		h = make(http.Header, 8)
	} else {
		clear(h)
	}
	*w = response{c: c, req: &q.r, header: h, length: -1, pending: w.pending[:0],
		http10: q.r.ProtoMinor == 0, keep10: q.r.ProtoMinor == 0 && q.keep}
	w.noBody = q.r.Method == http.MethodHead
	if !q.keep {
		w.closeAfter = true
	}
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.wroteHeader || w.c.hijacked {
		return
	}
	if code < 100 || code > 999 {
		panic("http1: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// Interim responses go out at once and the final one follows.
		w.writeStatus(code)
		w.writeFields(false)
		_, _ = w.c.bw.WriteString("\r\n")
		_ = w.c.bw.Flush()
		return
	}
	w.wroteHeader, w.status = true, code
	if code == http.StatusNoContent || code == http.StatusNotModified || code < 200 {
		w.noBody = true
	}
	if v := w.header["Content-Length"]; len(v) > 0 {
		if n, ok := parseLength(v[0]); ok {
			w.length = n
		} else {
			delete(w.header, "Content-Length")
		}
	}
	if hasToken(w.header["Connection"], "close") {
		w.closeAfter = true
	}
}

func (w *response) Write(p []byte) (int, error) {
	if w.c.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.noBody {
		if w.status == http.StatusNoContent || w.status == http.StatusNotModified {
			return 0, http.ErrBodyNotAllowed
		}
		return len(p), nil
	}
	if w.length >= 0 {
		if w.written+int64(len(p)) > w.length {
			return 0, http.ErrContentLength
		}
		if !w.committed {
			w.commit(p)
		}
		w.written += int64(len(p))
		return w.write(p)
	}
	if !w.committed {
		if len(w.pending)+len(p) <= bufferBeforeChunking {
			w.pending = append(w.pending, p...)
			return len(p), nil
		}
		w.commitChunked()
	}
	w.written += int64(len(p))
	if w.chunked {
		return len(p), w.writeChunk(p)
	}
	return w.write(p)
}

func (w *response) write(p []byte) (int, error) {
	n, err := w.c.bw.Write(p)
	if err != nil {
		w.err = err
	}
	return n, err
}

func (w *response) writeChunk(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	bw := w.c.bw
	var b [20]byte
	_, _ = bw.Write(strconv.AppendInt(b[:0], int64(len(p)), 16))
	_, _ = bw.WriteString("\r\n")
	_, _ = bw.Write(p)
	_, err := bw.WriteString("\r\n")
	if err != nil {
		w.err = err
	}
	return err
}

// commitChunked commits the head of a body of unknown length that is
// longer than what is held back, or flushed: chunked for HTTP/1.1, else
// delimited by closing the connection.
func (w *response) commitChunked() {
	if w.http10 {
		w.closeAfter = true
	} else {
		w.chunked = true
	}
	p := w.pending
	w.pending = w.pending[:0]
	w.commit(p)
	if len(p) > 0 {
		w.written += int64(len(p))
		if w.chunked {
			_ = w.writeChunk(p)
		} else {
			_, _ = w.write(p)
		}
	}
}

// Flush sends what is buffered to the client.
func (w *response) Flush() {
	if w.c.hijacked {
		return
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		if w.length >= 0 || w.noBody {
			w.commit(nil)
		} else {
			w.commitChunked()
		}
	}
	if err := w.c.bw.Flush(); err != nil {
		w.err = err
	}
}

// FlushError is Flush that reports the write error, for
// http.ResponseController.
func (w *response) FlushError() error {
	w.Flush()
	return w.err
}

// Hijack hands the connection to the handler (http.Hijacker).
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c := w.c
	if c.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.wroteHeader {
		return nil, nil, errors.New("http1: Hijack after WriteHeader")
	}
	c.disarm()
	if c.cr.err != nil {
		return nil, nil, c.cr.err
	}
	c.hijacked = true
	c.srv.untrack(c)
	var conn net.Conn = c.rwc
	if c.cr.pending {
		conn = &replayConn{Conn: c.rwc, prefix: []byte{c.cr.b}}
		c.cr.pending = false
	}
	c.cr.c = conn
	return conn, bufio.NewReadWriter(c.br, c.bw), nil
}

// finish completes the response after the handler returned.
func (w *response) finish() error {
	if w.c.hijacked {
		return errors.New("hijacked")
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		if w.length < 0 && !w.noBody {
			if w.hasTrailers() && !w.http10 {
				w.commitChunked()
			} else {
				w.length = int64(len(w.pending))
				p := w.pending
				w.commit(p)
				w.written = int64(len(p))
				_, _ = w.write(p)
				w.pending = w.pending[:0]
			}
		} else {
			w.commit(nil)
		}
	}
	if w.chunked {
		bw := w.c.bw
		_, _ = bw.WriteString("0\r\n")
		for k, vv := range w.header {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok && httpguts.ValidHeaderFieldName(name) {
				for _, v := range vv {
					writeField(bw, http.CanonicalHeaderKey(name), v)
				}
			}
		}
		_, w.err = bw.WriteString("\r\n")
	}
	if w.length >= 0 && w.written < w.length && !w.noBody {
		// The handler sent less than it declared: the client cannot find
		// the end of this response, so the connection ends with it.
		w.closeAfter = true
	}
	return w.err
}

func (w *response) hasTrailers() bool {
	for k := range w.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

// commit writes the status line and header fields; first is the start of
// the body, to sniff a Content-Type from when none is set.
func (w *response) commit(first []byte) {
	w.committed = true
	w.writeStatus(w.status)
	h := w.header
	if _, ok := h["Content-Type"]; !ok && len(first) > 0 && !w.noBody {
		h["Content-Type"] = []string{http.DetectContentType(first)}
	}
	w.writeFields(true)
	bw := w.c.bw
	if _, ok := h["Date"]; !ok {
		_, _ = bw.WriteString("Date: ")
		_, _ = bw.WriteString(httpDate())
		_, _ = bw.WriteString("\r\n")
	}
	switch {
	case w.chunked:
		_, _ = bw.WriteString("Transfer-Encoding: chunked\r\n")
	case w.length >= 0 && len(h["Content-Length"]) == 0 && (!w.noBody || w.req.Method == http.MethodHead && w.length > 0):
		var b [20]byte
		_, _ = bw.WriteString("Content-Length: ")
		_, _ = bw.Write(strconv.AppendInt(b[:0], w.length, 10))
		_, _ = bw.WriteString("\r\n")
	}
	if w.c.srv.shutdown.Load() {
		w.closeAfter = true // draining: this answer is the connection's last
	}
	if w.closeAfter {
		if !hasToken(h["Connection"], "close") {
			_, _ = bw.WriteString("Connection: close\r\n")
		}
	} else if w.keep10 {
		_, _ = bw.WriteString("Connection: keep-alive\r\n")
	}
	_, err := bw.WriteString("\r\n")
	if err != nil {
		w.err = err
	}
}

func (w *response) writeStatus(code int) {
	bw := w.c.bw
	if w.http10 {
		_, _ = bw.WriteString("HTTP/1.0 ")
	} else {
		_, _ = bw.WriteString("HTTP/1.1 ")
	}
	var b [8]byte
	_, _ = bw.Write(strconv.AppendInt(b[:0], int64(code), 10))
	_ = bw.WriteByte(' ')
	_, _ = bw.WriteString(http.StatusText(code))
	_, _ = bw.WriteString("\r\n")
}

// writeFields writes the header map, less trailers and the framing
// fields the codec sets itself, dropping invalid names and turning line
// breaks in values into spaces, as net/http does.
func (w *response) writeFields(final bool) {
	bw := w.c.bw
	for k, vv := range w.header {
		switch k {
		case "Transfer-Encoding":
			continue
		case "Content-Length":
			if !final || w.chunked || w.noBody && w.req.Method != http.MethodHead {
				continue
			}
		}
		if strings.HasPrefix(k, http.TrailerPrefix) || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vv {
			writeField(bw, k, v)
		}
	}
}

func writeField(bw *bufio.Writer, k, v string) {
	_, _ = bw.WriteString(k)
	_, _ = bw.WriteString(": ")
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ").Replace(v)
	}
	_, _ = bw.WriteString(trimOWS(v))
	_, _ = bw.WriteString("\r\n")
}

// dateCache holds the Date header value of the current second.
var dateCache atomic.Pointer[dateEntry]

type dateEntry struct {
	sec int64
	val string
}

func httpDate() string {
	now := time.Now()
	if d := dateCache.Load(); d != nil && d.sec == now.Unix() {
		return d.val
	}
	d := &dateEntry{sec: now.Unix(), val: now.UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.val
}
