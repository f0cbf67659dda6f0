package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"sluice/bench"
)

// rawServer is the re-executed limit server.
func rawServer(args []string) error {
	fs := flag.NewFlagSet("rawserver", flag.ExitOnError)
	cpu := fs.Int("cpu", 0, "CPU to pin to")
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	_ = fs.Parse(args)
	runtime.GOMAXPROCS(1)
	return bench.ServeRaw(*addr, *cpu)
}

// loadOnly drives a target that is already running (sluiced started by hand, or any
// NVMe/TCP target) with one point of the matrix, for profiling and comparisons. The
// namespace's LBA size and size come from Identify Namespace.
func loadOnly(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:4420", "target address")
	nqn := fs.String("nqn", "nqn.2026-11.dev.sluice:vol0", "subsystem NQN")
	nsid := fs.Uint("nsid", 1, "namespace")
	wl := fs.String("workload", "randread-4k", "one of: "+workloadList())
	qd := fs.Int("qd", 32, "queue depth per connection")
	conns := fs.Int("conns", 1, "connections (I/O queues)")
	dur := fs.Duration("duration", 5*time.Second, "measured time")
	warm := fs.Duration("warmup", time.Second, "unmeasured time first")
	cpu := fs.Int("client-cpu", 1, "CPU for the load generator (-1: unpinned)")
	pid := fs.Int("pid", 0, "target process to sample for CPU time")
	prof := fs.String("cpuprofile", "", "write a CPU profile of the load generator")
	_ = fs.Parse(args)
	w, err := bench.WorkloadByName(*wl)
	if err != nil {
		return err
	}
	if *prof != "" {
		f, err := os.Create(*prof)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	runtime.GOMAXPROCS(1)
	if *cpu >= 0 {
		if err := pinProcess(*cpu); err != nil {
			return err
		}
	}
	l, err := bench.DialNVMe(ctx, *addr, *nqn, uint32(*nsid), *conns)
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Fprintf(os.Stderr, "namespace %d: %d blocks of %d bytes; queue depth up to %d\n", *nsid, l.NSZE, l.LBASize, l.MaxQD)
	s, err := l.Run(ctx, w, *qd, bench.Timing{Warmup: *warm, Duration: *dur}, *pid)
	if err != nil {
		return err
	}
	fmt.Printf("%s qd=%d conns=%d: %.0f IOPS, %.1f MB/s, p50 %.1f µs, p99 %.1f µs, p99.9 %.1f µs, max %.1f µs, "+
		"errors %d, initiator idle %.0f%%, target cpu %.2f s/Mio\n", w.Name, *qd, *conns, s.IOPS, s.MBps,
		us(s.Latency.P50Ns), us(s.Latency.P99Ns), us(s.Latency.P999Ns), us(s.Latency.MaxNs), s.Errors,
		100*s.InitiatorIdle, s.CPUPerMillion())
	if s.Errors > 0 {
		return fmt.Errorf("%d I/Os failed", s.Errors)
	}
	return nil
}

func us(ns int64) float64 { return float64(ns) / 1e3 }

func workloadList() string {
	s := ""
	for i, w := range bench.Workloads {
		if i > 0 {
			s += ", "
		}
		s += w.Name
	}
	return s
}
