// Package image builds an OCI image archive of a static weft binary with
// no registry and no Docker: one layer holding /usr/local/bin/weft, the
// entrypoint, so the same image runs the control plane, the proxies and
// the demo apps (`weft demo-app ...`). The archive is an OCI image layout
// in a tar, named with containerd's annotation, so
// `ctr -n k8s.io images import FILE` makes it available to the kubelet.
package image

import (
	"archive/tar"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BinaryPath is where the image holds weft; it is the entrypoint.
const BinaryPath = "/usr/local/bin/weft"

// Result describes a written archive.
type Result struct {
	Name   string // the image reference to use in a pod, e.g. docker.io/library/weft:dev
	Digest string // the manifest digest, sha256:...
	Arch   string // GOARCH of the binary
}

// CheckStatic returns the Go architecture of a Linux ELF executable, or
// why it cannot run alone in an image: a dynamically linked binary needs
// a C library the image does not have.
func CheckStatic(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s is not a Linux ELF executable (%v); build weft for Linux: GOOS=linux CGO_ENABLED=0 go build -o weft ./cmd/weft", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			interp, _ := io.ReadAll(io.LimitReader(p.Open(), 256))
			return "", fmt.Errorf("%s is dynamically linked (interpreter %s) and would not run in an image without a C library; build it static: CGO_ENABLED=0 go build -o weft ./cmd/weft",
				path, strings.TrimRight(string(interp), "\x00"))
		}
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return "", fmt.Errorf("%s is not an executable (ELF type %s)", path, f.Type)
	}
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64", nil
	case elf.EM_AARCH64:
		return "arm64", nil
	case elf.EM_386:
		return "386", nil
	case elf.EM_ARM:
		return "arm", nil
	case elf.EM_PPC64:
		return "ppc64le", nil
	case elf.EM_S390:
		return "s390x", nil
	case elf.EM_RISCV:
		return "riscv64", nil
	}
	return "", fmt.Errorf("%s: unsupported machine %s", path, f.Machine)
}

// NormalizeName completes a reference as the kubelet reads a pod's image:
// "weft:dev" is docker.io/library/weft:dev, "me/weft" is
// docker.io/me/weft:latest.
func NormalizeName(ref string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("image name %q: %s", ref, why)
	}
	if strings.Contains(ref, "@") {
		return bad("give a tag, not a digest (the digest is the archive's)")
	}
	if ref == "" || strings.ContainsAny(ref, " \t\n") || strings.HasSuffix(ref, ":") || strings.HasSuffix(ref, "/") || strings.HasPrefix(ref, "/") {
		return bad("not a reference like registry/repository:tag")
	}
	full := ref
	first, rest, hasSlash := strings.Cut(ref, "/")
	switch {
	case !hasSlash:
		full = "docker.io/library/" + ref
	case !strings.ContainsAny(first, ".:") && first != "localhost":
		full = "docker.io/" + first + "/" + rest
	}
	slash := strings.LastIndex(full, "/")
	repo, tag, hasTag := strings.Cut(full[slash+1:], ":")
	if !hasTag {
		tag = "latest"
	}
	if repo == "" || strings.ToLower(full[:slash+1]+repo) != full[:slash+1]+repo {
		return bad("repository names are lower case")
	}
	return full[:slash+1] + repo + ":" + tag, nil
}

// DefaultName names the image after the binary's content, so every build
// gets its own tag and a pod never runs a stale image from a node's cache.
func DefaultName(binary string) (string, error) {
	f, err := os.Open(binary)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", binary, err)
	}
	return "docker.io/library/weft:" + hex.EncodeToString(h.Sum(nil))[:12], nil
}

// Write builds the image of binary (checked with CheckStatic) tagged name
// (normalized with NormalizeName) and writes the archive to out.
func Write(binary, name string, out io.Writer) (*Result, error) {
	arch, err := CheckStatic(binary)
	if err != nil {
		return nil, err
	}
	if name, err = NormalizeName(name); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "weft-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	layerTar := filepath.Join(tmp, "layer.tar")
	if err := writeLayer(binary, layerTar); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromFile(layerTar, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("image layer: %w", err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config.Entrypoint = []string{BinaryPath}
	cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	cf.Config.WorkingDir = "/"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("image digest: %w", err)
	}

	dir := filepath.Join(tmp, "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return nil, fmt.Errorf("image layout: %w", err)
	}
	tag := name[strings.LastIndex(name, ":")+1:]
	if err := p.AppendImage(img,
		layout.WithPlatform(v1.Platform{OS: "linux", Architecture: arch}),
		layout.WithAnnotations(map[string]string{
			"io.containerd.image.name":          name, // what ctr import names the image
			"org.opencontainers.image.ref.name": tag,
		})); err != nil {
		return nil, fmt.Errorf("image layout: %w", err)
	}
	if err := tarDir(dir, out); err != nil {
		return nil, fmt.Errorf("image archive: %w", err)
	}
	return &Result{Name: name, Digest: digest.String(), Arch: arch}, nil
}

// writeLayer writes the layer's file system as a tar: the binary and the
// directories above it, owned by root, with a fixed time so the same
// binary always gives the same image.
func writeLayer(binary, dst string) error {
	src, err := os.Open(binary)
	if err != nil {
		return err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	for _, d := range []struct {
		name string
		mode int64
	}{{"tmp/", 0o1777}, {"usr/", 0o755}, {"usr/local/", 0o755}, {"usr/local/bin/", 0o755}} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d.name, Mode: d.mode, Format: tar.FormatPAX}); err != nil {
			f.Close()
			return err
		}
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(BinaryPath, "/"), Mode: 0o755, Size: st.Size(), Format: tar.FormatPAX}
	err = tw.WriteHeader(hdr)
	if err == nil {
		_, err = io.Copy(tw, src)
	}
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// tarDir writes the files under dir (an OCI layout) as a tar stream.
func tarDir(dir string, out io.Writer) error {
	tw := tar.NewWriter(out)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
