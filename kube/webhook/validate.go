package webhook

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"

	"github.com/weft-mesh/weft/config"
)

// Guard refuses users' writes that validation allows but that would
// change what a controller owns: the objects a Canary writes
// (canary.Guard over the store), as the API refuses them.
type Guard struct {
	// Check returns a refusal ("" allows) of objects to create or update
	// and keys to delete; err when it could not judge.
	Check func(ctx context.Context, writes []*config.Object, deletes []config.Key) (string, error)
	// Trusted reports whether a user's requests skip Check: the control
	// plane's own (its canary controller writes what a Canary owns) and
	// Kubernetes' controllers (a namespace's deletion, garbage collection).
	Trusted func(user authenticationv1.UserInfo) bool
}

// Validator returns the validating webhook: every create or update of a
// kind in config.Kinds is decoded and validated exactly as `weft apply`
// does (config.Decode), and refused with the same "KIND NS/NAME:
// FIELD.PATH: problem" lines the CLI prints; with a guard, creates,
// updates and deletes it refuses are refused with its message.
func Validator(log *slog.Logger, guard *Guard) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handle(w, r, log, func(req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, error) {
			return validate(r.Context(), req, guard)
		})
	})
}

func validate(ctx context.Context, req *admissionv1.AdmissionRequest, guard *Guard) (*admissionv1.AdmissionResponse, error) {
	if req.SubResource != "" {
		return allow(), nil // status writes are the control plane's own
	}
	if guard != nil && guard.Trusted != nil && guard.Trusted(req.UserInfo) {
		guard = nil
	}
	switch req.Operation {
	case admissionv1.Create, admissionv1.Update:
	case admissionv1.Delete:
		if guard == nil {
			return allow(), nil
		}
		return guarded(ctx, guard, nil, []config.Key{{Kind: config.Kind(req.Kind.Kind), Namespace: req.Namespace, Name: req.Name}})
	default:
		return allow(), nil
	}
	objs, err := config.Decode("", bytes.NewReader(req.Object.Raw))
	if err != nil {
		var list config.ErrorList
		if errors.As(err, &list) {
			list.DefaultNamespace(req.Namespace)
			for _, e := range list {
				e.Doc = 0 // one object, no file: the message starts with the object
			}
		}
		return deny("%v", err), nil
	}
	if len(objs) != 1 {
		return deny("the request holds %d objects, want one", len(objs)), nil
	}
	if string(objs[0].Kind) != req.Kind.Kind {
		return deny("the object is a %s, the request says %s", objs[0].Kind, req.Kind.Kind), nil
	}
	if guard == nil {
		return allow(), nil
	}
	if objs[0].Meta.Namespace == "" {
		objs[0].Meta.Namespace = req.Namespace
	}
	return guarded(ctx, guard, objs, nil)
}

func guarded(ctx context.Context, g *Guard, writes []*config.Object, deletes []config.Key) (*admissionv1.AdmissionResponse, error) {
	refusal, err := g.Check(ctx, writes, deletes)
	if err != nil {
		return nil, err
	}
	if refusal != "" {
		return deny("%s", refusal), nil
	}
	return allow(), nil
}
