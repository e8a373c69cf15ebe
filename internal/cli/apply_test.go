package cli

import (
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weft-mesh/weft/analyze"
	"github.com/weft-mesh/weft/api"
	"github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/store/bolt"
)

// A --strict refusal lists each finding once: explainAPIError prints the
// messages and returns only the summary line.
func TestExplainAPIErrorSaysFindingsOnce(t *testing.T) {
	m := analyze.Message{Code: "WEFT0101", Level: analyze.Warning, Object: config.Key{Kind: config.KindVirtualService, Namespace: "default", Name: "x"}, Text: "subset v9 undefined"}
	err := explainAPIError(&client.APIError{Status: 422, Message: "strict mode: nothing applied because of 1 finding:\n" + m.String(), Messages: []analyze.Message{m}})
	if err == nil || err.Error() != "strict mode: nothing applied because of 1 finding" {
		t.Errorf("got %v", err)
	}
	plain := errors.New("boom")
	if got := explainAPIError(plain); got != plain {
		t.Errorf("a non-API error changed: %v", got)
	}
}

// proxiesAt answers the API's proxy questions with a state a test moves.
type proxiesAt struct{ synced, nacked atomic.Int64 }

func (p *proxiesAt) Proxies() []api.ProxyInfo {
	info := api.ProxyInfo{ID: "web", Name: "web", Namespace: "default", Connected: true, Revision: 99, SyncedRevision: p.synced.Load(), Sync: api.SyncPending, SyncDetail: "RDS sent, not ACKed yet"}
	if n := p.nacked.Load(); n > 0 {
		info.Revision, info.Sync, info.SyncDetail = n, api.SyncNACKed, "RDS abc: bad route"
	}
	return []api.ProxyInfo{info}
}

func (p *proxiesAt) ProxyConfig(string, string) ([]byte, error) { return nil, errors.New("none") }

// waitSynced returns once every proxy has ACKed the revision, fails at
// once on a NACK of it, and after the timeout names who is pending.
func TestWaitSynced(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p := &proxiesAt{}
	srv := httptest.NewServer(api.New(st, api.Options{Proxies: p}).Handler())
	defer srv.Close()
	c := client.New(srv.URL)
	ctx := context.Background()

	p.synced.Store(5)
	if err := waitSynced(ctx, c, 5, time.Second); err != nil {
		t.Errorf("synced at 5: %v", err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		p.synced.Store(6)
	}()
	if err := waitSynced(ctx, c, 6, 10*time.Second); err != nil {
		t.Errorf("synced at 6 a moment later: %v", err)
	}
	err = waitSynced(ctx, c, 7, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "timed out after 200ms waiting for revision 7: not ACKed by 1 of 1 proxy: web.default (RDS sent, not ACKed yet)") {
		t.Errorf("pending: %v", err)
	}
	p.nacked.Store(8)
	err = waitSynced(ctx, c, 8, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "revision 8 was rejected by web.default (RDS abc: bad route)") {
		t.Errorf("NACKed: %v", err)
	}
}
