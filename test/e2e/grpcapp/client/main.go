// Command client is an ordinary gRPC-Go client for the end-to-end tests,
// but that it dials an xds:/// target and gets its configuration from
// GRPC_XDS_BOOTSTRAP: it makes -n UnaryCalls one after another with xDS
// client credentials (mutual TLS where the control plane says so) and
// prints, as JSON, how many calls each server answered and how many
// failed with each status code.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	_ "google.golang.org/grpc/xds" // the xds:/// resolver and balancers
)

// Result is what the client prints.
type Result struct {
	Servers map[string]int `json:"servers"` // server ID -> calls answered
	Codes   map[string]int `json:"codes"`   // status code -> calls failed
	Last    string         `json:"last,omitempty"`
}

func main() {
	target := flag.String("target", "", "xds:///HOST:PORT")
	n := flag.Int("n", 10, "calls to make")
	header := flag.String("header", "", "metadata to send, key=value")
	timeout := flag.Duration("timeout", 5*time.Second, "deadline of each call")
	flag.Parse()
	creds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		log.Fatal(err)
	}
	conn, err := grpc.NewClient(*target, grpc.WithTransportCredentials(creds))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	c := testpb.NewTestServiceClient(conn)
	ctx := context.Background()
	if k, v, ok := strings.Cut(*header, "="); ok {
		ctx = metadata.AppendToOutgoingContext(ctx, k, v)
	}
	r := Result{Servers: map[string]int{}, Codes: map[string]int{}}
	for i := 0; i < *n; i++ {
		cctx, cancel := context.WithTimeout(ctx, *timeout)
		resp, err := c.UnaryCall(cctx, &testpb.SimpleRequest{FillServerId: true})
		cancel()
		if err != nil {
			r.Codes[status.Code(err).String()]++
			r.Last = err.Error()
			continue
		}
		r.Servers[resp.GetServerId()]++
	}
	json.NewEncoder(os.Stdout).Encode(r)
}
