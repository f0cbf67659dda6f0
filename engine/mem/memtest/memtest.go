package memtest

import (
	"os"
	"testing"

	"sluice/engine/mem/hugetlb"
)

// Strict reports whether hugepage tests must not skip: CI sets CI=true and runs as root,
// where reserving hugepages is expected to work, so a skip there would hide a regression.
func Strict() bool {
	return os.Getenv("CI") == "true" && os.Geteuid() == 0
}

// ReserveHugepages makes n hugepages available for the calling test and restores the pool
// size when the test ends. It returns false, after logging why, when they cannot be had;
// under Strict it fails the test instead.
func ReserveHugepages(tb testing.TB, n int) bool {
	tb.Helper()
	release, avail, err := hugetlb.Reserve(n)
	tb.Cleanup(func() {
		if err := release(); err != nil {
			tb.Errorf("restore %s: %v", hugetlb.Sysctl, err)
		}
	})
	if err == nil && avail >= n {
		return true
	}
	msg := "cannot reserve %d hugepages (available %d, err %v): run as root or set %s"
	if Strict() {
		tb.Fatalf(msg, n, avail, err, hugetlb.Sysctl)
	}
	tb.Logf(msg, n, avail, err, hugetlb.Sysctl)
	return false
}

// ReserveForMain is ReserveHugepages for a TestMain, which has no testing.TB: it returns
// the release function to call after m.Run, and whether n pages are available.
func ReserveForMain(n int) (release func(), ok bool) {
	rel, avail, err := hugetlb.Reserve(n)
	return func() {
		if err := rel(); err != nil {
			os.Stderr.WriteString("memtest: restore " + hugetlb.Sysctl + ": " + err.Error() + "\n")
		}
	}, err == nil && avail >= n
}
