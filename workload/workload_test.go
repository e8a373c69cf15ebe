package workload

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/xds/node"
)

func TestParseLabels(t *testing.T) {
	m, err := ParseLabels("app=catalog, version=v1")
	if err != nil || m["app"] != "catalog" || m["version"] != "v1" || len(m) != 2 {
		t.Fatalf("ParseLabels = %v, %v", m, err)
	}
	if got := FormatLabels(m); got != "app=catalog,version=v1" {
		t.Errorf("FormatLabels = %q", got)
	}
	for _, bad := range []string{"app", "=x", "a=b,,"} {
		if _, err := ParseLabels(bad); err == nil {
			t.Errorf("ParseLabels(%q) succeeded, want error", bad)
		}
	}
}

func TestRandomSuffixLooksLikeAPodName(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{10}-[a-z0-9]{5}$`)
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		s := randomSuffix()
		if !re.MatchString(s) {
			t.Fatalf("randomSuffix() = %q", s)
		}
		seen[s] = true
	}
	if len(seen) < 95 {
		t.Errorf("suffixes repeat too often: %d distinct of 100", len(seen))
	}
}

func TestValidateServiceAccount(t *testing.T) {
	for _, ok := range []string{"default", "bookinfo-productpage", "a", "sa.v1", "x9"} {
		if err := ValidateServiceAccount(ok); err != nil {
			t.Errorf("ValidateServiceAccount(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-a", "a-", ".a", "Upper", "a/b", "a b", "ü", strings.Repeat("a", 254)} {
		if err := ValidateServiceAccount(bad); err == nil {
			t.Errorf("ValidateServiceAccount(%q) succeeded, want error", bad)
		}
	}
}

// A registered instance carries its service account and the label that
// tells callers' sidecars to use mutual TLS, and both survive the API's
// validation.
func TestRegistrationCarriesIdentity(t *testing.T) {
	meta := &node.Meta{Type: node.Sidecar, IP: "127.0.0.1", Name: "reviews-v2-x", Namespace: "default",
		ServiceAccount: "bookinfo-reviews", Inbound: "127.0.0.1:41000"}
	labels := map[string]string{"app": "reviews", "version": "v2", config.LabelTLSMode: "istio"}
	o := Options{Service: "reviews", Port: 9080, Protocol: "HTTP", Namespace: "default", Instance: "reviews-v2-x", ServiceAccount: "bookinfo-reviews"}
	objs := registration(o, meta, labels, true)
	if len(objs) != 2 || objs[0].Kind != config.KindServiceEntry || objs[1].Kind != config.KindWorkloadEntry {
		t.Fatalf("registration = %v", objs)
	}
	we := objs[1].Spec.(*networking.WorkloadEntry)
	if we.GetServiceAccount() != "bookinfo-reviews" || we.GetLabels()[config.LabelTLSMode] != "istio" || we.GetPorts()["http"] != 41000 {
		t.Errorf("WorkloadEntry = %v", we)
	}
	for _, obj := range objs {
		info, _ := config.LookupKind(string(obj.Kind))
		obj.APIVersion = info.PreferredAPIVersion()
		b, err := config.Marshal(obj, "yaml")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := config.Decode("registration", bytes.NewReader(b)); err != nil {
			t.Errorf("the registration does not validate: %v\n%s", err, b)
			continue
		}
		if obj.Kind == config.KindWorkloadEntry && !strings.Contains(string(b), "serviceAccount: bookinfo-reviews") {
			t.Errorf("YAML lacks the service account:\n%s", b)
		}
	}
	if objs := registration(o, meta, labels, false); len(objs) != 1 {
		t.Errorf("existing service: %d objects, want the WorkloadEntry only", len(objs))
	}
}

// While an instance is not ready, Run says every NoticeEvery what it waits
// for, gives up after ReadyTimeout saying the same, and says so when the
// app exits before listening.
func TestAwaitReadySaysWhatItWaitsFor(t *testing.T) {
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	o := Options{Command: []string{"my-app"}, ReadyTimeout: 150 * time.Millisecond, NoticeEvery: 40 * time.Millisecond}
	waiting := func() string { return "my-app to listen on 127.0.0.1:1234 ($PORT)" }
	err := awaitReady(context.Background(), o, log, make(chan error), make(chan error), waiting)
	if !errors.Is(err, errGaveUp) || !strings.Contains(err.Error(), "after 150ms waiting for my-app to listen on 127.0.0.1:1234 ($PORT)") {
		t.Errorf("timeout: %v", err)
	}
	if !strings.Contains(logs.String(), "waiting for my-app to listen") {
		t.Errorf("no notice while waiting:\n%s", logs.String())
	}
	exited := make(chan error, 1)
	exited <- nil
	o.ReadyTimeout = 0
	if err := awaitReady(context.Background(), o, log, make(chan error), exited, waiting); err == nil || !strings.Contains(err.Error(), "exited before it listened on $PORT") {
		t.Errorf("clean exit before ready: %v", err)
	}
	ready := make(chan error, 1)
	ready <- nil
	if err := awaitReady(context.Background(), o, log, ready, make(chan error), waiting); err != nil {
		t.Errorf("ready: %v", err)
	}
}
