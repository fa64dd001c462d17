// Package ports finds free TCP ports on 127.0.0.1 for processes that are
// told their port before they bind it (`cleave up`'s children, tests).
//
// A port the kernel hands out for 127.0.0.1:0 comes from the ephemeral
// range, which the kernel also uses for the local end of every outgoing
// connection: between choosing such a port and the child binding it, any
// connection made on the machine may take it. Free therefore chooses ports
// below the ephemeral range (as /proc/sys/net/ipv4/ip_local_port_range
// gives it), where only another listener can take them, and falls back to
// the kernel's choice where that range is not known or too small.
//
// Within one process Free does not hand out a port twice (until half the
// range has been handed out): a caller that asks twice, once per node of a
// test cluster say, must not get the same port back because the first one
// was not bound yet.
package ports

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// lowest is the smallest port Free chooses: below it live well-known and
// registered services.
const lowest = 10000

// given holds the addresses Free has returned in this process.
var given struct {
	sync.Mutex
	addrs map[string]bool
}

// Free returns n distinct free addresses on 127.0.0.1, none equal to any of
// avoid or to one Free returned before in this process. All n are held open
// until they are chosen, so they are distinct, and closed before
// returning, so another process may still take one before it is used
// (rarely: see the package doc).
func Free(n int, avoid ...string) ([]string, error) {
	given.Lock()
	defer given.Unlock()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	hi := ephemeralStart()
	if given.addrs == nil || len(given.addrs)+n > max(hi-lowest, 2000)/2 {
		given.addrs = map[string]bool{}
	}
	out := make([]string, 0, n)
	for tries := 0; len(out) < n; tries++ {
		if tries > 20*n+100 {
			return nil, fmt.Errorf("could not find %d free ports on 127.0.0.1", n)
		}
		addr := "127.0.0.1:0"
		if hi-lowest >= 1000 {
			addr = "127.0.0.1:" + strconv.Itoa(lowest+rand.IntN(hi-lowest))
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			if addr == "127.0.0.1:0" {
				return nil, fmt.Errorf("find a free port: %w", err)
			}
			continue // taken: try another
		}
		lns = append(lns, ln)
		if got := ln.Addr().String(); !slices.Contains(avoid, got) && !slices.Contains(out, got) && !given.addrs[got] {
			out = append(out, got)
		}
	}
	for _, a := range out {
		given.addrs[a] = true
	}
	return out, nil
}

// ephemeralStart returns the first port of the kernel's ephemeral range,
// or 0 if it cannot be read.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil {
		return 0
	}
	return lo
}
