package bolt

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/weft-mesh/weft/config"
	flaggerv1beta1 "github.com/weft-mesh/weft/config/apis/flagger/v1beta1"
	"github.com/weft-mesh/weft/store"
)

func canaryObj(ns, name string, step int32) *config.Object {
	return &config.Object{Kind: config.KindCanary, Meta: config.Meta{Namespace: ns, Name: name}, Spec: &flaggerv1beta1.Canary{
		TargetRef: &flaggerv1beta1.LocalObjectReference{Kind: "Service", Name: name},
		Service:   &flaggerv1beta1.CanaryService{Port: 80},
		Analysis:  &flaggerv1beta1.CanaryAnalysis{StepWeight: step},
	}}
}

// TestStatus: a status write changes neither spec nor generation, an
// apply never changes the status, and the status survives a reopen.
func TestStatus(t *testing.T) {
	s, path := openTemp(t)
	ctx := context.Background()
	key := config.Key{Kind: config.KindCanary, Namespace: "default", Name: "reviews"}
	if err := s.UpdateStatus(ctx, key, &flaggerv1beta1.CanaryStatus{Phase: "Initialized"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("status of a missing object: %v", err)
	}
	apply(t, s, canaryObj("default", "reviews", 10))
	st := &flaggerv1beta1.CanaryStatus{Phase: "Progressing", CanaryWeight: proto.Int32(10)}
	changed := s.Changed()
	if err := store.UpdateStatus(ctx, s, key, st); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Error("a status write did not fire Changed")
	}
	got, _ := s.Get(ctx, key)
	if got.Meta.Generation != 1 || got.Meta.ResourceVersion != "2" || !proto.Equal(got.Status, st) {
		t.Errorf("after status write: generation %d, version %s, status %v", got.Meta.Generation, got.Meta.ResourceVersion, got.Status)
	}
	rev := s.Revision()
	if err := s.UpdateStatus(ctx, key, proto.Clone(st)); err != nil || s.Revision() != rev {
		t.Errorf("an unchanged status was written: %v, revision %d -> %d", err, rev, s.Revision())
	}
	// A spec change (as from `weft apply`) keeps the status.
	if res := apply(t, s, canaryObj("default", "reviews", 20)); res[0].Action != store.Updated {
		t.Fatal(actions(res))
	}
	got, _ = s.Get(ctx, key)
	if got.Meta.Generation != 2 || !proto.Equal(got.Status, st) {
		t.Errorf("after spec change: generation %d, status %v", got.Meta.Generation, got.Status)
	}
	// A status given to Apply is not taken.
	o := canaryObj("default", "reviews", 30)
	o.Status = &flaggerv1beta1.CanaryStatus{Phase: "Succeeded"}
	apply(t, s, o)
	if got, _ = s.Get(ctx, key); !proto.Equal(got.Status, st) {
		t.Errorf("Apply changed the status to %v", got.Status)
	}
	if err := s.UpdateStatus(ctx, config.Key{Kind: config.KindVirtualService, Namespace: "default", Name: "x"}, st); err == nil {
		t.Error("a status for a kind without one was taken")
	}
	s.Close()
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got, _ = s2.Get(ctx, key); !proto.Equal(got.Status, st) {
		t.Errorf("after reopen: %v", got.Status)
	}
}
