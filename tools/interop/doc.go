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
package interop
