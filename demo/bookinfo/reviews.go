package bookinfo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/weft-mesh/weft/demo/internal/demoapp"
)

// RatingsUnavailable is the error reviews reports in place of a rating when
// ratings fails or is too slow.
const RatingsUnavailable = "Ratings service is currently unavailable"

// BookReviews is what reviews answers for a book.
type BookReviews struct {
	ID      string   `json:"id"`
	PodName string   `json:"podname"`
	Reviews []Review `json:"reviews"`
}

// Review is one review; Rating is absent for reviews v1.
type Review struct {
	Reviewer string  `json:"reviewer"`
	Text     string  `json:"text"`
	Rating   *Rating `json:"rating,omitempty"`
}

// Rating is a review's stars, or the error fetching them.
type Rating struct {
	Stars int    `json:"stars,omitempty"`
	Color string `json:"color,omitempty"`
	Error string `json:"error,omitempty"`
}

var reviewTexts = []struct{ reviewer, text string }{
	{"Reviewer1", "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"},
	{"Reviewer2", "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare."},
}

// ReviewsConfig configures one reviews instance.
type ReviewsConfig struct {
	Version    string // v1: no ratings; v2: black stars; v3: red stars
	PodName    string // reported as "podname"
	Client     *http.Client
	RatingsURL string // base URL of ratings, e.g. http://ratings:9080
	// RatingsTimeout overrides the version's timeout (10 s for v2, 2.5 s
	// for v3) when not zero.
	RatingsTimeout time.Duration
	// FailEvery, when not zero, makes every FailEvery-th request for a
	// book's reviews fail with 500 and InjectedFailure in its body (not
	// /health: the pod stays ready, as a broken build does).
	FailEvery int64
}

// InjectedFailure is in the body of the answers FailEvery breaks.
const InjectedFailure = "reviews: broken build (" + EnvReviewsFailEvery + ")"

// NewReviews returns the reviews service: GET /reviews/{id}.
func NewReviews(c ReviewsConfig) http.Handler {
	if c.Version == "" {
		c.Version = "v1"
	}
	if c.Client == nil {
		c.Client = http.DefaultClient
	}
	withRatings, color := false, ""
	timeout := c.RatingsTimeout
	switch c.Version {
	case "v2":
		withRatings, color = true, "black"
		if timeout == 0 {
			timeout = RatingsTimeoutV2
		}
	case "v3":
		withRatings, color = true, "red"
		if timeout == 0 {
			timeout = RatingsTimeoutV3
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		demoapp.WriteJSON(w, http.StatusOK, map[string]string{"status": "Reviews is healthy"})
	})
	var served atomic.Int64
	mux.HandleFunc("GET /reviews/{id}", func(w http.ResponseWriter, r *http.Request) {
		if c.FailEvery > 0 && served.Add(1)%c.FailEvery == 0 {
			demoapp.WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": InjectedFailure})
			return
		}
		id := r.PathValue("id")
		out := BookReviews{ID: id, PodName: c.PodName}
		var stars map[string]int
		var ratingsErr error
		if withRatings {
			stars, ratingsErr = fetchRatings(r, c.Client, c.RatingsURL+"/ratings/"+id, timeout)
		}
		for _, t := range reviewTexts {
			rv := Review{Reviewer: t.reviewer, Text: t.text}
			if withRatings {
				if ratingsErr != nil {
					rv.Rating = &Rating{Error: RatingsUnavailable}
				} else if n, ok := stars[t.reviewer]; ok {
					rv.Rating = &Rating{Stars: n, Color: color}
				}
			}
			out.Reviews = append(out.Reviews, rv)
		}
		demoapp.WriteJSON(w, http.StatusOK, out)
	})
	return mux
}

// fetchRatings asks ratings for a book's stars within timeout, forwarding
// the inbound request's tracing and routing headers.
func fetchRatings(in *http.Request, client *http.Client, url string, timeout time.Duration) (map[string]int, error) {
	ctx, cancel := context.WithTimeout(in.Context(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	demoapp.Propagate(req.Header, in.Header)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("ratings answered %d", resp.StatusCode)
	}
	var rt Ratings
	if err := json.Unmarshal(body, &rt); err != nil {
		return nil, fmt.Errorf("ratings: %w", err)
	}
	return rt.Ratings, nil
}
