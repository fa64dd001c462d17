//go:build linux

package up

import "syscall"

// childSysProcAttr puts a child in its own process group (a terminal's Ctrl-C
// reaches only the supervisor, which stops the children in order) and has
// the kernel send it SIGTERM if the supervisor dies without doing so.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
