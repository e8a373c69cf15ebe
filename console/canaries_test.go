package console

import (
	"net/http"
	"strings"
	"testing"
)

// TestCanariesView: the Canaries view's page parts and script are served,
// and app.js routes to it.
func TestCanariesView(t *testing.T) {
	mux := serve(New(Options{}), http.NotFoundHandler())
	index := body(get(t, mux, "/"))
	for _, hook := range []string{`data-view="canaries"`, `id="view-canaries"`, `id="canaries-table"`, `id="canary-details"`, `/assets/canaries.js`} {
		if !strings.Contains(index, hook) {
			t.Errorf("index.html lacks %s", hook)
		}
	}
	r := get(t, mux, "/assets/canaries.js")
	src := body(r)
	if r.StatusCode != 200 {
		t.Fatalf("canaries.js: %d", r.StatusCode)
	}
	for _, hook := range []string{`/api/v1/objects?kind=Canary`, `/api/v1/canaries/`, `dataset.canary`, `dataset.phase`, `'weight-line'`, `'data-points'`, `dataset.check`} {
		if !strings.Contains(src, hook) {
			t.Errorf("canaries.js lacks %s", hook)
		}
	}
	if app := body(get(t, mux, "/assets/app.js")); !strings.Contains(app, `'canaries'`) || !strings.Contains(app, "weftCanaries.refresh") {
		t.Error("app.js does not route to the Canaries view")
	}
}
