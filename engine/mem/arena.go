package mem

import (
	"errors"
	"fmt"
	"sync"
)

// ArenaConfig configures an Arena: one domain per NUMA node, each built from Domain with
// its Node set.
type ArenaConfig struct {
	// Domain is the template for every node's domain (SizeBytes is per node).
	Domain DomainConfig
	// Topology lists the nodes (nil means SystemTopology). It overrides Domain.Topology.
	Topology Topology
}

// Arena owns one Domain per NUMA node and routes cores to their node's domain. It is safe
// for concurrent use.
type Arena struct {
	topo    Topology
	domains []*Domain
	byNode  map[int]*Domain

	mu sync.Mutex
	// +checklocks:mu
	coreNode map[int]int
}

// NewArena maps a domain on every node of the topology.
func NewArena(cfg ArenaConfig) (*Arena, error) {
	topo := cfg.Topology
	if topo == nil {
		topo = SystemTopology()
	}
	a := &Arena{topo: topo, byNode: make(map[int]*Domain), coreNode: make(map[int]int)}
	for _, node := range topo.Nodes() {
		dc := cfg.Domain
		dc.Node, dc.Topology = node, topo
		d, err := NewDomain(dc)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("mem: new arena: %w", err), a.Close())
		}
		a.domains = append(a.domains, d)
		a.byNode[node] = d
	}
	return a, nil
}

// Domains returns the domains, by ascending node.
func (a *Arena) Domains() []*Domain { return a.domains }

// Domain returns the domain of node, or nil.
func (a *Arena) Domain(node int) *Domain { return a.byNode[node] }

// NodeOfCPU returns the node of a CPU, for placing a reactor's core.
func (a *Arena) NodeOfCPU(cpu int) int { return a.topo.NodeOfCPU(cpu) }

// NewCore creates the allocation state of reactor coreID on node's domain. Core ids are
// unique across the arena.
func (a *Arena) NewCore(coreID, node int) (*Core, error) {
	d := a.byNode[node]
	if d == nil {
		return nil, fmt.Errorf("mem: new core %d: no domain on node %d", coreID, node)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, dup := a.coreNode[coreID]; dup {
		return nil, fmt.Errorf("mem: new core %d: duplicate id", coreID)
	}
	c, err := d.NewCore(coreID)
	if err != nil {
		return nil, err
	}
	a.coreNode[coreID] = node
	return c, nil
}

func (a *Arena) domainOf(coreID int) (*Domain, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	node, ok := a.coreNode[coreID]
	if !ok {
		return nil, fmt.Errorf("mem: core %d: %w", coreID, ErrNoCore)
	}
	return a.byNode[node], nil
}

// SetWeights sets one core's weights (see Domain.SetWeights).
func (a *Arena) SetWeights(coreID int, w Weights) error {
	d, err := a.domainOf(coreID)
	if err != nil {
		return err
	}
	return d.SetWeights(coreID, w)
}

// Weights returns one core's weights (see Domain.Weights).
func (a *Arena) Weights(coreID int) (Weights, error) {
	d, err := a.domainOf(coreID)
	if err != nil {
		return Weights{}, err
	}
	return d.Weights(coreID)
}

// Stats returns every domain's figures, by ascending node (the mem_get_stats payload).
func (a *Arena) Stats() []DomainStats {
	out := make([]DomainStats, 0, len(a.domains))
	for _, d := range a.domains {
		out = append(out, d.Stats())
	}
	return out
}

// Close closes every domain and joins their errors (leak reports included).
//
// Preconditions: as for Domain.Close.
func (a *Arena) Close() error {
	var errs []error
	for _, d := range a.domains {
		errs = append(errs, d.Close())
	}
	return errors.Join(errs...)
}
