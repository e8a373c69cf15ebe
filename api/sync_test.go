package api_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/weft-mesh/weft/api"
	"github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/internal/version"
)

// GET /api/v1/sync says, for a store revision, which connected proxies
// have ACKed its configuration (or a later one) in full.
func TestSyncStatus(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, api.Options{Proxies: fakeProxies{[]api.ProxyInfo{
		{ID: "a", Name: "a", Connected: true, Revision: 5, Sync: api.SyncSynced, SyncedRevision: 5},
		{ID: "b", Name: "b", Connected: true, Revision: 5, Sync: api.SyncPending, SyncDetail: "RDS 1234 sent, not ACKed yet", SyncedRevision: 4},
		{ID: "c", Name: "c", Connected: true, Revision: 5, Sync: api.SyncNACKed, SyncDetail: "RDS 99: bad route", SyncedRevision: 3},
		{ID: "d", Name: "d", Connected: true, Revision: 3, Sync: api.SyncSynced, SyncedRevision: 3},
		{ID: "gone", Name: "gone", Connected: false, Revision: 1},
	}}})
	state := func(r *client.SyncResponse) string {
		var parts []string
		for _, p := range r.Proxies {
			parts = append(parts, p.ID+"="+p.State+":"+p.Detail)
		}
		return strings.Join(parts, " ")
	}
	for _, tc := range []struct {
		rev    int64
		synced bool
		want   string
	}{
		{3, true, "a=synced: b=synced: c=synced: d=synced:"},
		{4, false, "a=synced: b=synced: c=nacked:RDS 99: bad route d=pending:has revision 3"},
		{5, false, "a=synced: b=pending:RDS 1234 sent, not ACKed yet c=nacked:RDS 99: bad route d=pending:has revision 3"},
		{6, false, "a=pending:has revision 5 b=pending:has revision 5: RDS 1234 sent, not ACKed yet c=pending:has revision 5: RDS 99: bad route d=pending:has revision 3"},
	} {
		r, err := f.c.Sync(ctx, tc.rev)
		if err != nil {
			t.Fatalf("Sync(%d): %v", tc.rev, err)
		}
		if r.Revision != tc.rev || r.Synced != tc.synced || state(r) != tc.want {
			t.Errorf("Sync(%d) = synced %v %s\nwant synced %v %s", tc.rev, r.Synced, state(r), tc.synced, tc.want)
		}
	}
	// No revision: the store's current one (0 here: nothing applied).
	if r, err := f.c.Sync(ctx, 0); err != nil || r.Revision != 0 || !r.Synced {
		t.Errorf("Sync(current) = %+v, %v", r, err)
	}
	none := newFixture(t, api.Options{})
	if _, err := none.c.Sync(ctx, 1); err == nil {
		t.Error("Sync without an xDS server: no error")
	}
}

func TestHealthSaysVersion(t *testing.T) {
	f := newFixture(t, api.Options{})
	h, err := f.c.Health(context.Background())
	if err != nil || h.Status != "ok" || h.Version != version.Get().String() {
		t.Errorf("Health = %+v, %v", h, err)
	}
}

// A client that finds nothing listening says where it looked and asks
// whether `weft up` runs.
func TestUnreachableSaysWhere(t *testing.T) {
	addr := refusingAddr(t)
	c := client.New(addr, client.WithOrigin("from .weft/endpoints.json"))
	_, err := c.List(context.Background(), "vs", "", "")
	var ue *client.UnreachableError
	if !errors.As(err, &ue) || !client.IsUnreachable(err) {
		t.Fatalf("List: %v, want an UnreachableError", err)
	}
	want := "no control plane answers at http://" + addr + " (from .weft/endpoints.json): is `weft up` running?"
	if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("error %q\nwant it to start %q and name the refusal", err, want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.List(ctx, "vs", "", ""); client.IsUnreachable(err) {
		t.Errorf("a cancelled request is not an unreachable control plane: %v", err)
	}
}

// refusingAddr returns a loopback address that refuses connections: a
// socket bound there and never listening, held until the test ends, so no
// other process can take the port meanwhile.
func refusingAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}
