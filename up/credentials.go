package up

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cleavefs/cleave/internal/atomicfile"
	"github.com/cleavefs/cleave/internal/token"
)

// TokenFile is the name, inside the data directory, of the file holding the
// deployment's root token when `cleave up` chose it.
const TokenFile = "token"

// ensureToken returns the deployment's root token: cfg.Token when set,
// else the one saved in DIR/token, else a new random one saved there
// (mode 0600) for the next start and for the operator to read.
func ensureToken(cfg Config) (string, error) {
	if cfg.Token != "" {
		return cfg.Token, nil
	}
	path := filepath.Join(cfg.DataDir, TokenFile)
	b, err := os.ReadFile(path)
	if err == nil {
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("up: %s is empty; delete it to have a new token made", path)
		}
		return tok, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("up: read root token: %w", err)
	}
	tok, err := token.New()
	if err != nil {
		return "", fmt.Errorf("up: make root token: %w", err)
	}
	if err := atomicfile.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("up: save root token: %w", err)
	}
	return tok, nil
}

// ReadToken returns the root token `cleave up` saved in dir, for tools
// and tests that drive a local deployment.
func ReadToken(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, TokenFile))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
