// Package interop holds the tests that prove sluice against peers we did not write:
// the Linux kernel NVMe/TCP host with nvme-cli, booted under qemu (package
// sluice/tools/guest), and the process-level behaviours a real deployment relies on
// (restart, kill -9 durability, graceful drain). The tests build and run the real
// daemon binary.
//
// They are slow (a guest boots in seconds under TCG, and each nvme-cli step is a
// round trip through an emulated CPU), so `make interop` runs them with bounded
// timeouts and `make test` calls it. Under CI=true a test that cannot run fails.
package interop
