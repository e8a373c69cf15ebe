package webhook

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// patchOp is one RFC 6902 JSON Patch operation.
type patchOp struct {
	Op    string
	Path  string
	Value any // written for every op but remove, null included
}

func (o patchOp) MarshalJSON() ([]byte, error) {
	if o.Op == "remove" {
		return json.Marshal(struct {
			Op   string `json:"op"`
			Path string `json:"path"`
		}{o.Op, o.Path})
	}
	return json.Marshal(struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value any    `json:"value"`
	}{o.Op, o.Path, o.Value})
}

// jsonPatch returns the JSON Patch that turns before into after (any two
// values that encode to JSON). It descends into objects and into arrays of
// equal length, so fields the encoding does not know about (a newer API
// server's) are left alone wherever the injector did not change their
// parent; an array whose length changed is replaced whole.
func jsonPatch(before, after any) ([]byte, error) {
	a, err := generic(before)
	if err != nil {
		return nil, err
	}
	b, err := generic(after)
	if err != nil {
		return nil, err
	}
	var ops []patchOp
	diff("", a, b, &ops)
	if ops == nil {
		ops = []patchOp{}
	}
	return json.Marshal(ops)
}

func generic(v any) (any, error) {
	js, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode for patch: %w", err)
	}
	var g any
	if err := json.Unmarshal(js, &g); err != nil {
		return nil, fmt.Errorf("decode for patch: %w", err)
	}
	return g, nil
}

func diff(path string, a, b any, ops *[]patchOp) {
	switch am := a.(type) {
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok {
			break
		}
		keys := make([]string, 0, len(am)+len(bm))
		for k := range am {
			keys = append(keys, k)
		}
		for k := range bm {
			if _, dup := am[k]; !dup {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := path + "/" + escape(k)
			av, inA := am[k]
			bv, inB := bm[k]
			switch {
			case inA && !inB:
				*ops = append(*ops, patchOp{Op: "remove", Path: p})
			case !inA && inB:
				*ops = append(*ops, patchOp{Op: "add", Path: p, Value: bv})
			default:
				diff(p, av, bv, ops)
			}
		}
		return
	case []any:
		bs, ok := b.([]any)
		if !ok || len(am) != len(bs) {
			break
		}
		for i := range am {
			diff(path+"/"+strconv.Itoa(i), am[i], bs[i], ops)
		}
		return
	}
	if !reflect.DeepEqual(a, b) {
		*ops = append(*ops, patchOp{Op: "replace", Path: path, Value: b})
	}
}

// escape writes a key as a JSON Pointer token ("~" and "/" escaped), e.g.
// for annotation keys like sidecar.istio.io/status.
func escape(k string) string {
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}
