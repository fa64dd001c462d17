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
// Below that range only another listener can take a port, but another
// process choosing ports the same way can: it may choose the same port
// while the first one's child has not bound it yet (tests starting
// deployments side by side did, about once in a hundred runs). So a port
// Free chooses is also reserved machine-wide for reservationTTL: a file
// named for it in DIR/cleave-ports (DIR: os.TempDir), created exclusively;
// Free skips a port whose file is younger than that, and takes over an
// older one. Where the directory cannot be used, Free goes on without
// reservations. Within one process Free does not hand out a port twice
// either (until half the range has been handed out).
package ports

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
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
		got := ln.Addr().String()
		if !slices.Contains(avoid, got) && !slices.Contains(out, got) && !given.addrs[got] && reserve(got) {
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

// reservationTTL is how long a port Free chose stays reserved for the
// process it was chosen for: ample time to start and bind it.
const reservationTTL = time.Minute

// reservations is the directory of the machine-wide reservations.
func reservations() string { return filepath.Join(os.TempDir(), "cleave-ports") }

// reserve claims the port of addr machine-wide for reservationTTL and
// reports whether it may be used: false if another Free reserved it
// within the TTL. Without a usable directory it reserves nothing and
// reports true.
func reserve(addr string) bool {
	_, port, _ := net.SplitHostPort(addr)
	dir := reservations()
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return true
	}
	path := filepath.Join(dir, port)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o666)
	if err == nil {
		f.Close()
		return true
	}
	if !errors.Is(err, fs.ErrExist) {
		return true
	}
	fi, err := os.Stat(path)
	if err != nil || time.Since(fi.ModTime()) < reservationTTL {
		return false
	}
	now := time.Now()
	_ = os.Chtimes(path, now, now) // fails on another user's file: then it is not renewed
	return true
}
