package client

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestEndpointsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, err := DiscoverAddress(dir); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "weft up") {
		t.Fatalf("DiscoverAddress on an empty dir: %v", err)
	}
	want := Endpoints{API: "127.0.0.1:15080", XDS: "127.0.0.1:15010", Gateway: "127.0.0.1:8080",
		GatewayPorts: map[uint32]string{80: "127.0.0.1:8080", 31400: "127.0.0.1:31400"}, GatewayAdmin: "127.0.0.1:15000"}
	if err := WriteEndpoints(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadEndpoints(dir)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("ReadEndpoints = %+v, %v", got, err)
	}
	addr, err := DiscoverAddress(dir)
	if err != nil || addr != "127.0.0.1:15080" {
		t.Fatalf("DiscoverAddress = %q, %v", addr, err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, EndpointsFile))
	if !strings.Contains(string(raw), `"api": "127.0.0.1:15080"`) {
		t.Errorf("file content:\n%s", raw)
	}
	// Overwriting leaves no temporary files behind.
	if err := WriteEndpoints(dir, Endpoints{API: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("state dir holds %d entries, want only %s", len(entries), EndpointsFile)
	}
	if c := New("127.0.0.1:1"); c.base != "http://127.0.0.1:1" {
		t.Errorf("New(host:port) base = %q", c.base)
	}
}

func TestLoadSources(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"b.yaml": "b", "a.yml": "a", "c.json": "c", "notes.txt": "x"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := LoadSources(strings.NewReader("stdin"), dir, "-")
	if err != nil {
		t.Fatal(err)
	}
	var names, contents []string
	for _, s := range got {
		names = append(names, filepath.Base(s.Name))
		contents = append(contents, s.Content)
	}
	if strings.Join(names, ",") != "a.yml,b.yaml,c.json,-" || strings.Join(contents, "") != "abcstdin" {
		t.Errorf("LoadSources = %v %v", names, contents)
	}
	if _, err := LoadSources(nil, filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("missing file accepted")
	}
}
