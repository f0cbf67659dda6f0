package mem

import (
	"errors"

	"sluice/cgo/numa"
)

// Topology is what the allocator needs to know about NUMA: the nodes, the node of a CPU,
// and how to bind memory to a node. SystemTopology answers from libnuma; tests inject
// their own (these VMs have one node).
type Topology interface {
	// Nodes returns the node ids memory may be placed on, ascending.
	Nodes() []int
	// NodeOfCPU returns the node of a CPU.
	NodeOfCPU(cpu int) int
	// Bind sets the memory policy of [addr, addr+length) to node, before the first touch.
	// It returns ErrNotSupported when the machine cannot bind (the domain then runs
	// unbound, which on a one-node machine is the same thing).
	Bind(addr, length uintptr, node int) error
}

// ErrNotSupported reports a feature this machine or build lacks (NUMA binding).
var ErrNotSupported = numa.ErrNotSupported

// SystemTopology returns the machine's topology as libnuma reports it.
func SystemTopology() Topology { return systemTopology{} }

type systemTopology struct{}

func (systemTopology) Nodes() []int          { return numa.Nodes() }
func (systemTopology) NodeOfCPU(cpu int) int { return numa.NodeOfCPU(cpu) }
func (systemTopology) Bind(addr, length uintptr, node int) error {
	err := numa.Bind(addr, length, node)
	if errors.Is(err, numa.ErrNotSupported) {
		return ErrNotSupported
	}
	return err
}
