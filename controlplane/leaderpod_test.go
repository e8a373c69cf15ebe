package controlplane

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/weft-mesh/weft/kube/inject"
	"github.com/weft-mesh/weft/kube/kubeclient"
)

// TestLeaderPodLabel: a replica in a pod clears a stale leader label
// before the election, labels its pod while it leads and unlabels it when
// the term ends; meanwhile only the leader takes telemetry reports.
func TestLeaderPodLabel(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "istiod-a", Namespace: "istio-system",
		Labels: map[string]string{"app": "istiod", inject.LabelLeader: "true"}}}
	kube := fake.NewSimpleClientset(pod)
	c := &ControlPlane{log: slog.New(slog.DiscardHandler),
		kube: &KubeOptions{Clients: &kubeclient.Clients{Kube: kube}, Namespace: "istio-system", PodName: "istiod-a"}}
	labelled := func() bool {
		p, err := kube.CoreV1().Pods("istio-system").Get(context.Background(), "istiod-a", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p.Labels[inject.LabelLeader] == "true" && p.Labels["app"] == "istiod"
	}
	intake := c.leaderOnlyIntake(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) }))
	report := func() *http.Response {
		w := httptest.NewRecorder()
		intake.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/api/v1/telemetry", nil))
		return w.Result()
	}

	c.clearLeaderLabel(context.Background())
	if labelled() {
		t.Fatal("the stale label was not removed")
	}
	if r := report(); r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Connection") != "close" {
		t.Errorf("a follower took a report: %d %v", r.StatusCode, r.Header)
	}

	term, end := context.WithCancel(context.Background())
	done := make(chan struct{})
	c.OnLeader(func(ctx context.Context) { c.labelLeaderPod(ctx); close(done) })
	c.startTerm(term)
	deadline := time.Now().Add(10 * time.Second)
	for !labelled() {
		if time.Now().After(deadline) {
			t.Fatal("the leader did not label its pod")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := report(); r.StatusCode != http.StatusAccepted {
		t.Errorf("the leader refused a report: %d", r.StatusCode)
	}

	end()
	c.endTerm()
	<-done
	if labelled() {
		t.Error("the label outlived the term")
	}
	if r := report(); r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a former leader took a report: %d", r.StatusCode)
	}

	// Not in a pod: no label, every replica takes reports.
	c.kube.PodName = ""
	open := c.leaderOnlyIntake(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) }))
	w := httptest.NewRecorder()
	open.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/api/v1/telemetry", nil))
	if w.Code != http.StatusAccepted {
		t.Errorf("outside a pod a follower refused a report: %d", w.Code)
	}
}
