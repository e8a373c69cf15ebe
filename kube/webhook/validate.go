package webhook

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/weft-mesh/weft/config"
)

// Validator returns the validating webhook: every create or update of a
// kind in config.Kinds is decoded and validated exactly as `weft apply`
// does (config.Decode), and refused with the same "KIND NS/NAME:
// FIELD.PATH: problem" lines the CLI prints.
func Validator(log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handle(w, r, log, func(req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, error) {
			return validate(req), nil
		})
	})
}

func validate(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	switch req.Operation {
	case admissionv1.Create, admissionv1.Update:
	default:
		return allow()
	}
	if req.SubResource != "" {
		return allow() // status writes are the control plane's own
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
		return deny("%v", err)
	}
	if len(objs) != 1 {
		return deny("the request holds %d objects, want one", len(objs))
	}
	if string(objs[0].Kind) != req.Kind.Kind {
		return deny("the object is a %s, the request says %s", objs[0].Kind, req.Kind.Kind)
	}
	return allow()
}
