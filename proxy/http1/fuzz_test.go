package http1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/textproto"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// parsed is what a request's reading yields, to compare the codec with
// net/http.
type parsed struct {
	Method, URL, Proto, Host, RequestURI string
	Header                               http.Header
	ContentLength                        int64
	Body                                 string
	Close                                bool
}

// viaCodec reads the first request of data as the server does.
func viaCodec(data []byte) (*parsed, error) {
	br := bufio.NewReaderSize(bytes.NewReader(data), bufSize)
	head, lines, err := readHead(br, nil, Limits{}, true)
	if err != nil {
		return nil, err
	}
	if isPreface(head) || hasMethod(head, "CONNECT") {
		return nil, bad("handed over")
	}
	q := new(request)
	f, err := parseRequest(string(head), lines, &http.Request{}, q)
	if err != nil {
		return nil, err
	}
	r := &q.r
	if f.chunked || f.length > 0 {
		r.Body = &bodyReader{br: br, remaining: f.length, chunked: f.chunked}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	return &parsed{r.Method, r.URL.String(), r.Proto, r.Host, r.RequestURI, r.Header, r.ContentLength, string(body), r.Close}, nil
}

// viaNetHTTP reads the first request of data as net/http's server does:
// http.ReadRequest, then the server's own checks (server.go readRequest).
func viaNetHTTP(data []byte) (*parsed, error) {
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
	if err != nil {
		return nil, err
	}
	if r.ProtoMajor != 1 {
		return nil, bad("version")
	}
	// http.ReadRequest drops the Host field; the server checks it first.
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(data)))
	_, _ = tp.ReadLine()
	raw, _ := tp.ReadMIMEHeader()
	hosts, haveHost := raw["Host"]
	if r.ProtoAtLeast(1, 1) && (!haveHost || len(hosts) == 0) && r.Method != "CONNECT" {
		return nil, bad("missing required Host header")
	}
	if len(hosts) == 1 && !httpguts.ValidHostHeader(hosts[0]) {
		return nil, bad("malformed Host header")
	}
	for k, vv := range r.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, bad("invalid header name")
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, bad("invalid header value")
			}
		}
	}
	delete(r.Header, "Host")
	if ex := r.Header.Get("Expect"); ex != "" && !strings.EqualFold(ex, "100-continue") {
		return nil, bad("expectation")
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	return &parsed{r.Method, r.URL.String(), r.Proto, r.Host, r.RequestURI, r.Header, r.ContentLength, string(body), r.Close}, nil
}

// FuzzRequest compares the codec's reading of a request with net/http's
// on the same bytes: the codec must refuse whatever net/http refuses, and
// read what both accept the same way. It may refuse more (obs-fold,
// Content-Length with Transfer-Encoding, repeated Content-Length, HTTP/1.x
// other than 1.0 and 1.1, over 100 header lines or 60 KiB of head).
func FuzzRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /items/7?full=1 HTTP/1.1\r\nHost: catalog:8080\r\nUser-Agent: x\r\nAccept: */*\r\n\r\n",
		"GET http://catalog.default/a%20b?x=%2F HTTP/1.1\r\nHost: other\r\n\r\n",
		"GET /a%2fb/../c?q#frag HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /? HTTP/1.1\r\nHost: a\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
		"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
		"POST /p HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nPragma: no-cache\r\n\r\n",
		"GET / HTTP/1.1\nHost: a\n\n",
		"GET / HTTP/1.1\r\nhost: a\r\ncontent-type: x\r\nx-request-id: 1\r\n\r\n",
		"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX:\x00\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		mine, errMine := viaCodec(data)
		theirs, errTheirs := viaNetHTTP(data)
		switch {
		case errMine != nil:
			return // refusing more than net/http is allowed
		case errTheirs != nil:
			t.Fatalf("the codec accepts what net/http refuses (%v): %q\ncodec: %+v", errTheirs, data, mine)
		}
		if len(mine.Header) == 0 {
			mine.Header = http.Header{}
		}
		if !reflect.DeepEqual(mine, theirs) {
			t.Fatalf("readings differ for %q\ncodec:    %+v\nnet/http: %+v", data, mine, theirs)
		}
	})
}
