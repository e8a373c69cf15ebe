package workload

import (
	"regexp"
	"testing"
)

func TestParseLabels(t *testing.T) {
	m, err := ParseLabels("app=catalog, version=v1")
	if err != nil || m["app"] != "catalog" || m["version"] != "v1" || len(m) != 2 {
		t.Fatalf("ParseLabels = %v, %v", m, err)
	}
	if got := FormatLabels(m); got != "app=catalog,version=v1" {
		t.Errorf("FormatLabels = %q", got)
	}
	for _, bad := range []string{"app", "=x", "a=b,,"} {
		if _, err := ParseLabels(bad); err == nil {
			t.Errorf("ParseLabels(%q) succeeded, want error", bad)
		}
	}
}

func TestRandomSuffixLooksLikeAPodName(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{10}-[a-z0-9]{5}$`)
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		s := randomSuffix()
		if !re.MatchString(s) {
			t.Fatalf("randomSuffix() = %q", s)
		}
		seen[s] = true
	}
	if len(seen) < 95 {
		t.Errorf("suffixes repeat too often: %d distinct of 100", len(seen))
	}
}
