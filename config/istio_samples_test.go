package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// istioRefused lists the files under testdata/istio that must be refused,
// with what the refusal must say. Everything else there must be accepted
// unchanged: it is Istio's own sample and test configuration.
var istioRefused = map[string][]string{
	// weft takes no Envoy patches, but says what does the same.
	"samples/ratelimit/local-rate-limit-service.yaml": {
		"EnvoyFilter is not supported", "for a local rate limit use weft's RateLimit (weft.io/v1alpha1"},
	"samples/bookinfo/policy/productpage_envoy_ratelimit.yaml": {
		"EnvoyFilter is not supported", "no global rate limit service", "RateLimit (weft.io/v1alpha1"},
	// websocketUpgrade left Istio's API long ago; Istio's CRD schema
	// refuses it too.
	"samples/websockets/route.yaml": {"spec.http[0].websocketUpgrade: unknown field"},
}

// TestIstioSamples decodes and validates Istio's sample and integration-test
// YAML (testdata/istio, see its README.md): valid Istio configuration is
// valid weft configuration.
func TestIstioSamples(t *testing.T) {
	root := filepath.Join("testdata", "istio")
	files, objects := 0, 0
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) != ".yaml" {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		files++
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		objs, err := Decode(rel, f)
		want, refused := istioRefused[rel]
		switch {
		case refused && err == nil:
			t.Errorf("%s: accepted, want refused with %q", rel, want)
		case refused:
			var list ErrorList
			if !errors.As(err, &list) {
				t.Errorf("%s: %v, want an ErrorList", rel, err)
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s: refusal lacks %q:\n%v", rel, w, err)
				}
			}
		case err != nil:
			t.Errorf("%s: refused: %v", rel, err)
		default:
			objects += len(objs)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Guard against the walk silently finding nothing.
	if files < 30 || objects < 50 {
		t.Errorf("read %d files, %d objects accepted; testdata/istio is missing", files, objects)
	}
	for rel := range istioRefused {
		if _, err := os.Stat(filepath.Join(root, rel)); err != nil {
			t.Errorf("expected refusal of %s, which is missing: %v", rel, err)
		}
	}
}

// TestEnvoyFilterAdvice: the refusal of an EnvoyFilter names what weft has
// instead, for the filter the patch inserts.
func TestEnvoyFilterAdvice(t *testing.T) {
	const head = "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: f}\nspec:\n  configPatches:\n  - applyTo: HTTP_FILTER\n    patch: {operation: INSERT_BEFORE, value: {name: "
	for filter, want := range map[string]string{
		"envoy.filters.http.local_ratelimit": "RateLimit (weft.io/v1alpha1",
		"envoy.filters.http.cors":            "corsPolicy",
		"envoy.filters.http.fault":           "http[].fault",
		"envoy.filters.http.jwt_authn":       "RequestAuthentication",
		"envoy.filters.http.rbac":            "AuthorizationPolicy",
		"envoy.filters.http.lua":             "configured with the kinds weft understands (Gateway,",
	} {
		_, err := Decode("f.yaml", strings.NewReader(head+filter+"}}\n"))
		if err == nil || !strings.Contains(err.Error(), "kind: EnvoyFilter is not supported") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want a refusal naming %q", filter, err, want)
		}
	}
}
