// Package bench is sluice's benchmark harness, a product feature: operators run it to
// size a deployment and to compare sluice with what they run today, on the machine in
// front of them.
//
// What it owns:
//   - the workload matrix (workload.go): 4 KiB random read, write and 70/30 mix, 128 KiB
//     sequential read and write, at queue depths 1, 8, 32 and the target's largest,
//     over one and several connections;
//   - targets started and stopped around each block of points, pinned to the same
//     core and given the same backing size (target*.go): sluiced over NVMe/TCP on
//     null, malloc and file bdevs, and over iSCSI once the daemon registers the
//     iscsi_* RPCs; the raw-socket limit (rawlimit.go, re-executed as
//     "sluicebench rawserver"); and the peers: tgt for iSCSI, and SPDK's nvmf_tgt and
//     iscsi_tgt from a build the user points at;
//   - initiators (initiator*.go, load.go, rawclient.go): the project's NVMe/TCP
//     initiator in this process, busy-polling raw non-blocking sockets on one pinned
//     thread (engine/nvmf/host's BusyPoll and Poll); the limit's raw-syscall client;
//     spdk_nvme_perf; libiscsi's iscsi-perf. One initiator drives every target of a
//     comparison, and each figure names its initiator and says whether the initiator
//     or the target bounded it;
//   - the figures users can trust (hist.go, stats.go): warm-up, then a measured window;
//     repetitions with median and range; HDR histograms for latency; the target's CPU
//     time per million I/Os from /proc; ratios to the limit and to the peer paired
//     within a repetition, because this shared 2-core machine drifts between minutes;
//     and each point's contention (other people's CPU time on the benchmark's cores),
//     re-measuring points that were disturbed;
//   - the results directory (runner.go, report.go, plot.go, machine.go, micro.go): one
//     JSON file per point, results.json, report.md with machine facts, SVG and PNG
//     plots, benchstat input, and the packages' go test -bench against a baseline.
//
// Who calls it: bench/cmd/sluicebench (make bench) and its own tests, which run the
// quick matrix end to end against a real daemon. Nothing in engine/ imports it.
//
// What it must never do: allocate or hand the thread to the scheduler per I/O on its
// load paths (asserted with testing.AllocsPerRun), time a test, or leave a target or
// peer running: every process it starts dies with it (Pdeathsig) or is stopped by it.
package bench
