package image

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// staticBinary builds a small static Go program, as weft is built for images.
func staticBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nfunc main() { println(\"hi\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "weft")
	cmd := exec.Command("go", "build", "-o", bin, src)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestCheckStatic(t *testing.T) {
	bin := staticBinary(t)
	arch, err := CheckStatic(bin)
	if err != nil || arch != runtime.GOARCH {
		t.Errorf("static binary: %q, %v", arch, err)
	}
	// The system shell is dynamically linked on every distribution CI runs.
	if _, err := CheckStatic("/bin/sh"); err == nil || !strings.Contains(err.Error(), "dynamically linked") || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Errorf("/bin/sh: %v", err)
	}
	text := filepath.Join(t.TempDir(), "script")
	os.WriteFile(text, []byte("#!/bin/sh\n"), 0o755)
	if _, err := CheckStatic(text); err == nil || !strings.Contains(err.Error(), "not a Linux ELF executable") {
		t.Errorf("script: %v", err)
	}
}

func TestNormalizeName(t *testing.T) {
	for in, want := range map[string]string{
		"weft":                      "docker.io/library/weft:latest",
		"weft:dev":                  "docker.io/library/weft:dev",
		"me/weft:1":                 "docker.io/me/weft:1",
		"registry.local:5000/weft":  "registry.local:5000/weft:latest",
		"localhost/a/b:c":           "localhost/a/b:c",
		"docker.io/library/weft:v2": "docker.io/library/weft:v2",
	} {
		if got, err := NormalizeName(in); err != nil || got != want {
			t.Errorf("NormalizeName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "Weft", "weft:", "weft@sha256:00", "a b", "/weft"} {
		if got, err := NormalizeName(bad); err == nil {
			t.Errorf("NormalizeName(%q) = %q, want an error", bad, got)
		}
	}
}

// untar extracts an archive into a new directory.
func untar(t *testing.T, data []byte) string {
	t.Helper()
	dir := t.TempDir()
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return dir
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			os.MkdirAll(p, 0o755)
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		b, _ := io.ReadAll(tr)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWrite(t *testing.T) {
	bin := staticBinary(t)
	var buf bytes.Buffer
	res, err := Write(bin, "weft:unit", &buf)
	if err != nil {
		t.Fatal(err)
	}
	if res.Name != "docker.io/library/weft:unit" || !strings.HasPrefix(res.Digest, "sha256:") || res.Arch != runtime.GOARCH {
		t.Errorf("result %+v", res)
	}
	// The same binary gives the same image.
	var again bytes.Buffer
	if res2, err := Write(bin, "weft:unit", &again); err != nil || res2.Digest != res.Digest {
		t.Errorf("second build: %+v %v", res2, err)
	}

	idx, err := layout.ImageIndexFromPath(untar(t, buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 1 {
		t.Fatalf("index %+v %v", im, err)
	}
	d := im.Manifests[0]
	if d.Annotations["io.containerd.image.name"] != res.Name || d.Annotations["org.opencontainers.image.ref.name"] != "unit" ||
		d.Digest.String() != res.Digest || d.Platform.OS != "linux" || d.Platform.Architecture != runtime.GOARCH {
		t.Errorf("index entry %+v", d)
	}
	img, err := idx.Image(d.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if mt, _ := img.MediaType(); mt != "application/vnd.oci.image.manifest.v1+json" {
		t.Errorf("manifest media type %s", mt)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cf.Config.Entrypoint, []string{"/usr/local/bin/weft"}) || cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("config %+v", cf)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %v %v", layers, err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	want, _ := os.ReadFile(bin)
	tr := tar.NewReader(rc)
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "usr/local/bin/weft" {
			got, _ := io.ReadAll(tr)
			found = bytes.Equal(got, want) && h.Mode == 0o755 && h.Uid == 0
		}
	}
	if !found {
		t.Error("the layer does not hold the binary at /usr/local/bin/weft, mode 0755, owned by root")
	}

	if _, err := Write("/bin/sh", "weft:x", io.Discard); err == nil {
		t.Error("a dynamic binary was packed")
	}
}
