// Command sluicebench runs the benchmark harness: 4 KiB random reads at queue depths
// 1 and 32 against sluiced on a null bdev (busy and adaptive poll modes) and against
// the raw-socket limit server, each target pinned to one core and the load generator
// to the other, interleaved and repeated so that the ratios come from one run.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"sluice/bench"
	"sluice/engine/rpc"
)

type config struct {
	sluiced    string
	duration   time.Duration
	warmup     time.Duration
	count      int
	qds        []int
	modes      []string
	serverCPU  int
	clientCPU  int
	out        string
	cpuProfile bool
	clientProf string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "rawserver" {
		rawServer(os.Args[2:])
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "load" {
		if err := loadOnly(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "sluicebench load:", err)
			os.Exit(1)
		}
		return
	}
	var c config
	var qds, modes string
	flag.StringVar(&c.sluiced, "sluiced", "bin/sluiced", "sluiced binary")
	flag.DurationVar(&c.duration, "duration", 5*time.Second, "measured time per run")
	flag.DurationVar(&c.warmup, "warmup", time.Second, "unmeasured time before each run")
	flag.IntVar(&c.count, "count", 3, "repetitions of each configuration (interleaved)")
	flag.StringVar(&qds, "qd", "1,32", "queue depths")
	flag.StringVar(&modes, "modes", "busy,adaptive", "sluiced poll modes")
	flag.IntVar(&c.serverCPU, "server-cpu", 0, "CPU for the target (sluiced reactor, limit server)")
	flag.IntVar(&c.clientCPU, "client-cpu", 1, "CPU for the load generator")
	flag.StringVar(&c.out, "out", "bench/out", "directory for results.json, results.txt (benchstat) and profiles")
	flag.BoolVar(&c.cpuProfile, "cpuprofile", true, "write a CPU profile of sluiced at the highest queue depth, adaptive mode")
	flag.StringVar(&c.clientProf, "client-cpuprofile", "", "write a CPU profile of the load generator")
	flag.Parse()
	for _, s := range strings.Split(qds, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 127 {
			fmt.Fprintf(os.Stderr, "bad -qd %q\n", s)
			os.Exit(2)
		}
		c.qds = append(c.qds, n)
	}
	c.modes = strings.Split(modes, ",")
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "sluicebench:", err)
		os.Exit(1)
	}
}

// rawServer is the re-executed limit server: it prints its port and serves one
// connection.
func rawServer(args []string) {
	fs := flag.NewFlagSet("rawserver", flag.ExitOnError)
	cpu := fs.Int("cpu", 0, "CPU to pin to")
	_ = fs.Parse(args)
	err := bench.RawServe("127.0.0.1:0", *cpu, func(port int) { fmt.Println(port) })
	if err != nil {
		fmt.Fprintln(os.Stderr, "rawserver:", err)
		os.Exit(1)
	}
}

// loadOnly drives a target that is already running (sluiced started by hand, or
// another NVMe/TCP target) with the same load, for profiling and for comparisons.
func loadOnly(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:4420", "target address")
	nqn := fs.String("nqn", benchNQN, "subsystem NQN (namespace 1 is read)")
	qd := fs.Int("qd", 32, "queue depth")
	dur := fs.Duration("duration", 5*time.Second, "measured time")
	blocks := fs.Uint64("blocks", nullBlocks, "4 KiB blocks to spread reads over")
	cpu := fs.Int("client-cpu", 1, "CPU for the load generator (-1: unpinned)")
	pid := fs.Int("pid", 0, "target process to sample for CPU time")
	prof := fs.String("cpuprofile", "", "write a CPU profile of the load generator")
	_ = fs.Parse(args)
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
	ctx, cancel := context.WithTimeout(context.Background(), *dur+time.Minute)
	defer cancel()
	r, err := bench.RunNVMe(ctx, *addr, *nqn, bench.Load{QD: *qd, Warmup: time.Second, Duration: *dur,
		Blocks: *blocks, ClientCPU: *cpu, ServerPID: *pid})
	if err != nil {
		return err
	}
	report(r)
	return nil
}

const benchNQN = "nqn.2026-11.dev.sluice:bench"

// nullBlocks spreads reads over 4 GiB of a null bdev.
const nullBlocks = 1 << 20

func run(c config) error {
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return err
	}
	// The load generator shares its core with nothing of ours: one P is enough for it.
	runtime.GOMAXPROCS(1)
	if err := pinProcess(c.clientCPU); err != nil {
		return err
	}
	if c.clientProf != "" {
		f, err := os.Create(c.clientProf)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	var results []bench.Result
	for rep := 0; rep < c.count; rep++ {
		for _, qd := range c.qds {
			l := bench.Load{QD: qd, Warmup: c.warmup, Duration: c.duration, Blocks: nullBlocks, ClientCPU: c.clientCPU}
			r, err := runRawOnce(c, l)
			if err != nil {
				return fmt.Errorf("raw limit qd %d: %w", qd, err)
			}
			r.Rep = rep
			results = append(results, r)
			report(r)
			for _, mode := range c.modes {
				profile := ""
				if c.cpuProfile && rep == c.count-1 && mode == "adaptive" && qd == c.qds[len(c.qds)-1] {
					profile = filepath.Join(c.out, fmt.Sprintf("sluiced-%s-qd%d.pprof", mode, qd))
				}
				r, err := runSluiceOnce(c, mode, l, profile)
				if err != nil {
					return fmt.Errorf("sluice %s qd %d: %w", mode, qd, err)
				}
				r.Rep = rep
				results = append(results, r)
				report(r)
			}
		}
	}
	return summarize(c, results)
}

func report(r bench.Result) {
	fmt.Fprintf(os.Stderr, "  %-9s %-9s qd=%-3d %9.0f IOPS  p50 %6.1fµs  p99 %6.1fµs  cpu %.2fs/Mio\n",
		r.Target, r.Mode, r.QD, r.IOPS, us(r.P50), us(r.P99), r.CPUPerMillion())
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }

func runRawOnce(c config, l bench.Load) (bench.Result, error) {
	self, err := os.Executable()
	if err != nil {
		return bench.Result{}, err
	}
	cmd := exec.Command(self, "rawserver", "-cpu", strconv.Itoa(c.serverCPU))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return bench.Result{}, err
	}
	if err := cmd.Start(); err != nil {
		return bench.Result{}, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return bench.Result{}, fmt.Errorf("raw server did not start: %w", err)
	}
	l.ServerPID = cmd.Process.Pid
	ctx, cancel := context.WithTimeout(context.Background(), l.Warmup+l.Duration+30*time.Second)
	defer cancel()
	return bench.RunRaw(ctx, "127.0.0.1:"+strings.TrimSpace(line), l)
}

func runSluiceOnce(c config, mode string, l bench.Load, profile string) (bench.Result, error) {
	dir, err := os.MkdirTemp("", "sluicebench-")
	if err != nil {
		return bench.Result{}, err
	}
	defer os.RemoveAll(dir)
	port := freePort()
	cfg := fmt.Sprintf(`{"subsystems":[
 {"subsystem":"bdev","config":[{"method":"bdev_null_create","params":{"name":"null0","num_blocks":%d,"block_size":4096}}]},
 {"subsystem":"nvmf","config":[
  {"method":"nvmf_create_subsystem","params":{"nqn":%q,"allow_any_host":true}},
  {"method":"nvmf_subsystem_add_ns","params":{"nqn":%q,"namespace":{"nsid":1,"bdev_name":"null0"}}},
  {"method":"nvmf_subsystem_add_listener","params":{"nqn":%q,"listen_address":{"trtype":"TCP","traddr":"127.0.0.1","trsvcid":"%d"}}}]}]}`,
		nullBlocks, benchNQN, benchNQN, benchNQN, port)
	cfgPath := filepath.Join(dir, "bench.json")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return bench.Result{}, err
	}
	sock := filepath.Join(dir, "rpc.sock")
	args := []string{"--config", cfgPath, "--data-dir", dir, "--rpc-socket", sock, "--cores", strconv.Itoa(c.serverCPU),
		"--poll-mode", mode, "--mem-size", "256M", "--log-level", "warn"}
	if profile != "" {
		args = append(args, "--cpu-profile", profile)
	}
	cmd := exec.Command(c.sluiced, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return bench.Result{}, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	if err := waitRPC(sock); err != nil {
		return bench.Result{}, err
	}
	l.ServerPID = cmd.Process.Pid
	ctx, cancel := context.WithTimeout(context.Background(), l.Warmup+l.Duration+30*time.Second)
	defer cancel()
	r, err := bench.RunNVMe(ctx, fmt.Sprintf("127.0.0.1:%d", port), benchNQN, l)
	r.Mode = mode
	return r, err
}

func waitRPC(sock string) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := rpc.Dial(sock); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("sluiced did not start within 20s")
}

// summarize prints medians, the ratios to the limit, and writes results.json and
// results.txt (Go benchmark format, one line per run, for benchstat).
func summarize(c config, rs []bench.Result) error {
	b, _ := json.MarshalIndent(rs, "", "  ")
	if err := os.WriteFile(filepath.Join(c.out, "results.json"), b, 0o644); err != nil {
		return err
	}
	var txt strings.Builder
	fmt.Fprintf(&txt, "goos: linux\ngoarch: %s\npkg: sluice/bench\n", runtime.GOARCH)
	for _, r := range rs {
		fmt.Fprintf(&txt, "BenchmarkRandRead4K/target=%s/mode=%s/qd=%d 1 %.0f ns/op %.0f iops %.0f p50-ns %.0f p99-ns %.3f cpu-s/Mio\n",
			r.Target, r.Mode, r.QD, 1e9/r.IOPS, r.IOPS, float64(r.P50), float64(r.P99), r.CPUPerMillion())
	}
	if err := os.WriteFile(filepath.Join(c.out, "results.txt"), []byte(txt.String()), 0o644); err != nil {
		return err
	}
	type key struct {
		target, mode string
		qd           int
	}
	groups := map[key][]bench.Result{}
	var keys []key
	for _, r := range rs {
		k := key{r.Target, r.Mode, r.QD}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], r)
	}
	sort.SliceStable(keys, func(i, j int) bool { return keys[i].qd < keys[j].qd })
	med := func(k key, f func(bench.Result) float64) float64 {
		var v []float64
		for _, r := range groups[k] {
			v = append(v, f(r))
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	// The machine's speed drifts between minutes, so a run is compared with the limit
	// measured just before it (same repetition): the median of those paired ratios,
	// and their range, say more than a ratio of medians.
	limitOf := map[[2]int]float64{}
	for _, r := range rs {
		if r.Target == "raw-limit" {
			limitOf[[2]int{r.Rep, r.QD}] = r.IOPS
		}
	}
	w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(w, "\n4 KiB random read, medians of %d runs of %v (target on cpu %d, client on cpu %d)\n",
		c.count, c.duration, c.serverCPU, c.clientCPU)
	fmt.Fprintln(w, "target\tmode\tqd\tIOPS\tp50 µs\tp99 µs\ttarget CPU s/Mio\tvs limit (paired: median [min, max])")
	for _, k := range keys {
		var ratios []float64
		for _, r := range groups[k] {
			if lim := limitOf[[2]int{r.Rep, r.QD}]; lim > 0 {
				ratios = append(ratios, r.IOPS/lim)
			}
		}
		sort.Float64s(ratios)
		fmt.Fprintf(w, "%s\t%s\t%d\t%.0f\t%.1f\t%.1f\t%.2f\t%.2f [%.2f, %.2f]\n", k.target, k.mode, k.qd,
			med(k, func(r bench.Result) float64 { return r.IOPS }),
			med(k, func(r bench.Result) float64 { return us(r.P50) }),
			med(k, func(r bench.Result) float64 { return us(r.P99) }),
			med(k, func(r bench.Result) float64 { return r.CPUPerMillion() }),
			ratios[len(ratios)/2], ratios[0], ratios[len(ratios)-1])
	}
	w.Flush()
	fmt.Printf("\nresults: %s/results.json; benchstat %s/results.txt\n", c.out, c.out)
	return nil
}

func freePort() int {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return 4420
	}
	defer syscall.Close(fd)
	_ = syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return 4420
	}
	return sa.(*syscall.SockaddrInet4).Port
}

// pinProcess pins every thread of this process to cpu, so that the Go runtime's own
// threads (GC, sysmon) stay off the target's core.
func pinProcess(cpu int) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	var set syscallCPUSet
	set.set(cpu)
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := set.apply(tid); err != nil {
			return fmt.Errorf("pin thread %d to cpu %d: %w", tid, cpu, err)
		}
	}
	return nil
}
