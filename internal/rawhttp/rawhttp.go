// Package rawhttp sends HTTP/1.1 requests written out as bytes over real
// sockets and reads what comes back, for tests of what servers do with
// input no well-behaved client sends (conflicting framing headers, folded
// lines, foreign Host and Origin headers).
package rawhttp

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"time"
)

// Response is a server's answer to one raw request.
type Response struct {
	Status int
	Header http.Header
	Body   string
	// ConnectionClose reports that the answer said "Connection: close"
	// (net/http moves that header out of Header).
	ConnectionClose bool
	// Closed reports whether the server closed the connection after
	// answering (rather than keeping it open for another request).
	Closed bool
}

// Send writes req to a new connection to addr and reads one response,
// waiting at most timeout for each step. Closed is not filled in.
func Send(addr, req string, timeout time.Duration) (*Response, error) {
	return send(addr, req, timeout, false)
}

// SendWatchClose is Send, then waits (at most timeout) to see whether the
// server closes the connection, and reports it in Closed.
func SendWatchClose(addr, req string, timeout time.Duration) (*Response, error) {
	return send(addr, req, timeout, true)
}

func send(addr, req string, timeout time.Duration, watch bool) (*Response, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	if _, err := io.WriteString(c, req); err != nil {
		return nil, err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	out := &Response{Status: resp.StatusCode, Header: resp.Header, Body: string(body), ConnectionClose: resp.Close}
	if !watch {
		return out, nil
	}
	// A server that keeps the connection waits for the next request: the
	// read below then ends at the deadline. One that closes it ends it at
	// once with EOF (or a reset).
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	_, err = br.ReadByte()
	var ne net.Error
	out.Closed = err != nil && !(errors.As(err, &ne) && ne.Timeout())
	return out, nil
}
