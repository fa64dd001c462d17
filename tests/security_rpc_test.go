package tests

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cleavefs/cleave/wire"
)

// peakRSS returns the peak resident memory of a live process.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	hwm, err := vmHWM(pid)
	if err != nil {
		t.Fatal(err)
	}
	return hwm
}

// lastFrameBeforeClose reads nc until it is closed and returns the last
// response, or an error if it is still open at the deadline.
func lastFrameBeforeClose(nc net.Conn, within time.Duration) (*wire.Response, error) {
	nc.SetReadDeadline(time.Now().Add(within))
	fr := wire.NewFrameReader(nc, 0)
	var last *wire.Response
	for {
		p, err := fr.Next()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return last, fmt.Errorf("still open after %v", within)
			}
			return last, nil
		}
		if last, err = wire.DecodeResponse(p); err != nil {
			return nil, err
		}
	}
}

// TestRouterUnderConnectionAttacks runs the pre-HELLO attacks against a
// real router process and prints its memory: 40 connections each announcing
// an 8 MiB frame and sending 2 MiB of it, then 3,000 silent connections.
// The router must answer the first with TOO_LARGE at once, refuse the
// silent ones beyond its per-address cap and close the rest after its HELLO
// deadline, its peak resident memory staying within 64 MiB of where it
// started.
func TestRouterUnderConnectionAttacks(t *testing.T) {
	skipInShortMode(t, "a router under connection attacks")
	const silent = 3000
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < silent+500 {
		t.Skipf("open-file limit %d (err %v) is under the %d this test needs", lim.Cur, err, silent+500)
	}
	d := ownDeployment(t, "--clusters", "1")
	pid := routerPID(t, d, d.router)
	hwm0 := peakRSS(t, pid)
	t.Logf("router pid %d before: VmHWM %d MiB", pid, hwm0>>20)

	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		nc, err := net.Dial("tcp", d.router)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		wg.Add(2)
		go func() {
			defer wg.Done()
			nc.SetWriteDeadline(time.Now().Add(20 * time.Second))
			nc.Write(binary.BigEndian.AppendUint32(nil, wire.DefaultMaxFrame))
			nc.Write(make([]byte, 2<<20)) // fails once the router has closed
		}()
		go func() {
			defer wg.Done()
			last, err := lastFrameBeforeClose(nc, 20*time.Second)
			if err == nil && (last == nil || last.Code != wire.TooLarge) {
				err = fmt.Errorf("last frame %+v, want TOO_LARGE", last)
			}
			if err != nil {
				errs <- fmt.Errorf("connection %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	t.Logf("after 40 x 8 MiB announced (2 MiB sent each): VmHWM %d MiB", peakRSS(t, pid)>>20)
	for err := range errs {
		t.Fatal(err)
	}

	conns := make([]net.Conn, 0, silent)
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	for i := range silent {
		nc, err := net.Dial("tcp", d.router)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, nc)
	}
	time.Sleep(time.Second) // let the router accept them all
	t.Logf("with %d silent connections open: VmHWM %d MiB", silent, peakRSS(t, pid)>>20)
	var refused, closed int
	for i, nc := range conns {
		last, err := lastFrameBeforeClose(nc, 60*time.Second)
		if err != nil {
			t.Fatalf("silent connection %d: %v", i, err)
		}
		switch {
		case last == nil:
			closed++
		case last.Code == wire.Unavailable && strings.Contains(last.Message, "too many connections"):
			refused++
		default:
			t.Fatalf("silent connection %d: server sent %+v", i, last)
		}
	}
	hwm3 := peakRSS(t, pid)
	t.Logf("all closed (%d after the HELLO deadline, %d refused over the per-address cap): VmHWM %d MiB", closed, refused, hwm3>>20)
	if hwm3 > hwm0+64<<20 {
		t.Fatalf("router peak resident memory grew from %d to %d MiB; want within 64 MiB", hwm0>>20, hwm3>>20)
	}
}
