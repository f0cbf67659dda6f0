package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"sluice/engine/nvmf/host"
)

// InitiatorSPDK and InitiatorISCSIPerf name the external initiators in reports.
const (
	InitiatorSPDK      = "spdk_nvme_perf"
	InitiatorISCSIPerf = "iscsi-perf (libiscsi)"
)

// seconds rounds a duration up to whole seconds: the external tools count in them.
func seconds(d time.Duration) int { return int(math.Ceil(d.Seconds())) }

// perfInitiator is SPDK's spdk_nvme_perf, pinned to the client core. It is given this
// machine's host NQN explicitly: left alone it would send an empty one, which a target
// that checks host access refuses.
type perfInitiator struct{ env *Env }

// NewSPDKPerf returns spdk_nvme_perf from env.SPDKDir.
func NewSPDKPerf(env *Env) Initiator { return perfInitiator{env: env} }

func (perfInitiator) Name() string { return InitiatorSPDK }

func (perfInitiator) Supports(protocol string, _ Workload) (bool, string) {
	return protocol == ProtoNVMeTCP, "speaks NVMe/TCP only"
}

func (p perfInitiator) Open(_ context.Context, ep Endpoint, conns int) (Session, error) {
	return &perfSession{env: p.env, ep: ep, conns: conns}, nil
}

type perfSession struct {
	env   *Env
	ep    Endpoint
	conns int
}

// MaxQD is the target's queue size less one, what the NVMe/TCP targets here accept.
func (s *perfSession) MaxQD() int { return 127 }
func (s *perfSession) Close()     {}

func perfPattern(w Workload) []string {
	switch {
	case w.Seq && w.ReadPct == 100:
		return []string{"-w", "read"}
	case w.Seq && w.ReadPct == 0:
		return []string{"-w", "write"}
	case w.Seq:
		return []string{"-w", "rw", "-M", strconv.Itoa(w.ReadPct)}
	case w.ReadPct == 100:
		return []string{"-w", "randread"}
	case w.ReadPct == 0:
		return []string{"-w", "randwrite"}
	}
	return []string{"-w", "randrw", "-M", strconv.Itoa(w.ReadPct)}
}

func (s *perfSession) Run(ctx context.Context, w Workload, qd int, tm Timing) (Sample, error) {
	host, port, _ := strings.Cut(s.ep.Addr, ":")
	trid := fmt.Sprintf("trtype:tcp adrfam:ipv4 traddr:%s trsvcid:%s subnqn:%s hostnqn:%s", host, port,
		s.ep.Name, hostNQN())
	args := append([]string{"-q", strconv.Itoa(qd), "-o", strconv.Itoa(w.BlockSize)}, perfPattern(w)...)
	args = append(args, "-t", strconv.Itoa(seconds(tm.Duration)), "-a", strconv.Itoa(seconds(tm.Warmup)),
		"-c", fmt.Sprintf("0x%x", 1<<s.env.ClientCPU), "-P", strconv.Itoa(s.conns), "-L", "-s", "512",
		"-r", trid)
	// Line-buffered, so that the line announcing the load arrives when it is printed.
	args = append([]string{"-oL", "-eL", filepath.Join(s.env.SPDKDir, "build/bin/spdk_nvme_perf")}, args...)
	cmd := exec.CommandContext(ctx, "stdbuf", args...)
	out, cpu, err := runWindowed(cmd, "Launching workers", tm, s.ep.PID)
	if err != nil {
		return Sample{}, fmt.Errorf("spdk_nvme_perf: %w: %s", err, tailOf(out))
	}
	smp, err := parsePerf(out)
	if err != nil {
		return smp, err
	}
	smp.ElapsedNs = int64(time.Duration(seconds(tm.Duration)) * time.Second)
	smp.IOs = uint64(smp.IOPS * float64(smp.ElapsedNs) / 1e9)
	smp.TargetCPUNs = int64(cpu)
	smp.InitiatorIdle = -1
	smp.finish(w.BlockSize)
	return smp, nil
}

var hostNQNOnce = sync.OnceValue(host.DefaultHostNQN)

func hostNQN() string { return hostNQNOnce() }

var (
	perfTotal = regexp.MustCompile(`(?m)^Total\s*:\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)`)
	perfPct   = regexp.MustCompile(`(?m)^\s*([\d.]+)%\s*:\s*([\d.]+)us`)
)

// parsePerf reads the Total line (IOPS, MiB/s, average, min and max latency in µs) and
// the first latency summary (-L) of spdk_nvme_perf's output.
func parsePerf(out string) (Sample, error) {
	m := perfTotal.FindStringSubmatch(out)
	if m == nil {
		return Sample{}, fmt.Errorf("spdk_nvme_perf: no Total line: %s", tailOf(out))
	}
	f := func(s string) float64 { v, _ := strconv.ParseFloat(s, 64); return v }
	s := Sample{IOPS: f(m[1])}
	l := Latency{Source: "spdk_nvme_perf -L", MeanNs: f(m[3]) * 1e3, MaxNs: int64(f(m[5]) * 1e3)}
	if i := strings.Index(out, "Summary latency data"); i >= 0 {
		for _, pm := range perfPct.FindAllStringSubmatch(out[i:], -1) {
			pct, ns := f(pm[1]), int64(f(pm[2])*1e3)
			switch pct {
			case 50:
				l.P50Ns = ns
			case 99:
				l.P99Ns = ns
			case 99.9:
				l.P999Ns = ns
			}
			l.CDF = append(l.CDF, [2]float64{pct, float64(ns)})
		}
	}
	s.Latency = l
	return s, nil
}

// runWindowed runs an external initiator and samples the target's CPU time from the
// warm-up's end (counted from the line that says the load starts) to the exit.
func runWindowed(cmd *exec.Cmd, startMarker string, tm Timing, pid int) (string, time.Duration, error) {
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return "", 0, err
	}
	var out strings.Builder
	var cpu0 time.Duration
	sampled, scanned := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			out.WriteString(line + "\n")
			if startMarker == "" || strings.Contains(line, startMarker) {
				once.Do(func() {
					go func() { time.Sleep(tm.Warmup); cpu0 = processCPU(pid); close(sampled) }()
				})
			}
		}
	}()
	err := cmd.Wait()
	cpu1 := processCPU(pid)
	pw.Close()
	<-scanned
	select {
	case <-sampled:
	case <-time.After(tm.Warmup + time.Second):
		return out.String(), 0, fmt.Errorf("never saw %q", startMarker)
	}
	return out.String(), cpu1 - cpu0, err
}

func tailOf(s string) string {
	if len(s) > 600 {
		return s[len(s)-600:]
	}
	return s
}
