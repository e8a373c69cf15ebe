package echo

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestEcho(t *testing.T) {
	srv := httptest.NewServer(Handler("v2", "echo-v2-abc"))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/x"); code != 200 || body != "echo v2 from 'echo-v2-abc': 1\n" {
		t.Fatalf("got %d %q", code, body)
	}
	if code, _ := get("/status/418"); code != 418 {
		t.Fatalf("/status/418: %d", code)
	}
	resp, err := http.Post(srv.URL+"/control?fail=503&every=2", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("control: %v %v", resp, err)
	}
	codes := []int{}
	for i := 0; i < 4; i++ {
		c, _ := get("/")
		codes = append(codes, c)
	}
	fails := 0
	for _, c := range codes {
		if c == 503 {
			fails++
		}
	}
	if fails != 2 {
		t.Fatalf("every=2 should fail half of 4 requests, got %v", codes)
	}
	if resp, _ := http.Post(srv.URL+"/control?fail=0", "", nil); resp.StatusCode != 200 {
		t.Fatal("clear failures")
	}
	_, body := get("/headers")
	var h map[string]string
	if err := json.Unmarshal([]byte(body), &h); err != nil || !strings.HasPrefix(h["host"], "127.0.0.1") {
		t.Fatalf("/headers: %q %v", body, err)
	}
	if resp, _ := http.Post(srv.URL+"/control?fail=abc", "", nil); resp.StatusCode != 400 {
		t.Fatal("bad control input must be refused")
	}
}
