package hugetlb

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseMeminfo(t *testing.T) {
	const text = `MemTotal:       24575644 kB
HugePages_Total:      16
HugePages_Free:       12
HugePages_Rsvd:        2
HugePages_Surp:        0
Hugepagesize:       2048 kB
Hugetlb:           32768 kB
`
	got, err := parseMeminfo([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	want := Info{Total: 16, Free: 12, Reserved: 2, PageSizeKiB: 2048, AvailableNow: 10}
	if got != want {
		t.Fatalf("parseMeminfo = %+v, want %+v", got, want)
	}
	if _, err := parseMeminfo([]byte("MemTotal: 1 kB\n")); err == nil {
		t.Fatal("parseMeminfo without hugepage lines succeeded")
	}
}

// TestReserveRestores runs Reserve against fixture files: it must raise the pool by the
// shortfall only, and release must lower it by what was added even if someone else
// changed it in between.
func TestReserveRestores(t *testing.T) {
	dir := t.TempDir()
	nr := filepath.Join(dir, "nr_hugepages")
	mi := filepath.Join(dir, "meminfo")
	for p, v := range map[*string]string{&NrHugepagesPath: nr, &MeminfoPath: mi, &lockPath: filepath.Join(dir, "lock")} {
		old := *p
		*p = v
		t.Cleanup(func() { *p = old })
	}
	write := func(path, s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(nr, "4\n")
	write(mi, "HugePages_Total: 4\nHugePages_Free: 3\nHugePages_Rsvd: 0\nHugePages_Surp: 0\nHugepagesize: 2048 kB\n")
	release, _, err := Reserve(10)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := NrHugepages(); n != 11 {
		t.Fatalf("after Reserve(10) with 3 free: nr_hugepages = %d, want 11", n)
	}
	write(nr, "15\n") // another user raised it meanwhile
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if n, _ := NrHugepages(); n != 8 {
		t.Fatalf("after release: nr_hugepages = %d, want 8 (15 - 7 added)", n)
	}
}
