package bookinfo

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/weft-mesh/weft/demo/internal/demoapp"
)

// The product productpage shows.
const (
	ProductID      = 0
	ProductTitle   = "The Comedy of Errors"
	ProductSummary = "One of Shakespeare's earliest and shortest plays, The Comedy of Errors is a farce: " +
		"two pairs of identical twins, separated as infants, end up in the same town on the same day, " +
		"and the laughs come from mistaken identity, slapstick and quick wordplay."
)

// The texts productpage shows when a call fails.
const (
	DetailsError       = "Error fetching product details!"
	DetailsUnavailable = "Sorry, product details are currently unavailable for this book."
	ReviewsError       = "Error fetching product reviews!"
	ReviewsUnavailable = "Sorry, product reviews are currently unavailable for this book."
)

// SessionCookie is the cookie holding the logged-in user's name.
const SessionCookie = "session"

// ProductPageConfig configures productpage. Zero timeouts and attempts take
// Bookinfo's values.
type ProductPageConfig struct {
	Client                             *http.Client
	DetailsURL, ReviewsURL, RatingsURL string // base URLs, e.g. http://details:9080
	DetailsTimeout, ReviewsTimeout     time.Duration
	ReviewsAttempts                    int
}

type productPage struct{ ProductPageConfig }

// NewProductPage returns the productpage service: the HTML page at
// /productpage, login and logout, the /api/v1/products API, /health.
func NewProductPage(c ProductPageConfig) http.Handler {
	if c.Client == nil {
		c.Client = http.DefaultClient
	}
	if c.DetailsTimeout == 0 {
		c.DetailsTimeout = DetailsTimeout
	}
	if c.ReviewsTimeout == 0 {
		c.ReviewsTimeout = ReviewsTimeout
	}
	if c.ReviewsAttempts == 0 {
		c.ReviewsAttempts = ReviewsAttempts
	}
	p := &productPage{c}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", p.index)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		demoapp.WriteJSON(w, http.StatusOK, map[string]string{"status": "Product page is healthy"})
	})
	mux.HandleFunc("GET /productpage", p.page)
	mux.HandleFunc("POST /login", p.login)
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/productpage", http.StatusFound) })
	mux.HandleFunc("GET /logout", p.logout)
	mux.HandleFunc("GET /static/bookinfo.css", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		io.WriteString(w, css)
	})
	mux.HandleFunc("GET /api/v1/products", func(w http.ResponseWriter, _ *http.Request) {
		demoapp.WriteJSON(w, http.StatusOK, []map[string]any{{"id": ProductID, "title": ProductTitle, "descriptionHtml": ProductSummary}})
	})
	mux.HandleFunc("GET /api/v1/products/{id}", func(w http.ResponseWriter, r *http.Request) {
		p.relay(w, r, p.DetailsURL+"/details/", p.DetailsTimeout, 1, DetailsUnavailable)
	})
	mux.HandleFunc("GET /api/v1/products/{id}/reviews", func(w http.ResponseWriter, r *http.Request) {
		p.relay(w, r, p.ReviewsURL+"/reviews/", p.ReviewsTimeout, p.ReviewsAttempts, ReviewsUnavailable)
	})
	mux.HandleFunc("GET /api/v1/products/{id}/ratings", func(w http.ResponseWriter, r *http.Request) {
		p.relay(w, r, p.RatingsURL+"/ratings/", p.ReviewsTimeout, 1, "Sorry, product ratings are currently unavailable for this book.")
	})
	return mux
}

// user returns the logged-in user from the session cookie, or "".
func user(r *http.Request) string {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return ""
	}
	u, err := url.QueryUnescape(c.Value)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(u)
}

// outboundHeaders are the headers of productpage's calls: the propagated
// ones, and end-user when someone is logged in.
func outboundHeaders(r *http.Request) http.Header {
	h := http.Header{}
	demoapp.Propagate(h, r.Header)
	if u := user(r); u != "" {
		h.Set("end-user", u)
	}
	return h
}

// get fetches url with headers, up to attempts times, each attempt bounded
// by timeout; any error or non-200 answer counts as a failure. A failure's
// error says what went wrong at each attempt.
func (p *productPage) get(ctx context.Context, url string, headers http.Header, timeout time.Duration, attempts int) (status int, body []byte, err error) {
	var causes []string
	for i := 0; i < attempts; i++ {
		status, body, err = p.getOnce(ctx, url, headers, timeout)
		if err == nil && status == http.StatusOK {
			return status, body, nil
		}
		if err == nil {
			causes = append(causes, fmt.Sprintf("answered %d: %.200s", status, strings.TrimSpace(string(body))))
		} else {
			causes = append(causes, err.Error())
		}
		if ctx.Err() != nil {
			break
		}
	}
	return status, body, fmt.Errorf("%s: %s", url, strings.Join(causes, "; "))
}

func (p *productPage) getOnce(ctx context.Context, url string, headers http.Header, timeout time.Duration) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	for k, vs := range headers {
		req.Header[k] = append([]string(nil), vs...)
	}
	resp, err := p.Client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// relay answers an /api/v1/products call with what the backend said.
func (p *productPage) relay(w http.ResponseWriter, r *http.Request, base string, timeout time.Duration, attempts int, unavailable string) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		demoapp.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "please provide numeric product id"})
		return
	}
	status, body, err := p.get(r.Context(), base+strconv.Itoa(id), outboundHeaders(r), timeout, attempts)
	if err != nil && status == 0 {
		demoapp.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": unavailable})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

func (p *productPage) index(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	io.WriteString(w, indexHTML)
}

func (p *productPage) login(w http.ResponseWriter, r *http.Request) {
	u := strings.TrimSpace(r.PostFormValue("username"))
	if u != "" && len(u) <= 64 {
		http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: url.QueryEscape(u), Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	http.Redirect(w, r, "/productpage", http.StatusFound)
}

func (p *productPage) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/productpage", http.StatusFound)
}

// pageData is what the product page template shows.
type pageData struct {
	User                      string
	Title, Summary            string
	Details                   *BookDetails
	DetailsFailed             bool
	Reviews                   *BookReviews
	ReviewsFailed             bool
	DetailsError, DetailsText string
	ReviewsError, ReviewsText string
	// ReviewsCause says why reviews failed (each attempt), hidden.
	ReviewsCause string
}

func (p *productPage) page(w http.ResponseWriter, r *http.Request) {
	h := outboundHeaders(r)
	d := pageData{
		User: user(r), Title: ProductTitle, Summary: ProductSummary,
		DetailsError: DetailsError, DetailsText: DetailsUnavailable, ReviewsError: ReviewsError, ReviewsText: ReviewsUnavailable,
	}
	id := strconv.Itoa(ProductID)
	if _, body, err := p.get(r.Context(), p.DetailsURL+"/details/"+id, h, p.DetailsTimeout, 1); err == nil {
		var det BookDetails
		if json.Unmarshal(body, &det) == nil {
			d.Details = &det
		}
	}
	d.DetailsFailed = d.Details == nil
	if _, body, err := p.get(r.Context(), p.ReviewsURL+"/reviews/"+id, h, p.ReviewsTimeout, p.ReviewsAttempts); err == nil {
		var rv BookReviews
		if json.Unmarshal(body, &rv) == nil {
			d.Reviews = &rv
		}
	} else {
		d.ReviewsCause = err.Error()
	}
	d.ReviewsFailed = d.Reviews == nil
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pageTemplate.Execute(w, d); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

var pageTemplate = template.Must(template.New("productpage").Funcs(template.FuncMap{
	"stars": func(n int) string {
		n = max(0, min(n, 5))
		return strings.Repeat("★", n) + strings.Repeat("☆", 5-n)
	},
}).Parse(pageHTML))

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Simple Bookstore App</title>
<link rel="stylesheet" href="/static/bookinfo.css">
</head>
<body>
<nav>
  <span class="brand">BookInfo Sample</span>
  {{- if .User}}
  <span class="user">Welcome {{.User}} | <a href="/logout">logout</a></span>
  {{- else}}
  <form class="login" method="post" action="/login">
    <input type="text" name="username" placeholder="User name">
    <input type="password" name="passwd" placeholder="Password">
    <button type="submit">Sign in</button>
  </form>
  {{- end}}
</nav>
<main>
<h1>{{.Title}}</h1>
<p class="summary">{{.Summary}}</p>
<div class="columns">
<section class="details">
{{- if .DetailsFailed}}
  <h2>{{.DetailsError}}</h2>
  <p>{{.DetailsText}}</p>
{{- else}}
  <h2>Book Details</h2>
  <table>
    <tr><th>Type</th><td>{{.Details.Type}}</td></tr>
    <tr><th>Pages</th><td>{{.Details.Pages}}</td></tr>
    <tr><th>Publisher</th><td>{{.Details.Publisher}}</td></tr>
    <tr><th>Language</th><td>{{.Details.Language}}</td></tr>
    <tr><th>ISBN-10</th><td>{{.Details.ISBN10}}</td></tr>
    <tr><th>ISBN-13</th><td>{{.Details.ISBN13}}</td></tr>
    <tr><th>Author</th><td>{{.Details.Author}}</td></tr>
    <tr><th>Year</th><td>{{.Details.Year}}</td></tr>
  </table>
{{- end}}
</section>
<section class="reviews">
{{- if .ReviewsFailed}}
  <h2>{{.ReviewsError}}</h2>
  <p>{{.ReviewsText}}</p>
  <p class="error-cause" hidden>{{.ReviewsCause}}</p>
{{- else}}
  <h2>Book Reviews</h2>
  {{- range .Reviews.Reviews}}
  <blockquote>
    <p>{{.Text}}</p>
    <footer>{{.Reviewer}}</footer>
    {{- with .Rating}}
    {{- if .Error}}
    <p class="rating-error">{{.Error}}</p>
    {{- else if .Stars}}
    <p class="stars" style="color: {{.Color}}" title="{{.Stars}} of 5">{{stars .Stars}}</p>
    {{- end}}
    {{- end}}
  </blockquote>
  {{- end}}
  <p class="served-by">Reviews served by: {{.Reviews.PodName}}</p>
{{- end}}
</section>
</div>
</main>
</body>
</html>
`

const indexHTML = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Simple Bookstore App</title><link rel="stylesheet" href="/static/bookinfo.css"></head>
<body>
<main>
<h1>Bookinfo: one book page built by four services</h1>
<pre>
  productpage --> details
              --> reviews (v1)
                  reviews (v2) --> ratings
                  reviews (v3) --> ratings
</pre>
<p><a href="/productpage">Normal user</a> · <a href="/api/v1/products">the products API</a></p>
</main>
</body>
</html>
`

const css = `body { font-family: sans-serif; margin: 0; }
nav { background: #333; color: #eee; padding: .6em 1em; display: flex; justify-content: space-between; align-items: center; }
nav a { color: #9cf; }
main { padding: 1em 2em; }
.columns { display: flex; gap: 3em; flex-wrap: wrap; }
.details table th { text-align: left; padding-right: 1em; }
blockquote { border-left: 3px solid #ccc; margin: 1em 0; padding-left: 1em; }
.stars { font-size: 1.4em; margin: .2em 0; }
.rating-error { color: #b00; }
.served-by { color: #666; font-size: .9em; }
`
