// Package workload runs a process inside the mesh, as `weft run` does: it
// starts the process's sidecar, registers the instance with the control
// plane as a WorkloadEntry (creating the service's ServiceEntry if none
// exists, as a Kubernetes Service would), and removes the registration when
// the process exits.
package workload

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
	"github.com/weft-mesh/weft/proxy"
	"github.com/weft-mesh/weft/proxy/accesslog"
	"github.com/weft-mesh/weft/xds/node"
)

// Options describes one workload instance.
type Options struct {
	Service   string
	Port      uint32 // service port callers use (http://SERVICE:PORT)
	Protocol  string // service port protocol: HTTP (default), HTTP2, GRPC or TCP
	Namespace string
	Labels    map[string]string
	Instance  string // instance name; generated from the workload name if empty
	Workload  string // workload name; SERVICE-VERSION if empty (a VM names itself)
	Command   []string
	Env       []string // extra environment for the command
	// ServiceAccount is the instance's identity: its certificate names
	// spiffe://TD/ns/NAMESPACE/sa/SERVICE_ACCOUNT, which authorization
	// policies match. Empty means "default", as in Kubernetes.
	ServiceAccount string

	API       *client.Client // control plane HTTP API
	XDS       string         // control plane xDS address
	XDSOrigin string         // where XDS came from ("from --xds"), for messages
	Log       *slog.Logger

	// ReadyTimeout bounds the wait for the sidecar's configuration and for
	// the app to listen on $PORT; past it the app is stopped and Run fails
	// saying which it waited for. 0 waits as long as it takes. Every
	// NoticeEvery (default 5s) of waiting, Run logs a warning saying what
	// it waits for.
	ReadyTimeout time.Duration
	NoticeEvery  time.Duration

	// JoinToken is the secret the sidecar presents on its xDS stream to
	// get its configuration and a certificate: a join token admitting
	// Namespace/ServiceAccount (see `weft token create`).
	JoinToken string
	// CARoot is the PEM file of the mesh root the sidecar verifies the
	// xDS server against; empty means plaintext xDS (a loopback control
	// plane).
	CARoot string

	// TelemetryURL is the control plane API base URL the sidecar reports
	// metrics and spans to; empty disables reports.
	TelemetryURL string
	// TraceSampling is the sidecar's trace sampling percent (see
	// proxy.Options.TraceSampling).
	TraceSampling float64
	// AccessLog is the sidecar's access log format: off, text or json.
	AccessLog accesslog.Format
}

// Run starts the sidecar and the command and blocks until the command exits
// or ctx is done (then the command gets SIGTERM). It returns the command's
// exit error, if any.
func Run(ctx context.Context, o Options) error {
	if o.Service == "" || o.Port == 0 || len(o.Command) == 0 {
		return errors.New("run: --service, --port and a command are required")
	}
	if o.Namespace == "" {
		o.Namespace = config.DefaultNamespace
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.ServiceAccount == "" {
		o.ServiceAccount = DefaultServiceAccount
	}
	if err := ValidateServiceAccount(o.ServiceAccount); err != nil {
		return fmt.Errorf("run: --service-account: %w", err)
	}
	o.Protocol = strings.ToUpper(o.Protocol)
	switch o.Protocol {
	case "":
		o.Protocol = "HTTP"
	case "HTTP", "HTTP2", "GRPC", "TCP":
	default:
		return fmt.Errorf("run: --protocol %q: want HTTP, HTTP2, GRPC or TCP", o.Protocol)
	}
	labels := map[string]string{"app": o.Service}
	for k, v := range o.Labels {
		labels[k] = v
	}
	labels[config.LabelService] = o.Service
	workloadName := o.Workload
	if workloadName == "" {
		workloadName = o.Service
		if v := labels["version"]; v != "" {
			workloadName += "-" + v
		}
	}
	labels[config.LabelWorkload] = workloadName
	// The instance runs a sidecar: callers' sidecars reach it over mutual
	// TLS (auto mTLS keys on this label, as Istio's does).
	labels[config.LabelTLSMode] = "istio"
	if o.Instance == "" {
		o.Instance = workloadName + "-" + randomSuffix()
	}
	// The sidecar's sockets stay bound from here on and are handed to it,
	// so no other process starting at the same time can take those ports;
	// the app's port is released just before the app starts.
	socks, err := bindLoopback(4)
	if err != nil {
		return err
	}
	appPort := socks[2].Addr().(*net.TCPAddr).Port
	meta := &node.Meta{
		Type: node.Sidecar, IP: "127.0.0.1", Name: o.Instance, Namespace: o.Namespace,
		WorkloadName: workloadName, Labels: labels, ServiceAccount: o.ServiceAccount,
		Inbound:  socks[0].Addr().String(),
		Outbound: socks[1].Addr().String(),
		App:      socks[2].Addr().String(),
		Admin:    socks[3].Addr().String(),
	}
	socks[2].Close()
	sidecarSockets := map[string]net.Listener{meta.Inbound: socks[0], meta.Outbound: socks[1], meta.Admin: socks[3]}
	if o.Protocol == "TCP" {
		meta.InboundProtocol = "TCP"
	}
	log := o.Log.With("instance", o.Instance)

	// The sidecar lives as long as this function, not as long as ctx: it
	// must keep serving while the app drains.
	pctx, stopProxy := context.WithCancel(context.Background())
	defer stopProxy()
	h, err := proxy.Start(pctx, proxy.Options{Meta: meta, XDSAddress: o.XDS, Log: log.With("component", "sidecar"), Sockets: sidecarSockets,
		TelemetryURL: o.TelemetryURL, TraceSampling: o.TraceSampling, AccessLog: o.AccessLog,
		JoinToken: o.JoinToken, CARoot: o.CARoot})
	if err != nil {
		return fmt.Errorf("start sidecar: %w", err)
	}

	cmd := exec.Command(o.Command[0], o.Command[1:]...)
	cmd.Stdout, cmd.Stderr, cmd.Stdin = os.Stdout, os.Stderr, os.Stdin
	proxyURL := "http://" + meta.Outbound
	cmd.Env = append(os.Environ(),
		"PORT="+fmt.Sprint(appPort),
		"HOSTNAME="+o.Instance,
		"POD_NAME="+o.Instance,
		"POD_NAMESPACE="+o.Namespace,
		"VERSION="+labels["version"],
		"WORKLOAD_NAME="+workloadName,
		"HTTP_PROXY="+proxyURL, "http_proxy="+proxyURL,
		"NO_PROXY=localhost,127.0.0.1,::1", "no_proxy=localhost,127.0.0.1,::1",
	)
	cmd.Env = append(cmd.Env, o.Env...)
	// Own process group, so signals to weft run's group don't reach the
	// app before it is deregistered; and the app dies with weft run, as a
	// pod's containers do, rather than living on unregistered.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", o.Command[0], err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	weKey := config.Key{Kind: config.KindWorkloadEntry, Namespace: o.Namespace, Name: o.Instance}
	registered := false
	deregister := func() {
		if !registered {
			return
		}
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := o.API.Delete(dctx, string(weKey.Kind), weKey.Namespace, weKey.Name); err != nil {
			log.Warn("deregister workload", "err", err)
		}
		registered = false
	}
	defer deregister()

	// Register once both the sidecar has its config and the app listens,
	// so no caller is routed to an instance that cannot answer.
	var appStage atomic.Bool // false: waiting for the sidecar; true: for the app
	ready := make(chan error, 1)
	go func() {
		select {
		case <-h.Ready():
		case <-pctx.Done():
			ready <- pctx.Err()
			return
		}
		appStage.Store(true)
		ready <- waitListening(pctx, meta.App, exited)
	}()
	waitingFor := func() string {
		if !appStage.Load() {
			where := o.XDS
			if o.XDSOrigin != "" {
				where += " (" + o.XDSOrigin + ")"
			}
			return fmt.Sprintf("the sidecar's configuration from the control plane at %s: is `weft up` running?", where)
		}
		return fmt.Sprintf("%s to listen on %s: the app must listen on 127.0.0.1:$PORT (PORT=%d)", o.Command[0], meta.App, appPort)
	}
	if err := awaitReady(ctx, o, log, ready, exited, waitingFor); err != nil {
		if errors.Is(err, errGaveUp) {
			stopCommand(cmd, exited)
		}
		if errors.Is(err, errInterrupted) {
			return stopCommand(cmd, exited)
		}
		return err
	}
	if err := register(ctx, o, meta, labels); err != nil {
		stopCommand(cmd, exited)
		return err
	}
	registered = true
	log.Info("workload registered", "service", o.Service, "inbound", meta.Inbound, "app", meta.App, "outbound", meta.Outbound)

	select {
	case err := <-exited:
		deregister()
		return err
	case <-ctx.Done():
		// Stop taking new traffic first, give the push a moment to reach
		// callers, then stop the app; the sidecar drains last.
		deregister()
		time.Sleep(time.Second)
		return stopCommand(cmd, exited)
	}
}

var (
	errGaveUp      = errors.New("gave up")
	errInterrupted = errors.New("interrupted")
)

// awaitReady waits for ready (the sidecar configured and the app
// listening), logging every o.NoticeEvery what it waits for. It fails
// with errGaveUp after o.ReadyTimeout, errInterrupted when ctx is done,
// and with the app's exit error (nil for a clean exit, which it says)
// when the app exits first.
func awaitReady(ctx context.Context, o Options, log *slog.Logger, ready <-chan error, exited <-chan error, waitingFor func() string) error {
	every := o.NoticeEvery
	if every <= 0 {
		every = 5 * time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	var deadline <-chan time.Time
	if o.ReadyTimeout > 0 {
		t := time.NewTimer(o.ReadyTimeout)
		defer t.Stop()
		deadline = t.C
	}
	start := time.Now()
	for {
		select {
		case err := <-ready:
			return err
		case err := <-exited:
			log.Warn(fmt.Sprintf("%s exited before it was ready, so it was never registered; it waited for %s", o.Command[0], waitingFor()), "err", err)
			if err == nil {
				return fmt.Errorf("%s exited before it listened on $PORT: nothing to register", o.Command[0])
			}
			return err
		case <-ctx.Done():
			return errInterrupted
		case <-tick.C:
			log.Warn("waiting for "+waitingFor(), "waited", time.Since(start).Round(time.Second))
		case <-deadline:
			return fmt.Errorf("%w after %v waiting for %s", errGaveUp, o.ReadyTimeout, waitingFor())
		}
	}
}

func stopCommand(cmd *exec.Cmd, exited <-chan error) error {
	syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case err := <-exited:
		return err
	case <-time.After(10 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return <-exited
	}
}

// register creates the ServiceEntry when the service is new, and the
// instance's WorkloadEntry, in one apply.
func register(ctx context.Context, o Options, meta *node.Meta, labels map[string]string) error {
	withService := false
	if _, _, err := o.API.Get(ctx, string(config.KindServiceEntry), o.Namespace, o.Service, ""); err != nil {
		if !client.IsNotFound(err) {
			return fmt.Errorf("look up service %s: %w", o.Service, err)
		}
		withService = true
	}
	objs := registration(o, meta, labels, withService)
	var docs []string
	for _, obj := range objs {
		info, _ := config.LookupKind(string(obj.Kind))
		obj.APIVersion = info.PreferredAPIVersion()
		b, err := config.Marshal(obj, "yaml")
		if err != nil {
			return err
		}
		docs = append(docs, string(b))
	}
	_, err := o.API.Apply(ctx, []client.Source{{Name: "weft run " + o.Instance, Content: strings.Join(docs, "\n---\n")}},
		client.ApplyOptions{Namespace: o.Namespace})
	if err != nil {
		return fmt.Errorf("register %s: %w", o.Instance, err)
	}
	return nil
}

// registration returns the objects that register an instance: its
// WorkloadEntry (the sidecar's inbound address, the instance's service
// account and labels), after the service's ServiceEntry if withService.
func registration(o Options, meta *node.Meta, labels map[string]string, withService bool) []*config.Object {
	var objs []*config.Object
	if withService {
		host := o.Service + "." + o.Namespace + "." + model.DomainSuffix
		objs = append(objs, &config.Object{
			Kind: config.KindServiceEntry, Meta: config.Meta{Name: o.Service, Namespace: o.Namespace},
			Spec: &networking.ServiceEntry{
				Hosts:            []string{host},
				Ports:            []*networking.ServicePort{{Number: o.Port, Name: portName(o.Protocol), Protocol: o.Protocol}},
				Location:         networking.ServiceEntry_MESH_INTERNAL,
				Resolution:       networking.ServiceEntry_STATIC,
				WorkloadSelector: &networking.WorkloadSelector{Labels: map[string]string{config.LabelService: o.Service}},
			},
		})
	}
	_, inPort, _ := net.SplitHostPort(meta.Inbound)
	var p uint32
	fmt.Sscan(inPort, &p)
	return append(objs, &config.Object{
		Kind: config.KindWorkloadEntry,
		Meta: config.Meta{Name: o.Instance, Namespace: o.Namespace, Labels: labels,
			Annotations: map[string]string{config.AnnotationProxy: meta.ID()}},
		Spec: &networking.WorkloadEntry{Address: meta.IP, Ports: map[string]uint32{portName(o.Protocol): p}, Labels: labels, ServiceAccount: meta.ServiceAccount},
	})
}

// DefaultServiceAccount is the identity of an instance started without
// --service-account, as a Kubernetes pod without serviceAccountName.
const DefaultServiceAccount = "default"

// ValidateServiceAccount checks a service account name the way Kubernetes
// does (a DNS subdomain: lower-case letters, digits, '-' and '.', at most
// 253 characters, starting and ending alphanumeric), since it becomes part
// of a SPIFFE ID that policies match literally.
func ValidateServiceAccount(sa string) error {
	if sa == "" || len(sa) > 253 {
		return fmt.Errorf("service account %q: want 1 to 253 characters", sa)
	}
	for i, r := range sa {
		alnum := r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		if alnum || (r == '-' || r == '.') && i > 0 && i < len(sa)-1 {
			continue
		}
		return fmt.Errorf("service account %q: want lower-case letters, digits, '-' and '.', starting and ending with a letter or digit", sa)
	}
	return nil
}

// portName is the ServiceEntry port name for a protocol; the WorkloadEntry
// maps the same name to the sidecar's inbound port.
func portName(protocol string) string { return strings.ToLower(protocol) }

// waitListening waits until something accepts connections at address.
func waitListening(ctx context.Context, address string, exited <-chan error) error {
	for delay := 10 * time.Millisecond; ; delay = min(delay*2, 200*time.Millisecond) {
		c, err := net.DialTimeout("tcp", address, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// bindLoopback binds n sockets on free loopback ports.
func bindLoopback(n int) ([]net.Listener, error) {
	var ls []net.Listener
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// randomSuffix imitates a Kubernetes pod name suffix: "6d6b478456-9vsm2".
func randomSuffix() string {
	b := make([]byte, 10)
	rand.Read(b)
	const alnum = "bcdfghjklmnpqrstvwxz2456789"
	tail := make([]byte, 5)
	for i := range tail {
		tail[i] = alnum[int(b[5+i])%len(alnum)]
	}
	return hex.EncodeToString(b[:5]) + "-" + string(tail)
}

// ParseLabels parses "k=v,k2=v2".
func ParseLabels(s string) (map[string]string, error) {
	m := map[string]string{}
	if s == "" {
		return m, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want key=value", kv)
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return m, nil
}

// FormatLabels renders labels sorted, "k=v,k2=v2".
func FormatLabels(m map[string]string) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
