// Package guest boots a real Linux NVMe/TCP host and iSCSI initiator under qemu
// so that sluice's targets can be tested against the kernel's nvme-tcp driver
// and nvme-cli, and against its iscsi_tcp initiator and open-iscsi (iscsid,
// iscsiadm), not only against our own initiators. The build machines have no
// NVMe or SCSI drivers and no KVM, so the guest is a stock Debian kernel under
// qemu TCG with a small initramfs.
//
// # What it owns
//
//   - build-image.sh: downloads the Debian kernel package (apt-get download),
//     extracts an uncompressed vmlinux from its bzImage, resolves the module
//     closure of nvme-tcp, iscsi_tcp, sd_mod, sg and virtio-net from
//     modules.dep, downloads open-iscsi (and the libraries of it the host
//     lacks) without installing it, and packs busybox, nvme-cli, iscsid,
//     iscsiadm, sg_inq and sg_persist with their libraries, the modules,
//     guestio and init.sh into a newc cpio. It installs its own host packages
//     (see its header) and caches everything in $SLUICE_GUEST_DIR (default
//     /var/cache/sluice/guest).
//   - init.sh: the guest's /init. It loads the modules, configures eth0
//     (10.0.2.15/24; no default route, so that nothing but the host is
//     reachable), writes /etc/nvme/hostnqn and hostid and
//     /etc/iscsi/initiatorname.iscsi, and serves commands on ttyS0. The kernel
//     console is ttyS1, so kernel messages never mix with command output; dmesg
//     has everything.
//   - iscsid.conf and iscsid-start.sh: the guest's /etc/iscsi/iscsid.conf
//     (Debian's defaults, bounded retries) and /usr/sbin/iscsid-start, which
//     starts iscsid in the background, logging to /run/iscsid.log, and waits
//     until it answers. iscsiadm runs it itself when a request needs the daemon
//     (iscsid.startup), so tests just call iscsiadm; run `iscsid-start -d 4`
//     first for iscsid's debug output.
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
// 10.0.2.15 in its own world); give them different Options.HostNQN/HostID (and
// Options.InitiatorName) to act as different hosts. Run executes a fresh `sh`
// per call (stdout and stderr combined, nothing carried over), one call at a
// time. nvme-cli's resv-report needs --eds, since the host identifier is 128
// bits.
//
// iSCSI: SendTargets answers with the portal as the target listens on it
// (127.0.0.1:PORT), which the guest cannot reach through qemu's NAT, so
// iscsiadm's discovered node record is useless here; make one for the guest's
// view of the portal and log in with it (the LUN appears as /dev/sdX, found
// through /sys/class/iscsi_session/*/device/target*/*/block: there is no udev,
// hence no /dev/disk/by-path):
//
//	iscsiadm -m discovery -t sendtargets -p 10.0.2.2:PORT   // lists the target
//	iscsiadm -m node -o new -T IQN -p 10.0.2.2:PORT,1
//	iscsiadm -m node -T IQN -p 10.0.2.2:PORT --login
//
// Without qemu (or when the image cannot be built) Start skips the test, except
// under CI=true, where it fails: an interop test that silently skips proves
// nothing.
//
// Environment: SLUICE_GUEST_DIR (cache), SLUICE_GUEST_KERNEL_PKG (pin a kernel
// package), SLUICE_GUEST_REFRESH=1 (resolve linux-image-amd64 and download
// open-iscsi again), SLUICE_GUEST_LOGDIR (keep Start's console logs there).
//
// # Measured here (2 shared cores, Debian bookworm, qemu 7.2, kernel 6.1.0-57)
//
//   - Boot to a ready command server: 3 to 6 s, more under load (a load of 10
//     gives 5-12 s, and once 22 s: DefaultBootTimeout is 90 s). At the
//     quietest moment, 3.0-3.2 s against 2.7-2.8 s before the iSCSI initiator
//     was added; with the machine loaded the two are within noise of each
//     other (medians 5.9 and 5.5 s over 10 interleaved boots). The kernel
//     reaches /init at about 2-3 s guest time; init then spends about 0.8 s
//     loading 28 modules (signature checks under TCG), of which 0.2-0.4 s go
//     to the 8 for iSCSI and SCSI disks (scsi_mod is the largest). Measured
//     alternatives, all slower: the bzImage (+2.5 s unpacking xz under TCG),
//     a gzip initramfs (up to +0.9 s), the boot log on the emulated UART
//     (+1.5 s, hence "quiet" until init), SeaBIOS instead of qboot (+0.3 s),
//     the NIC's iPXE ROM (+0.5 s).
//   - Image: vmlinux 63 MiB, initramfs 22 MiB uncompressed (17 MiB before the
//     iSCSI initiator), of which nvme-cli's libraries are 11 MiB (libnvme
//     pulls libcrypto, libsystemd, libgcrypt, ...), open-iscsi 3.1 MiB
//     (iscsid and iscsiadm 0.8, libisns and libopeniscsiusr 0.6, and the
//     libmount, libblkid, libselinux, libpcre2 and libkmod they load 1.7),
//     modules 3.3 MiB (1.9 before; scsi_mod alone is 0.6), busybox 1.9 MiB,
//     guestio 1.7 MiB, sg_inq and sg_persist with libsgutils2 0.4 MiB. Cache
//     dir about 520 MB (the kernel .deb and its extracted tree, kept for
//     rebuilds; open-iscsi's three .debs are 0.5 MB).
//   - build-image.sh: cold 15 s with apt lists present (70 MB download, dpkg
//     extraction, depmod, xz; open-iscsi adds a 0.5 MB download), 1.5-3 s to
//     rebuild the initramfs after an edit to init.sh, the iSCSI files or
//     guestio (4.5 s under a load of 10), 0.05-0.3 s warm.
//   - go test ./tools/guest/...: 20-28 s (TestGuest 10-17 s with one boot,
//     TestGuestTwoCPUs 6-9 s with another). Through the kernel's own nvmet on
//     the guest's loopback (the nvmet-loopback subtest), 4 KiB O_DIRECT reads
//     at queue depth 1 run at about 3.5 MiB/s: TCG, not the target, sets the
//     pace, so interop tests should move megabytes, not gigabytes. Through
//     iscsi_tcp to sluice's iSCSI target on the host, O_DIRECT at queue depth
//     1 moves about 2.5 MiB/s in 4 KiB and 11 MiB/s in 128 KiB; a login or a
//     logout takes 0.2 s; TestLinuxISCSIInitiator (tools/interop) takes
//     23 s at a load of 4, 40-65 s at 7-13.
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
