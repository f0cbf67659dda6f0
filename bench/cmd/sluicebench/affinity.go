package main

import "golang.org/x/sys/unix"

type syscallCPUSet struct{ s unix.CPUSet }

func (c *syscallCPUSet) set(cpu int) { c.s.Set(cpu) }

func (c *syscallCPUSet) apply(tid int) error { return unix.SchedSetaffinity(tid, &c.s) }
