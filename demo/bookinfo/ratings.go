package bookinfo

import (
	"net/http"
	"strconv"

	"github.com/weft-mesh/weft/demo/internal/demoapp"
)

// Ratings is what ratings answers for a book: stars per reviewer.
type Ratings struct {
	ID      int            `json:"id"`
	Ratings map[string]int `json:"ratings"`
}

// NewRatings returns the ratings service: GET /ratings/{id}.
func NewRatings() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		demoapp.WriteJSON(w, http.StatusOK, map[string]string{"status": "Ratings is healthy"})
	})
	mux.HandleFunc("GET /ratings/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(r.PathValue("id"))
		if err != nil {
			demoapp.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "please provide numeric product ID"})
			return
		}
		demoapp.WriteJSON(w, http.StatusOK, Ratings{ID: id, Ratings: map[string]int{"Reviewer1": 5, "Reviewer2": 4}})
	})
	return mux
}
