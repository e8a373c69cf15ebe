// Command reverseproxy is the benchmark's floor for a Go proxy: the
// standard library's httputil.ReverseProxy in front of one upstream, as a
// Go developer would write it. The only setting changed from the defaults
// is the idle pool (net/http keeps 2 idle connections per host; with more
// concurrent requests than that it would open and close connections all
// the time, which no deployment keeps).
//
//	reverseproxy -addr 127.0.0.1:18082 -upstream 127.0.0.1:18080
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18082", "listen address")
	upstream := flag.String("upstream", "127.0.0.1:18080", "upstream host:port")
	flag.Parse()
	u := &url.URL{Scheme: "http", Host: *upstream}
	rp := httputil.NewSingleHostReverseProxy(u)
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 256
	rp.Transport = t
	log.Printf("reverseproxy: %s -> %s", *addr, u)
	log.Fatal(http.ListenAndServe(*addr, rp))
}
