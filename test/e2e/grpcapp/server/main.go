// Command server is a plain gRPC-Go server for the end-to-end tests: it
// serves grpc.testing.TestService on $PORT (as `weft run` sets it) and
// answers UnaryCall with $VERSION as its server ID. With FAIL_EVERY=N
// every Nth call fails with UNAVAILABLE, for retries to recover.
package main

import (
	"context"
	"log"
	"net"
	"os"
	"strconv"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

type server struct {
	testpb.UnimplementedTestServiceServer
	version   string
	failEvery int64
	calls     atomic.Int64
}

func (s *server) UnaryCall(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if n := s.calls.Add(1); s.failEvery > 0 && n%s.failEvery == 0 {
		return nil, status.Errorf(codes.Unavailable, "%s: call %d fails on purpose", s.version, n)
	}
	return &testpb.SimpleResponse{ServerId: s.version}, nil
}

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		log.Fatal("PORT is not set")
	}
	s := &server{version: os.Getenv("VERSION")}
	if v := os.Getenv("FAIL_EVERY"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			log.Fatalf("FAIL_EVERY %q: want a positive number", v)
		}
		s.failEvery = n
	}
	lis, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		log.Fatal(err)
	}
	g := grpc.NewServer()
	testpb.RegisterTestServiceServer(g, s)
	log.Printf("serving grpc.testing.TestService as %q on %s", s.version, lis.Addr())
	log.Fatal(g.Serve(lis))
}
