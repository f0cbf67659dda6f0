//go:build cgo && linux

package numa

/*
#cgo LDFLAGS: -lnuma
#include <errno.h>
#include <stdint.h>
#include <numa.h>
#include <numaif.h>

// sluice_numa_nodes writes the ids of the nodes this process may allocate from into out
// (at most cap of them) and returns how many there are, or -1 when libnuma says NUMA is
// not available.
static int sluice_numa_nodes(int *out, int cap) {
	if (numa_available() < 0) {
		return -1;
	}
	int n = 0;
	int max = numa_max_node();
	for (int node = 0; node <= max; node++) {
		if (!numa_bitmask_isbitset(numa_all_nodes_ptr, node)) {
			continue;
		}
		if (n < cap) {
			out[n] = node;
		}
		n++;
	}
	return n;
}

// sluice_numa_bind applies MPOL_BIND for node to [addr, addr+len) and returns 0 or an
// errno. mbind is used rather than numa_tonode_memory because the latter reports no
// error, and a domain that silently lands on the wrong node is what we must not ship.
static int sluice_numa_bind(uintptr_t addr, size_t len, int node) {
	struct bitmask *mask = numa_allocate_nodemask();
	if (mask == NULL) {
		return ENOMEM;
	}
	numa_bitmask_setbit(mask, (unsigned int)node);
	long rc = mbind((void *)addr, len, MPOL_BIND, mask->maskp, mask->size + 1, 0);
	int err = rc == 0 ? 0 : errno;
	numa_bitmask_free(mask);
	return err;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"syscall"
)

// maxNodes bounds the node list; Linux's default CONFIG_NODES_SHIFT gives at most 1024.
const maxNodes = 1024

// ErrNotSupported reports that NUMA placement is not available on this machine or build.
var ErrNotSupported = errors.New("numa: not supported")

// Available reports whether the kernel and libnuma support NUMA placement.
// It is safe for concurrent use.
func Available() bool {
	return C.numa_available() >= 0
}

// Nodes returns the ids of the NUMA nodes this process may allocate from, in ascending
// order. When NUMA is not available it returns []int{0}: one node, everything on it.
// It is safe for concurrent use.
func Nodes() []int {
	var buf [maxNodes]C.int
	n := int(C.sluice_numa_nodes(&buf[0], C.int(len(buf))))
	if n <= 0 {
		return []int{0}
	}
	n = min(n, maxNodes)
	nodes := make([]int, n)
	for i := range nodes {
		nodes[i] = int(buf[i])
	}
	return nodes
}

// NodeOfCPU returns the node of cpu, or 0 when NUMA is not available or cpu is unknown
// (a one-node machine answers 0 for every CPU, which is also the right fallback).
// It is safe for concurrent use.
func NodeOfCPU(cpu int) int {
	if !Available() {
		return 0
	}
	node := int(C.numa_node_of_cpu(C.int(cpu)))
	if node < 0 {
		return 0
	}
	return node
}

// Bind sets MPOL_BIND for node on the mapping [addr, addr+length).
//
// Preconditions: addr is page aligned and the range is a mapping the caller owns and has
// not touched yet (pages already faulted are not moved: no MPOL_MF_MOVE).
func Bind(addr, length uintptr, node int) error {
	if !Available() {
		return ErrNotSupported
	}
	if node < 0 || node >= maxNodes {
		return fmt.Errorf("numa: bind to node %d: %w", node, syscall.EINVAL)
	}
	if rc := C.sluice_numa_bind(C.uintptr_t(addr), C.size_t(length), C.int(node)); rc != 0 {
		return fmt.Errorf("numa: mbind %d bytes to node %d: %w", length, node, syscall.Errno(rc))
	}
	return nil
}
