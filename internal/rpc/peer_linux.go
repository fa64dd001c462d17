//go:build linux

package rpc

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// peerGone reports whether nc's peer has closed its end (or reset the
// connection), from the kernel's TCP state and without reading: a
// connection whose reader is not reading cannot see the end of its input.
// A peer that only half-closed counts as gone too. False when unknown.
func peerGone(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	gone := false
	rc.Control(func(fd uintptr) {
		info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		if err != nil {
			return
		}
		switch info.State {
		case tcpClose, tcpCloseWait, tcpLastAck, tcpClosing, tcpTimeWait:
			gone = true
		}
	})
	return gone
}

// Linux's TCP states (include/net/tcp_states.h).
const (
	tcpTimeWait  = 6
	tcpClose     = 7
	tcpCloseWait = 8
	tcpLastAck   = 9
	tcpClosing   = 11
)
