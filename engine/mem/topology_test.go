package mem

import (
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
)

// fakeTopology is a two-node machine: CPUs 0-1 on node 0, 2-3 on node 1. It records Bind
// calls instead of binding.
type fakeTopology struct {
	mu    sync.Mutex
	binds []bindCall
	err   error
}

type bindCall struct {
	addr, length uintptr
	node         int
}

func (*fakeTopology) Nodes() []int          { return []int{0, 1} }
func (*fakeTopology) NodeOfCPU(cpu int) int { return cpu / 2 }
func (f *fakeTopology) Bind(addr, length uintptr, node int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.binds = append(f.binds, bindCall{addr, length, node})
	return f.err
}

// TestArenaTwoNodes: an arena on a fake two-node topology maps and binds one domain per
// node, routes each reactor's core to its CPU's node, and frees across nodes go back to
// the owning node's core.
func TestArenaTwoNodes(t *testing.T) {
	topo := &fakeTopology{}
	a, err := NewArena(ArenaConfig{Topology: topo, Domain: DomainConfig{SizeBytes: 8 << 20,
		Hugepages: HugepagesNever, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := a.Close(); err != nil {
			t.Error(err)
		}
	}()
	if len(a.Domains()) != 2 || len(topo.binds) != 2 {
		t.Fatalf("%d domains, %d binds; want 2 and 2", len(a.Domains()), len(topo.binds))
	}
	for i, d := range a.Domains() {
		b := topo.binds[i]
		if d.Node() != i || b.node != i || b.addr != addrOf(d.mem) || b.length != 8<<20 {
			t.Fatalf("domain %d: node %d bound %+v", i, d.Node(), b)
		}
	}
	cores := make([]*Core, 4)
	for cpu := range cores {
		c, err := a.NewCore(100+cpu, a.NodeOfCPU(cpu))
		if err != nil {
			t.Fatal(err)
		}
		cores[cpu] = c
		if c.Domain().Node() != cpu/2 {
			t.Fatalf("core on cpu %d in node %d", cpu, c.Domain().Node())
		}
	}
	b := mustAlloc(t, cores[3], 4096) // node 1
	cores[0].Free(b)                  // freed on node 0
	if cores[3].Reclaim() != 1 {
		t.Fatal("node 1's owner did not get its object back")
	}
	w := FreshWeights()
	if err := a.SetWeights(101, w); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.Weights(101); got != w {
		t.Fatalf("Weights(101) = %+v", got)
	}
	if got, _ := a.Weights(102); got != DefaultWeights() {
		t.Fatal("weights leaked to another core")
	}
	st := a.Stats()
	if len(st) != 2 || st[1].Node != 1 || len(st[1].Cores) != 2 || !st[0].NUMABound {
		t.Fatalf("stats: %+v", st)
	}
	if _, err := a.NewCore(100, 0); err == nil {
		t.Fatal("duplicate core id across the arena accepted")
	}
	if _, err := a.NewCore(200, 7); err == nil {
		t.Fatal("core on a node without a domain accepted")
	}
}

func TestDomainTopologyErrors(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if _, err := NewDomain(DomainConfig{Node: 5, Topology: &fakeTopology{}, Hugepages: HugepagesNever, Logger: quiet}); err == nil {
		t.Fatal("domain on a node outside the topology")
	}
	bad := &fakeTopology{err: errors.New("mbind: EIO")}
	if _, err := NewDomain(DomainConfig{Topology: bad, Hugepages: HugepagesNever, Logger: quiet}); err == nil {
		t.Fatal("bind failure ignored")
	}
	unsupported := &fakeTopology{err: ErrNotSupported}
	d, err := NewDomain(DomainConfig{Topology: unsupported, Hugepages: HugepagesNever, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Stats().NUMABound {
		t.Fatal("unbindable domain reports bound")
	}
	if !slices.Equal(unsupported.Nodes(), []int{0, 1}) {
		t.Fatal("fake topology")
	}
}
