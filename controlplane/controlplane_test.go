package controlplane

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/weft-mesh/weft/api/client"
)

const seVS = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: catalog}
spec:
  hosts: [catalog.shop.svc.cluster.local]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: 9999}}]
`

// TestStoreFeedsModel: a write through the API reaches the model, and the
// state survives a restart on the same directory.
func TestStoreFeedsModel(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	cp, err := Start(ctx, Options{StateDir: dir, APIAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	c := client.New("http://"+cp.APIAddr(), client.WithToken(cp.APIToken()))
	if _, err := c.Apply(ctx, []client.Source{{Name: "se.yaml", Content: seVS}}, client.ApplyOptions{Namespace: "shop"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for cp.Snapshot().Service("catalog.shop.svc.cluster.local") == nil {
		if time.Now().After(deadline) {
			t.Fatal("the model never saw the applied ServiceEntry")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-cp.Done()

	ctx2, cancel2 := context.WithCancel(context.Background())
	cp2, err := Start(ctx2, Options{StateDir: dir, APIAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel2(); <-cp2.Done() }()
	if svc := cp2.Snapshot().Service("catalog.shop.svc.cluster.local"); svc == nil || len(svc.Endpoints) != 1 {
		t.Fatalf("after restart the model should hold the stored service, got %+v", svc)
	}
}
