package http1

import (
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// inlineValues is how many header values a parsed message stores without
// a further allocation.
const inlineValues = 16

// request is one parsed request with its storage: a single allocation
// holds the http.Request, its URL and the value slices of its headers.
type request struct {
	r    http.Request
	u    url.URL
	vals [inlineValues]string
	// expect is set for "Expect: 100-continue" with a body: the first
	// body read sends the interim response.
	expect bool
	keep   bool // the connection may carry another request after this one
}

var chunkedTE = []string{"chunked"}

// parseRequest parses head (a request line and header section as
// readHead returned it, converted to one string so that every field is a
// slice of it) into q. tmpl carries the connection's context: q.r starts
// as a copy of it. It refuses, with an *Error, everything net/http's
// server refuses, and the framings RFC 9112 calls faulty that net/http
// accepts (see bodyFraming), and obs-fold.
func parseRequest(head string, lines int, tmpl *http.Request, q *request) (framing, error) {
	q.r = *tmpl
	r := &q.r
	line, i := lineAt(head, 0)
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 {
		return framing{}, bad("malformed request line")
	}
	if !validToken(method) {
		return framing{}, bad("invalid method")
	}
	major, minor, ok := parseVersion(proto)
	if !ok {
		if strings.HasPrefix(proto, "HTTP/") && len(proto) == 8 && proto[6] == '.' && isDigit(proto[5]) && isDigit(proto[7]) {
			return framing{}, &Error{Status: http.StatusHTTPVersionNotSupported, Reason: "unsupported protocol version"}
		}
		return framing{}, bad("malformed HTTP version")
	}
	r.Method, r.RequestURI, r.Proto, r.ProtoMajor, r.ProtoMinor = method, target, proto, major, minor
	if err := parseTarget(method, target, &q.u); err != nil {
		return framing{}, err
	}
	r.URL = &q.u

	h := make(http.Header, lines)
	if err := parseHeaders(head, i, h, q.vals[:]); err != nil {
		return framing{}, err
	}
	r.Header = h
	hosts, haveHost := h["Host"]
	if len(hosts) > 1 {
		return framing{}, bad("too many Host headers")
	}
	if minor == 1 && !haveHost && method != "CONNECT" {
		return framing{}, bad("missing required Host header")
	}
	if len(hosts) == 1 && !httpguts.ValidHostHeader(hosts[0]) {
		return framing{}, bad("malformed Host header")
	}
	r.Host = q.u.Host
	if r.Host == "" && len(hosts) == 1 {
		r.Host = hosts[0]
	}
	delete(h, "Host")
	if pragma, ok := h["Pragma"]; ok && len(pragma) > 0 && pragma[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}
	f, err := bodyFraming(h, true, minor == 0)
	if err != nil {
		return f, err
	}
	switch {
	case f.chunked:
		delete(h, "Content-Length")
		delete(h, "Transfer-Encoding")
		r.ContentLength, r.TransferEncoding = -1, chunkedTE
	case f.length > 0:
		r.ContentLength = f.length
	default:
		f.length, r.ContentLength, r.Body = 0, 0, http.NoBody
	}
	conn := h["Connection"]
	if minor == 0 {
		q.keep = hasToken(conn, "keep-alive")
	} else {
		q.keep = !hasToken(conn, "close")
	}
	r.Close = !q.keep
	if ex, ok := h["Expect"]; ok && len(ex) > 0 {
		if !strings.EqualFold(ex[0], "100-continue") || len(ex) > 1 {
			return f, &Error{Status: http.StatusExpectationFailed, Reason: "unsupported expectation"}
		}
		q.expect = minor == 1 && (f.chunked || f.length > 0)
	}
	return f, nil
}

// parseTarget parses a request target into u as url.ParseRequestURI does
// (net/http's reading), without allocating for origin-form targets that
// need no unescaping.
func parseTarget(method, target string, u *url.URL) error {
	if plainPath(target) {
		*u = url.URL{}
		path, query, hasQuery := strings.Cut(target, "?")
		if hasQuery && query == "" && strings.Count(target, "?") == 1 {
			u.ForceQuery = true
		}
		u.Path, u.RawQuery = path, query
		return nil
	}
	justAuthority := method == "CONNECT" && !strings.HasPrefix(target, "/")
	raw := target
	if justAuthority {
		raw = "http://" + target
	}
	p, err := url.ParseRequestURI(raw)
	if err != nil {
		return bad("invalid request target")
	}
	if justAuthority {
		p.Scheme = ""
	}
	*u = *p
	return nil
}

// plainPath reports whether target is an origin-form target whose
// reading is a cut at the first '?': it starts with '/', its path holds
// only characters that net/url leaves unescaped (so the path is its own
// escaped form) and the rest only visible ASCII other than '#'.
func plainPath(t string) bool {
	if t == "" || t[0] != '/' {
		return false
	}
	i := 0
	for ; i < len(t) && t[i] != '?'; i++ {
		if !pathByte[t[i]] {
			return false
		}
	}
	for ; i < len(t); i++ {
		if c := t[i]; c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
	}
	return true
}

// pathByte marks the bytes net/url does not escape in a path.
var pathByte = func() (m [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		m[c], m[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		m[c] = true
	}
	for _, c := range "-._~$&+,/:;=@" {
		m[c] = true
	}
	return m
}()

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
