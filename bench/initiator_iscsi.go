package bench

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// iscsiPerfInitiator is libiscsi's iscsi-perf: one session per process, so several
// connections are several processes, all pinned to the client core. It only reads,
// and reports IOPS once a second without latencies.
type iscsiPerfInitiator struct{ env *Env }

// NewISCSIPerf returns libiscsi's iscsi-perf.
func NewISCSIPerf(env *Env) Initiator { return iscsiPerfInitiator{env: env} }

func (iscsiPerfInitiator) Name() string { return InitiatorISCSIPerf }

func (iscsiPerfInitiator) Supports(protocol string, w Workload) (bool, string) {
	if protocol != ProtoISCSI {
		return false, "speaks iSCSI only"
	}
	return w.ReadPct == 100, "iscsi-perf only reads"
}

func (i iscsiPerfInitiator) Open(_ context.Context, ep Endpoint, conns int) (Session, error) {
	if _, err := exec.LookPath("iscsi-perf"); err != nil {
		return nil, fmt.Errorf("iscsi-perf: %w", ErrUnavailable)
	}
	return &iscsiPerfSession{env: i.env, ep: ep, conns: conns}, nil
}

type iscsiPerfSession struct {
	env   *Env
	ep    Endpoint
	conns int
}

func (s *iscsiPerfSession) MaxQD() int { return s.ep.MaxQD }
func (s *iscsiPerfSession) Close()     {}

func (s *iscsiPerfSession) args(k int, w Workload, qd int, tm Timing) []string {
	url := fmt.Sprintf("iscsi://%s/%s/%d", s.ep.Addr, s.ep.Name, s.ep.LUN)
	a := []string{"-c", strconv.Itoa(s.env.ClientCPU), "stdbuf", "-oL", "iscsi-perf",
		"-i", fmt.Sprintf("iqn.2026-11.dev.sluice:bench-initiator-%d", k),
		"-m", strconv.Itoa(qd), "-b", strconv.Itoa(w.BlockSize / s.ep.BlockSize),
		// One second more than the window: iscsi-perf prints no figure for its last.
		"-t", strconv.Itoa(seconds(tm.Warmup) + seconds(tm.Duration) + 1)}
	if !w.Seq {
		a = append(a, "-r")
	}
	return append(a, url)
}

func (s *iscsiPerfSession) Run(ctx context.Context, w Workload, qd int, tm Timing) (Sample, error) {
	outs := make([]string, s.conns)
	errs := make([]error, s.conns)
	var cpu time.Duration
	var wg sync.WaitGroup
	for k := range s.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.CommandContext(ctx, "taskset", s.args(k, w, qd, tm)...)
			var c time.Duration
			outs[k], c, errs[k] = runWindowed(cmd, "will run for", tm, s.ep.PID)
			if k == 0 {
				cpu = c
			}
		}()
	}
	wg.Wait()
	smp := Sample{InitiatorIdle: -1, Latency: Latency{Source: "none"},
		ElapsedNs: int64(time.Duration(seconds(tm.Duration)) * time.Second), TargetCPUNs: int64(cpu)}
	for k, out := range outs {
		if errs[k] != nil {
			return smp, fmt.Errorf("iscsi-perf: %w: %s", errs[k], tailOf(out))
		}
		iops, err := parseISCSIPerf(out, seconds(tm.Warmup), seconds(tm.Warmup)+seconds(tm.Duration))
		if err != nil {
			return smp, err
		}
		smp.IOPS += iops
	}
	smp.IOs = uint64(smp.IOPS * float64(smp.ElapsedNs) / 1e9)
	smp.finish(w.BlockSize)
	return smp, nil
}

var iscsiPerfTick = regexp.MustCompile(`(\d\d):(\d\d):(\d\d) - lba \d+, iops current (\d+)`)

// parseISCSIPerf averages the once-a-second "iops current" figures of the seconds
// after the warm-up, up to end.
func parseISCSIPerf(out string, warmup, end int) (float64, error) {
	out = strings.ReplaceAll(out, "\r", "\n")
	var sum, n float64
	for _, m := range iscsiPerfTick.FindAllStringSubmatch(out, -1) {
		h, _ := strconv.Atoi(m[1])
		mi, _ := strconv.Atoi(m[2])
		sec, _ := strconv.Atoi(m[3])
		if t := h*3600 + mi*60 + sec; t <= warmup || t > end {
			continue
		}
		v, _ := strconv.ParseFloat(m[4], 64)
		sum += v
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("iscsi-perf: no per-second figure after the warm-up: %s", tailOf(out))
	}
	return sum / n, nil
}
