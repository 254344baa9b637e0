package main

import "syscall"

// childAttr makes the kernel send SIGTERM to a child if the bench dies without stopping
// it, so that no server outlives an interrupted run.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
