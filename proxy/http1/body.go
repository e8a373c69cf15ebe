package http1

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
)

var (
	errEOF           = io.EOF
	errUnexpectedEOF = io.ErrUnexpectedEOF
	// ErrBodyClosed is returned by reads of a request body after its
	// handler returned (net/http's http.ErrBodyReadAfterClose).
	ErrBodyClosed = http.ErrBodyReadAfterClose
	errChunkSize  = bad("malformed chunk size")
	errChunkEnd   = bad("malformed chunk end")
)

// maxChunkLine bounds a chunk-size line with its extensions.
const maxChunkLine = 4 << 10

// bodyReader reads one message body from the connection's reader: a fixed
// length or chunked. It is safe to Read and Close from several goroutines
// (a mirrored request reads the body it shares with the main request).
type bodyReader struct {
	mu        sync.Mutex
	br        *bufio.Reader
	remaining int64 // of the body (fixed) or of the current chunk
	chunked   bool
	inChunk   bool // chunked: within a chunk's data
	done      bool // the whole body was read
	closed    bool
	err       error
	// trailer receives the trailer section of a chunked body, when set.
	trailer http.Header
	// onFirstRead, when set, runs before the first read (100-continue).
	onFirstRead func()
	// limits bound the trailer section.
	limits Limits
}

func (b *bodyReader) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, ErrBodyClosed
	}
	return b.read(p)
}

func (b *bodyReader) read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.done {
		return 0, io.EOF
	}
	if f := b.onFirstRead; f != nil {
		b.onFirstRead = nil
		f()
	}
	if len(p) == 0 {
		return 0, nil
	}
	if b.chunked && !b.inChunk {
		if err := b.nextChunk(); err != nil {
			b.err = err
			return 0, err
		}
		if b.done {
			return 0, io.EOF
		}
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.br.Read(p)
	b.remaining -= int64(n)
	if b.remaining == 0 {
		if b.chunked {
			b.inChunk = false
			if err2 := b.chunkEnd(); err2 != nil {
				b.err = err2
				return n, err2
			}
		} else {
			b.done = true
		}
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		b.err = err
		return n, err
	}
	if b.done {
		return n, io.EOF
	}
	return n, nil
}

// nextChunk reads a chunk-size line; a last chunk reads the trailers too.
func (b *bodyReader) nextChunk() error {
	line, err := readLineLimit(b.br, maxChunkLine)
	if err != nil {
		return err
	}
	size, ok := parseChunkSize(line)
	if !ok {
		return errChunkSize
	}
	if size == 0 {
		b.done = true
		return b.readTrailers()
	}
	b.remaining, b.inChunk = size, true
	return nil
}

// chunkEnd reads the CRLF after a chunk's data.
func (b *bodyReader) chunkEnd() error {
	line, err := readLineLimit(b.br, 2)
	if err != nil {
		return err
	}
	if len(line) != 0 {
		return errChunkEnd
	}
	return nil
}

// readTrailers reads the trailer section after the last chunk, keeping
// its fields in b.trailer when asked to.
func (b *bodyReader) readTrailers() error {
	l := b.limits
	total, count := 0, 0
	for {
		line, err := readLineLimit(b.br, l.bytes())
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
		if total += len(line); total > l.bytes() {
			return errTooLarge
		}
		if count++; count > l.count() {
			return errTooMany
		}
		s := string(line)
		if s[0] == ' ' || s[0] == '\t' {
			return bad("obs-fold in trailers")
		}
		k, v, ok := strings.Cut(s, ":")
		if !ok || !validToken(k) {
			return bad("malformed trailer line")
		}
		v = trimOWS(v)
		if !validValue(v) {
			return bad("invalid trailer value")
		}
		if b.trailer != nil {
			k = canonicalKey(k)
			b.trailer[k] = append(b.trailer[k], v)
		}
	}
}

// Close marks the body closed: later reads fail. It does not consume the
// rest; the server drains or drops the connection.
func (b *bodyReader) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// failure returns the error that ended the body early, nil when none did.
func (b *bodyReader) failure() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// finish closes the body for good and reports whether it was read to its
// end, reading up to max more bytes to get there.
func (b *bodyReader) finish(max int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	var buf [512]byte
	for !b.done && b.err == nil && max > 0 {
		n, _ := b.read(buf[:min(int64(len(buf)), max)])
		max -= int64(n)
	}
	return b.done && b.err == nil
}

// readLineLimit reads a line of chunked coding, of at most max bytes
// (without its CRLF); longer lines are refused.
func readLineLimit(br *bufio.Reader, max int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull || len(line) > max+2 {
		return nil, bad("line too long")
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	// Chunked coding's lines end with CRLF; a bare LF is refused, as
	// net/http refuses it.
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, bad("chunked line ends with bare LF")
	}
	return line[:len(line)-2], nil
}

// parseChunkSize parses a chunk-size line: 1 to 15 hex digits, then
// optional whitespace and chunk extensions (";name[=value]"), which are
// ignored as net/http ignores them. Anything else is refused.
func parseChunkSize(line []byte) (int64, bool) {
	var n int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			goto rest
		}
		if i >= 15 {
			return 0, false
		}
		n = n<<4 | int64(d)
	}
rest:
	if i == 0 {
		return 0, false
	}
	ext := line[i:]
	for len(ext) > 0 && (ext[0] == ' ' || ext[0] == '\t') {
		ext = ext[1:]
	}
	if len(ext) > 0 && ext[0] != ';' {
		return 0, false
	}
	for _, c := range ext {
		if c < ' ' && c != '\t' || c == 0x7f {
			return 0, false
		}
	}
	return n, true
}

// validValue reports whether v is a valid field value (no control
// characters other than HTAB).
func validValue(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// errBodyTooLong is returned when a handler writes more than the
// Content-Length it declared.
var errBodyTooLong = errors.New("http1: wrote more than the declared Content-Length")
