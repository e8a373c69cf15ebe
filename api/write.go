package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/weft-mesh/weft/analyze"
	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/store"
)

// apply handles POST /api/v1/apply?namespace=NS&namespaceExplicit=&strict=&dryRun=.
func (s *Server) apply(w http.ResponseWriter, r *http.Request) {
	flags, objs, ok := readBatch(w, r, "strict", "dryRun")
	if !ok {
		return
	}
	strict, dryRun := flags[0], flags[1]
	if len(objs) == 0 {
		writeError(w, http.StatusBadRequest, "no objects passed to apply")
		return
	}

	current, rev, msgs, after, ok := s.analyzeApply(w, r, objs)
	if !ok {
		return
	}
	defer s.writeMu.Unlock()
	if !s.guardWrite(w, r, objs, nil) {
		return
	}

	listed, omitted := capMessages(msgs)
	if strict {
		blocking := 0
		var lines []string
		for _, m := range msgs {
			if m.Level.AtLeast(analyze.Warning) {
				blocking++
			}
		}
		for _, m := range listed {
			if m.Level.AtLeast(analyze.Warning) {
				lines = append(lines, m.String())
			}
		}
		if blocking > 0 {
			if more := blocking - len(lines); more > 0 {
				lines = append(lines, fmt.Sprintf("... and %d more (weft analyze -f FILE lists them all)", more))
			}
			writeJSON(w, http.StatusUnprocessableEntity, ErrorResponse{
				Error:    "strict mode: nothing applied because of " + plural(blocking, "finding") + ":\n" + strings.Join(lines, "\n"),
				Messages: listed,
			})
			return
		}
	}

	resp := ApplyResponse{Messages: listed, OmittedMessages: omitted, DryRun: dryRun, Revision: rev}
	if dryRun {
		resp.Results = dryRunResults(current, objs)
		writeJSON(w, http.StatusOK, resp)
		return
	}
	res, err := s.st.Apply(r.Context(), objs)
	if err != nil {
		s.storeError(w, r, "apply", err)
		return
	}
	resp.Results = results(res)
	for _, x := range res {
		if x.Action != store.Unchanged {
			resp.Revision = rev + 1
			s.log.Info("applied", "object", x.Key.String(), "action", x.Action)
		}
	}
	if now, err := s.revision(r.Context()); err == nil && resp.Revision == rev+1 && now == rev+1 {
		// The store holds exactly what "after" analyzed: this apply was
		// the one write since rev (writers outside the API, such as the
		// reaper, do not take writeMu).
		s.remember(rev+1, after)
	}
	writeJSON(w, http.StatusOK, resp)
}

// optimisticAnalyses is how many times an apply analyzes outside the write
// lock before it gives up on racing other writers and analyzes under it.
const optimisticAnalyses = 3

// analyzeApply analyzes the store before and after objs would be applied
// and returns with s.writeMu held and the store still at the revision
// analyzed, so the findings are of the state the apply writes over. The
// analyses run outside the lock (another write meanwhile means analyzing
// again), except after optimisticAnalyses lost races. On failure it has
// answered the request, does not hold the lock, and reports !ok.
func (s *Server) analyzeApply(w http.ResponseWriter, r *http.Request, objs []*config.Object) (current []*config.Object, rev int64, msgs, after []analyze.Message, ok bool) {
	ctx := r.Context()
	for attempt := 1; ; attempt++ {
		locked := attempt > optimisticAnalyses
		if locked {
			s.writeMu.Lock()
		}
		var err error
		if current, rev, err = s.st.List(ctx, "", ""); err != nil {
			if locked {
				s.writeMu.Unlock()
			}
			s.storeError(w, r, "list", err)
			return nil, 0, nil, nil, false
		}
		before, err := s.storeAnalysis(ctx, current, rev)
		if err == nil {
			after, err = s.runAnalysis(ctx, merge(current, objs), rev+1)
		}
		if err != nil {
			if locked {
				s.writeMu.Unlock()
			}
			s.storeError(w, r, "analyze", err)
			return nil, 0, nil, nil, false
		}
		if !locked {
			s.writeMu.Lock()
			now, err := s.revision(ctx)
			if err != nil {
				s.writeMu.Unlock()
				s.storeError(w, r, "list", err)
				return nil, 0, nil, nil, false
			}
			if now != rev {
				s.writeMu.Unlock()
				continue // written meanwhile: analyze the new state
			}
		}
		return current, rev, relevantMessages(before, after, objs), after, true
	}
}

// merge returns current with objs replacing or adding to it.
func merge(current, objs []*config.Object) []*config.Object {
	replaced := make(map[config.Key]bool, len(objs))
	for _, o := range objs {
		replaced[o.Key()] = true
	}
	out := make([]*config.Object, 0, len(current)+len(objs))
	for _, o := range current {
		if !replaced[o.Key()] {
			out = append(out, o)
		}
	}
	return append(out, objs...)
}

// relevantMessages keeps, from the analysis after a write, the messages
// about the written objects and those the write introduced elsewhere (say,
// a VirtualService that now points at a subset a new rule lacks); older
// complaints about untouched objects are not this apply's business.
func relevantMessages(before, after []analyze.Message, objs []*config.Object) []analyze.Message {
	written := make(map[config.Key]bool, len(objs))
	for _, o := range objs {
		written[o.Key()] = true
	}
	old := make(map[string]bool, len(before))
	for _, m := range before {
		old[messageID(m)] = true
	}
	out := []analyze.Message{}
	for _, m := range after {
		if written[m.Object] || !old[messageID(m)] {
			out = append(out, m)
		}
	}
	return out
}

func messageID(m analyze.Message) string {
	return fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%s", m.Code, m.Level, m.Object, m.Field, m.Text)
}

func dryRunResults(current, objs []*config.Object) []ObjectResult {
	byKey := make(map[config.Key]*config.Object, len(current))
	for _, o := range current {
		byKey[o.Key()] = o
	}
	out := make([]ObjectResult, 0, len(objs))
	for _, o := range objs {
		action := store.Created
		if old := byKey[o.Key()]; old != nil {
			action = store.Updated
			if config.Equal(old, o) {
				action = store.Unchanged
			}
		}
		k := o.Key()
		out = append(out, ObjectResult{Kind: string(k.Kind), Namespace: k.Namespace, Name: k.Name, Action: string(action)})
	}
	return out
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// deleteObject handles DELETE /api/v1/objects/{kind}/{namespace}/{name}.
func (s *Server) deleteObject(w http.ResponseWriter, r *http.Request) {
	key, ok := pathKey(w, r)
	if !ok {
		return
	}
	s.deleteKeys(w, r, []config.Key{key}, false)
}

// deleteSources handles POST /api/v1/delete: delete what files name, like
// `kubectl delete -f`. With ignoreNotFound=true, objects already gone are
// skipped instead of failing the request.
func (s *Server) deleteSources(w http.ResponseWriter, r *http.Request) {
	flags, objs, ok := readBatch(w, r, "ignoreNotFound")
	if !ok {
		return
	}
	ignore := flags[0]
	keys := make([]config.Key, len(objs))
	for i, o := range objs {
		keys[i] = o.Key()
	}
	s.deleteKeys(w, r, keys, ignore)
}

// deleteKeys deletes all of keys or none. Missing keys are looked up first
// so the 404 names every one of them in kubectl's words.
func (s *Server) deleteKeys(w http.ResponseWriter, r *http.Request, keys []config.Key, ignoreNotFound bool) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	var present []config.Key
	var missing []string
	for _, k := range keys {
		switch _, err := s.st.Get(r.Context(), k); {
		case err == nil:
			present = append(present, k)
		case errors.Is(err, store.ErrNotFound):
			missing = append(missing, notFound(k))
		default:
			s.storeError(w, r, "get", err)
			return
		}
	}
	if len(missing) > 0 && !ignoreNotFound {
		writeError(w, http.StatusNotFound, strings.Join(missing, "\n"))
		return
	}
	if !s.guardWrite(w, r, nil, present) {
		return
	}
	resp := DeleteResponse{Results: []ObjectResult{}}
	if len(present) == 0 {
		writeJSON(w, http.StatusOK, resp)
		return
	}
	res, err := s.st.Delete(r.Context(), present)
	if err != nil {
		s.storeError(w, r, "delete", err)
		return
	}
	for _, x := range res {
		s.log.Info("deleted", "object", x.Key.String())
	}
	_, resp.Revision, _ = s.st.List(r.Context(), config.KindGateway, "")
	resp.Results = results(res)
	writeJSON(w, http.StatusOK, resp)
}

// analyzeStore handles GET /api/v1/analyze?namespace=NS.
func (s *Server) analyzeStore(w http.ResponseWriter, r *http.Request) {
	objs, rev, err := s.st.List(r.Context(), "", "")
	if err != nil {
		s.storeError(w, r, "list", err)
		return
	}
	msgs, err := s.storeAnalysis(r.Context(), objs, rev)
	if err != nil {
		s.storeError(w, r, "analyze", err)
		return
	}
	writeJSON(w, http.StatusOK, AnalyzeResponse{Messages: inNamespace(msgs, r.URL.Query().Get("namespace")), Revision: rev})
}

// analyzeSources handles POST /api/v1/analyze: the store as it would be
// with the given objects applied, without storing them.
func (s *Server) analyzeSources(w http.ResponseWriter, r *http.Request) {
	ns, err := readNSOptions(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	sources, err := readSources(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	objs, errs := decodeSources(sources, ns)
	if len(errs) > 0 {
		writeDecodeErrors(w, errs)
		return
	}
	current, rev, err := s.st.List(r.Context(), "", "")
	if err != nil {
		s.storeError(w, r, "list", err)
		return
	}
	msgs, err := s.runAnalysis(r.Context(), merge(current, objs), rev)
	if err != nil {
		s.storeError(w, r, "analyze", err)
		return
	}
	if msgs == nil {
		msgs = []analyze.Message{}
	}
	writeJSON(w, http.StatusOK, AnalyzeResponse{Messages: msgs, Revision: rev})
}

// inNamespace keeps the messages about objects in ns (all if ns is "").
func inNamespace(msgs []analyze.Message, ns string) []analyze.Message {
	out := []analyze.Message{}
	for _, m := range msgs {
		if ns == "" || m.Object.Namespace == ns {
			out = append(out, m)
		}
	}
	return out
}

// readBatch reads what apply and delete share: the namespace options, the
// named boolean query parameters, and the decoded objects of the request's
// sources. On bad input it answers the request itself and reports !ok.
func readBatch(w http.ResponseWriter, r *http.Request, boolParams ...string) ([]bool, []*config.Object, bool) {
	ns, err := readNSOptions(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return nil, nil, false
	}
	flags := make([]bool, len(boolParams))
	for i, name := range boolParams {
		if flags[i], err = boolParam(r, name); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return nil, nil, false
		}
	}
	sources, err := readSources(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return nil, nil, false
	}
	objs, errs := decodeSources(sources, ns)
	if len(errs) > 0 {
		writeDecodeErrors(w, errs)
		return nil, nil, false
	}
	return flags, objs, true
}
