package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

// Output formats understood by Marshal and MarshalList.
const (
	FormatYAML = "yaml"
	FormatJSON = "json"
)

// wireObject is an Object as Kubernetes writes it. Field order here is the
// order in JSON output; YAML output sorts keys, which gives the same order.
type wireObject struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Metadata   wireMeta        `json:"metadata"`
	Spec       json.RawMessage `json:"spec"`
	Status     json.RawMessage `json:"status,omitempty"`
}

type wireMeta struct {
	Name              string            `json:"name"`
	Namespace         string            `json:"namespace,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
	ResourceVersion   string            `json:"resourceVersion,omitempty"`
	Generation        int64             `json:"generation,omitempty"`
	CreationTimestamp string            `json:"creationTimestamp,omitempty"`
}

type wireList struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Items      []json.RawMessage `json:"items"`
}

// Marshal encodes o as a Kubernetes-style object in format "yaml" or "json",
// written with the kind's preferred apiVersion so `weft get -o yaml` output
// applies unchanged with weft or with Istio.
func Marshal(o *Object, format string) ([]byte, error) {
	js, err := marshalJSON(o)
	if err != nil {
		return nil, err
	}
	return render(js, format)
}

// MarshalList encodes several objects: YAML documents separated by "---",
// or, for JSON, a Kubernetes List ({"apiVersion":"v1","kind":"List","items":[...]}).
func MarshalList(objs []*Object, format string) ([]byte, error) {
	switch format {
	case FormatYAML:
		var buf bytes.Buffer
		for i, o := range objs {
			if i > 0 {
				buf.WriteString("---\n")
			}
			y, err := Marshal(o, format)
			if err != nil {
				return nil, err
			}
			buf.Write(y)
		}
		return buf.Bytes(), nil
	case FormatJSON:
		list := wireList{APIVersion: "v1", Kind: "List", Items: make([]json.RawMessage, 0, len(objs))}
		for _, o := range objs {
			js, err := marshalJSON(o)
			if err != nil {
				return nil, err
			}
			list.Items = append(list.Items, js)
		}
		return indentJSON(list)
	}
	return nil, fmt.Errorf("unknown output format %q (use %s or %s)", format, FormatYAML, FormatJSON)
}

// marshalJSON encodes o as compact JSON.
func marshalJSON(o *Object) ([]byte, error) {
	info, ok := LookupKind(string(o.Kind))
	if !ok || info.Kind != o.Kind {
		return nil, fmt.Errorf("encode %s: unknown kind %q", o.Key(), o.Kind)
	}
	if o.Spec == nil {
		return nil, fmt.Errorf("encode %s: no spec", o.Key())
	}
	spec, err := protojson.MarshalOptions{UseProtoNames: false, EmitUnpopulated: false}.Marshal(o.Spec)
	if err != nil {
		return nil, fmt.Errorf("encode %s: spec: %w", o.Key(), err)
	}
	w := wireObject{
		APIVersion: info.PreferredAPIVersion(),
		Kind:       string(o.Kind),
		Metadata: wireMeta{
			Name: o.Meta.Name, Namespace: o.Meta.Namespace, Labels: o.Meta.Labels, Annotations: o.Meta.Annotations,
			ResourceVersion: o.Meta.ResourceVersion, Generation: o.Meta.Generation,
		},
		Spec: spec,
	}
	if o.Status != nil {
		if w.Status, err = protojson.Marshal(o.Status); err != nil {
			return nil, fmt.Errorf("encode %s: status: %w", o.Key(), err)
		}
	}
	if !o.Meta.CreationTimestamp.IsZero() {
		w.Metadata.CreationTimestamp = o.Meta.CreationTimestamp.UTC().Format(time.RFC3339)
	}
	// json.Marshal compacts the RawMessage, which also removes the random
	// whitespace protojson inserts to discourage byte comparisons.
	js, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", o.Key(), err)
	}
	return js, nil
}

func render(js []byte, format string) ([]byte, error) {
	switch format {
	case FormatJSON:
		return indentJSON(json.RawMessage(js))
	case FormatYAML:
		y, err := yaml.JSONToYAML(js)
		if err != nil {
			return nil, fmt.Errorf("convert to YAML: %w", err)
		}
		return y, nil
	}
	return nil, fmt.Errorf("unknown output format %q (use %s or %s)", format, FormatYAML, FormatJSON)
}

func indentJSON(v any) ([]byte, error) {
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode JSON: %w", err)
	}
	return append(out, '\n'), nil
}

// Equal reports whether a and b are the same object with the same content:
// kind, namespace, name, labels, annotations and spec. Server-set metadata
// (resourceVersion, generation, creationTimestamp) and the apiVersion the
// object was written with are ignored, so re-applying what `weft get`
// printed counts as unchanged.
func Equal(a, b *Object) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Key() == b.Key() &&
		maps.Equal(a.Meta.Labels, b.Meta.Labels) &&
		maps.Equal(a.Meta.Annotations, b.Meta.Annotations) &&
		proto.Equal(a.Spec, b.Spec)
}
