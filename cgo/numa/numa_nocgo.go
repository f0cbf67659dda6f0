//go:build !cgo || !linux

package numa

import "errors"

// ErrNotSupported reports that NUMA placement is not available on this machine or build.
var ErrNotSupported = errors.New("numa: not supported")

// Available reports false: this build has no libnuma.
func Available() bool { return false }

// Nodes returns []int{0}: without libnuma everything is one node.
func Nodes() []int { return []int{0} }

// NodeOfCPU returns 0: without libnuma everything is one node.
func NodeOfCPU(cpu int) int { return 0 }

// Bind returns ErrNotSupported; the caller keeps the kernel's default placement.
func Bind(addr, length uintptr, node int) error { return ErrNotSupported }
