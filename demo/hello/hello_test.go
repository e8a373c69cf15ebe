package hello

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/weft-mesh/weft/config"
)

func body(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, strings.TrimSpace(rec.Body.String())
}

func TestServiceA(t *testing.T) {
	var gotUser string
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotUser = r.Header.Get("end-user")
		NewServiceB("fedora01").ServeHTTP(w, r)
	}))
	defer b.Close()
	a := NewServiceA(http.DefaultClient, b.URL+"/hello")
	if code, got := body(t, a, "/hello"); code != 200 || got != `{"message":"Hello World from service-a"}` {
		t.Errorf("/hello: %d %s", code, got)
	}
	if code, got := body(t, a, "/hello-service"); code != 200 || got != `{"response":{"message":"Hello World from fedora01"}}` {
		t.Errorf("/hello-service: %d %s", code, got)
	}
	req := httptest.NewRequest(http.MethodGet, "/hello-service", nil)
	req.Header.Set("end-user", "jason")
	a.ServeHTTP(httptest.NewRecorder(), req)
	if gotUser != "jason" {
		t.Errorf("end-user not propagated: %q", gotUser)
	}
}

func TestServiceAUpstreamFailure(t *testing.T) {
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no healthy upstream", 503)
	}))
	defer b.Close()
	code, got := body(t, NewServiceA(http.DefaultClient, b.URL+"/hello"), "/hello-service")
	if code != 503 || !strings.Contains(got, "503 no healthy upstream") {
		t.Errorf("got %d %s", code, got)
	}
	b.Close()
	if code, got := body(t, NewServiceA(http.DefaultClient, b.URL+"/hello"), "/hello-service"); code != 503 || !strings.Contains(got, `"error"`) {
		t.Errorf("connection refused: got %d %s", code, got)
	}
}

func TestServiceBNames(t *testing.T) {
	if _, got := body(t, NewServiceB("service-b-v1"), "/hello"); got != `{"message":"Hello World from service-b-v1"}` {
		t.Errorf("got %s", got)
	}
}

func TestFilesDecode(t *testing.T) {
	names, _ := fs.Glob(Files, "*.yaml")
	if len(names) < 4 {
		t.Fatalf("files: %v", names)
	}
	for _, n := range names {
		b, _ := fs.ReadFile(Files, n)
		objs, err := config.Decode(n, strings.NewReader(string(b)))
		if err != nil {
			t.Errorf("%s: %v", n, err)
		}
		for _, o := range objs {
			if errs := config.Validate(o); len(errs) > 0 {
				t.Errorf("%s: %v", n, errs)
			}
		}
	}
}
