//go:build unix && !linux

package up

import "syscall"

// childSysProcAttr puts a child in its own process group, so that a
// terminal's Ctrl-C reaches only the supervisor. Outside Linux there is no
// parent-death signal: a supervisor killed with SIGKILL leaves its children.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
