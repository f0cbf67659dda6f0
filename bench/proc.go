package bench

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times on Linux.
const clockTicks = 100

// processCPU is a process's user+system CPU time so far (0 when unknown).
func processCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name: state is field 3; utime and stime
	// are fields 14 and 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(u+st) * time.Second / clockTicks
}

// coreBusy is the busy time (user, nice, system, irq, softirq, steal) of the given CPUs
// from /proc/stat, or -1 when it cannot be read.
func coreBusy(cpus []int) time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	var total uint64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		n, err := strconv.Atoi(f[0][3:])
		if err != nil || !slices.Contains(cpus, n) {
			continue
		}
		for _, i := range []int{1, 2, 3, 6, 7, 8} {
			v, _ := strconv.ParseUint(f[i], 10, 64)
			total += v
		}
	}
	return time.Duration(total) * time.Second / clockTicks
}

// treeCPU is the CPU time of this process, of its children that have been waited for,
// and of its live descendants: everything the harness runs (targets, initiators).
func treeCPU() time.Duration {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return -1
	}
	self := os.Getpid()
	parent := map[int]int{}
	cpu := map[int]time.Duration{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f := statFields(pid)
		if len(f) < 15 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		parent[pid], cpu[pid] = ppid, ticks(f[11])+ticks(f[12])
		if pid == self {
			cpu[pid] += ticks(f[13]) + ticks(f[14]) // cutime, cstime
		}
	}
	var total time.Duration
	for pid := range cpu {
		for p, hops := pid, 0; p > 1 && hops < 32; p, hops = parent[p], hops+1 {
			if p == self {
				total += cpu[pid]
				break
			}
		}
	}
	return total
}

// statFields are /proc/<pid>/stat's fields after the command name: state first.
func statFields(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

func ticks(s string) time.Duration {
	v, _ := strconv.ParseUint(s, 10, 64)
	return time.Duration(v) * time.Second / clockTicks
}

// contention measures, over a point, the CPU time the benchmark's cores spent on
// anything the harness did not start, as a share of those cores' time.
type contention struct {
	cores       []int
	t0          time.Time
	busy0, ours time.Duration
}

func startContention(cores []int) contention {
	return contention{cores: cores, t0: time.Now(), busy0: coreBusy(cores), ours: treeCPU()}
}

// share is the foreign share so far, or -1 when /proc cannot tell.
func (c contention) share() float64 {
	busy, ours := coreBusy(c.cores), treeCPU()
	wall := time.Since(c.t0)
	if c.busy0 < 0 || busy < 0 || c.ours < 0 || ours < 0 || wall <= 0 || len(c.cores) == 0 {
		return -1
	}
	foreign := (busy - c.busy0) - (ours - c.ours)
	// /proc counts in clock ticks (10 ms): over a short window one tick more or less
	// can make the share overshoot either bound, and a share of time is a fraction.
	return min(1, max(0, float64(foreign)/float64(wall*time.Duration(len(c.cores)))))
}
