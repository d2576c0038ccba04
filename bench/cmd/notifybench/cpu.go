package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
	"unsafe"
)

// processCPU is the CPU time, user + system, of every thread of process pid,
// exited threads included, in nanoseconds: clock_gettime(2) on the process's
// CPU-time clock (the clockid clock_getcpuclockid(3) returns,
// MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED) in the kernel). It reads the
// scheduler's sum_exec_runtime of the thread group, the figure that
// /proc/PID/stat's utime+stime round to clock ticks (10 ms with CLK_TCK
// 100). /proc/PID/schedstat would be nanoseconds too, but of the main
// thread only.
func processCPU(pid int) (time.Duration, error) {
	clock := int32(^pid<<3 | 2) // CPUCLOCK_SCHED, process-wide (bit 2 clear)
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, uintptr(clock), uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0, fmt.Errorf("clock_gettime(process %d CPU clock): %w", pid, errno)
	}
	return time.Duration(ts.Nano()), nil
}

// clockTicks is CLK_TCK: 100 on Linux (USER_HZ on every architecture Go
// runs on; Go has no sysconf without cgo).
const clockTicks = 100

// statCPU is utime+stime of /proc/PID/stat (every thread, exited ones
// included), in clock ticks converted to a duration: the coarse cross-check
// of processCPU.
func statCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after "(comm)": state is field 3, utime 14, stime 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after comm", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// cpuMeter reads a process's CPU time before and after a measured run.
type cpuMeter struct{ pid int }

// cpuSample is both readings at one moment.
type cpuSample struct{ clock, ticks time.Duration }

func (m *cpuMeter) sample() (cpuSample, error) {
	if m == nil {
		return cpuSample{}, nil
	}
	c, err := processCPU(m.pid)
	if err != nil {
		return cpuSample{}, err
	}
	t, err := statCPU(m.pid)
	if err != nil {
		return cpuSample{}, err
	}
	return cpuSample{c, t}, nil
}

func (s cpuSample) sub(o cpuSample) cpuSample { return cpuSample{s.clock - o.clock, s.ticks - o.ticks} }
