package tcpproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Server accepts TCP connections on one listener's socket and hands each to
// a handler on its own goroutine, tracking them so that Shutdown can drain.
type Server struct {
	name   string
	ln     net.Listener
	handle func(net.Conn)

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	idle     chan struct{} // closed when conns becomes empty while draining
	draining bool
	accepted chan struct{} // closed when the accept loop has returned
}

// Listen binds addr and starts accepting in the background; handle owns
// each connection and must close it.
func Listen(name, addr string, handle func(net.Conn)) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listener %q: bind %s: %w", name, addr, err)
	}
	return ServeListener(name, ln, handle), nil
}

// ServeListener accepts connections on an already bound socket in the background.
func ServeListener(name string, ln net.Listener, handle func(net.Conn)) *Server {
	s := &Server{name: name, ln: ln, handle: handle, conns: map[net.Conn]struct{}{}, accepted: make(chan struct{})}
	go s.accept()
	return s
}

func (s *Server) accept() {
	defer close(s.accepted)
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary failure such as EMFILE: back off as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if !s.track(c) {
			c.Close()
			continue
		}
		go func() {
			defer s.untrack(c)
			s.handle(c)
		}()
	}
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if s.draining && len(s.conns) == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
}

// CloseIf closes, at once, the open connections for which refuse reports
// true, and returns how many it closed. The runtime uses it when a new
// configuration no longer admits connections of a kind (plaintext after a
// PeerAuthentication became STRICT): a long-lived TCP connection must not
// outlive the policy it was accepted under.
func (s *Server) CloseIf(refuse func(net.Conn) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		if refuse(c) {
			_ = c.Close()
			n++
		}
	}
	return n
}

// Name returns the listener's name.
func (s *Server) Name() string { return s.name }

// Addr returns the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Active returns the number of open connections.
func (s *Server) Active() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(s.conns))
}

// StopAccepting closes the listening socket at once, freeing the port; open
// connections go on.
func (s *Server) StopAccepting() { _ = s.ln.Close() }

// Shutdown stops accepting and waits for open connections to finish, or for
// ctx to end, in which case it closes them and returns an error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.StopAccepting()
	<-s.accepted
	s.mu.Lock()
	s.draining = true
	var idle chan struct{}
	if len(s.conns) > 0 {
		idle = make(chan struct{})
		s.idle = idle
	}
	s.mu.Unlock()
	if idle == nil {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	n := len(s.conns)
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	return fmt.Errorf("listener %q: drain: %d connections closed: %w", s.name, n, ctx.Err())
}
