package bookinfo

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weft-mesh/weft/config"
)

func get(t *testing.T, h http.Handler, path string, hdr http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// recorder is a fake upstream that records the headers of what it serves.
type recorder struct {
	mu      sync.Mutex
	headers []http.Header
	hits    atomic.Int32
}

func (r *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.hits.Add(1)
		r.mu.Lock()
		r.headers = append(r.headers, req.Header.Clone())
		r.mu.Unlock()
		h.ServeHTTP(w, req)
	})
}

func (r *recorder) last() http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.headers) == 0 {
		return nil
	}
	return r.headers[len(r.headers)-1]
}

// mesh is a whole Bookinfo on httptest servers, with one reviews version.
type mesh struct {
	details, reviews, ratings *recorder
	page                      http.Handler
}

func newMesh(t *testing.T, version string, ratings http.Handler, cfg ProductPageConfig) *mesh {
	t.Helper()
	m := &mesh{details: &recorder{}, reviews: &recorder{}, ratings: &recorder{}}
	start := func(h http.Handler) string {
		s := httptest.NewServer(h)
		t.Cleanup(s.Close)
		return s.URL
	}
	if ratings == nil {
		ratings = NewRatings()
	}
	ratingsURL := start(m.ratings.wrap(ratings))
	detailsURL := start(m.details.wrap(NewDetails()))
	reviewsURL := start(m.reviews.wrap(NewReviews(ReviewsConfig{Version: version, PodName: "reviews-" + version + "-6d6b478456-9vsm2", RatingsURL: ratingsURL})))
	cfg.DetailsURL, cfg.ReviewsURL, cfg.RatingsURL = detailsURL, reviewsURL, ratingsURL
	m.page = NewProductPage(cfg)
	return m
}

func TestDetails(t *testing.T) {
	rec := get(t, NewDetails(), "/details/0", nil)
	if rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	var d map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"id": 0.0, "author": "William Shakespeare", "year": 1595.0, "type": "paperback", "pages": 200.0,
		"publisher": "PublisherA", "language": "English", "ISBN-10": "1234567890", "ISBN-13": "123-1234567890"}
	for k, v := range want {
		if d[k] != v {
			t.Errorf("%s = %v, want %v", k, d[k], v)
		}
	}
	if rec := get(t, NewDetails(), "/details/x", nil); rec.Code != 400 {
		t.Errorf("non-numeric id: status %d, want 400", rec.Code)
	}
}

func TestRatings(t *testing.T) {
	rec := get(t, NewRatings(), "/ratings/0", nil)
	if got, want := strings.TrimSpace(rec.Body.String()), `{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestReviewsVersions(t *testing.T) {
	ratings := httptest.NewServer(NewRatings())
	defer ratings.Close()
	for _, tc := range []struct {
		version, color string
	}{{"v1", ""}, {"v2", "black"}, {"v3", "red"}} {
		h := NewReviews(ReviewsConfig{Version: tc.version, PodName: "reviews-" + tc.version + "-x", RatingsURL: ratings.URL})
		rec := get(t, h, "/reviews/0", nil)
		var br BookReviews
		if err := json.Unmarshal(rec.Body.Bytes(), &br); err != nil {
			t.Fatal(err)
		}
		if br.PodName != "reviews-"+tc.version+"-x" || len(br.Reviews) != 2 {
			t.Fatalf("%s: %+v", tc.version, br)
		}
		if br.Reviews[0].Reviewer != "Reviewer1" || !strings.Contains(br.Reviews[0].Text, "slapstick humour is refreshing") ||
			br.Reviews[1].Reviewer != "Reviewer2" || !strings.Contains(br.Reviews[1].Text, "lacks thematic depth") {
			t.Errorf("%s: reviews %+v", tc.version, br.Reviews)
		}
		for i, stars := range []int{5, 4} {
			r := br.Reviews[i].Rating
			if tc.color == "" {
				if r != nil {
					t.Errorf("v1 has a rating: %+v", r)
				}
				continue
			}
			if r == nil || r.Stars != stars || r.Color != tc.color {
				t.Errorf("%s review %d: rating %+v, want %d %s stars", tc.version, i, r, stars, tc.color)
			}
		}
	}
}

func TestReviewsRatingsFailure(t *testing.T) {
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "fault filter abort", 500)
	}))
	defer failing.Close()
	rec := get(t, NewReviews(ReviewsConfig{Version: "v2", RatingsURL: failing.URL}), "/reviews/0", nil)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"rating":{"error":"Ratings service is currently unavailable"}`) {
		t.Errorf("got %d %s", rec.Code, rec.Body)
	}
}

func TestReviewsRatingsTimeout(t *testing.T) {
	ended := make(chan string, 4)
	slow := httptest.NewServer(slowThen(2*time.Second, nil, ended, NewRatings().ServeHTTP))
	defer slow.Close()
	start := time.Now()
	rec := get(t, NewReviews(ReviewsConfig{Version: "v3", RatingsURL: slow.URL, RatingsTimeout: 150 * time.Millisecond}), "/reviews/0", nil)
	took := time.Since(start)
	if !strings.Contains(rec.Body.String(), RatingsUnavailable) {
		t.Errorf("want the ratings error, got %s", rec.Body)
	}
	if took < 150*time.Millisecond {
		t.Errorf("took %v, less than the 150ms timeout", took)
	}
	gaveUp(t, ended, 1)
}

func TestReviewsTimeoutsPerVersion(t *testing.T) {
	if RatingsTimeoutV2 != 10*time.Second || RatingsTimeoutV3 != 2500*time.Millisecond ||
		DetailsTimeout != 3*time.Second || ReviewsTimeout != 3*time.Second || ReviewsAttempts != 2 {
		t.Error("Bookinfo's hard-coded timeouts changed")
	}
}

func TestPageShowsEachReviewsVersion(t *testing.T) {
	for _, tc := range []struct {
		version, color string
		stars          int
	}{{"v1", "", 0}, {"v2", "black", 9}, {"v3", "red", 9}} {
		m := newMesh(t, tc.version, nil, ProductPageConfig{})
		rec := get(t, m.page, "/productpage", nil)
		body := rec.Body.String()
		if rec.Code != 200 {
			t.Fatalf("%s: status %d", tc.version, rec.Code)
		}
		for _, s := range []string{"The Comedy of Errors", "William Shakespeare", "1234567890", "PublisherA", "paperback",
			"Reviewer1", "Reviewer2", "Reviews served by: reviews-" + tc.version + "-6d6b478456-9vsm2", `name="username"`} {
			if !strings.Contains(body, s) {
				t.Errorf("%s: page lacks %q", tc.version, s)
			}
		}
		if n := strings.Count(body, "★"); n != tc.stars {
			t.Errorf("%s: %d stars, want %d", tc.version, n, tc.stars)
		}
		if tc.color != "" && !strings.Contains(body, "color: "+tc.color) {
			t.Errorf("%s: stars not %s", tc.version, tc.color)
		}
		if tc.color == "" && strings.Contains(body, "color: ") {
			t.Errorf("v1: colored stars")
		}
		if strings.Contains(body, "Error fetching") || strings.Contains(body, RatingsUnavailable) {
			t.Errorf("%s: page shows an error", tc.version)
		}
	}
}

func TestLoginForwardsEndUser(t *testing.T) {
	m := newMesh(t, "v2", nil, ProductPageConfig{})
	// POST /login sets the session and sends the browser back to the page.
	form := url.Values{"username": {"jason"}, "passwd": {"x"}}
	req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	m.page.ServeHTTP(rec, req)
	if rec.Code != http.StatusFound || rec.Header().Get("Location") != "/productpage" {
		t.Fatalf("login: %d to %q", rec.Code, rec.Header().Get("Location"))
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 || cookies[0].Name != "session" || cookies[0].Value != "jason" {
		t.Fatalf("login cookies: %v", cookies)
	}

	in := http.Header{
		"Cookie":       {"session=jason"},
		"X-Request-Id": {"req-1"},
		"Traceparent":  {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		"X-B3-Traceid": {"0af7651916cd43dd"},
		"B3":           {"0af7651916cd43dd-b7ad6b7169203331-1"},
		"User-Agent":   {"test-agent"},
		"X-Unrelated":  {"dropped"},
	}
	rec = get(t, m.page, "/productpage", in)
	if !strings.Contains(rec.Body.String(), "Welcome jason") || !strings.Contains(rec.Body.String(), `href="/logout"`) {
		t.Errorf("page does not greet jason")
	}
	for name, r := range map[string]*recorder{"details": m.details, "reviews": m.reviews, "ratings": m.ratings} {
		h := r.last()
		if h == nil {
			t.Fatalf("%s not called", name)
		}
		for k, want := range map[string]string{"End-User": "jason", "X-Request-Id": "req-1", "Traceparent": in.Get("Traceparent"),
			"X-B3-Traceid": "0af7651916cd43dd", "B3": in.Get("B3"), "User-Agent": "test-agent", "Cookie": "session=jason"} {
			if got := h.Get(k); got != want {
				t.Errorf("%s got %s: %q, want %q", name, k, got, want)
			}
		}
		if h.Get("X-Unrelated") != "" {
			t.Errorf("%s got a header that is not propagated", name)
		}
	}

	// Logged out: no end-user header, and the login form again.
	rec = get(t, m.page, "/logout", http.Header{"Cookie": {"session=jason"}})
	if rec.Code != http.StatusFound || len(rec.Result().Cookies()) != 1 || rec.Result().Cookies()[0].MaxAge >= 0 {
		t.Errorf("logout: %d %v", rec.Code, rec.Result().Cookies())
	}
	rec = get(t, m.page, "/productpage", nil)
	if m.reviews.last().Get("End-User") != "" || strings.Contains(rec.Body.String(), "Welcome") {
		t.Errorf("anonymous page still has a user")
	}
}

func TestPageRatingsUnavailable(t *testing.T) {
	abort := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "fault filter abort", 500) })
	m := newMesh(t, "v2", abort, ProductPageConfig{})
	body := get(t, m.page, "/productpage", nil).Body.String()
	if !strings.Contains(body, "Ratings service is currently unavailable") || strings.Contains(body, "★") {
		t.Errorf("page should show the ratings error and no stars:\n%s", body)
	}
	if strings.Contains(body, ReviewsError) {
		t.Errorf("reviews themselves did not fail")
	}
}

// slow answers after d, or when the caller gives up.
// slowThen answers with h after d unless the caller gives up first, and
// reports on ended (when not nil) how each request ended: "gave up" (its
// context ended: the caller's timeout fired) or "answered".
func slowThen(d time.Duration, hits *atomic.Int32, ended chan<- string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits != nil {
			hits.Add(1)
		}
		how := "answered"
		select {
		case <-time.After(d):
			h(w, r)
		case <-r.Context().Done():
			how = "gave up"
		}
		if ended != nil {
			ended <- how
		}
	})
}

func emptyJSON(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "{}") }

// gaveUp fails unless the next n requests to a slowThen upstream ended
// with their caller giving up: proof that a timeout fired, whatever the
// time it took on this machine.
func gaveUp(t *testing.T, ended <-chan string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case how := <-ended:
			if how != "gave up" {
				t.Errorf("request %d to the slow upstream %s: the caller's timeout did not fire", i+1, how)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("request %d to the slow upstream never ended", i+1)
		}
	}
}

func TestPageReviewsTimeoutAndRetry(t *testing.T) {
	var reviewHits atomic.Int32
	reviewsEnded := make(chan string, 4)
	reviews := httptest.NewServer(slowThen(3*time.Second, &reviewHits, reviewsEnded, emptyJSON))
	defer reviews.Close()
	details := httptest.NewServer(NewDetails())
	defer details.Close()
	page := NewProductPage(ProductPageConfig{DetailsURL: details.URL, ReviewsURL: reviews.URL, ReviewsTimeout: 150 * time.Millisecond, ReviewsAttempts: 2})
	start := time.Now()
	body := get(t, page, "/productpage", nil).Body.String()
	took := time.Since(start)
	if !strings.Contains(body, "Error fetching product reviews!") || !strings.Contains(body, "Sorry, product reviews are currently unavailable for this book.") {
		t.Errorf("page lacks the reviews error:\n%s", body)
	}
	if !strings.Contains(body, "William Shakespeare") {
		t.Errorf("details should still show")
	}
	if n := reviewHits.Load(); n != 2 {
		t.Errorf("reviews called %d times, want 2 (one retry)", n)
	}
	if took < 300*time.Millisecond {
		t.Errorf("took %v, less than 2 x 150ms", took)
	}
	gaveUp(t, reviewsEnded, 2)
}

func TestPageDetailsTimeout(t *testing.T) {
	var hits atomic.Int32
	detailsEnded := make(chan string, 4)
	details := httptest.NewServer(slowThen(3*time.Second, &hits, detailsEnded, emptyJSON))
	defer details.Close()
	reviews := httptest.NewServer(NewReviews(ReviewsConfig{Version: "v1", PodName: "reviews-v1-x"}))
	defer reviews.Close()
	page := NewProductPage(ProductPageConfig{DetailsURL: details.URL, ReviewsURL: reviews.URL, DetailsTimeout: 150 * time.Millisecond})
	body := get(t, page, "/productpage", nil).Body.String()
	gaveUp(t, detailsEnded, 1) // the details timeout was honoured
	if !strings.Contains(body, "Error fetching product details!") || hits.Load() != 1 {
		t.Errorf("want one details attempt and its error; hits %d:\n%s", hits.Load(), body)
	}
	if !strings.Contains(body, "Reviewer1") {
		t.Errorf("reviews should still show")
	}
}

func TestPageReviewsErrorStatusIsRetried(t *testing.T) {
	var hits atomic.Int32
	reviews := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		http.Error(w, "no healthy upstream", 503)
	}))
	defer reviews.Close()
	details := httptest.NewServer(NewDetails())
	defer details.Close()
	body := get(t, NewProductPage(ProductPageConfig{DetailsURL: details.URL, ReviewsURL: reviews.URL}), "/productpage", nil).Body.String()
	if !strings.Contains(body, ReviewsError) || hits.Load() != 2 {
		t.Errorf("hits %d, body:\n%s", hits.Load(), body)
	}
}

func TestProductPageRoutes(t *testing.T) {
	m := newMesh(t, "v3", nil, ProductPageConfig{})
	for path, want := range map[string]string{
		"/":                          `href="/productpage"`,
		"/health":                    "Product page is healthy",
		"/static/bookinfo.css":       "font-family",
		"/api/v1/products":           "The Comedy of Errors",
		"/api/v1/products/0":         "William Shakespeare",
		"/api/v1/products/0/reviews": `"color":"red"`,
		"/api/v1/products/0/ratings": `"Reviewer2":4`,
	} {
		rec := get(t, m.page, path, nil)
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("%s: %d %s", path, rec.Code, rec.Body)
		}
	}
}

func TestFilesDecode(t *testing.T) {
	names, _ := fs.Glob(Files, "*.yaml")
	if len(names) < 8 {
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

// The security examples (not applied by default) are valid objects of the
// kinds their names promise, and name the demo's service accounts.
func TestSecurityExamplesDecode(t *testing.T) {
	names, err := filepath.Glob("security/*.yaml")
	if err != nil || len(names) < 9 {
		t.Fatalf("security examples: %v %v", names, err)
	}
	kinds := map[config.Kind]int{}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := config.Decode(n, strings.NewReader(string(b)))
		if err != nil || len(objs) != 1 {
			t.Errorf("%s: %d objects, %v", n, len(objs), err)
			continue
		}
		kinds[objs[0].Kind]++
		if strings.Contains(n, "viewer") && n != "security/productpage-viewer.yaml" &&
			!strings.Contains(string(b), `"cluster.local/ns/default/sa/bookinfo-`) {
			t.Errorf("%s names no Bookinfo service account", n)
		}
	}
	if kinds[config.KindPeerAuthentication] < 2 || kinds[config.KindAuthorizationPolicy] < 6 || kinds[config.KindRequestAuthentication] < 1 {
		t.Errorf("kinds: %v", kinds)
	}
}

// A broken build (REVIEWS_FAIL_EVERY): every N-th request for reviews
// fails with 500, saying so; /health stays up. The product page retries
// once, and when both attempts fail shows the error with each attempt's
// cause (hidden), so a test can tell an injected failure from others.
func TestReviewsFailEvery(t *testing.T) {
	if _, err := failEvery("0"); err == nil || !strings.Contains(err.Error(), "REVIEWS_FAIL_EVERY") {
		t.Errorf("failEvery(0): %v", err)
	}
	if n, err := failEvery(""); n != 0 || err != nil {
		t.Errorf("failEvery(\"\") = %d, %v", n, err)
	}
	reviews := NewReviews(ReviewsConfig{Version: "v1", FailEvery: 3})
	var codes []int
	for i := 0; i < 6; i++ {
		rec := get(t, reviews, "/reviews/0", nil)
		codes = append(codes, rec.Code)
		if rec.Code == 500 && !strings.Contains(rec.Body.String(), InjectedFailure) {
			t.Errorf("failure body %s", rec.Body.String())
		}
		if rec := get(t, reviews, "/health", nil); rec.Code != 200 {
			t.Errorf("/health: %d", rec.Code)
		}
	}
	if fmt.Sprint(codes) != "[200 200 500 200 200 500]" {
		t.Errorf("answers %v", codes)
	}

	always := httptest.NewServer(NewReviews(ReviewsConfig{Version: "v1", FailEvery: 1}))
	defer always.Close()
	details := httptest.NewServer(NewDetails())
	defer details.Close()
	page := NewProductPage(ProductPageConfig{DetailsURL: details.URL, ReviewsURL: always.URL, ReviewsAttempts: 2})
	body := get(t, page, "/productpage", nil).Body.String()
	if !strings.Contains(body, ReviewsError) || strings.Count(body, "answered 500") != 2 || !strings.Contains(body, InjectedFailure) {
		t.Errorf("page:\n%s", body)
	}
}
