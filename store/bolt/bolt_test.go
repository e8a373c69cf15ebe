package bolt

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/store"
)

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state", "weft.db")
	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func vs(ns, name string, hosts ...string) *config.Object {
	return &config.Object{
		APIVersion: "networking.istio.io/v1",
		Kind:       config.KindVirtualService,
		Meta:       config.Meta{Name: name, Namespace: ns, Labels: map[string]string{"app": name}},
		Spec: &networking.VirtualService{
			Hosts: hosts,
			Http: []*networking.HTTPRoute{{
				Route: []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: hosts[0]}}},
			}},
		},
	}
}

func dr(ns, name, host string) *config.Object {
	return &config.Object{
		APIVersion: "networking.istio.io/v1",
		Kind:       config.KindDestinationRule,
		Meta:       config.Meta{Name: name, Namespace: ns},
		Spec: &networking.DestinationRule{
			Host:    host,
			Subsets: []*networking.Subset{{Name: "v1", Labels: map[string]string{"version": "v1"}}},
		},
	}
}

func apply(t *testing.T, s *Store, objs ...*config.Object) []store.Result {
	t.Helper()
	res, err := s.Apply(context.Background(), objs)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return res
}

func actions(res []store.Result) string {
	var parts []string
	for _, r := range res {
		parts = append(parts, fmt.Sprintf("%s=%s", r.Key.Name, r.Action))
	}
	return strings.Join(parts, ",")
}

func TestApplyGetListDelete(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()

	res := apply(t, s, vs("default", "reviews", "reviews"), dr("default", "reviews", "reviews"), vs("other", "ratings", "ratings"))
	if got, want := actions(res), "reviews=created,reviews=created,ratings=created"; got != want {
		t.Fatalf("actions = %s, want %s", got, want)
	}

	got, err := s.Get(ctx, config.Key{Kind: config.KindVirtualService, Namespace: "default", Name: "reviews"})
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.Spec.(*networking.VirtualService).GetHosts()[0] != "reviews" || got.Meta.Labels["app"] != "reviews" {
		t.Errorf("Get returned %+v", got)
	}
	if _, err := s.Get(ctx, config.Key{Kind: config.KindVirtualService, Namespace: "default", Name: "nope"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get missing: err = %v, want ErrNotFound", err)
	}

	all, rev, err := s.List(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if rev != 1 {
		t.Errorf("revision = %d, want 1", rev)
	}
	// Kinds order (VirtualService before DestinationRule), then namespace/name.
	var keys []string
	for _, o := range all {
		keys = append(keys, o.Key().String())
	}
	if got, want := strings.Join(keys, "; "), "VirtualService default/reviews; VirtualService other/ratings; DestinationRule default/reviews"; got != want {
		t.Errorf("List all = %s\nwant %s", got, want)
	}
	if l, _, _ := s.List(ctx, config.KindVirtualService, "other"); len(l) != 1 || l[0].Meta.Name != "ratings" {
		t.Errorf("List VS other = %v", l)
	}
	if l, _, _ := s.List(ctx, "", "default"); len(l) != 2 {
		t.Errorf("List default = %d objects, want 2", len(l))
	}

	del, err := s.Delete(ctx, []config.Key{{Kind: config.KindVirtualService, Namespace: "other", Name: "ratings"}})
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if len(del) != 1 || del[0].Action != store.Deleted {
		t.Errorf("Delete results = %v", del)
	}
	if _, rev, _ := s.List(ctx, "", ""); rev != 2 {
		t.Errorf("revision after delete = %d, want 2", rev)
	}
}

func TestDeleteMissingIsAllOrNothing(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	apply(t, s, vs("default", "a", "a"))
	_, err := s.Delete(ctx, []config.Key{
		{Kind: config.KindVirtualService, Namespace: "default", Name: "a"},
		{Kind: config.KindVirtualService, Namespace: "default", Name: "missing"},
	})
	if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "default/missing") {
		t.Fatalf("err = %v, want ErrNotFound naming default/missing", err)
	}
	if _, err := s.Get(ctx, config.Key{Kind: config.KindVirtualService, Namespace: "default", Name: "a"}); err != nil {
		t.Errorf("a was deleted by a failed batch: %v", err)
	}
	if s.Revision() != 1 {
		t.Errorf("revision = %d, want 1", s.Revision())
	}
}

func TestApplyIsAtomic(t *testing.T) {
	s, path := openTemp(t)
	ctx := context.Background()
	apply(t, s, vs("default", "keep", "keep"))

	s.beforePut = func(i int, o *config.Object) error {
		if i == 1 {
			return errors.New("injected failure")
		}
		return nil
	}
	_, err := s.Apply(ctx, []*config.Object{vs("default", "first", "first"), vs("default", "second", "second"), vs("default", "keep", "changed")})
	if err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("err = %v, want injected failure", err)
	}
	s.beforePut = nil

	check := func(s *Store) {
		t.Helper()
		l, rev, _ := s.List(ctx, "", "")
		if len(l) != 1 || l[0].Meta.Name != "keep" || rev != 1 {
			t.Fatalf("after failed batch: %d objects at revision %d, want only keep at 1", len(l), rev)
		}
		if h := l[0].Spec.(*networking.VirtualService).GetHosts()[0]; h != "keep" {
			t.Errorf("keep was changed to host %q", h)
		}
	}
	check(s)
	// Nothing reached the disk either.
	s.Close()
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	check(s2)
}

func TestApplyCancelledContext(t *testing.T) {
	s, _ := openTemp(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Apply(ctx, []*config.Object{vs("default", "a", "a")}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if l, _, _ := s.List(context.Background(), "", ""); len(l) != 0 {
		t.Errorf("cancelled apply stored %d objects", len(l))
	}
}

func TestApplyRejectsDuplicateKeys(t *testing.T) {
	s, _ := openTemp(t)
	if _, err := s.Apply(context.Background(), []*config.Object{vs("default", "a", "a"), vs("default", "a", "b")}); err == nil {
		t.Fatal("duplicate keys in one batch were accepted")
	}
	if s.Revision() != 0 {
		t.Errorf("revision = %d, want 0", s.Revision())
	}
}

func TestVersionSemantics(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	key := config.Key{Kind: config.KindVirtualService, Namespace: "default", Name: "reviews"}

	apply(t, s, vs("default", "reviews", "reviews"), dr("default", "reviews", "reviews"))
	first, _ := s.Get(ctx, key)
	if first.Meta.ResourceVersion != "1" || first.Meta.Generation != 1 || first.Meta.CreationTimestamp.IsZero() {
		t.Fatalf("created meta = %+v", first.Meta)
	}

	// Unchanged: nothing written, revision unchanged, the stored copy kept.
	res := apply(t, s, vs("default", "reviews", "reviews"))
	if res[0].Action != store.Unchanged || s.Revision() != 1 {
		t.Fatalf("re-apply: %v at revision %d", res, s.Revision())
	}
	if again, _ := s.Get(ctx, key); again != first {
		t.Error("unchanged apply replaced the stored object")
	}

	// Changed spec: generation bumps, creation time kept, version = new revision.
	time.Sleep(10 * time.Millisecond)
	res = apply(t, s, vs("default", "reviews", "reviews", "reviews.example.com"), dr("default", "reviews", "reviews"))
	if got := actions(res); got != "reviews=configured,reviews=unchanged" {
		t.Fatalf("actions = %s", got)
	}
	second, _ := s.Get(ctx, key)
	if second.Meta.ResourceVersion != "2" || second.Meta.Generation != 2 || !second.Meta.CreationTimestamp.Equal(first.Meta.CreationTimestamp) {
		t.Errorf("updated meta = %+v (created %v)", second.Meta, first.Meta.CreationTimestamp)
	}
	drObj, _ := s.Get(ctx, config.Key{Kind: config.KindDestinationRule, Namespace: "default", Name: "reviews"})
	if drObj.Meta.ResourceVersion != "1" {
		t.Errorf("unchanged DestinationRule resourceVersion = %s, want 1", drObj.Meta.ResourceVersion)
	}

	// Labels count as a change too.
	changed := vs("default", "reviews", "reviews", "reviews.example.com")
	changed.Meta.Labels = map[string]string{"app": "reviews", "tier": "backend"}
	if res := apply(t, s, changed); res[0].Action != store.Updated {
		t.Errorf("label change: %v", res)
	}
	if o, _ := s.Get(ctx, key); o.Meta.Generation != 3 || o.Meta.ResourceVersion != "3" {
		t.Errorf("after label change meta = %+v", o.Meta)
	}

	// The caller's object is not modified by Apply.
	in := vs("default", "fresh", "fresh")
	apply(t, s, in)
	if in.Meta.ResourceVersion != "" || in.Meta.Generation != 0 {
		t.Errorf("Apply modified its input: %+v", in.Meta)
	}
}

func TestPersistence(t *testing.T) {
	s, path := openTemp(t)
	ctx := context.Background()
	apply(t, s, vs("default", "reviews", "reviews"), dr("default", "reviews", "reviews"))
	apply(t, s, vs("default", "reviews", "reviews", "other"))
	before, _ := s.Get(ctx, config.Key{Kind: config.KindVirtualService, Namespace: "default", Name: "reviews"})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	l, rev, _ := s2.List(ctx, "", "")
	if len(l) != 2 || rev != 2 {
		t.Fatalf("reopened: %d objects at revision %d, want 2 at 2", len(l), rev)
	}
	after, err := s2.Get(ctx, before.Key())
	if err != nil {
		t.Fatal(err)
	}
	if !config.Equal(before, after) {
		t.Errorf("object changed across reopen:\n%+v\n%+v", before, after)
	}
	if after.Meta.ResourceVersion != "2" || after.Meta.Generation != 2 || !after.Meta.CreationTimestamp.Equal(before.Meta.CreationTimestamp) {
		t.Errorf("metadata lost across reopen: %+v, before %+v", after.Meta, before.Meta)
	}
	// The revision carries on from where it was.
	apply(t, s2, vs("default", "new", "new"))
	if s2.Revision() != 3 {
		t.Errorf("revision after reopen+apply = %d, want 3", s2.Revision())
	}
}

func TestOpenLocked(t *testing.T) {
	_, path := openTemp(t)
	start := time.Now()
	_, err := Open(path)
	if err == nil || !strings.Contains(err.Error(), "in use by another weft process") {
		t.Fatalf("second Open: err = %v", err)
	}
	// It waited for the lock (a lower bound no busy machine can break)
	// before giving up with the error above.
	if d := time.Since(start); d < lockTimeout/2 {
		t.Errorf("second Open gave up after %v, before waiting about %v", d, lockTimeout)
	}
}

func TestChangedFires(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	ch := s.Changed()
	select {
	case <-ch:
		t.Fatal("Changed fired before any write")
	default:
	}
	apply(t, s, vs("default", "a", "a"))
	select {
	case <-ch:
	case <-time.After(time.Second):
		t.Fatal("Changed did not fire after Apply")
	}

	// An all-unchanged apply is not a change.
	ch = s.Changed()
	apply(t, s, vs("default", "a", "a"))
	select {
	case <-ch:
		t.Fatal("Changed fired for an unchanged apply")
	default:
	}
	// A failed delete is not a change either.
	if _, err := s.Delete(ctx, []config.Key{{Kind: config.KindGateway, Namespace: "default", Name: "x"}}); err == nil {
		t.Fatal("deleting a missing key succeeded")
	}
	select {
	case <-ch:
		t.Fatal("Changed fired for a failed delete")
	default:
	}
	if _, err := s.Delete(ctx, []config.Key{{Kind: config.KindVirtualService, Namespace: "default", Name: "a"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(time.Second):
		t.Fatal("Changed did not fire after Delete")
	}
}

func TestConcurrentApply(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	const writers, rounds = 8, 10
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				name := fmt.Sprintf("w%d-r%d", w, r)
				if _, err := s.Apply(ctx, []*config.Object{vs("default", name, name), vs("default", "shared", name)}); err != nil {
					t.Error(err)
					return
				}
				if _, _, err := s.List(ctx, "", ""); err != nil {
					t.Error(err)
				}
				<-s.Changed() // a later write must still wake us
			}
		}()
	}
	// Keep writing so every goroutine's final wait on Changed returns.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for i := 0; ; i++ {
		select {
		case <-done:
			l, rev, _ := s.List(ctx, config.KindVirtualService, "default")
			if len(l) != writers*rounds+1+1 {
				t.Errorf("%d objects, want %d", len(l), writers*rounds+2)
			}
			if rev < writers*rounds {
				t.Errorf("revision %d < %d writes", rev, writers*rounds)
			}
			return
		case <-time.After(5 * time.Millisecond):
			apply(t, s, vs("default", "ticker", fmt.Sprintf("t%d", i)))
		}
	}
}
