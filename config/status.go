package config

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	flaggerv1beta1 "github.com/weft-mesh/weft/config/apis/flagger/v1beta1"
)

// NewStatus returns an empty status for the kinds that keep one (Canary),
// nil for the others.
func NewStatus(k Kind) proto.Message {
	if k == KindCanary {
		return &flaggerv1beta1.CanaryStatus{}
	}
	return nil
}

// DecodeStatus reads the status of an encoded object (JSON or YAML, as
// Marshal writes it) into o.Status. Decode leaves status out, as user input
// must not set it; stores and API clients reading back what they stored
// call this. An object without status, or of a kind without one, keeps
// o.Status nil.
func DecodeStatus(o *Object, data []byte) error {
	if NewStatus(o.Kind) == nil {
		return nil
	}
	js, err := yaml.YAMLToJSON(data) // JSON passes through unchanged
	if err != nil {
		return fmt.Errorf("%s: status: %w", o.Key(), err)
	}
	var doc struct {
		Status json.RawMessage `json:"status"`
	}
	if err := json.Unmarshal(js, &doc); err != nil {
		return fmt.Errorf("%s: status: %w", o.Key(), err)
	}
	if len(doc.Status) == 0 || string(doc.Status) == "null" {
		return nil
	}
	st := NewStatus(o.Kind)
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(doc.Status, st); err != nil {
		return fmt.Errorf("%s: status: %w", o.Key(), err)
	}
	o.Status = st
	return nil
}
