package status

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ProbersEnv is the environment variable the injector passes the app's
// original probes in, as Istio's injector does.
const ProbersEnv = "ISTIO_KUBE_APP_PROBERS"

// AppHealthPrefix starts the paths of the rewritten probes:
// /app-health/CONTAINER/livez, /readyz or /startupz.
const AppHealthPrefix = "/app-health/"

// Probe is one of the app's original probes, in Kubernetes' shape (the
// fields of core/v1 Probe the status server performs).
type Probe struct {
	HTTPGet        *HTTPGetAction   `json:"httpGet,omitempty"`
	TCPSocket      *TCPSocketAction `json:"tcpSocket,omitempty"`
	GRPC           json.RawMessage  `json:"grpc,omitempty"`
	TimeoutSeconds int32            `json:"timeoutSeconds,omitempty"`
}

// HTTPGetAction is a probe's httpGet.
type HTTPGetAction struct {
	Path        string       `json:"path,omitempty"`
	Port        Port         `json:"port"`
	Host        string       `json:"host,omitempty"`
	Scheme      string       `json:"scheme,omitempty"`
	HTTPHeaders []HTTPHeader `json:"httpHeaders,omitempty"`
}

// HTTPHeader is one header an httpGet probe sends.
type HTTPHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// TCPSocketAction is a probe's tcpSocket.
type TCPSocketAction struct {
	Port Port   `json:"port"`
	Host string `json:"host,omitempty"`
}

// Port is a probe's port: a number (Kubernetes' IntOrString; the injector
// resolves named container ports to numbers, as Istio's does).
type Port uint16

// UnmarshalJSON takes 9080 or "9080".
func (p *Port) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return fmt.Errorf("port %s: want a port number (a named port must be resolved to its number)", b)
	}
	*p = Port(n)
	return nil
}

// ParseProbers reads ISTIO_KUBE_APP_PROBERS: a JSON object from the
// rewritten probe path (/app-health/CONTAINER/KIND) to the original probe.
// Errors name the path and field.
func ParseProbers(s string) (map[string]*Probe, error) {
	out := map[string]*Probe{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", ProbersEnv, err)
	}
	for path, r := range raw {
		if !strings.HasPrefix(path, AppHealthPrefix) {
			return nil, fmt.Errorf("%s: %q: paths start with %s", ProbersEnv, path, AppHealthPrefix)
		}
		dec := json.NewDecoder(strings.NewReader(string(r)))
		dec.DisallowUnknownFields()
		p := &Probe{}
		if err := dec.Decode(p); err != nil {
			return nil, fmt.Errorf("%s: %q: %w", ProbersEnv, path, err)
		}
		n := 0
		if p.HTTPGet != nil {
			n++
			switch strings.ToUpper(p.HTTPGet.Scheme) {
			case "", "HTTP", "HTTPS":
			default:
				return nil, fmt.Errorf("%s: %q: httpGet.scheme %q: want HTTP or HTTPS", ProbersEnv, path, p.HTTPGet.Scheme)
			}
		}
		if p.TCPSocket != nil {
			n++
		}
		if p.GRPC != nil {
			return nil, fmt.Errorf("%s: %q: grpc probes are not supported; use httpGet or tcpSocket", ProbersEnv, path)
		}
		if n != 1 {
			return nil, fmt.Errorf("%s: %q: want exactly one of httpGet, tcpSocket", ProbersEnv, path)
		}
		if p.TimeoutSeconds < 0 {
			return nil, fmt.Errorf("%s: %q: timeoutSeconds: must not be negative", ProbersEnv, path)
		}
		out[path] = p
	}
	return out, nil
}

// prober performs probes from a fixed source address.
type prober struct {
	dialer *net.Dialer
	host   string // default target host: the pod's IP
}

func (pr *prober) timeout(p *Probe) time.Duration {
	if p.TimeoutSeconds <= 0 {
		return time.Second // Kubernetes' default
	}
	return time.Duration(p.TimeoutSeconds) * time.Second
}

// run performs p, as the kubelet would have: an HTTP GET succeeds with a
// status from 200 to 399, a TCP probe when the connection opens.
func (pr *prober) run(ctx context.Context, p *Probe) error {
	ctx, cancel := context.WithTimeout(ctx, pr.timeout(p))
	defer cancel()
	if t := p.TCPSocket; t != nil {
		c, err := pr.dialer.DialContext(ctx, "tcp", net.JoinHostPort(pr.target(t.Host), strconv.Itoa(int(t.Port))))
		if err != nil {
			return err
		}
		return c.Close()
	}
	h := p.HTTPGet
	scheme := "http"
	if strings.EqualFold(h.Scheme, "HTTPS") {
		scheme = "https"
	}
	path := h.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u := scheme + "://" + net.JoinHostPort(pr.target(h.Host), strconv.Itoa(int(h.Port))) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "kube-probe/weft")
	for _, hd := range h.HTTPHeaders {
		if strings.EqualFold(hd.Name, "Host") {
			req.Host = hd.Value
			continue
		}
		req.Header.Set(hd.Name, hd.Value)
	}
	client := &http.Client{Transport: &http.Transport{
		Proxy:             nil,
		DialContext:       pr.dialer.DialContext,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // as the kubelet: no verification
		DisableKeepAlives: true,
	}, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: status %d", path, resp.StatusCode)
	}
	return nil
}

func (pr *prober) target(host string) string {
	if host != "" {
		return host
	}
	return pr.host
}
