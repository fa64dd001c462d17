//go:build !unix

package up

import "syscall"

func childSysProcAttr() *syscall.SysProcAttr { return nil }
