package token

import (
	"encoding/base64"
	"strings"
	"testing"
)

// A token is handed to command-line tools as an argument of its own
// (`--token TOKEN`); one that began with '-' is taken for an option by
// many parsers (Python's argparse: "argument --token: expected one
// argument"). Base64url begins a 32-byte token with '-' once in 64 draws.
func TestNewNeverLooksLikeAnOption(t *testing.T) {
	for i := range 20000 {
		tok, err := New()
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(tok, "-") {
			t.Fatalf("token %d %q begins with '-'", i, tok)
		}
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(raw) != Bytes {
			t.Fatalf("token %q: %d bytes of base64url (%v), want %d", tok, len(raw), err, Bytes)
		}
	}
}

func TestNewIsRandom(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		tok, err := New()
		if err != nil {
			t.Fatal(err)
		}
		if seen[tok] {
			t.Fatalf("token %q drawn twice", tok)
		}
		seen[tok] = true
	}
}
