package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"sluice/bench"
)

type options struct {
	out, sluiced, spdkDir, targets, backends, peerBackends string
	workloads, qds, conns, size, pollMode, memSize         string
	count, serverCPU, clientCPU, blockSize                 int
	duration, warmup                                       time.Duration
	maxContention                                          float64
	retries                                                int
	quick, micro, microUpdate, keep                        bool
	microCount                                             int
	microTime, baseline                                    string
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("sluicebench", flag.ContinueOnError)
	fs.StringVar(&o.out, "out", "bench/out", "results directory (make bench: BENCH_OUT)")
	fs.BoolVar(&o.quick, "quick", false, "quick mode: a tiny matrix of short points (make bench: BENCH_QUICK=1)")
	fs.StringVar(&o.sluiced, "sluiced", "bin/sluiced", "the daemon binary")
	fs.StringVar(&o.spdkDir, "spdk-dir", "", "an SPDK build (build/bin/{nvmf_tgt,iscsi_tgt,spdk_nvme_perf}, scripts/rpc.py): adds its targets and initiator")
	fs.StringVar(&o.targets, "targets", "auto", "target families: sluice,limit,sluice-iscsi,tgt,spdk,spdk-iscsi; auto: all found")
	fs.StringVar(&o.backends, "backends", "null,malloc,file", "sluice's backends")
	fs.StringVar(&o.peerBackends, "peer-backends", "malloc", "the peers' backends (same size and block size): null, malloc, file")
	fs.StringVar(&o.workloads, "workloads", "all", "workloads, or all: "+workloadList())
	fs.StringVar(&o.qds, "qd", "1,8,32,max", "queue depths per connection; max: the target's largest")
	fs.StringVar(&o.conns, "conns", "1,4", "connection counts")
	fs.IntVar(&o.count, "count", 3, "repetitions of every point")
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "measured time per point")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "warm-up per point (external initiators round up to seconds)")
	fs.Float64Var(&o.maxContention, "max-contention", 0.3, "share of the benchmark cores' time taken by other processes above which a point is measured again")
	fs.IntVar(&o.retries, "retries", 1, "re-measurements of a contended point")
	fs.IntVar(&o.serverCPU, "server-cpu", 0, "the targets' core")
	fs.IntVar(&o.clientCPU, "client-cpu", 1, "the initiators' core")
	fs.StringVar(&o.size, "size", "256M", "backing size of every target")
	fs.IntVar(&o.blockSize, "block-size", 512, "LBA size of every target")
	fs.StringVar(&o.pollMode, "poll-mode", "busy", "sluiced's poll mode, or a list (busy,adaptive) to pair the modes in one run as NVMe/TCP targets named for their mode; iSCSI targets take the first (SPDK's targets always busy-poll)")
	fs.StringVar(&o.memSize, "mem-size", "256M", "sluiced's --mem-size")
	fs.BoolVar(&o.micro, "micro", true, "also run the packages' go test -bench and compare with the baseline")
	fs.BoolVar(&o.microUpdate, "micro-update", false, "replace the microbenchmark baseline with this run")
	fs.IntVar(&o.microCount, "micro-count", 5, "go test -count for the microbenchmarks")
	fs.StringVar(&o.microTime, "micro-benchtime", "200ms", "go test -benchtime for the microbenchmarks")
	fs.StringVar(&o.baseline, "micro-baseline", "bench/baseline/micro.txt", "the microbenchmark baseline, relative to the repository")
	fs.BoolVar(&o.keep, "keep-scratch", false, "keep the scratch directory (target logs and configs)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.quick {
		quick(o, fs)
	}
	for _, m := range split(o.pollMode) {
		if m != "busy" && m != "adaptive" && m != "interrupt" {
			return nil, fmt.Errorf("-poll-mode: %q is not busy, adaptive or interrupt", m)
		}
	}
	if len(split(o.pollMode)) == 0 {
		return nil, fmt.Errorf("-poll-mode: no mode given")
	}
	return o, nil
}

// quick shrinks the matrix to seconds: what make test runs end to end. Flags given
// explicitly still win.
func quick(o *options, fs *flag.FlagSet) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	def := func(name string, apply func()) {
		if !set[name] {
			apply()
		}
	}
	def("workloads", func() { o.workloads = "randread-4k,randrw70-4k" })
	def("qd", func() { o.qds = "1,8" })
	def("conns", func() { o.conns = "1" })
	def("count", func() { o.count = 2 })
	def("duration", func() { o.duration = 300 * time.Millisecond })
	def("warmup", func() { o.warmup = 100 * time.Millisecond })
	def("targets", func() { o.targets = "sluice,limit,sluice-iscsi" })
	def("backends", func() { o.backends = "null" })
	def("micro", func() { o.micro = false })
	def("retries", func() { o.retries = 0 })
	def("size", func() { o.size = "64M" })
}

func matrix(ctx context.Context, args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	env, err := makeEnv(o)
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(env.Dir)
	}
	m, notes, err := buildMatrix(o, env)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	rep := &bench.Report{Command: "sluicebench " + strings.Join(args, " "), Machine: bench.Facts(),
		Matrix: m.Doc(env), Notes: notes}
	if err := runMicro(ctx, o, rep); err != nil {
		return err
	}
	if err := measure(ctx, o, env, m, rep); err != nil {
		return err
	}
	fmt.Printf("\n%s\nresults: %s (report.md, results.json, points/, plots)\n", headline(rep), o.out)
	return nil
}

func makeEnv(o *options) (*bench.Env, error) {
	size, err := bench.ParseSize(o.size)
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	sluiced, err := filepath.Abs(o.sluiced)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("/var/tmp", "sluicebench-")
	if err != nil {
		return nil, err
	}
	return &bench.Env{ServerCPU: o.serverCPU, ClientCPU: o.clientCPU, SizeBytes: size, BlockSize: o.blockSize,
		Dir: dir, Sluiced: sluiced, Self: self, SPDKDir: o.spdkDir, PollMode: split(o.pollMode)[0], MemSize: o.memSize}, nil
}

// runMicro runs the microbenchmarks before anything is pinned: go test needs both
// cores to build.
func runMicro(ctx context.Context, o *options, rep *bench.Report) error {
	if !o.micro {
		rep.Notes = append(rep.Notes, "microbenchmarks not run (-micro=false or quick mode)")
		return nil
	}
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return fmt.Errorf("microbenchmarks need the repository: %w", err)
	}
	fmt.Fprintln(os.Stderr, "microbenchmarks: go test -bench (this takes a few minutes)")
	mb := &bench.Micro{Repo: strings.TrimSpace(string(root)), Baseline: o.baseline, BenchTime: o.microTime,
		Count: o.microCount, Update: o.microUpdate}
	rep.Micro, err = mb.Run(ctx, o.out)
	return err
}

// measure pins this process to the client core and runs the matrix, then writes the
// report even when the run stopped early, so that what was measured is kept.
func measure(ctx context.Context, o *options, env *bench.Env, m *bench.Matrix, rep *bench.Report) error {
	if o.spdkDir != "" {
		undo, err := bench.EnsureHugetlbfs()
		if err != nil {
			return err
		}
		defer undo()
	}
	runtime.GOMAXPROCS(1)
	if err := pinProcess(o.clientCPU); err != nil {
		return err
	}
	r := &bench.Runner{M: *m, Out: o.out, Progress: os.Stderr, Cores: []int{o.serverCPU, o.clientCPU}}
	runErr := r.Run(ctx)
	rep.Samples, rep.Skipped, rep.Failed = r.Samples, r.Skipped, r.Failed
	rep.Rows = bench.Aggregate(r.Samples)
	plots, err := bench.Plots(o.out, rep.Rows, m)
	rep.Plots = plots
	if werr := rep.Write(o.out); werr != nil {
		return werr
	}
	if runErr != nil {
		return runErr
	}
	if err != nil {
		return err
	}
	if len(r.Failed) > 0 {
		return fmt.Errorf("%d blocks of points failed (see report.md)", len(r.Failed))
	}
	return nil
}
