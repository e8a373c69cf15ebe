package runtime

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
)

// isUpgrade reports whether r asks to switch an HTTP/1.1 connection to
// another protocol: "Connection: upgrade" with an Upgrade header (the
// WebSocket handshake). Envoy proxies WebSocket upgrades, and Istio
// enables them on every route.
func isUpgrade(r *http.Request) bool {
	if r.ProtoMajor != 1 || len(r.Header["Upgrade"]) == 0 {
		return false
	}
	for _, v := range r.Header["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}

// upgradeHeaders puts back the hop-by-hop fields of an upgrade request
// that upstreamHeaders dropped.
func upgradeHeaders(hdr http.Header, r *http.Request) {
	hdr["Connection"] = []string{"Upgrade"}
	hdr["Upgrade"] = r.Header["Upgrade"]
}

// tunnel completes a switch of protocols: resp is the upstream's 101,
// whose body is the upstream connection. The downstream connection is
// taken from the server, sent the 101, and the two are joined until
// either side closes. It reports the bytes sent downstream after the 101.
func tunnel(w http.ResponseWriter, resp *http.Response) (int64, error) {
	up, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		return 0, fmt.Errorf("upstream switched protocols without a connection")
	}
	defer up.Close()
	hj, ok := w.(http.Hijacker)
	if !ok {
		return 0, fmt.Errorf("downstream connection cannot switch protocols")
	}
	down, rw, err := hj.Hijack()
	if err != nil {
		return 0, err
	}
	defer down.Close()
	if err := writeSwitch(rw.Writer, resp); err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// What the client sent after its request (buffered) goes first.
		_, _ = io.Copy(up, rw.Reader)
		closeWrite(up)
	}()
	n, _ := io.Copy(down, up)
	closeWrite(down)
	wg.Wait()
	return n, nil
}

// writeSwitch writes the 101 response head with the upstream's fields.
func writeSwitch(bw *bufio.Writer, resp *http.Response) error {
	fmt.Fprintf(bw, "HTTP/1.1 101 %s\r\n", http.StatusText(http.StatusSwitchingProtocols))
	if err := resp.Header.Write(bw); err != nil {
		return err
	}
	if _, err := bw.WriteString("\r\n"); err != nil {
		return err
	}
	return bw.Flush()
}

func closeWrite(c any) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	} else if nc, ok := c.(net.Conn); ok {
		_ = nc.Close()
	} else if cl, ok := c.(io.Closer); ok {
		_ = cl.Close()
	}
}
