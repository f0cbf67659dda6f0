package hugetlb

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Paths of the procfs files this package reads; variables so that tests can point them at
// fixtures.
var (
	NrHugepagesPath = "/proc/sys/vm/nr_hugepages"
	MeminfoPath     = "/proc/meminfo"
	lockPath        = "/run/sluice-hugepages.lock"
)

// Sysctl is the name of the setting that reserves hugepages, for messages.
const Sysctl = "vm.nr_hugepages"

// Info is the hugepage part of /proc/meminfo.
type Info struct {
	Total        int // HugePages_Total: pages in the persistent pool
	Free         int // HugePages_Free: pages not faulted in by anyone
	Reserved     int // HugePages_Rsvd: free pages promised to existing mappings
	Surplus      int // HugePages_Surp
	PageSizeKiB  int // Hugepagesize
	AvailableNow int // Free - Reserved: what a new mapping can still get
}

// NrHugepages returns the persistent pool size from /proc/sys/vm/nr_hugepages.
func NrHugepages() (int, error) {
	b, err := os.ReadFile(NrHugepagesPath)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", NrHugepagesPath, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", NrHugepagesPath, err)
	}
	return n, nil
}

// SetNrHugepages writes n to /proc/sys/vm/nr_hugepages. The kernel may grant fewer pages
// than asked when memory is fragmented; callers re-read NrHugepages to learn what they got.
func SetNrHugepages(n int) error {
	if n < 0 {
		return fmt.Errorf("set %s to %d: negative", Sysctl, n)
	}
	if err := os.WriteFile(NrHugepagesPath, []byte(strconv.Itoa(n)+"\n"), 0o644); err != nil {
		return fmt.Errorf("set %s to %d: %w", Sysctl, n, err)
	}
	return nil
}

// ReadInfo parses the HugePages_* lines of /proc/meminfo.
func ReadInfo() (Info, error) {
	b, err := os.ReadFile(MeminfoPath)
	if err != nil {
		return Info{}, fmt.Errorf("read %s: %w", MeminfoPath, err)
	}
	return parseMeminfo(b)
}

func parseMeminfo(b []byte) (Info, error) {
	var info Info
	fields := map[string]*int{
		"HugePages_Total": &info.Total,
		"HugePages_Free":  &info.Free,
		"HugePages_Rsvd":  &info.Reserved,
		"HugePages_Surp":  &info.Surplus,
		"Hugepagesize":    &info.PageSizeKiB,
	}
	seen := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		dst := fields[key]
		if !ok || dst == nil {
			continue
		}
		v, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
		if err != nil {
			return Info{}, fmt.Errorf("parse meminfo %s: %w", key, err)
		}
		*dst = v
		seen++
	}
	if seen < len(fields) {
		return Info{}, errors.New("parse meminfo: no hugepage counters (kernel without hugetlbfs?)")
	}
	info.AvailableNow = info.Free - info.Reserved
	return info, nil
}

// Reserve makes at least n hugepages available to new mappings by raising
// vm.nr_hugepages by the shortfall. It returns a release function that lowers the pool by
// exactly what Reserve added (not to the old absolute value, so that two processes that
// reserve and release in any order leave the setting as they found it), and how many pages
// are available after the call (it may be fewer than n when memory is fragmented; that
// is not an error). Reserve needs root to change anything.
//
// Postconditions: the caller calls release once, after unmapping what it mapped.
func Reserve(n int) (release func() error, available int, err error) {
	release = func() error { return nil }
	unlock, err := lockPool()
	if err != nil {
		return release, 0, err
	}
	defer unlock()
	info, err := ReadInfo()
	if err != nil {
		return release, 0, err
	}
	short := n - info.AvailableNow
	if short <= 0 {
		return release, info.AvailableNow, nil
	}
	old, err := NrHugepages()
	if err != nil {
		return release, info.AvailableNow, err
	}
	if err := SetNrHugepages(old + short); err != nil {
		return release, info.AvailableNow, err
	}
	got, err := NrHugepages()
	if err != nil {
		return release, info.AvailableNow, err
	}
	added := max(got-old, 0)
	release = func() error { return unreserve(added) }
	if info, err = ReadInfo(); err != nil {
		return release, 0, err
	}
	return release, info.AvailableNow, nil
}

func unreserve(added int) error {
	if added == 0 {
		return nil
	}
	unlock, err := lockPool()
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := NrHugepages()
	if err != nil {
		return err
	}
	return SetNrHugepages(max(cur-added, 0))
}

// lockPool takes an advisory lock shared by every sluice process that changes the pool.
func lockPool() (unlock func(), err error) {
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		// Without /run (a container, a non-root user) there is no one to race with that
		// we could coordinate with anyway; go on unlocked.
		return func() {}, nil
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", lockPath, err)
	}
	return func() {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}
