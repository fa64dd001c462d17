// Package token makes the random bearer tokens of a deployment: the root
// token `cleave up` saves and the tokens of users the routers create.
package token

import (
	"crypto/rand"
	"encoding/base64"
)

// Bytes is the randomness of a token: 256 bits.
const Bytes = 32

// New returns a fresh random token, Bytes random bytes in unpadded
// base64url. It never begins with '-', so that it is never taken for an
// option when passed as a command-line argument of its own; it is drawn
// again when it would (one draw in 64), which leaves the other first
// characters equally likely.
func New() (string, error) {
	raw := make([]byte, Bytes)
	for {
		if _, err := rand.Read(raw); err != nil {
			return "", err
		}
		if tok := base64.RawURLEncoding.EncodeToString(raw); tok[0] != '-' {
			return tok, nil
		}
	}
}
