// Package bookinfo is the Bookinfo application of the Istio workshop
// (seed 004), written in Go: productpage calls details and reviews;
// reviews v2 and v3 call ratings. It keeps what the workshop observes:
//
//   - productpage's hard-coded client timeouts: details 3 s, reviews 3 s
//     with one retry (up to 6 s in all); reviews v2 waits 10 s for ratings,
//     v3 2.5 s, which is why a 7 s delay on ratings breaks the page for v2
//     (productpage gives up first) and not for v3;
//   - the login (a session cookie) that turns into an end-user header on
//     every call, which routing rules match on;
//   - the page's texts: no stars (v1), black stars (v2), red stars (v3),
//     "Error fetching product reviews!", "Ratings service is currently
//     unavailable", and "Reviews served by: <instance>".
package bookinfo

import (
	"context"
	"embed"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/weft-mesh/weft/demo/internal/demoapp"
)

// Files holds the demo's Istio YAML: the initial gateway and destination
// rules, and one file per workshop exercise.
//
//go:embed *.yaml
var Files embed.FS

// Apps lists the app names Serve accepts.
var Apps = []string{"productpage", "details", "reviews", "ratings"}

// The clients' timeouts, as Bookinfo hard-codes them.
const (
	DetailsTimeout   = 3 * time.Second
	ReviewsTimeout   = 3 * time.Second
	ReviewsAttempts  = 2 // one retry
	RatingsTimeoutV2 = 10 * time.Second
	RatingsTimeoutV3 = 2500 * time.Millisecond
)

// Port is the port every Bookinfo service listens on.
const Port = 9080

// Serve runs app on 127.0.0.1:$PORT until ctx is done. reviews takes its
// version from $VERSION and every app its instance name from $HOSTNAME
// (both set by `weft run`); $REVIEWS_FAIL_EVERY=N makes reviews a broken
// build for canary exercises (see ReviewsConfig.FailEvery).
func Serve(ctx context.Context, app string) error {
	client := demoapp.Client()
	base := func(svc string) string { return fmt.Sprintf("http://%s:%d", svc, Port) }
	var h http.Handler
	switch app {
	case "productpage":
		h = NewProductPage(ProductPageConfig{Client: client, DetailsURL: base("details"), ReviewsURL: base("reviews"), RatingsURL: base("ratings")})
	case "details":
		h = NewDetails()
	case "reviews":
		every, err := failEvery(os.Getenv(EnvReviewsFailEvery))
		if err != nil {
			return err
		}
		h = NewReviews(ReviewsConfig{Version: os.Getenv("VERSION"), PodName: os.Getenv("HOSTNAME"), Client: client, RatingsURL: base("ratings"), FailEvery: every})
	case "ratings":
		h = NewRatings()
	default:
		return fmt.Errorf("bookinfo: unknown app %q (have %v)", app, Apps)
	}
	return demoapp.Serve(ctx, "bookinfo "+app, h)
}

// EnvReviewsFailEvery makes reviews answer 500 to every N-th request for
// a book's reviews (ReviewsConfig.FailEvery): a broken build for the
// canary exercises.
const EnvReviewsFailEvery = "REVIEWS_FAIL_EVERY"

func failEvery(v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("bookinfo: %s=%q: want a positive number", EnvReviewsFailEvery, v)
	}
	return n, nil
}
