package client

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// TokenFile is the name of the API token file in the state directory,
// written (0600) by the control plane on its first start.
const TokenFile = "api-token"

// TokenEnv is the environment variable that may hold the API token itself.
const TokenEnv = "WEFT_TOKEN"

// ReadToken reads the API token from STATE_DIR/api-token. A missing file
// gives an error wrapping fs.ErrNotExist.
func ReadToken(stateDir string) (string, error) {
	tok, err := ReadTokenFile(filepath.Join(stateDir, TokenFile))
	if err != nil {
		return "", fmt.Errorf("API token: %w", err)
	}
	return tok, nil
}

// ReadTokenFile reads a token (the API's or a join token) from path: the
// file's content without surrounding white space. An empty file is an
// error, so a truncated file does not silently turn into "no token".
func ReadTokenFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err // names the path already
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	if strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("%s holds more than one word", path)
	}
	return tok, nil
}

// FindToken finds the API token the way the CLI does: the file tokenFile
// names (the --token-file flag) if set, else the environment variable
// WEFT_TOKEN as getenv returns it, else STATE_DIR/api-token. It returns the
// token (empty if none was found) and where it came from or was looked for,
// for error messages ("the control plane refused the write: missing API
// token (.weft/api-token)"). Only an unreadable --token-file or state-dir
// file is an error; a missing state-dir file is not (reads need no token).
func FindToken(stateDir, tokenFile string, getenv func(string) string) (token, origin string, err error) {
	if tokenFile != "" {
		tok, err := ReadTokenFile(tokenFile)
		if err != nil {
			return "", tokenFile, fmt.Errorf("--token-file: %w", err)
		}
		return tok, tokenFile, nil
	}
	if getenv != nil {
		if tok := strings.TrimSpace(getenv(TokenEnv)); tok != "" {
			return tok, "$" + TokenEnv, nil
		}
	}
	path := filepath.Join(stateDir, TokenFile)
	tok, err := ReadTokenFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", path, nil
	}
	if err != nil {
		return "", path, err
	}
	return tok, path, nil
}
