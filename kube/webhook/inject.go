package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/weft-mesh/weft/kube/inject"
)

// Injector is the mutating webhook: pods created in the mesh get their
// sidecar (inject.Decide says which, inject.Pod how) as a JSON patch.
type Injector struct {
	// Namespace tells what the injector needs about a namespace: its
	// labels and mesh membership.
	Namespace func(ctx context.Context, name string) (inject.Namespace, error)
	// Settings returns the injection settings now (the control plane's
	// Service address may change).
	Settings func(ctx context.Context) (inject.Settings, error)
	Log      *slog.Logger
}

// ServeHTTP answers one AdmissionReview.
func (in *Injector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := in.Log
	if log == nil {
		log = slog.Default()
	}
	handle(w, r, log, func(req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, error) {
		return in.review(r.Context(), log, req)
	})
}

// review answers for one pod; an error means the injector could not
// judge (the cluster could not be read), for the failure policy to decide.
func (in *Injector) review(ctx context.Context, log *slog.Logger, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, error) {
	if req.Operation != admissionv1.Create || req.Kind.Group != "" || req.Kind.Kind != "Pod" || req.SubResource != "" {
		return allow(), nil
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return deny("weft injector: decode pod: %v", err), nil
	}
	if pod.Namespace == "" {
		pod.Namespace = req.Namespace // a pod being created may not say it yet
	}
	id := podID(&pod)
	ns, err := in.Namespace(ctx, pod.Namespace)
	if err != nil {
		return nil, fmt.Errorf("weft injector: pod %s: namespace: %w", id, err)
	}
	ok, why := inject.Decide(&pod, ns)
	if !ok {
		log.Debug("not injecting", "pod", id, "reason", why)
		return allow(), nil
	}
	s, err := in.Settings(ctx)
	if err != nil {
		return nil, fmt.Errorf("weft injector: pod %s: %w", id, err)
	}
	out, err := inject.Pod(&pod, s, "")
	if err != nil {
		return deny("weft injector: pod %s: %v", id, err), nil
	}
	patch, err := jsonPatch(&pod, out)
	if err != nil {
		return nil, fmt.Errorf("weft injector: pod %s: %w", id, err)
	}
	log.Info("injecting", "pod", id, "reason", why)
	pt := admissionv1.PatchTypeJSONPatch
	return &admissionv1.AdmissionResponse{Allowed: true, Patch: patch, PatchType: &pt}, nil
}

// podID names a pod in messages; a pod being created often has only its
// generateName.
func podID(p *corev1.Pod) string {
	name := p.Name
	if name == "" {
		name = p.GenerateName + "<generated>"
	}
	return p.Namespace + "/" + name
}
