package listener

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/weft-mesh/weft/proxy/sds"
)

// tlsRecordHandshake is the first byte of every TLS connection: the record
// type of the ClientHello.
const tlsRecordHandshake = 0x16

// Selector picks the filter chain of each new connection of a listener and
// secures the connection as that chain says. It is compiled once per
// configuration and immutable.
type Selector struct {
	inspect  bool
	timeout  time.Duration
	tls, raw *chainConn // chain of TLS / plaintext connections; nil closes them
	// http is set for an HTTP listener, whose connections are handed over
	// as a guardConn carrying these limits.
	http   bool
	limits Limits
}

// chainConn is a chain as the dispatcher applies it.
type chainConn struct {
	name   string
	config *tls.Config // nil: plaintext
}

// NewSelector compiles s's chains. TLS chains read their certificate and
// trust bundle from store at each handshake.
func NewSelector(s *Spec, store *sds.Store) *Selector {
	sel := &Selector{inspect: s.TLSInspector, timeout: s.InspectTimeout, http: s.TCP == nil, limits: s.Limits}
	if sel.timeout <= 0 {
		sel.timeout = DefaultInspectTimeout
	}
	var anyConn *chainConn
	for _, c := range s.Chains {
		cc := &chainConn{name: c.Name}
		if c.TLS != nil {
			cc.config = c.TLS.ServerConfig(store)
		}
		switch c.TransportProtocol {
		case TransportTLS:
			sel.tls = cc
		case TransportRaw:
			sel.raw = cc
		default:
			anyConn = cc
		}
	}
	// A chain without a match takes what no specific chain does. Without
	// the inspector every connection counts as raw_buffer, as in Envoy.
	if sel.tls == nil {
		sel.tls = anyConn
	}
	if sel.raw == nil {
		sel.raw = anyConn
	}
	return sel
}

// Admits reports whether a connection secured as given (mutual TLS or
// plaintext) is still taken by one of s's chains. A connection accepted
// under an earlier configuration, say plaintext before PERMISSIVE became
// STRICT, must not carry requests the current one would refuse; the
// listener's handler closes it instead (clients retry on a new connection,
// which the current chains then judge).
func (s *Selector) Admits(mutualTLS bool) bool {
	if mutualTLS {
		return s.tls != nil && s.tls.config != nil
	}
	return s.raw != nil && s.raw.config == nil
}

// guard hands an HTTP listener's connection (nil: none) over as a
// guardConn with the listener's limits.
func (s *Selector) guard(c net.Conn) net.Conn {
	if c == nil || !s.http {
		return c
	}
	return newGuardConn(c, s.limits)
}

// secure returns c as chain cc serves it, nil when cc is nil (no chain).
func (cc *chainConn) secure(c net.Conn) net.Conn {
	switch {
	case cc == nil:
		return nil
	case cc.config == nil:
		return c
	}
	return tls.Server(c, cc.config)
}

// Dispatch wraps ln so that each accepted connection goes to the filter
// chain current() picks for it; current is read per connection, so a new
// configuration applies to the next connection without rebinding, and a
// nil Selector closes connections. With the tls_inspector, the first byte
// is read (within the listener's timeout) on a goroutine of its own, never
// in the accept loop. Connections of a TLS chain are returned not yet
// handshaken: for a TCP listener as *tls.Conn, for an HTTP listener
// as a guardConn, which the Server handshakes on the connection's
// goroutine (Server then sets r.TLS). Connections no chain takes are
// closed.
func Dispatch(ln net.Listener, current func() *Selector) net.Listener {
	d := &dispatcher{
		Listener: ln,
		current:  current,
		ready:    make(chan net.Conn),
		closed:   make(chan struct{}),
		pending:  map[net.Conn]struct{}{},
	}
	go d.loop()
	return d
}

type dispatcher struct {
	net.Listener
	current func() *Selector
	ready   chan net.Conn
	closed  chan struct{}
	once    sync.Once

	mu      sync.Mutex
	pending map[net.Conn]struct{} // being inspected
}

// Accept returns the next connection that went through its chain.
func (d *dispatcher) Accept() (net.Conn, error) {
	select {
	case c := <-d.ready:
		select {
		case <-d.closed:
			c.Close()
		default:
			return c, nil
		}
	case <-d.closed:
	}
	return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: d.Addr(), Err: net.ErrClosed}
}

// Close stops accepting and closes connections still being inspected.
func (d *dispatcher) Close() error {
	var err error
	d.once.Do(func() {
		close(d.closed)
		err = d.Listener.Close()
		d.mu.Lock()
		for c := range d.pending {
			c.Close()
		}
		d.mu.Unlock()
	})
	return err
}

func (d *dispatcher) loop() {
	var delay time.Duration
	for {
		c, err := d.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				d.Close()
				return
			}
			// Temporary failure such as EMFILE: back off as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(delay):
			case <-d.closed:
				return
			}
			continue
		}
		delay = 0
		sel := d.current()
		switch {
		case sel == nil:
			c.Close()
		case !sel.inspect:
			d.deliver(sel.guard(sel.raw.secure(c)), c)
		case d.track(c):
			go d.inspect(c, sel)
		}
	}
}

// inspect reads c's first byte and hands c to its chain.
func (d *dispatcher) inspect(c net.Conn, sel *Selector) {
	var b [1]byte
	_ = c.SetReadDeadline(time.Now().Add(sel.timeout))
	_, err := io.ReadFull(c, b[:])
	_ = c.SetReadDeadline(time.Time{})
	if !d.untrack(c) || err != nil {
		c.Close() // closed meanwhile, silent client, or gone
		return
	}
	cc := sel.raw
	if b[0] == tlsRecordHandshake {
		cc = sel.tls
	}
	d.deliver(sel.guard(cc.secure(&peekedConn{Conn: c, first: b[0]})), c)
}

// deliver hands conn (nil: no chain, close raw) to Accept, or closes it
// when the listener closes first.
func (d *dispatcher) deliver(conn, raw net.Conn) {
	if conn == nil {
		raw.Close()
		return
	}
	select {
	case d.ready <- conn:
	case <-d.closed:
		conn.Close()
	}
}

func (d *dispatcher) track(c net.Conn) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	select {
	case <-d.closed:
		c.Close()
		return false
	default:
	}
	d.pending[c] = struct{}{}
	return true
}

// untrack reports false when the listener closed (and closed c) meanwhile.
func (d *dispatcher) untrack(c net.Conn) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.pending[c]; !ok {
		return false
	}
	delete(d.pending, c)
	return true
}

// peekedConn gives back the byte the inspector read before the rest.
type peekedConn struct {
	net.Conn
	first byte
	done  bool // first was read
}

func (c *peekedConn) Read(p []byte) (int, error) {
	if c.done {
		return c.Conn.Read(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0], c.done = c.first, true
	return 1, nil
}

// NetConn returns the connection the inspector read from, as crypto/tls's
// Conn does, so what wraps a connection can be found through it.
func (c *peekedConn) NetConn() net.Conn { return c.Conn }

// CloseWrite half-closes the connection, for the TCP proxy.
func (c *peekedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// ReadFrom and WriteTo keep the kernel's splice for proxied TCP bytes.
func (c *peekedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

func (c *peekedConn) WriteTo(w io.Writer) (int64, error) {
	var n int64
	if !c.done {
		if _, err := w.Write([]byte{c.first}); err != nil {
			return 0, err
		}
		c.done, n = true, 1
	}
	var m int64
	var err error
	if wt, ok := c.Conn.(io.WriterTo); ok {
		m, err = wt.WriteTo(w)
	} else {
		m, err = io.Copy(w, struct{ io.Reader }{c.Conn})
	}
	return n + m, err
}
