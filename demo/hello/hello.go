// Package hello is the VM-to-container migration demo (seed 000):
// service-a answers /hello itself and /hello-service by calling service-b,
// which runs first on a "VM" (the instance fedora01, version vm) and then
// also as a container deployment (service-b-v1, version v1). A
// VirtualService splits service-b's traffic between the two, and
// `weft shift` moves it step by step, or the Canary in
// canary-service-b.yaml does it under analysis, rolling back a broken
// container build (HELLO_FAIL_EVERY, HELLO_DELAY) to the VM.
package hello

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/weft-mesh/weft/demo/internal/demoapp"
)

// Files holds the demo's Istio YAML.
//
//go:embed *.yaml
var Files embed.FS

// Apps lists the app names Serve accepts: service-b-vm is service-b as it
// runs on the VM, naming itself by its host name; service-b names itself
// by its deployment (workload) name.
var Apps = []string{"service-a", "service-b", "service-b-vm"}

// Port is the port both services listen on.
const Port = 8080

// ServiceBTimeout bounds service-a's call to service-b.
const ServiceBTimeout = 10 * time.Second

// Serve runs app on 127.0.0.1:$PORT until ctx is done.
func Serve(ctx context.Context, app string) error {
	var h http.Handler
	switch app {
	case "service-a":
		h = NewServiceA(demoapp.Client(), fmt.Sprintf("http://service-b:%d/hello", Port))
	case "service-b":
		h = NewServiceB(firstOf(os.Getenv("WORKLOAD_NAME"), os.Getenv("HOSTNAME"), "service-b"))
		var err error
		if h, err = brokenBuild(h, os.Getenv("HELLO_FAIL_EVERY"), os.Getenv("HELLO_DELAY")); err != nil {
			return err
		}
	case "service-b-vm":
		h = NewServiceB(firstOf(os.Getenv("HOSTNAME"), "fedora01"))
	default:
		return fmt.Errorf("hello: unknown app %q (have %v)", app, Apps)
	}
	return demoapp.Serve(ctx, "hello "+app, h)
}

// brokenBuild makes the container build of service-b misbehave, to see a
// canary release roll it back to the VM: every Nth /hello answers 500
// (failEvery), and every answer waits delay. Empty settings leave it
// healthy; the VM's build never reads them.
func brokenBuild(h http.Handler, failEvery, delay string) (http.Handler, error) {
	every, wait := int64(0), time.Duration(0)
	var err error
	if failEvery != "" {
		if every, err = strconv.ParseInt(failEvery, 10, 64); err != nil || every < 1 {
			return nil, fmt.Errorf("hello: HELLO_FAIL_EVERY=%q: want a positive number", failEvery)
		}
	}
	if delay != "" {
		if wait, err = time.ParseDuration(delay); err != nil || wait < 0 {
			return nil, fmt.Errorf("hello: HELLO_DELAY=%q: want a duration such as 700ms", delay)
		}
	}
	if every == 0 && wait == 0 {
		return h, nil
	}
	var n atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/hello" {
			h.ServeHTTP(w, r)
			return
		}
		select {
		case <-time.After(wait):
		case <-r.Context().Done():
			return
		}
		if every > 0 && n.Add(1)%every == 0 {
			demoapp.WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": "service-b: broken build (HELLO_FAIL_EVERY)"})
			return
		}
		h.ServeHTTP(w, r)
	}), nil
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// Message is what /hello answers.
type Message struct {
	Message string `json:"message"`
}

func hello(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		demoapp.WriteJSON(w, http.StatusOK, Message{Message: "Hello World from " + name})
	}
}

// NewServiceB returns service-b: GET /hello answers
// {"message":"Hello World from NAME"}.
func NewServiceB(name string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", hello(name))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	return mux
}

// NewServiceA returns service-a: GET /hello answers for itself, GET
// /hello-service answers {"response":<what serviceB answered>}.
func NewServiceA(client *http.Client, serviceB string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", hello("service-a"))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("GET /hello-service", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), ServiceBTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, serviceB, nil)
		if err != nil {
			demoapp.WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		demoapp.Propagate(req.Header, r.Header)
		resp, err := client.Do(req)
		if err != nil {
			demoapp.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "service-b: " + err.Error()})
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			demoapp.WriteJSON(w, http.StatusBadGateway, map[string]string{"error": "service-b: " + err.Error()})
			return
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, body); err != nil {
			demoapp.WriteJSON(w, max(resp.StatusCode, http.StatusBadGateway), map[string]string{
				"error": strings.TrimSpace(fmt.Sprintf("service-b answered %d %s", resp.StatusCode, body)),
			})
			return
		}
		demoapp.WriteJSON(w, resp.StatusCode, map[string]json.RawMessage{"response": compact.Bytes()})
	})
	return mux
}
