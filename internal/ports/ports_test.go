package ports

import (
	"net"
	"strconv"
	"testing"
)

// Free returns distinct, bindable ports, below the ephemeral range when
// the kernel says where that starts.
func TestFree(t *testing.T) {
	addrs, err := Free(50, "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	hi := ephemeralStart()
	for _, a := range addrs {
		if seen[a] {
			t.Fatalf("%s returned twice", a)
		}
		seen[a] = true
		_, p, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(p)
		if hi-lowest >= 1000 && (port < lowest || port >= hi) {
			t.Errorf("%s is outside [%d, %d)", a, lowest, hi)
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("%s is not free: %v", a, err)
		}
		ln.Close()
	}
}

// Calls in one process never return the same port: a test cluster asks
// once per node, and a port not yet bound must not be handed out again.
func TestFreeDoesNotRepeatAcrossCalls(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		addrs, err := Free(1)
		if err != nil {
			t.Fatal(err)
		}
		if seen[addrs[0]] {
			t.Fatalf("%s returned by two calls", addrs[0])
		}
		seen[addrs[0]] = true
	}
}
