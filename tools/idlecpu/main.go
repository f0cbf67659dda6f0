// Command idlecpu measures what an idle daemon costs: it connects one host the way the
// Linux host does (an admin queue with a keep-alive timeout, then I/O queues), sends
// nothing but keep-alives, and reads the daemon's CPU time from /proc over a window.
//
//	idlecpu -p PID -addr 127.0.0.1:4420 -nqn NQN [-rpc-socket PATH] [-kato 5s]
//	        [-io-queues 2] [-settle 3s] [-duration 30s] [-json]
//
// It prints the daemon's CPU use as a percentage of one core, the threads that used it
// (the reactors by name, with their context switches), and, with -rpc-socket, the
// reactors' wait counters over the window (framework_get_reactors): sleeps, deep
// sleeps, wake-ups and iterations per second. The host is sluice's Go initiator
// (engine/nvmf/host), which sends Keep Alive every KATO/2 as the Linux host does.
//
// It owns only the measurement; it never changes the daemon. Linux only (/proc).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"sluice/engine/nvmf/host"
	"sluice/engine/reactor"
	"sluice/engine/rpc"
)

// clkTck is USER_HZ, the unit of utime and stime in /proc/PID/stat (100 on Linux).
const clkTck = 100

func main() {
	pid := flag.Int("p", 0, "daemon pid")
	addr := flag.String("addr", "127.0.0.1:4420", "NVMe/TCP address")
	nqn := flag.String("nqn", "", "subsystem NQN")
	sock := flag.String("rpc-socket", "", "daemon RPC socket, for the reactors' counters")
	kato := flag.Duration("kato", 5*time.Second, "keep-alive timeout (Keep Alive every KATO/2)")
	ioq := flag.Int("io-queues", 2, "I/O queues to connect (the Linux host makes one per CPU)")
	settle := flag.Duration("settle", 3*time.Second, "wait after connecting, before measuring")
	dur := flag.Duration("duration", 30*time.Second, "measurement window")
	asJSON := flag.Bool("json", false, "print one JSON object")
	flag.Parse()
	if *pid == 0 || *nqn == "" {
		fmt.Fprintln(os.Stderr, "idlecpu: -p and -nqn are required")
		os.Exit(2)
	}
	res, err := measure(*pid, *addr, *nqn, *sock, *kato, *ioq, *settle, *dur)
	if err != nil {
		fmt.Fprintln(os.Stderr, "idlecpu:", err)
		os.Exit(1)
	}
	if *asJSON {
		_ = json.NewEncoder(os.Stdout).Encode(res)
		return
	}
	res.print()
}

// Result is one window's measurement.
type Result struct {
	WindowSec  float64        `json:"window_s"`
	CPUPercent float64        `json:"cpu_pct"` // of one core
	Threads    []ThreadUse    `json:"threads"`
	Reactors   []ReactorRates `json:"reactors,omitempty"`
	KATO       string         `json:"kato"`
	IOQueues   int            `json:"io_queues"`
}

// ThreadUse is one thread's share of the window.
type ThreadUse struct {
	TID        int     `json:"tid"`
	Comm       string  `json:"comm"`
	Reactor    int     `json:"reactor"` // -1: not a reactor
	CPUPercent float64 `json:"cpu_pct"`
	Switches   float64 `json:"ctxt_switches_per_s"`
}

// ReactorRates are one reactor's counters over the window, per second.
type ReactorRates struct {
	ID          int     `json:"id"`
	Iterations  float64 `json:"iterations_per_s"`
	Sleeps      float64 `json:"sleeps_per_s"`
	DeepSleeps  float64 `json:"deep_sleeps_per_s"`
	Wakeups     float64 `json:"wakeups_per_s"`
	SleepFrac   float64 `json:"sleep_fraction"`
	WakeSignals float64 `json:"wake_signals_per_s"`
}

type counter struct {
	ticks    uint64
	switches uint64
	comm     string
}

func measure(pid int, addr, nqn, sock string, kato time.Duration, ioq int, settle, dur time.Duration) (*Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := host.Connect(ctx, addr, nqn, host.Options{KATO: kato, NumIOQueues: ioq, AcceptAnySQID: true})
	if err != nil {
		return nil, fmt.Errorf("connect %s %s: %w", addr, nqn, err)
	}
	defer c.Close()
	for i := 0; i < ioq; i++ {
		q, err := c.NewIOQueue(ctx)
		if err != nil {
			return nil, fmt.Errorf("I/O queue %d: %w", i+1, err)
		}
		defer q.Close()
	}
	time.Sleep(settle)
	before, err := threads(pid)
	if err != nil {
		return nil, err
	}
	rb, _ := reactorStats(sock)
	t0 := time.Now()
	time.Sleep(dur)
	after, err := threads(pid)
	if err != nil {
		return nil, err
	}
	ra, _ := reactorStats(sock)
	if err := c.Err(); err != nil {
		return nil, fmt.Errorf("host connection failed during the window: %w", err)
	}
	win := time.Since(t0).Seconds()
	res := &Result{WindowSec: win, KATO: kato.String(), IOQueues: ioq}
	tids := map[int]int{}
	for _, s := range ra {
		tids[s.TID] = s.ID
	}
	var total uint64
	for tid, a := range after {
		b := before[tid] // a thread born in the window counts from zero
		d := a.ticks - b.ticks
		total += d
		id, ok := tids[tid]
		if !ok {
			id = -1
		}
		res.Threads = append(res.Threads, ThreadUse{TID: tid, Comm: a.comm, Reactor: id,
			CPUPercent: float64(d) / clkTck / win * 100, Switches: float64(a.switches-b.switches) / win})
	}
	sort.Slice(res.Threads, func(i, j int) bool { return res.Threads[i].CPUPercent > res.Threads[j].CPUPercent })
	res.CPUPercent = float64(total) / clkTck / win * 100
	for i := range ra {
		if i >= len(rb) {
			break
		}
		a, b := ra[i], rb[i]
		res.Reactors = append(res.Reactors, ReactorRates{ID: a.ID,
			Iterations:  float64(a.Iterations-b.Iterations) / win,
			Sleeps:      float64(a.Sleeps-b.Sleeps) / win,
			DeepSleeps:  float64(a.DeepSleeps-b.DeepSleeps) / win,
			Wakeups:     float64(a.Wakeups-b.Wakeups) / win,
			SleepFrac:   float64(a.SleepNs-b.SleepNs) / 1e9 / win,
			WakeSignals: float64(a.WakeSignals-b.WakeSignals) / win})
	}
	return res, nil
}

func reactorStats(sock string) ([]reactor.Stats, error) {
	if sock == "" {
		return nil, nil
	}
	c, err := rpc.Dial(sock)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var st []reactor.Stats
	err = c.Call(context.Background(), "framework_get_reactors", nil, &st)
	return st, err
}

// threads reads every thread's CPU ticks and context switches.
func threads(pid int) (map[int]counter, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[int]counter{}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		c, err := readThread(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // exited meanwhile
		}
		out[tid] = c
	}
	return out, nil
}

func readThread(dir string) (counter, error) {
	var c counter
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return c, err
	}
	s := string(stat)
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open {
		return c, fmt.Errorf("%s: malformed stat", dir)
	}
	c.comm = s[open+1 : close]
	f := strings.Fields(s[close+2:])
	if len(f) < 13 {
		return c, fmt.Errorf("%s: short stat", dir)
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64) // field 14, utime
	st, _ := strconv.ParseUint(f[12], 10, 64) // field 15, stime
	c.ticks = ut + st
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return c, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			c.switches += n
		}
	}
	return c, nil
}

func (r *Result) print() {
	fmt.Printf("idle daemon, one host (KATO %s, %d I/O queues), %.1f s: %.2f%% of a core\n",
		r.KATO, r.IOQueues, r.WindowSec, r.CPUPercent)
	for _, t := range r.Threads {
		if t.CPUPercent == 0 && t.Switches < 1 {
			continue
		}
		name := t.Comm
		if t.Reactor >= 0 {
			name = fmt.Sprintf("reactor %d", t.Reactor)
		}
		fmt.Printf("  tid %-7d %-16s %6.2f%%  %7.1f switches/s\n", t.TID, name, t.CPUPercent, t.Switches)
	}
	for _, x := range r.Reactors {
		fmt.Printf("  reactor %d: %.0f iterations/s, %.1f sleeps/s (%.1f deep), %.1f wake-ups/s, asleep %.1f%%, %.1f wake signals/s\n",
			x.ID, x.Iterations, x.Sleeps, x.DeepSleeps, x.Wakeups, x.SleepFrac*100, x.WakeSignals)
	}
}
