// Package bpf is sluice's eBPF tracer: the C programs that run on uprobes at the probe
// sites of sluice/engine/probe, their bpf2go output, and the Go side that attaches them
// to a running sluice process and reads what they gathered. tools/sluicetrace presents
// it; tests (tools/interop, and this package's own with a synthetic driver) call it
// directly.
//
// What it owns:
//   - sluice.c (with include/types.h, the few UAPI definitions it needs): six uprobe
//     programs, one per site. A start site records (CLOCK_MONOTONIC, tag) in `flights`
//     under the operation's key; its end site finds it, adds the latency to the series'
//     log-linear histogram in `stats` (8 buckets per power of two, within 12.5%; hist.go
//     mirrors the bucket math), keeps the series' sampled depth and its time integral,
//     and sends an event to the `events` ring buffer when the latency reaches the kind's
//     outlier threshold (set at load time). Series are per (I/O, reactor, volume), per
//     (replication, volume, partner) for send→ack, and per (journal, volume).
//   - sluice_x86_bpfel.{go,o}: bpf2go's output, committed so that building needs no
//     clang; gen.sh regenerates it (go generate), and `make bpf-check` fails when stale.
//   - Attach (tracer.go): finds the binary through /proc/PID/exe and the stubs and the
//     probe state in its ELF symbol table (target.go), writes the sampling thresholds
//     into the process through /proc/PID/mem, then attaches one uprobe per site with
//     perf_event_open (no tracefs needed) filtered to the pid, each with its group's
//     semaphore as ref_ctr_offset: the kernel raises the semaphore with the first probe
//     and lowers it with the last, also when the tracer dies. Never a uretprobe.
//   - Snapshot and ReadEvent, the reading side; Semaphores, for tests and tools that
//     check that a process is (no longer) traced.
//
// Who may call it: tools and tests, as root (BPF, /proc/PID/mem). Nothing under engine/
// imports it: the engine offers its sites through engine/probe and never knows whether
// anybody listens. RLIMIT_MEMLOCK is raised where possible and ignored otherwise (kernels
// from 5.11 charge BPF memory to the cgroup).
//
// What it must never do: write to a process anything but the probe state's sampling
// thresholds, attach a uretprobe, or leave a probe attached after Close.
//
// Tests: hist_test.go checks the bucket math; tracer_test.go drives every site from
// internal/probedriver (a synthetic driver, standing in for the replication sites that
// have no caller yet) and checks counts, latencies against the driver's clock, outlier
// events, sampling, two tracers at once and the semaphores; BenchmarkSiteHit measures a
// hit's cost.
package bpf
