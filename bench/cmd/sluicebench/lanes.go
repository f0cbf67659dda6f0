package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"sluice/bench"
)

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// families resolves -targets: "auto" is every family whose software is here.
func families(o *options) []string {
	if o.targets != "auto" {
		return split(o.targets)
	}
	f := []string{"limit", "sluice", "sluice-iscsi"}
	if _, err := exec.LookPath("tgtd"); err == nil {
		f = append(f, "tgt")
	}
	if o.spdkDir != "" {
		f = append(f, "spdk", "spdk-iscsi")
	}
	return f
}

// buildMatrix makes the lanes: the limit first, then every NVMe/TCP target under each
// NVMe initiator, then every iSCSI target under iscsi-perf, so that each comparison
// has one initiator.
func buildMatrix(o *options, env *bench.Env) (*bench.Matrix, []string, error) {
	fam := families(o)
	has := func(f string) bool { return slices.Contains(fam, f) }
	var nvme, iscsi []bench.Target
	for _, b := range split(o.backends) {
		if modes := split(o.pollMode); has("sluice") && len(modes) > 1 {
			for _, m := range modes {
				nvme = append(nvme, bench.NewSluiceMode(env, b, m))
			}
		} else if has("sluice") {
			nvme = append(nvme, bench.NewSluice(env, b))
		}
		if has("sluice-iscsi") {
			iscsi = append(iscsi, bench.NewSluiceISCSI(env, b))
		}
	}
	for _, b := range split(o.peerBackends) {
		if has("spdk") {
			nvme = append(nvme, bench.NewSPDK(env, b))
		}
		if has("tgt") {
			iscsi = append(iscsi, bench.NewTgt(env, b))
		}
		if has("spdk-iscsi") {
			iscsi = append(iscsi, bench.NewSPDKISCSI(env, b))
		}
	}
	var lanes []bench.Lane
	if has("limit") {
		lanes = append(lanes, bench.Lane{Initiator: bench.NewRawInitiator(), Target: bench.NewLimit(env)})
	}
	inits := []bench.Initiator{bench.NewGoInitiator()}
	if o.spdkDir != "" {
		if _, err := os.Stat(filepath.Join(o.spdkDir, "build/bin/spdk_nvme_perf")); err == nil {
			inits = append(inits, bench.NewSPDKPerf(env))
		}
	}
	for _, in := range inits {
		for _, t := range nvme {
			lanes = append(lanes, bench.Lane{Initiator: in, Target: t})
		}
	}
	for _, t := range iscsi {
		lanes = append(lanes, bench.Lane{Initiator: bench.NewISCSIPerf(env), Target: t})
	}
	return finishMatrix(o, lanes)
}

func finishMatrix(o *options, lanes []bench.Lane) (*bench.Matrix, []string, error) {
	ws, err := bench.ParseWorkloads(o.workloads)
	if err != nil {
		return nil, nil, err
	}
	qds, err := bench.ParseQDs(o.qds)
	if err != nil {
		return nil, nil, err
	}
	conns, err := bench.ParseInts(o.conns)
	if err != nil {
		return nil, nil, err
	}
	if len(lanes) == 0 {
		return nil, nil, fmt.Errorf("no targets selected")
	}
	m := &bench.Matrix{Lanes: lanes, Workloads: ws, QDs: qds, Conns: conns, Count: o.count,
		Timing: bench.Timing{Warmup: o.warmup, Duration: o.duration}, MaxContention: o.maxContention, Retries: o.retries}
	notes := []string{
		"iscsi-perf only reads and reports no latency: iSCSI rows exist for the read workloads only, without percentiles.",
		"A kernel-initiator figure (Debian's fio through the Linux NVMe/TCP host in the qemu guest) is not part of this matrix: under TCG the guest's own CPU emulation, not the target, sets the figure.",
	}
	if o.spdkDir == "" {
		notes = append(notes, "No SPDK build given (--spdk-dir): no SPDK peer and no spdk_nvme_perf rows.")
	}
	return m, notes, nil
}

// headline is the report's headline table for the terminal.
func headline(rep *bench.Report) string {
	md := rep.Markdown()
	start := strings.Index(md, "## Headline")
	end := strings.Index(md, "## Plots")
	if start < 0 || end < start {
		return ""
	}
	return strings.TrimSpace(md[start:end])
}
