// Command probedriver is a synthetic driver of sluice's probe sites, for the tracer's
// tests until every real site exists (the replication sites have no caller yet). It
// reads commands on stdin, one a line, fires the sites with known timings, and answers
// each with one JSON line on stdout measured on its own clock:
//
//	io N VOL REACTOR DELAY_US      N I/O commands, DELAY_US between start and done
//	repl N VOL PARTNER DELAY_US    N frames sent and acknowledged
//	journal N VOL DELAY_US         N journal entries enqueued and dequeued
//	enabled                        whether the I/O and replication gates are open
//	hits N                         N IOStart/IODone pairs back to back: sum_ns is the
//	                               time they took, cpu_ns the CPU time (probe hit cost)
//
// It is built by the tests (with its symbol table: the tracer resolves the sites in it)
// and never shipped.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sluice/engine/probe"
)

type result struct {
	Count  int    `json:"count"`
	SumNs  int64  `json:"sum_ns"`
	MinNs  int64  `json:"min_ns"`
	MaxNs  int64  `json:"max_ns"`
	IO     bool   `json:"io,omitempty"`
	Repl   bool   `json:"repl,omitempty"`
	CPUNs  int64  `json:"cpu_ns,omitempty"`
	Failed string `json:"error,omitempty"`
}

// cpuNs is the process's user and system CPU time: a probe hit is mostly kernel time,
// and on a shared machine the wall clock also counts other processes' turns.
func cpuNs() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func spin(d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
	}
}

// run times n pairs of start/end calls d apart and returns what it measured.
func run(n int, d time.Duration, start, end func(i int)) result {
	r := result{MinNs: 1 << 62}
	for i := 0; i < n; i++ {
		t0 := time.Now()
		start(i)
		spin(d)
		end(i)
		ns := time.Since(t0).Nanoseconds()
		r.Count++
		r.SumNs += ns
		r.MinNs, r.MaxNs = min(r.MinNs, ns), max(r.MaxNs, ns)
	}
	return r
}

var seq uint64 // replication and journal sequences never repeat within a run

func do(f []string) result {
	num := func(i int) int {
		if i >= len(f) {
			return 0
		}
		v, _ := strconv.Atoi(f[i])
		return v
	}
	switch {
	case f[0] == "hits" && len(f) == 2:
		n := num(1)
		t0, c0 := time.Now(), cpuNs()
		for i := 0; i < n; i++ {
			probe.IOStart("vol", 0, uint64(i), int64(i), 0)
			probe.IODone("vol", 0, uint64(i), int64(i), 0)
		}
		return result{Count: n, SumNs: time.Since(t0).Nanoseconds(), CPUNs: cpuNs() - c0}
	case f[0] == "enabled":
		return result{IO: probe.IOEnabled(), Repl: probe.ReplEnabled()}
	case f[0] == "io" && len(f) == 5:
		vol, reactor, d := f[2], num(3), time.Duration(num(4))*time.Microsecond
		base := time.Now().UnixNano()
		return run(num(1), d,
			func(i int) { probe.IOStart(vol, reactor, uint64(i), base+int64(i), 0) },
			func(i int) { probe.IODone(vol, reactor, uint64(i), base+int64(i), 0) })
	case f[0] == "repl" && len(f) == 5:
		vol, peer, d := f[2], f[3], time.Duration(num(4))*time.Microsecond
		first := seq
		seq += uint64(num(1))
		return run(num(1), d,
			func(i int) { probe.ReplSend(vol, peer, first+uint64(i)) },
			func(i int) { probe.ReplAck(vol, peer, first+uint64(i)) })
	case f[0] == "journal" && len(f) == 4:
		vol, d := f[2], time.Duration(num(3))*time.Microsecond
		first := seq
		seq += uint64(num(1))
		return run(num(1), d,
			func(i int) { probe.JournalEnqueue(vol, first+uint64(i)) },
			func(i int) { probe.JournalDequeue(vol, first+uint64(i)) })
	}
	return result{Failed: fmt.Sprintf("bad command %q", strings.Join(f, " "))}
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		if err := out.Encode(do(f)); err != nil {
			os.Exit(1)
		}
	}
}
