package webhook

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// CABundle keeps the caBundle of every webhook in the named webhook
// configurations equal to Bundle (the mesh root that signs the webhook
// server's certificate), while Leader says this replica writes. It is
// level-triggered: any change to a named configuration, and becoming the
// leader, reconciles it again.
type CABundle struct {
	Kube       kubernetes.Interface
	Mutating   []string // MutatingWebhookConfiguration names
	Validating []string // ValidatingWebhookConfiguration names
	Bundle     []byte   // PEM
	// Leader reports whether this replica may write; nil: always.
	Leader func() bool
	Log    *slog.Logger
	// LeaderPoll is how often Leader is asked (default 1s).
	LeaderPoll time.Duration

	synced func(key string) // tests: called after each reconcile
}

const (
	mutatingKey   = "mutating/"
	validatingKey = "validating/"
)

// Run reconciles until ctx ends.
func (c *CABundle) Run(ctx context.Context) error {
	log := c.Log
	if log == nil {
		log = slog.Default()
	}
	leader := c.Leader
	if leader == nil {
		leader = func() bool { return true }
	}
	poll := c.LeaderPoll
	if poll <= 0 {
		poll = time.Second
	}
	names := map[string]bool{}
	for _, n := range c.Mutating {
		names[mutatingKey+n] = true
	}
	for _, n := range c.Validating {
		names[validatingKey+n] = true
	}
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	defer q.ShutDown()
	enqueue := func(prefix string) func(obj any) {
		return func(obj any) {
			if m, err := meta(obj); err == nil && names[prefix+m] {
				q.Add(prefix + m)
			}
		}
	}
	fac := informers.NewSharedInformerFactory(c.Kube, 10*time.Minute)
	mut := fac.Admissionregistration().V1().MutatingWebhookConfigurations()
	val := fac.Admissionregistration().V1().ValidatingWebhookConfigurations()
	for _, h := range []struct {
		inf    cache.SharedIndexInformer
		prefix string
	}{{mut.Informer(), mutatingKey}, {val.Informer(), validatingKey}} {
		add := enqueue(h.prefix)
		if _, err := h.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: add, UpdateFunc: func(_, obj any) { add(obj) },
		}); err != nil {
			return fmt.Errorf("webhook caBundle: %w", err)
		}
	}
	fac.Start(ctx.Done())
	defer fac.Shutdown()
	for typ, ok := range fac.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("webhook caBundle: %v informer did not sync", typ)
		}
	}

	// Leadership is not an API event: watch it, and reconcile everything
	// when this replica becomes the writer.
	go func() {
		t := time.NewTicker(poll)
		defer t.Stop()
		was := false
		for {
			if is := leader(); is && !was {
				for k := range names {
					q.Add(k)
				}
				was = true
			} else if !is {
				was = false
			}
			select {
			case <-ctx.Done():
				q.ShutDown()
				return
			case <-t.C:
			}
		}
	}()

	for {
		key, quit := q.Get()
		if quit {
			return nil
		}
		err := func() error {
			if !leader() {
				return nil
			}
			if name, ok := strings.CutPrefix(key, mutatingKey); ok {
				return c.syncMutating(ctx, mut.Lister().Get, name, log)
			}
			name, _ := strings.CutPrefix(key, validatingKey)
			return c.syncValidating(ctx, val.Lister().Get, name, log)
		}()
		if err != nil && ctx.Err() == nil {
			log.Warn("webhook caBundle", "config", key, "err", err)
			q.AddRateLimited(key)
		} else {
			q.Forget(key)
		}
		q.Done(key)
		if c.synced != nil {
			c.synced(key)
		}
	}
}

func meta(obj any) (string, error) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return "", fmt.Errorf("not an object: %T", obj)
	}
	return m.GetName(), nil
}

func (c *CABundle) syncMutating(ctx context.Context, get func(string) (*admissionregv1.MutatingWebhookConfiguration, error), name string, log *slog.Logger) error {
	api := c.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations()
	return syncConfig(c, name, get, func(cur *admissionregv1.MutatingWebhookConfiguration) (*admissionregv1.MutatingWebhookConfiguration, []*admissionregv1.WebhookClientConfig) {
		next := cur.DeepCopy()
		ccs := make([]*admissionregv1.WebhookClientConfig, len(next.Webhooks))
		for i := range next.Webhooks {
			ccs[i] = &next.Webhooks[i].ClientConfig
		}
		return next, ccs
	}, func(next *admissionregv1.MutatingWebhookConfiguration) error {
		_, err := api.Update(ctx, next, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	}, log, "mutatingwebhookconfiguration")
}

func (c *CABundle) syncValidating(ctx context.Context, get func(string) (*admissionregv1.ValidatingWebhookConfiguration, error), name string, log *slog.Logger) error {
	api := c.Kube.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	return syncConfig(c, name, get, func(cur *admissionregv1.ValidatingWebhookConfiguration) (*admissionregv1.ValidatingWebhookConfiguration, []*admissionregv1.WebhookClientConfig) {
		next := cur.DeepCopy()
		ccs := make([]*admissionregv1.WebhookClientConfig, len(next.Webhooks))
		for i := range next.Webhooks {
			ccs[i] = &next.Webhooks[i].ClientConfig
		}
		return next, ccs
	}, func(next *admissionregv1.ValidatingWebhookConfiguration) error {
		_, err := api.Update(ctx, next, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	}, log, "validatingwebhookconfiguration")
}

// syncConfig writes Bundle into every client config of one webhook
// configuration (a copy made by clientConfigs) and updates it, if any
// differs.
func syncConfig[T any](c *CABundle, name string, get func(string) (T, error), clientConfigs func(T) (T, []*admissionregv1.WebhookClientConfig),
	update func(T) error, log *slog.Logger, kind string) error {
	cur, err := get(name)
	if err != nil {
		return ignoreNotFound(err)
	}
	next, ccs := clientConfigs(cur)
	stale := false
	for _, cc := range ccs {
		if !bytes.Equal(cc.CABundle, c.Bundle) {
			stale = true
			cc.CABundle = c.Bundle
		}
	}
	if !stale {
		return nil
	}
	if err := update(next); err != nil {
		return err
	}
	log.Info("webhook caBundle set", kind, name)
	return nil
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
