package runtime

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// maxReplay is the request body prefix kept for retries and mirrors (Envoy's
// default per-request buffer limit for retries is of this order). A longer
// body is streamed through but not retried.
const maxReplay = 64 << 10

var (
	errAttemptDone = errors.New("upstream attempt abandoned")
	errNoReplay    = errors.New("request body is no longer available")
)

// replayBody tees the downstream request body so that a retry or a mirror
// can read it again. The body streams to the first attempt as it arrives
// (gRPC streams are not held back); the first maxReplay bytes are recorded.
// Readers take turns under mu; a reader that reaches the end of the record
// pulls more from the source.
type replayBody struct {
	mu    sync.Mutex
	src   io.ReadCloser
	buf   []byte // recorded prefix
	total int    // bytes read from src
	over  bool   // more than maxReplay bytes were read: no replay
	err   error  // src's terminal error (io.EOF at the end)
}

// replayable reports whether a new reader would see the whole body.
func (b *replayBody) replayable() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.over
}

// reader returns a reader from the start of the body. Only a primary reader
// (an attempt) may read past maxReplay; a mirror must not steal bytes the
// attempt has not seen.
func (b *replayBody) reader(primary bool) *bodyReader {
	return &bodyReader{b: b, primary: primary}
}

// bodyReader is one attempt's (or mirror's) view of a replayBody. Closing it
// (the transport does) or detaching it makes further reads fail, so a stale
// attempt cannot consume bytes meant for the next one.
type bodyReader struct {
	b       *replayBody
	off     int
	primary bool
	dead    atomic.Bool
}

func (r *bodyReader) Read(p []byte) (int, error) {
	if r.dead.Load() {
		return 0, errAttemptDone
	}
	b := r.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if r.dead.Load() {
		return 0, errAttemptDone
	}
	if r.off < len(b.buf) {
		n := copy(p, b.buf[r.off:])
		r.off += n
		return n, nil
	}
	if r.off != b.total {
		return 0, errNoReplay
	}
	if b.err != nil {
		return 0, b.err
	}
	if !r.primary {
		room := maxReplay - len(b.buf)
		if room <= 0 {
			return 0, errNoReplay
		}
		p = p[:min(len(p), room)]
	}
	n, err := b.src.Read(p)
	if n > 0 {
		if !b.over && len(b.buf)+n <= maxReplay {
			b.buf = append(b.buf, p[:n]...)
		} else {
			b.over = true
		}
		b.total += n
		r.off += n
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

// Close implements io.Closer; the downstream body itself stays open.
func (r *bodyReader) Close() error {
	r.detach()
	return nil
}

func (r *bodyReader) detach() { r.dead.Store(true) }
