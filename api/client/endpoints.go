package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// EndpointsFile is the name of the file, in the state directory, where
// `weft up` records the addresses it bound.
const EndpointsFile = "endpoints.json"

// Endpoints are the addresses a running control plane listens on.
type Endpoints struct {
	API     string `json:"api"`     // HTTP API, e.g. 127.0.0.1:15080
	XDS     string `json:"xds"`     // ADS gRPC, e.g. 127.0.0.1:15010
	Gateway string `json:"gateway"` // ingress gateway, e.g. 127.0.0.1:8080
	// GatewayPorts are the addresses the ingress gateway holds, by Gateway
	// server port (80 is Gateway); GatewayAdmin is its admin address.
	GatewayPorts map[uint32]string `json:"gateway_ports,omitempty"`
	GatewayAdmin string            `json:"gateway_admin,omitempty"`
}

// WriteEndpoints records e in stateDir. It writes a temporary file and
// renames it into place, so a reader never sees half a file.
func WriteEndpoints(stateDir string, e Endpoints) error {
	data, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return fmt.Errorf("encode endpoints: %w", err)
	}
	data = append(data, '\n')
	f, err := os.CreateTemp(stateDir, "."+EndpointsFile+".*")
	if err != nil {
		return fmt.Errorf("write endpoints in %s: %w", stateDir, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	dst := filepath.Join(stateDir, EndpointsFile)
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return nil
}

// ReadEndpoints reads the addresses recorded in stateDir. A missing file
// gives an error wrapping fs.ErrNotExist.
func ReadEndpoints(stateDir string) (Endpoints, error) {
	path := filepath.Join(stateDir, EndpointsFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return Endpoints{}, fmt.Errorf("read endpoints: %w", err)
	}
	var e Endpoints
	if err := json.Unmarshal(data, &e); err != nil {
		return Endpoints{}, fmt.Errorf("read %s: %w", path, err)
	}
	return e, nil
}

// DiscoverAddress returns the API address (host:port) recorded in
// stateDir, ready for New. When no control plane has recorded one the error
// wraps fs.ErrNotExist and says how to start one.
func DiscoverAddress(stateDir string) (string, error) {
	e, err := ReadEndpoints(stateDir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("no running weft control plane found in state dir %s (start one with `weft up`): %w", stateDir, err)
	}
	if err != nil {
		return "", err
	}
	if e.API == "" {
		return "", fmt.Errorf("%s in %s names no api address", EndpointsFile, stateDir)
	}
	return e.API, nil
}
