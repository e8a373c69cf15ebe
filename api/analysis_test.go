package api_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/weft-mesh/weft/analyze"
	"github.com/weft-mesh/weft/api"
	"github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
)

// countingSnapshots counts the models the analyzer is run on.
func countingSnapshots(n *atomic.Int64) func([]*config.Object, int64) *model.Snapshot {
	return func(objs []*config.Object, rev int64) *model.Snapshot {
		n.Add(1)
		return model.Build(rev, objs)
	}
}

// TestAnalysisCachedPerRevision: the stored configuration is analyzed once
// per store revision. An apply's own analysis of what it wrote answers the
// next GET /api/v1/analyze and is the next apply's "before"; nothing is
// analyzed twice (issue 14: every apply analyzed the whole store twice).
func TestAnalysisCachedPerRevision(t *testing.T) {
	var n atomic.Int64
	f := newFixture(t, api.Options{Snapshot: countingSnapshots(&n)})
	ctx := context.Background()

	mustApply(t, f.c, src("reviews.yaml", reviewsService), client.ApplyOptions{})
	mustApply(t, f.c, src("vs.yaml", reviewsToV2), client.ApplyOptions{})
	// First apply: "before" (empty store) and "after"; second: only "after".
	if got := n.Load(); got != 3 {
		t.Errorf("two applies built %d models for analysis, want 3", got)
	}
	n.Store(0)
	for range 3 {
		msgs, err := f.c.Analyze(ctx, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if !hasCode(msgs, analyze.CodeUndefinedSubset) {
			t.Fatalf("analysis %v lacks WEFT0101", msgs)
		}
	}
	if got := n.Load(); got != 0 {
		t.Errorf("GET /api/v1/analyze at the revision the last apply wrote built %d models, want 0", got)
	}
	// A write the API did not analyze (the reaper, another source) moves
	// the revision: the next read analyzes once, then serves the cache.
	objs, err := config.Decode("x.yaml", strings.NewReader(strings.Replace(reviewsToV2, "name: reviews", "name: reviews2", 1)))
	if err != nil {
		t.Fatal(err)
	}
	objs[0].Meta.Namespace = "default"
	if _, err := f.store.Apply(ctx, objs); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := f.c.Analyze(ctx, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := n.Load(); got != 1 {
		t.Errorf("two reads after an outside write built %d models, want 1", got)
	}
}

// TestApplyListsAHundredFindingsPerCode: an apply of many conflicting
// objects answers with at most api.MaxApplyMessagesPerCode findings of each
// code and counts the rest; GET /api/v1/analyze lists them all.
func TestApplyListsAHundredFindingsPerCode(t *testing.T) {
	f := newFixture(t, api.Options{})
	const n = 150
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs-%03d}\nspec:\n  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews}}]}]\n", i)
	}
	resp := mustApply(t, f.c, src("many.yaml", b.String()), client.ApplyOptions{})
	perCode := map[string]int{}
	for _, m := range resp.Messages {
		perCode[m.Code]++
	}
	// Every VirtualService conflicts (WEFT0104) and routes to an unknown host (WEFT0102).
	if perCode[analyze.CodeConflictingRoutes] != api.MaxApplyMessagesPerCode || perCode[analyze.CodeUnknownHost] != api.MaxApplyMessagesPerCode ||
		resp.OmittedMessages != 2*(n-api.MaxApplyMessagesPerCode) {
		t.Errorf("apply answered %v and %d omitted; want %d of each code and %d omitted",
			perCode, resp.OmittedMessages, api.MaxApplyMessagesPerCode, 2*(n-api.MaxApplyMessagesPerCode))
	}
	all, err := f.c.Analyze(context.Background(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2*n {
		t.Errorf("GET /api/v1/analyze: %d findings, want %d", len(all), 2*n)
	}
}

// TestConcurrentAppliesAnalyzeWhatTheyWrite: applies racing each other
// analyze outside the write lock, yet each one's findings are about the
// state it wrote over: every apply gets a revision of its own and its own
// finding, and nothing is lost.
func TestConcurrentAppliesAnalyzeWhatTheyWrite(t *testing.T) {
	f := newFixture(t, api.Options{})
	mustApply(t, f.c, src("reviews.yaml", reviewsService), client.ApplyOptions{})
	const writers, each = 6, 5
	type result struct {
		rev  int64
		name string
		msgs []analyze.Message
		err  error
	}
	results := make(chan result, writers*each)
	for g := range writers {
		go func() {
			for i := range each {
				name := fmt.Sprintf("vs-%d-%d", g, i)
				vs := fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: %s}\nspec:\n  hosts: [%s.example.com]\n  http: [{route: [{destination: {host: reviews, subset: %s}}]}]\n", name, name, name)
				resp, err := f.c.Apply(context.Background(), src(name+".yaml", vs), client.ApplyOptions{})
				r := result{name: name, err: err}
				if err == nil {
					r.rev, r.msgs = resp.Revision, resp.Messages
				}
				results <- r
			}
		}()
	}
	revs := map[int64]string{}
	for range writers * each {
		r := <-results
		if r.err != nil {
			t.Fatalf("%s: %v", r.name, r.err)
		}
		if other, dup := revs[r.rev]; dup {
			t.Errorf("%s and %s both report revision %d", r.name, other, r.rev)
		}
		revs[r.rev] = r.name
		if len(r.msgs) != 1 || r.msgs[0].Code != analyze.CodeUndefinedSubset || r.msgs[0].Object.Name != r.name {
			t.Errorf("%s: findings %v, want its own WEFT0101 only", r.name, r.msgs)
		}
	}
	list, err := f.c.List(context.Background(), "vs", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != writers*each || list.Revision != writers*each+1 {
		t.Errorf("store holds %d VirtualServices at revision %d, want %d at %d", len(list.Items), list.Revision, writers*each, writers*each+1)
	}
}
