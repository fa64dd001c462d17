package gossip

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/memberlist"
)

// ErrNoKeyring is returned by the key rotation methods of a pool started
// without Config.Keys: encryption cannot be switched on in a running pool.
var ErrNoKeyring = errors.New("gossip: pool was started without keys; restart it with keys to encrypt")

// keyring returns the pool's memberlist keyring, or ErrNoKeyring.
func (p *Pool) keyring() (*memberlist.Keyring, error) {
	if p.kr == nil {
		return nil, ErrNoKeyring
	}
	return p.kr, nil
}

// InstallKey adds key to the keys this member accepts; the primary key
// (the one it encrypts with) is unchanged.
func (p *Pool) InstallKey(key []byte) error {
	kr, err := p.keyring()
	if err != nil {
		return err
	}
	if err := kr.AddKey(key); err != nil {
		return fmt.Errorf("gossip: install key: %w", err)
	}
	return nil
}

// UseKey makes an installed key the primary one.
func (p *Pool) UseKey(key []byte) error {
	kr, err := p.keyring()
	if err != nil {
		return err
	}
	if err := kr.UseKey(key); err != nil {
		return fmt.Errorf("gossip: use key: %w", err)
	}
	return nil
}

// RemoveKey stops accepting key; the primary key cannot be removed.
func (p *Pool) RemoveKey(key []byte) error {
	kr, err := p.keyring()
	if err != nil {
		return err
	}
	if err := kr.RemoveKey(key); err != nil {
		return fmt.Errorf("gossip: remove key: %w", err)
	}
	return nil
}

// newKeyring validates keys (16, 24 or 32 bytes each, naming the first bad
// one) and returns a keyring with keys[0] primary; nil for no keys.
func newKeyring(keys [][]byte) (*memberlist.Keyring, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	for i, k := range keys {
		if err := memberlist.ValidateKey(k); err != nil {
			return nil, fmt.Errorf("gossip: key %d of %d: %v", i+1, len(keys), err)
		}
	}
	kr, err := memberlist.NewKeyring(keys, keys[0])
	if err != nil {
		return nil, fmt.Errorf("gossip: keyring: %w", err)
	}
	return kr, nil
}

// ReadKeyFile reads gossip keys from path: one base64 key (16, 24 or 32
// bytes) per line, the first the primary; blank lines and lines starting
// with # are skipped. Errors name the file and line.
func ReadKeyFile(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gossip key file: %w", err)
	}
	var keys [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			return nil, fmt.Errorf("gossip key file %s line %d: not base64: %v", path, n, err)
		}
		if err := memberlist.ValidateKey(k); err != nil {
			return nil, fmt.Errorf("gossip key file %s line %d: %v", path, n, err)
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("gossip key file %s: %w", path, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("gossip key file %s: no key in it", path)
	}
	return keys, nil
}

// EnsureKeyFile writes a new random 32-byte key to path (mode 0600) unless
// path already exists; an existing file is left as it is.
func EnsureKeyFile(path string) error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("gossip key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("gossip key file: %w", err)
	}
	_, err = fmt.Fprintln(f, base64.StdEncoding.EncodeToString(key))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("gossip key file %s: %w", path, err)
	}
	return nil
}
