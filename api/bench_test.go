package api_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weft-mesh/weft/api"
	"github.com/weft-mesh/weft/store/bolt"
)

// conflictingVirtualServices returns the body of an apply of n
// VirtualServices that all route host reviews for the mesh: the input the
// adversarial review used (issue 14), where every object conflicts with
// every other one (WEFT0104).
func conflictingVirtualServices(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: vs-%05d
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        host: reviews
`, i)
	}
	return `{"sources":[{"name":"many.yaml","content":` + strconv.Quote(b.String()) + `}]}`
}

// countingWriter is a ResponseWriter that keeps only the size of the body.
type countingWriter struct {
	header http.Header
	status int
	n      int64
}

func (c *countingWriter) Header() http.Header         { return c.header }
func (c *countingWriter) WriteHeader(code int)        { c.status = code }
func (c *countingWriter) Write(b []byte) (int, error) { c.n += int64(len(b)); return len(b), nil }

// heapPeak samples the live heap every millisecond until stop is called,
// and returns the largest value seen above the heap at start.
func heapPeak() (stop func() uint64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	runtime.GC()
	base := read()
	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if v := read(); v > peak {
				peak = v
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		if peak < base {
			return 0
		}
		return peak - base
	}
}

// BenchmarkApplyConflictingVirtualServices applies N VirtualServices with
// hosts [reviews] (N from WEFT_BENCH_N, default 10000) through the API into
// an empty store, then applies them again unchanged, then reads GET
// /api/v1/analyze. Each step reports its response size and the peak heap
// it added. Run:
//
//	go test ./api -run '^$' -bench ApplyConflicting -benchtime 1x
func BenchmarkApplyConflictingVirtualServices(b *testing.B) {
	n := 10000
	if v := os.Getenv("WEFT_BENCH_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	body := conflictingVirtualServices(n)
	steps := []struct {
		name, method, path string
		body               string
	}{
		{"apply", "POST", "/api/v1/apply", body},
		{"reapply", "POST", "/api/v1/apply", body},
		{"analyze", "GET", "/api/v1/analyze", ""},
	}
	for _, step := range steps {
		b.Run(fmt.Sprintf("%s/n=%d", step.name, n), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				st, err := bolt.Open(filepath.Join(b.TempDir(), "weft.db"))
				if err != nil {
					b.Fatal(err)
				}
				h := api.New(st, api.Options{}).Handler()
				// The earlier steps set the stage: reapply and analyze run
				// over a store that already holds the N objects.
				if step.name != "apply" {
					w := &countingWriter{header: http.Header{}}
					h.ServeHTTP(w, httptest.NewRequest("POST", "/api/v1/apply", strings.NewReader(body)))
					if w.status != 200 {
						b.Fatalf("setup apply: status %d", w.status)
					}
				}
				var r io.Reader
				if step.body != "" {
					r = strings.NewReader(step.body)
				}
				req := httptest.NewRequest(step.method, step.path, r)
				w := &countingWriter{header: http.Header{}}
				stop := heapPeak()
				start := time.Now()
				b.StartTimer()
				h.ServeHTTP(w, req)
				b.StopTimer()
				elapsed := time.Since(start)
				peak := stop()
				if w.status != 200 {
					b.Fatalf("%s: status %d", step.name, w.status)
				}
				b.ReportMetric(float64(w.n)/1e6, "resp-MB")
				b.ReportMetric(float64(peak)/1e6, "peak-heap-MB")
				b.ReportMetric(elapsed.Seconds(), "s")
				st.Close()
				b.StartTimer()
			}
		})
	}
}
