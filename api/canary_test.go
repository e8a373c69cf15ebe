package api_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/weft-mesh/weft/api"
	"github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/canary"
	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/store"
)

const ownedVS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default, annotations: {weft.io/canary: reviews}}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews-primary}
`

const reviewsCanary = `apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: reviews}
spec:
  targetRef: {kind: Service, name: reviews}
  service: {port: 9080}
  analysis: {stepWeight: 10}
`

// TestCanaryGuardAndEndpoints: what a Canary owns is refused to users
// (409, naming the Canary) while it exists; the canary endpoints answer
// for existing canaries only.
func TestCanaryGuardAndEndpoints(t *testing.T) {
	var st store.Store
	var ctl *canary.Controller
	f := newFixture(t, api.Options{
		Guard: func(ctx context.Context, w []*config.Object, d []config.Key) (string, error) {
			return canary.Guard(ctx, st, w, d)
		},
		Canaries: canaryProxy{&ctl},
	})
	st = f.store
	ctl = canary.New(canary.Options{Store: st, Target: &canary.Local{Store: st}})
	ctx := context.Background()
	objs, err := config.Decode("vs", strings.NewReader(ownedVS))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(ctx, objs); err != nil { // as the controller writes it
		t.Fatal(err)
	}
	// No Canary yet: the annotation alone does not lock the object.
	mustApply(t, f.c, src("vs.yaml", strings.Replace(ownedVS, "reviews-primary", "reviews", 1)), client.ApplyOptions{Namespace: "default"})
	mustApply(t, f.c, src("canary.yaml", reviewsCanary), client.ApplyOptions{Namespace: "default"})

	var apiErr *client.APIError
	_, err = f.c.Apply(ctx, src("vs.yaml", ownedVS), client.ApplyOptions{Namespace: "default"})
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict || !strings.Contains(apiErr.Message, "VirtualService default/reviews is managed by Canary default/reviews") {
		t.Errorf("edit of an owned VirtualService: %v", err)
	}
	if _, err := f.c.Delete(ctx, "VirtualService", "default", "reviews"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict {
		t.Errorf("delete of an owned VirtualService: %v", err)
	}
	second := strings.Replace(reviewsCanary, "name: reviews}\nspec", "name: reviews-2}\nspec", 1)
	if _, err := f.c.Apply(ctx, src("c2.yaml", second), client.ApplyOptions{Namespace: "default"}); !errors.As(err, &apiErr) || !strings.Contains(apiErr.Message, "already releases default/reviews") {
		t.Errorf("second Canary for reviews: %v", err)
	}

	if _, err := f.c.Canary(ctx, "default", "nope"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Errorf("unknown canary: %v", err)
	}
	if resp, err := f.c.Canary(ctx, "default", "reviews"); err != nil || resp.Info.Name != "" {
		t.Errorf("canary before any analysis: %+v %v", resp, err)
	}
	// Its analysis has not started (the controller is not running).
	if _, err := f.c.CanaryCommand(ctx, "default", "reviews", "promote"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable {
		t.Errorf("command without a running analysis: %v", err)
	}
	// Once the Canary is gone the object is the user's again.
	if _, err := f.c.Delete(ctx, "Canary", "default", "reviews"); err != nil {
		t.Fatal(err)
	}
	mustApply(t, f.c, src("vs.yaml", ownedVS), client.ApplyOptions{Namespace: "default"})
}

// canaryProxy lets the fixture be built before the controller it serves.
type canaryProxy struct{ c **canary.Controller }

func (p canaryProxy) Info(ns, name string) (canary.Info, bool) { return (*p.c).Info(ns, name) }
func (p canaryProxy) Command(ctx context.Context, ns, name, action string) error {
	return (*p.c).Command(ctx, ns, name, action)
}
