package listener

import (
	"bytes"
	"fmt"
	"net/http"
)

// This file follows HTTP/1.1 message framing for the guard (h1guard.go).

// Framing states.
const (
	stRequestLine = iota // the next bytes start a request
	stHeaders            // in the header section
	stBody               // in a Content-Length body
	stChunkSize          // on a chunk-size line
	stChunkData          // in a chunk's data
	stChunkEnd           // on the CRLF after a chunk's data
	stTrailers           // in the trailer section after the last chunk
	stPass               // HTTP/2 (prior knowledge): not followed
)

// The framing fields' names.
var (
	transferEncoding = []byte("Transfer-Encoding")
	contentLength    = []byte("Content-Length")
)

// lineKeep is how much of each line the framing keeps: enough for a
// request line's HTTP/2 preface, a header name of interest and a sane
// Content-Length value.
const lineKeep = 96

// framing follows HTTP/1.1 message framing across reads, without
// allocating: request line, header section (checked), then the body by
// Content-Length or chunked coding, then the next request.
type framing struct {
	maxBytes, maxCount int

	state     int
	line      [lineKeep]byte // the start of the current line
	lineLen   int            // bytes of the current line seen so far
	tail      [10]byte       // the last bytes of the request line: "HTTP/1.1\r\n"
	tailLen   int
	sectBytes int // bytes of the current request line and header section
	count     int // header lines in the current section
	http10    bool
	hasTE     bool
	hasCL     bool
	cl        int64
	remaining int64 // body or chunk bytes still to come
}

// feed follows p. On a refusal it returns the offset in p from which
// nothing may be delivered (the start of the offending line's part in p),
// and the refusal.
func (f *framing) feed(p []byte) (int, *refusal) {
	for i := 0; i < len(p); {
		switch f.state {
		case stPass:
			return len(p), nil
		case stBody, stChunkData:
			n := int(min(f.remaining, int64(len(p)-i)))
			i += n
			if f.remaining -= int64(n); f.remaining == 0 {
				if f.state == stBody {
					f.state = stRequestLine
				} else {
					f.state = stChunkEnd
				}
			}
			continue
		}
		start := i
		end := len(p)
		nl := bytes.IndexByte(p[i:], '\n')
		if nl >= 0 {
			end = i + nl + 1
		}
		seg := p[i:end]
		i = end
		inSection := f.state == stRequestLine || f.state == stHeaders
		if f.lineLen == 0 && f.state == stHeaders && (seg[0] == ' ' || seg[0] == '\t') {
			return start, &refusal{status: http.StatusBadRequest, why: "obs-fold (a header line continued on the next line) is not accepted"}
		}
		if inSection {
			if f.sectBytes += len(seg); f.sectBytes > f.maxBytes {
				return start, &refusal{status: http.StatusRequestHeaderFieldsTooLarge,
					why: fmt.Sprintf("request headers larger than %d KiB", f.maxBytes>>10)}
			}
		}
		if f.lineLen == 0 {
			f.line[0] = seg[0]
		}
		// A header line is kept only if it may be a framing field (or the
		// blank line ending the section): the rest need no more look.
		if f.lineLen < lineKeep && (f.state != stHeaders || interesting(f.line[0])) {
			copy(f.line[f.lineLen:], seg)
		}
		if f.state == stRequestLine {
			f.keepTail(seg)
		}
		f.lineLen += len(seg)
		if nl < 0 {
			return len(p), nil // the line goes on in the next read
		}
		if r := f.endLine(); r != nil {
			return start, r
		}
	}
	return len(p), nil
}

// keepTail keeps the last bytes of the request line: its HTTP version.
func (f *framing) keepTail(seg []byte) {
	if len(seg) >= len(f.tail) {
		f.tailLen = copy(f.tail[:], seg[len(seg)-len(f.tail):])
		return
	}
	keep := min(f.tailLen, len(f.tail)-len(seg))
	copy(f.tail[:], f.tail[f.tailLen-keep:f.tailLen])
	f.tailLen = keep + copy(f.tail[keep:], seg)
}

// interesting reports whether a header line starting with c may be
// Content-Length, Transfer-Encoding or the blank line.
func interesting(c byte) bool {
	return c == 'c' || c == 'C' || c == 't' || c == 'T' || c == '\r' || c == '\n'
}

// content returns the current line without its line ending, as far as it
// is kept, and whether it is whole.
func (f *framing) content() ([]byte, bool) {
	n := f.lineLen
	whole := n <= lineKeep
	b := f.line[:min(n, lineKeep)]
	if whole {
		b = bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
	}
	return b, whole
}

// endLine acts on a complete line.
func (f *framing) endLine() *refusal {
	line, whole := f.content()
	empty := whole && len(line) == 0
	f.lineLen = 0
	switch f.state {
	case stRequestLine:
		if whole && string(line) == "PRI * HTTP/2.0" {
			f.state = stPass // h2c with prior knowledge
			return nil
		}
		v := bytes.TrimSuffix(bytes.TrimSuffix(f.tail[:f.tailLen], []byte("\n")), []byte("\r"))
		f.http10 = bytes.HasSuffix(v, []byte("HTTP/1.0"))
		f.state, f.count, f.hasTE, f.hasCL, f.cl, f.tailLen = stHeaders, 0, false, false, 0, 0
	case stHeaders:
		if empty {
			return f.endSection()
		}
		if f.count++; f.count > f.maxCount {
			return &refusal{status: http.StatusRequestHeaderFieldsTooLarge, why: fmt.Sprintf("more than %d request headers", f.maxCount)}
		}
		if !interesting(line[0]) {
			return nil // not kept: not a framing field
		}
		return f.header(line, whole)
	case stChunkSize:
		size, ok := chunkSize(line)
		switch {
		case !ok:
			return &refusal{status: http.StatusBadRequest, why: "malformed chunk size"}
		case size == 0:
			f.state = stTrailers
		default:
			f.state, f.remaining = stChunkData, size
		}
	case stChunkEnd:
		f.state = stChunkSize
	case stTrailers:
		if empty {
			f.state, f.sectBytes = stRequestLine, 0
		}
	}
	return nil
}

// header notes a header line's framing fields.
func (f *framing) header(line []byte, whole bool) *refusal {
	name, value, ok := bytes.Cut(line, []byte(":"))
	if !ok {
		return nil // net/http refuses it
	}
	switch {
	case bytes.EqualFold(name, transferEncoding):
		f.hasTE = true
	case bytes.EqualFold(name, contentLength):
		if !whole {
			return &refusal{status: http.StatusBadRequest, why: "Content-Length line too long"}
		}
		n, ok := decimal(bytes.Trim(value, " \t"))
		if !ok {
			f.cl = -1 // net/http refuses it and closes
		} else if f.hasCL && n != f.cl {
			return &refusal{status: http.StatusBadRequest, why: "conflicting Content-Length values"}
		} else {
			f.cl = n
		}
		f.hasCL = true
	}
	return nil
}

// endSection decides, at the end of a header section, how the body is
// framed, refusing the framings RFC 9112 calls faulty.
func (f *framing) endSection() *refusal {
	switch {
	case f.hasTE && f.hasCL:
		return &refusal{status: http.StatusBadRequest, why: "Content-Length and Transfer-Encoding in one request"}
	case f.hasTE && f.http10:
		return &refusal{status: http.StatusBadRequest, why: "Transfer-Encoding in an HTTP/1.0 request"}
	case f.hasTE:
		f.state = stChunkSize // net/http takes only "chunked"
	case f.hasCL && f.cl > 0:
		f.state, f.remaining = stBody, f.cl
	case f.hasCL && f.cl < 0:
		f.state = stPass // refused by net/http, which then closes
	default:
		f.state = stRequestLine
	}
	f.sectBytes = 0
	return nil
}

// decimal parses a Content-Length value as net/http does: digits only.
func decimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// chunkSize parses a chunk-size line (hex digits, then optional
// extensions).
func chunkSize(line []byte) (int64, bool) {
	var n int64
	digits := 0
	for _, c := range line {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return n, digits > 0
		}
		if digits++; digits > 15 {
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, digits > 0
}
