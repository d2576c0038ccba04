//go:build !linux

package testenv

import "syscall"

// sysProcAttr returns nil: off Linux, dynalite exits when its standard
// input closes at the test binary's exit (see watchdog).
func sysProcAttr() *syscall.SysProcAttr { return nil }
