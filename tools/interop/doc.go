// Package interop holds the tests that prove sluice against peers we did not write:
// the Linux kernel NVMe/TCP host with nvme-cli, booted under qemu (package
// sluice/tools/guest), and the process-level behaviours a real deployment relies on
// (restart, kill -9 durability, graceful drain). The tests build and run the real
// daemon binary.
//
// They are slow (a guest boots in seconds under TCG, and each nvme-cli step is a
// round trip through an emulated CPU), so `make interop` runs them with bounded
// timeouts and `make test` calls it. Under CI=true a test that cannot run fails.
//
// Reservations: resv_linux_test.go drives two host identities of the Linux host with
// nvme-cli; resv_restart_test.go keeps a standalone node's PTPL state across restarts
// and checks its ownership claims; group_test.go (build tag grouptest, `make
// group-test`, which `make test` runs after the qemu suites, never beside them) runs a
// three-node group of daemons on 127.0.0.2-4 through the admission rule, failover and a
// whole-group restart. resv_bench_test.go and group_test.go hold the reservation
// benchmarks (`make bench-resv`).
//
// iSCSI lifecycle: lifecycle_iscsi_test.go drives the daemon's default volume (LUN 0
// of iqn.2026-11.dev.sluice:vol0) through engine/iscsi/initiator with sixteen 4 KiB and
// 64 KiB writes in flight, 20 to 60 rounds per event within a time budget: TCP RST,
// logout, ABORT TASK, LUN RESET, session reinstatement, iscsi_delete_target_node and
// recreation, CHECK CONDITION from an error bdev over a delay bdev on a second node,
// SIGTERM (exit 0) and kill -9 with restarts. After every round a fresh session reads
// back sector stamps (LBA, generation) against what was acknowledged, and
// iscsi_get_connections must be empty. Across kill -9 only FUA writes count as
// acknowledged: the file bdev's write cache is volatile until FUA or SYNCHRONIZE
// CACHE, while SIGTERM's drain flushes every acknowledged write.
package interop
