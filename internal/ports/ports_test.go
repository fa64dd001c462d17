package ports

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestMain lets the test binary stand in for another process choosing
// ports: with PORTS_TEST_FREE=N it prints Free(N) and exits.
func TestMain(m *testing.M) {
	if n, err := strconv.Atoi(os.Getenv("PORTS_TEST_FREE")); err == nil {
		addrs, err := Free(n)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println(strings.Join(addrs, " "))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

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
	for range 800 { // about 14 repeats expected without the memory
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

// Two processes choosing ports at once never get the same one: the first
// one's choices are reserved until its children have had time to bind
// them. 600 each from 22,000-odd ports would share about 16 without.
func TestFreeReservesAcrossProcesses(t *testing.T) {
	const n = 600
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "PORTS_TEST_FREE="+strconv.Itoa(n))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the other process: %v: %s", err, out)
	}
	theirs := map[string]bool{}
	for _, a := range strings.Fields(string(out)) {
		theirs[a] = true
	}
	if len(theirs) != n {
		t.Fatalf("the other process chose %d ports, want %d", len(theirs), n)
	}
	mine, err := Free(n)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range mine {
		if theirs[a] {
			t.Fatalf("%s chosen by both processes", a)
		}
	}
}
