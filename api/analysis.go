package api

import (
	"context"
	"sync"

	"github.com/weft-mesh/weft/analyze"
	"github.com/weft-mesh/weft/config"
)

// maxAnalyses bounds the analyses running at once: each builds a model of
// the whole store, so a burst of concurrent applies or analyze requests
// must not hold one model per request in memory.
const maxAnalyses = 2

// analyses runs the analyzer for the API: the stored configuration's
// analysis is computed once per store revision and shared by GET
// /api/v1/analyze and every apply's "before"; analyses of hypothetical
// states (an apply's "after", POST /api/v1/analyze) are bounded in number.
type analyses struct {
	slots chan struct{}

	// mu is held while the stored configuration is analyzed, so callers
	// wanting the same revision wait for one analysis instead of running
	// their own.
	mu     sync.Mutex
	cached bool
	rev    int64
	msgs   []analyze.Message
}

func newAnalyses() *analyses { return &analyses{slots: make(chan struct{}, maxAnalyses)} }

// run analyzes objs (read at store revision rev, or a state derived from
// it) once a slot is free, or returns nil and ctx's error.
func (s *Server) runAnalysis(ctx context.Context, objs []*config.Object, rev int64) ([]analyze.Message, error) {
	select {
	case s.analyses.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.analyses.slots }()
	return analyze.Analyze(s.snapshot(objs, rev)), nil
}

// storeAnalysis returns the analysis of the stored objects objs, read at
// revision rev: from the cache when it holds that revision. The slice is
// shared; callers must not modify it.
func (s *Server) storeAnalysis(ctx context.Context, objs []*config.Object, rev int64) ([]analyze.Message, error) {
	a := s.analyses
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cached && a.rev == rev {
		return a.msgs, nil
	}
	msgs, err := s.runAnalysis(ctx, objs, rev)
	if err != nil {
		return nil, err
	}
	if !a.cached || rev >= a.rev {
		a.cached, a.rev, a.msgs = true, rev, msgs
	}
	return msgs, nil
}

// remember records msgs as the analysis of the store at revision rev,
// which an apply has just written exactly as analyzed.
func (s *Server) remember(rev int64, msgs []analyze.Message) {
	a := s.analyses
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.cached || rev > a.rev {
		a.cached, a.rev, a.msgs = true, rev, msgs
	}
}

// revisioner is implemented by stores that know their revision without
// listing anything (store/bolt does).
type revisioner interface{ Revision() int64 }

// revision returns the store's current revision.
func (s *Server) revision(ctx context.Context) (int64, error) {
	if r, ok := s.st.(revisioner); ok {
		return r.Revision(), nil
	}
	_, rev, err := s.st.List(ctx, config.KindGateway, "")
	return rev, err
}

// MaxApplyMessagesPerCode caps the findings of one code an apply answers
// with: an apply of thousands of objects that all conflict would otherwise
// answer megabytes nobody reads. The analyze endpoint lists them all.
const MaxApplyMessagesPerCode = 100

// capMessages keeps the first MaxApplyMessagesPerCode messages of each code
// (msgs are sorted by object) and counts the others.
func capMessages(msgs []analyze.Message) ([]analyze.Message, int) {
	perCode := map[string]int{}
	kept := make([]analyze.Message, 0, min(len(msgs), 4*MaxApplyMessagesPerCode))
	omitted := 0
	for _, m := range msgs {
		if perCode[m.Code] == MaxApplyMessagesPerCode {
			omitted++
			continue
		}
		perCode[m.Code]++
		kept = append(kept, m)
	}
	return kept, omitted
}
