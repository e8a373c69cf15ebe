// Package webhook holds weft's Kubernetes admission webhooks as
// http.Handlers over admission.k8s.io/v1 AdmissionReviews:
//
//   - Validator refuses Istio/weft objects that `weft apply` would refuse,
//     with the same message: "KIND NS/NAME: FIELD.PATH: problem";
//   - Injector gives pods their sidecar (kube/inject) as a JSON patch.
//
// The control plane serves both over TLS (controlplane/webhook.go); the
// install manifests (kube/manifest) register them. CABundle keeps the
// webhook configurations' caBundle equal to the mesh root.
package webhook

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Paths the handlers are served at (and the manifests register).
const (
	ValidatePath = "/validate"
	InjectPath   = "/inject"
)

// maxReviewBytes bounds a request body: the API server's own limit on an
// object is 3 MiB, and a review carries at most two of them.
const maxReviewBytes = 8 << 20

// handle reads one AdmissionReview, lets decide answer its request, and
// writes the review back with the response. Malformed reviews get HTTP
// 400, and an error from decide (the webhook could not judge, e.g. the
// cluster could not be read) HTTP 500: the API server then applies the
// webhook's failure policy, which a refusal would bypass.
func handle(w http.ResponseWriter, r *http.Request, log *slog.Logger, decide func(*admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, error)) {
	if r.Method != http.MethodPost {
		http.Error(w, "admission reviews are POSTed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxReviewBytes))
	if err != nil {
		http.Error(w, "read review: "+err.Error(), http.StatusBadRequest)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		http.Error(w, "decode review: "+err.Error(), http.StatusBadRequest)
		return
	}
	if review.Request == nil {
		http.Error(w, "review has no request", http.StatusBadRequest)
		return
	}
	resp, err := decide(review.Request)
	if err != nil {
		log.Warn("admission review not judged", "uid", review.Request.UID, "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	resp.UID = review.Request.UID
	out := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Response: resp,
	}
	js, err := json.Marshal(out)
	if err != nil {
		log.Error("encode admission response", "err", err)
		http.Error(w, "encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(js)
}

func allow() *admissionv1.AdmissionResponse { return &admissionv1.AdmissionResponse{Allowed: true} }

// deny refuses the object; kubectl prints the message after `admission
// webhook "NAME" denied the request: `.
func deny(format string, args ...any) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusBadRequest, Reason: metav1.StatusReasonBadRequest, Message: fmt.Sprintf(format, args...),
	}}
}

// The webhook configurations the install manifests create, whose caBundle
// the control plane's leader keeps (Istio's names).
const (
	InjectorConfig  = "istio-sidecar-injector"
	ValidatorConfig = "istio-validator-istio-system"
	// FieldManager owns the caBundle fields the control plane writes.
	FieldManager = "weft-controlplane"
)
