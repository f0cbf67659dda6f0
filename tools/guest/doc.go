// Package guest boots a real Linux NVMe/TCP host under qemu so that sluice's
// targets can be tested against the kernel's nvme-tcp driver and nvme-cli, not
// only against our own initiator. The build machines have no NVMe drivers and no
// KVM, so the guest is a stock Debian kernel under qemu TCG with a small
// initramfs.
//
// # What it owns
//
//   - build-image.sh: downloads the Debian kernel package (apt-get download),
//     extracts an uncompressed vmlinux from its bzImage, resolves the module
//     closure of nvme-tcp and virtio-net from modules.dep, and packs busybox,
//     nvme-cli with its libraries, the modules, guestio and init.sh into a newc
//     cpio. It installs its own host packages (see its header) and caches
//     everything in $SLUICE_GUEST_DIR (default /var/cache/sluice/guest).
//   - init.sh: the guest's /init. It loads the modules, configures eth0
//     (10.0.2.15/24; no default route, so that nothing but the host is
//     reachable), writes /etc/nvme/hostnqn and hostid and
//     serves commands on ttyS0. The kernel console is ttyS1, so kernel messages
//     never mix with command output; dmesg has everything.
//   - guestio/: a static Go program for the guest that writes and verifies a
//     deterministic pattern with O_DIRECT (busybox dd has no O_DIRECT and cannot
//     verify): `guestio write|verify -dev D -bs N -count N -offset B -seed S`
//     and `guestio zero-check -dev D -offset B -len B`; exit 1 names the first
//     bad byte ("first bad offset=N"), exit 2 is any other failure.
//   - this package: Build, Boot, (*VM).Run, (*VM).Close, and Start and
//     SkipOrFail for tests.
//
// The guest also ships brd (modprobe brd: a RAM disk) and the kernel's own
// NVMe/TCP target, nvmet-tcp, so that a test can run a known-good target on
// the guest's loopback and compare sluice's behaviour with it (see
// nvmetLoopback in guest_test.go for the configfs steps).
//
// # How to use it
//
// From a test (under tools/: engine packages may not import tools, so an
// interop test that drives the target and this guest lives here or beside it):
//
//	vm := guest.Start(t, guest.Options{})   // build (cached) + boot, closed at cleanup
//	out, err := vm.RunOK(ctx, fmt.Sprintf(
//		"nvme connect -t tcp -a %s -s %d -n %s", guest.HostAddr, port, nqn))
//	out, code, err := vm.Run(ctx, "guestio verify -dev /dev/nvme0n1 -bs 4096 -count 256 -offset 0 -seed 1")
//
// A target listening on the host's 127.0.0.1:PORT is reached from the guest at
// HostAddr:PORT (qemu user networking); connections arrive from 127.0.0.1.
// Several VMs may run at once, each with its own user network (each guest is
// 10.0.2.15 in its own world); give them different Options.HostNQN/HostID to
// act as different hosts. Run executes a fresh `sh` per call (stdout and stderr
// combined, nothing carried over), one call at a time. nvme-cli's resv-report
// needs --eds, since the host identifier is 128 bits.
//
// Without qemu (or when the image cannot be built) Start skips the test, except
// under CI=true, where it fails: an interop test that silently skips proves
// nothing.
//
// Environment: SLUICE_GUEST_DIR (cache), SLUICE_GUEST_KERNEL_PKG (pin a kernel
// package), SLUICE_GUEST_REFRESH=1 (resolve linux-image-amd64 again),
// SLUICE_GUEST_LOGDIR (keep Start's console logs there).
//
// # Measured here (2 shared cores, Debian bookworm, qemu 7.2, kernel 6.1.0-56)
//
//   - Boot to a ready command server: 3.4 to 5 s; BenchmarkBoot gives 4.5-4.8
//     s a boot while other engineers load the machine (under a load of 10 one
//     boot took 12 s: DefaultBootTimeout is 90 s). The kernel reaches /init at
//     about 2.3-3 s guest time; init then spends about 0.7 s loading 20 modules
//     (signature checks under TCG). Measured alternatives, all slower: the
//     bzImage (+2.5 s unpacking xz under TCG), a gzip initramfs (up to +0.9 s),
//     the boot log on the emulated UART (+1.5 s, hence "quiet" until init),
//     SeaBIOS instead of qboot (+0.3 s), the NIC's iPXE ROM (+0.5 s).
//   - Image: vmlinux 63 MiB, initramfs 17 MiB uncompressed, of which nvme-cli's
//     libraries are 11 MiB (libnvme pulls libcrypto, libsystemd, libgcrypt,
//     ...), modules 1.9 MiB, busybox 1.9 MiB, guestio 1.7 MiB. Cache dir about
//     520 MB (the .deb and its extracted tree, kept for rebuilds).
//   - build-image.sh: cold 15 s with apt lists present (70 MB download, dpkg
//     extraction, depmod, xz), 1.2-1.6 s to rebuild the initramfs after an edit
//     to init.sh or guestio, 0.05-0.08 s warm.
//   - go test ./tools/guest/...: 20-25 s (TestGuest 10-17 s with one boot,
//     TestGuestTwoCPUs 6-7 s with another). Through the kernel's own nvmet on
//     the guest's loopback (the nvmet-loopback subtest), 4 KiB O_DIRECT reads
//     at queue depth 1 run at about 3.5 MiB/s: TCG, not the target, sets the
//     pace, so interop tests should move megabytes, not gigabytes.
//
// # What it must never do
//
//   - Reach anything but the host's loopback: tests address HostAddr only, and
//     the guest has no default route, so that any other address is unreachable
//     inside the guest rather than NATed out by qemu.
//   - Leave qemu running: every VM dies with its test binary (Pdeathsig), Close
//     kills it after a bounded wait, and every wait here has a timeout.
//   - Need KVM, a disk image or anything not installed by build-image.sh.
//   - Import unsafe, or be imported by engine packages.
package guest
