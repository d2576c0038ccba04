package testenv

import "syscall"

// sysProcAttr kills dynalite when the test binary dies, even by SIGKILL.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
