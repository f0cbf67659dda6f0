//go:build cgo && linux

package numa

import (
	"bufio"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestNodes(t *testing.T) {
	nodes := Nodes()
	if len(nodes) == 0 {
		t.Fatal("Nodes() is empty; want at least node 0")
	}
	if !slices.IsSorted(nodes) {
		t.Fatalf("Nodes() = %v, not ascending", nodes)
	}
	if n := NodeOfCPU(0); !slices.Contains(nodes, n) {
		t.Fatalf("NodeOfCPU(0) = %d, not among %v", n, nodes)
	}
}

// TestBindShowsInNumaMaps binds a fresh mapping to the first node and checks that the
// kernel reports the policy for that mapping in /proc/self/numa_maps.
func TestBindShowsInNumaMaps(t *testing.T) {
	if !Available() {
		t.Skip("libnuma reports NUMA unavailable")
	}
	const size = 4 << 20
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	addr := reflect.ValueOf(b).Pointer()
	node := Nodes()[0]
	if err := Bind(addr, size, node); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < size; i += 4096 {
		b[i] = 1
	}
	line := numaMapsLine(t, addr)
	if want := fmt.Sprintf("bind:%d", node); !strings.Contains(line, want) {
		t.Fatalf("numa_maps line %q lacks %q", line, want)
	}
}

func TestBindRejectsBadNode(t *testing.T) {
	if !Available() {
		t.Skip("libnuma reports NUMA unavailable")
	}
	if err := Bind(0, 4096, -1); err == nil {
		t.Fatal("Bind to node -1 succeeded")
	}
}

func numaMapsLine(t *testing.T, addr uintptr) string {
	t.Helper()
	f, err := os.Open("/proc/self/numa_maps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	prefix := fmt.Sprintf("%x ", addr)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), prefix) {
			return sc.Text()
		}
	}
	t.Fatalf("no numa_maps line for %#x", addr)
	return ""
}
