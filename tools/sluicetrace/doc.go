// Command sluicetrace attaches sluice's eBPF tracer (package sluice/bpf) to a running
// daemon by pid and shows what its probe sites report: per volume and reactor, the I/O
// latency histograms (bpftrace style, with p50/p99/p99.9) and the average queue depth of
// each interval; per volume and partner, the replication send→ack latency; per volume,
// the journal residence time; and every operation slower than the outlier thresholds.
//
//	sluicetrace -p PID [-interval 1s] [-duration 0] [-sample 64] [-repl-sample 1]
//	            [-io] [-repl] [-outlier 1ms] [-repl-outlier 10ms] [-json] [-svg FILE]
//
// Counts and rates are scaled by the sampling (-sample: 1 I/O command in N, 64 by
// default, which keeps the cost of tracing a saturated reactor within a few percent).
// It finds the binary through /proc/PID/exe and the probe sites in its ELF symbol table
// (a daemon built with -ldflags=-s cannot be traced). -json prints one JSON object per
// interval and per outlier instead of the histograms; -svg writes a latency heatmap
// over time when it stops (after -duration, or on SIGINT/SIGTERM). Detaching (any exit)
// lowers the daemon's probe semaphores: its sites go back to one load and branch.
//
// It owns only presentation (render.go: terminal and JSON; heatmap.go: SVG); attaching
// and reading belong to sluice/bpf, and main.go only parses flags and wires them.
// Needs root (BPF and /proc/PID/mem).
package main
