package http1

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// Envoy's default request header limits (HttpConnectionManager
// max_request_headers_kb and common_http_protocol_options.max_headers_count).
const (
	DefaultMaxHeaderBytes = 60 << 10
	DefaultMaxHeaders     = 100
)

// Limits bound a message head. Zero fields mean the defaults above.
type Limits struct {
	// MaxHeaderBytes bounds the start line and header section together.
	MaxHeaderBytes int
	// MaxHeaders bounds the number of header lines.
	MaxHeaders int
}

func (l Limits) bytes() int {
	if l.MaxHeaderBytes <= 0 {
		return DefaultMaxHeaderBytes
	}
	return l.MaxHeaderBytes
}

func (l Limits) count() int {
	if l.MaxHeaders <= 0 {
		return DefaultMaxHeaders
	}
	return l.MaxHeaders
}

// Error is a message the codec refuses: the status to answer (400, 431,
// 501, 505) and why.
type Error struct {
	Status int
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("http1: %d %s", e.Status, e.Reason) }

func bad(reason string) *Error { return &Error{Status: http.StatusBadRequest, Reason: reason} }

var (
	errTooLarge = &Error{Status: http.StatusRequestHeaderFieldsTooLarge, Reason: "header section too large"}
	errTooMany  = &Error{Status: http.StatusRequestHeaderFieldsTooLarge, Reason: "too many header lines"}
)

// readHead reads a start line and header section, up to and including the
// blank line, into buf (reused), and returns it with the number of header
// lines. Line endings are CRLF or a bare LF, as net/http reads them.
//
// For a request, the start line is checked as soon as it is read (its
// first byte, and its end): a client speaking something else, such as TLS
// to a plaintext port, is refused at once rather than waited for.
func readHead(br *bufio.Reader, buf []byte, l Limits, request bool) ([]byte, int, error) {
	buf = buf[:0]
	max, maxCount := l.bytes(), l.count()
	lines := 0
	if request {
		b, err := br.Peek(1)
		if err != nil {
			return buf, 0, err
		}
		if c := b[0]; !httpguts.IsTokenRune(rune(c)) && c != '\r' && c != '\n' {
			return buf, 0, bad("malformed request line")
		}
	}
	for {
		line, err := br.ReadSlice('\n')
		if len(buf)+len(line) > max {
			return buf, 0, errTooLarge
		}
		if err == bufio.ErrBufferFull {
			buf = append(buf, line...)
			continue // the line goes on
		}
		if err != nil {
			if len(buf)+len(line) > 0 && errors.Is(err, errEOF) {
				return buf, 0, errUnexpectedEOF
			}
			return buf, 0, err
		}
		buf = append(buf, line...)
		// A line is complete; is it the blank line?
		n := len(buf)
		if n == len(line) && lines == 0 && (string(line) == "\r\n" || string(line) == "\n") {
			// Blank lines before a request line are ignored (RFC 9112 2.2),
			// as net/http does.
			buf = buf[:0]
			continue
		}
		if string(line) == "\r\n" || string(line) == "\n" {
			return buf, lines - 1, nil
		}
		if lines == 0 && request && !requestLine(buf) {
			return buf, 0, bad("malformed request line")
		}
		if lines++; lines > maxCount+1 {
			return buf, 0, errTooMany
		}
	}
}

// requestLine reports whether line (with its line ending) may be a
// request line: it ends with " HTTP/" and a version.
func requestLine(line []byte) bool {
	n := len(line) - 1
	if n > 0 && line[n-1] == '\r' {
		n--
	}
	l := line[:n]
	return len(l) > 9 && string(l[len(l)-9:len(l)-3]) == " HTTP/"
}

// lineAt returns the line of head starting at i without its line ending,
// and the offset of the next line.
func lineAt(head string, i int) (string, int) {
	j := strings.IndexByte(head[i:], '\n')
	if j < 0 {
		return head[i:], len(head)
	}
	line := head[i : i+j]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, i + j + 1
}

// parseHeaders parses the header lines of head from offset i into h. vals
// is backing storage for the value slices of the first value of each key.
func parseHeaders(head string, i int, h http.Header, vals []string) error {
	for i < len(head) {
		var line string
		line, i = lineAt(head, i)
		if line == "" {
			return nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return bad("obs-fold (a header line continued on the next line) is not accepted")
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return bad("malformed header line")
		}
		key := line[:colon]
		if !validToken(key) {
			return bad("invalid header name")
		}
		value := trimOWS(line[colon+1:])
		if !httpguts.ValidHeaderFieldValue(value) {
			return bad("invalid header value")
		}
		key = canonicalKey(key)
		if vv, ok := h[key]; ok {
			h[key] = append(vv, value)
			continue
		}
		if len(vals) > 0 {
			vals[0] = value
			h[key] = vals[:1:1]
			vals = vals[1:]
		} else {
			h[key] = []string{value}
		}
	}
	return nil
}

// canonicalKey returns the canonical form of a valid header name,
// without allocating when it is already canonical or a common header.
func canonicalKey(k string) string {
	for i := 0; i < len(k); i++ {
		c := k[i]
		upper := i == 0 || k[i-1] == '-'
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return textproto.CanonicalMIMEHeaderKey(k)
		}
	}
	return k
}

// validToken reports whether s is a non-empty RFC 9110 token.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !httpguts.IsTokenRune(rune(s[i])) {
			return false
		}
	}
	return true
}

// trimOWS trims optional whitespace (SP, HTAB) around a header value.
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// framing is how a message's body is delimited.
type framing struct {
	length  int64 // Content-Length, -1 when absent
	chunked bool
}

// bodyFraming reads and checks the framing fields of a header section as
// a request (isRequest) or a response. It refuses what net/http refuses
// (several differing Content-Lengths, a Content-Length that is not a
// number, a transfer coding other than chunked) and, for requests, what
// net/http lets through but RFC 9112 calls faulty: Content-Length with
// Transfer-Encoding, Transfer-Encoding in HTTP/1.0, and any repeated
// Content-Length.
func bodyFraming(h http.Header, isRequest, http10 bool) (framing, error) {
	f := framing{length: -1}
	cl := h["Content-Length"]
	te := h["Transfer-Encoding"]
	if len(cl) > 1 {
		if isRequest {
			return f, bad("repeated Content-Length")
		}
		for _, v := range cl[1:] {
			if trimOWS(v) != trimOWS(cl[0]) {
				return f, bad("conflicting Content-Length values")
			}
		}
	}
	if len(cl) > 0 {
		n, ok := parseLength(cl[0])
		if !ok {
			return f, bad("invalid Content-Length")
		}
		f.length = n
	}
	if len(te) > 0 {
		if isRequest && http10 {
			return f, bad("Transfer-Encoding in an HTTP/1.0 request")
		}
		if isRequest && len(cl) > 0 {
			return f, bad("Content-Length and Transfer-Encoding in one request")
		}
		if len(te) > 1 || !strings.EqualFold(te[0], "chunked") {
			return f, &Error{Status: http.StatusNotImplemented, Reason: "unsupported transfer encoding"}
		}
		f.chunked, f.length = true, -1
	}
	return f, nil
}

// parseLength parses a Content-Length value: decimal digits only, as
// net/http reads it (at most 2^63-1).
func parseLength(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// parseVersion parses "HTTP/1.0" and "HTTP/1.1", the versions an HTTP/1
// message may carry.
func parseVersion(s string) (major, minor int, ok bool) {
	switch s {
	case "HTTP/1.1":
		return 1, 1, true
	case "HTTP/1.0":
		return 1, 0, true
	}
	return 0, 0, false
}

// hasToken reports whether a comma-separated header value list contains
// token, case-insensitively.
func hasToken(vv []string, token string) bool {
	for _, v := range vv {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(trimOWS(t), token) {
				return true
			}
		}
	}
	return false
}
