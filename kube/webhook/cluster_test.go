package webhook

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/weft-mesh/weft/kube/inject"
)

// These unit tests use client-go's fake clientset; the same code runs
// against a real API server in the integration tests.

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCluster(t *testing.T) {
	kube := fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{inject.LabelInjection: "enabled"}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: inject.ControlPlaneName, Namespace: inject.SystemNamespace}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.9"}},
	)
	member := func(ns string) (bool, string) { return ns == "shop", "namespace " + ns + " is not in the member roll" }
	c := NewCluster(kube, "", member, inject.Settings{Image: "weft:1"})

	// Lookups before the first list wait, bounded by their context.
	short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort()
	if _, err := c.Settings(short); err == nil || !strings.Contains(err.Error(), "not listed yet") {
		t.Fatalf("Settings before sync: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx)
	s, err := c.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.XDSAddress != "10.96.0.9:15012" || s.TelemetryURL != "http://10.96.0.9:15080" || s.Image != "weft:1" {
		t.Errorf("settings %+v", s)
	}
	ns, err := c.Namespace(ctx, "shop")
	if err != nil || !ns.Member || ns.Labels[inject.LabelInjection] != "enabled" {
		t.Errorf("namespace shop: %+v, %v", ns, err)
	}
	// A namespace created after the informer's list is found through the API.
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fresh"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ns, err = c.Namespace(ctx, "fresh")
	if err != nil || ns.Member || ns.NotMemberReason != "namespace fresh is not in the member roll" {
		t.Errorf("namespace fresh: %+v, %v", ns, err)
	}
	if _, err := c.Namespace(ctx, "nowhere"); err == nil {
		t.Error("a missing namespace was found")
	}
}

func TestCABundle(t *testing.T) {
	url := "https://10.250.0.1:9443/validate"
	kube := fake.NewClientset(
		&admissionregv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: InjectorConfig},
			Webhooks: []admissionregv1.MutatingWebhook{{Name: "a.example.com"}, {Name: "b.example.com"}}},
		&admissionregv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: ValidatorConfig},
			Webhooks: []admissionregv1.ValidatingWebhook{{Name: "v.example.com", ClientConfig: admissionregv1.WebhookClientConfig{URL: &url, CABundle: []byte("stale")}}}},
		&admissionregv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "someone-else"},
			Webhooks: []admissionregv1.ValidatingWebhook{{Name: "x.example.com"}}},
	)
	bundle := []byte("-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n")
	var leader atomic.Bool
	seen := make(chan string, 1000)
	c := &CABundle{Kube: kube, Mutating: []string{InjectorConfig}, Validating: []string{ValidatorConfig}, Bundle: bundle,
		Leader: leader.Load, LeaderPoll: 10 * time.Millisecond, synced: func(k string) {
			select {
			case seen <- k:
			default:
			}
		}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	bundles := func() (m, v, other [][]byte) {
		mw, _ := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, InjectorConfig, metav1.GetOptions{})
		for _, w := range mw.Webhooks {
			m = append(m, w.ClientConfig.CABundle)
		}
		vw, _ := kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, ValidatorConfig, metav1.GetOptions{})
		for _, w := range vw.Webhooks {
			v = append(v, w.ClientConfig.CABundle)
		}
		ow, _ := kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "someone-else", metav1.GetOptions{})
		return m, v, [][]byte{ow.Webhooks[0].ClientConfig.CABundle}
	}
	// Not the leader: both configurations are reconciled, nothing is written.
	for got := map[string]bool{}; len(got) < 2; {
		got[<-seen] = true
	}
	if m, v, _ := bundles(); m[0] != nil || string(v[0]) != "stale" {
		t.Fatalf("a follower wrote: %q %q", m, v)
	}
	leader.Store(true)
	all := func(bs [][]byte) bool {
		for _, b := range bs {
			if !bytes.Equal(b, bundle) {
				return false
			}
		}
		return true
	}
	eventually(t, "caBundle set by the leader", func() error {
		if m, v, _ := bundles(); !all(m) || !all(v) {
			return errorf("mutating %q validating %q", m, v)
		}
		return nil
	})
	if _, _, o := bundles(); o[0] != nil {
		t.Error("a configuration weft does not own was changed")
	}
	// Level-triggered: someone resets it, the leader sets it again.
	mw, _ := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, InjectorConfig, metav1.GetOptions{})
	mw.Webhooks[1].ClientConfig.CABundle = nil
	if _, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(ctx, mw, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "caBundle restored", func() error {
		if m, _, _ := bundles(); !all(m) {
			return errorf("mutating %q", m)
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
