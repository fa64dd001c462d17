//go:build long

package main

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// randReader yields n pseudo-random bytes (so chunks do not deduplicate)
// and hashes them.
type randReader struct {
	n   int64
	rng *rand.ChaCha8
}

func (r *randReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.n)]
	r.rng.Read(p)
	r.n -= int64(len(p))
	return len(p), nil
}

// A 1 GiB put with the CLI's default flags succeeds (--timeout bounds each
// request, not the transfer), and get returns the same bytes. The file is
// generated on the fly and removed afterwards.
func TestPutOneGiBDefaultFlags(t *testing.T) {
	clearEnv(t)
	useDeployment(t)
	dir := testRoot(t, "c1")
	const size = 1 << 30
	h := sha256.New()
	in := io.TeeReader(&randReader{n: size, rng: rand.NewChaCha8([32]byte{1})}, h)
	var out, errb bytes.Buffer
	if code := run([]string{"put", "-p", "-q", dir + "/big", "-"}, in, &out, &errb); code != 0 {
		t.Fatalf("put of 1 GiB with default flags: exit %d, stderr %q", code, errb.String())
	}
	defer cli(t, "", "rm", dir+"/big")
	want := h.Sum(nil)
	got := sha256.New()
	errb.Reset()
	if code := run([]string{"get", "-q", dir + "/big", "-"}, strings.NewReader(""), got, &errb); code != 0 {
		t.Fatalf("get of 1 GiB: exit %d, stderr %q", code, errb.String())
	}
	if !bytes.Equal(got.Sum(nil), want) {
		t.Fatal("get returned other bytes than put sent")
	}
}
