package mem

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"sluice/cgo/numa"
	"sluice/engine/mem/hugetlb"
	"sluice/engine/mem/memtest"
)

// smapsField returns a field (such as "KernelPageSize") of the /proc/self/smaps entry of
// the mapping that contains addr, in kB.
func smapsField(t *testing.T, addr uintptr, field string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		if lo, hi, ok := parseRange(line); ok {
			in = lo <= addr && addr < hi
			continue
		}
		if v, ok := strings.CutPrefix(line, field+":"); ok && in {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatalf("smaps %s: %v", field, err)
			}
			return n
		}
	}
	t.Fatalf("no smaps entry with %s for %#x", field, addr)
	return 0
}

func parseRange(line string) (lo, hi uintptr, ok bool) {
	r, _, found := strings.Cut(line, " ")
	a, b, dash := strings.Cut(r, "-")
	if !found || !dash {
		return 0, 0, false
	}
	x, err1 := strconv.ParseUint(a, 16, 64)
	y, err2 := strconv.ParseUint(b, 16, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return uintptr(x), uintptr(y), true
}

// numaMapsLine returns the /proc/self/numa_maps line of the mapping starting at addr.
func numaMapsLine(t *testing.T, addr uintptr) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/numa_maps")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if strings.HasPrefix(line, fmt.Sprintf("%x ", addr)) {
			return strings.TrimSpace(line)
		}
	}
	t.Fatalf("no numa_maps line for %#x", addr)
	return ""
}

func bufAddr(b Buf) uintptr { return reflect.ValueOf(b.Bytes()).Pointer() }

// TestHugepages reserves hugepages (as root; restored afterwards), maps a domain that
// requires them and checks in /proc/self/smaps that objects lie in a mapping whose
// KernelPageSize is 2048 kB, and in /proc/self/numa_maps that it is bound to its node.
// Under CI=true as root it fails rather than skips when hugepages cannot be reserved.
func TestHugepages(t *testing.T) {
	const pages = 8
	if !memtest.ReserveHugepages(t, pages) {
		t.Skip("no hugepages (see log); CI=true as root makes this a failure")
	}
	d := newTestDomain(t, DomainConfig{SizeBytes: pages * PageSize, Hugepages: HugepagesRequire})
	if !d.Hugepages() {
		t.Fatal("domain required hugepages but is not backed by them")
	}
	c := newTestCore(t, d, 0)
	for _, size := range []int{64, 4096, 128 << 10, 1 << 20} {
		b := mustAlloc(t, c, size)
		if kb := smapsField(t, bufAddr(b), "KernelPageSize"); kb != 2048 {
			t.Errorf("object of %d bytes lies in a mapping with KernelPageSize %d kB, want 2048", size, kb)
		}
		c.Free(b)
	}
	line := numaMapsLine(t, addrOf(d.mem))
	if !strings.Contains(line, "huge") {
		t.Errorf("numa_maps: %q lacks huge", line)
	}
	if numa.Available() && !strings.Contains(line, fmt.Sprintf("bind:%d", d.Node())) {
		t.Errorf("numa_maps: %q lacks bind:%d", line, d.Node())
	}
	st := d.Stats()
	if !st.Hugepages || st.Fallback || st.PagesSlab == 0 || st.HugepagesUsed != st.PagesSlab+st.PagesRegion {
		t.Errorf("stats: %+v", st)
	}
	// Pre-faulted at start: the pages are in use by the mapping already.
	info, err := hugetlb.ReadInfo()
	if err != nil {
		t.Fatal(err)
	}
	if info.Total-info.Free < pages {
		t.Errorf("only %d hugepages faulted in, want >= %d (pre-fault)", info.Total-info.Free, pages)
	}
}

// TestFallback covers the fallback path: a domain that cannot get hugepages maps
// ordinary pages, logs one warning naming the sysctl, and says so in its stats; one that
// requires them fails with ErrNoHugepages.
func TestFallback(t *testing.T) {
	info, err := hugetlb.ReadInfo()
	if err != nil {
		t.Skip(err)
	}
	if info.AvailableNow > 64 {
		t.Skipf("%d hugepages free: a domain larger than that is too big for a unit test", info.AvailableNow)
	}
	size := int64(info.AvailableNow+1) * PageSize
	var logs bytes.Buffer
	// Not newTestDomain: it maps HugepagesPrefer as HugepagesNever.
	d2, err := NewDomain(DomainConfig{SizeBytes: size, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if d2.Hugepages() || !d2.Stats().Fallback {
		t.Fatal("domain larger than the free hugepages is not on the fallback path")
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 || !strings.Contains(logs.String(), "vm.nr_hugepages") {
		t.Fatalf("want one warning naming vm.nr_hugepages, got %d:\n%s", n, logs.String())
	}
	c := newTestCore(t, d2, 0)
	b := mustAlloc(t, c, 4096)
	if kb := smapsField(t, bufAddr(b), "KernelPageSize"); kb != 4 {
		t.Errorf("fallback object in a mapping with KernelPageSize %d kB, want 4", kb)
	}
	if addrOf(d2.mem)%PageSize != 0 {
		t.Error("fallback mapping not 2 MiB aligned (THP cannot back whole pages)")
	}
	c.Free(b)
	_, err = NewDomain(DomainConfig{SizeBytes: size, Hugepages: HugepagesRequire})
	if !errors.Is(err, ErrNoHugepages) {
		t.Fatalf("required hugepages beyond the reservation: err %v, want ErrNoHugepages", err)
	}
}

// TestNumaMapsPolicy: with the system topology, the domain's mapping carries the bind
// policy for its node (these VMs have one node; the two-node case is TestArenaTwoNodes).
func TestNumaMapsPolicy(t *testing.T) {
	if !numa.Available() {
		t.Skip("libnuma reports NUMA unavailable")
	}
	d := newTestDomain(t, DomainConfig{SizeBytes: 4 << 20})
	if !d.Stats().NUMABound {
		t.Fatal("domain not bound")
	}
	if line := numaMapsLine(t, addrOf(d.mem)); !strings.Contains(line, fmt.Sprintf("bind:%d", d.Node())) {
		t.Fatalf("numa_maps: %q lacks bind:%d", line, d.Node())
	}
}

// TestFixedBuffers registers a domain with a real io_uring instance.
func TestFixedBuffers(t *testing.T) {
	d := newTestDomain(t, DomainConfig{SizeBytes: 8 << 20})
	if iov := d.FixedBuffers(); len(iov) != 1 || iov[0].Len != 8<<20 {
		t.Fatalf("FixedBuffers = %+v", iov)
	}
	fd, err := ioUringSetup(8)
	if err != nil {
		t.Skipf("io_uring unavailable: %v", err)
	}
	defer unix.Close(fd)
	if err := d.RegisterFixedBuffers(fd); err != nil {
		t.Fatal(err)
	}
	c := newTestCore(t, d, 0)
	b := mustAlloc(t, c, 4096)
	defer c.Free(b)
	if b.FixedBuffer() != 0 {
		t.Fatalf("FixedBuffer = %d", b.FixedBuffer())
	}
}
