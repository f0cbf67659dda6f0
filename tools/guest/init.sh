#!/bin/sh
# /init of the sluice guest (busybox sh, PID 1). build-image.sh copies this file
# into the initramfs unchanged; package sluice/tools/guest drives it.
#
# Consoles: the kernel's console is ttyS1 (qemu sends it to the harness's log),
# and the command server below runs on ttyS0, so kernel messages can never
# interleave with command output. dmesg keeps everything.
#
# Kernel command line parameters read here (all optional):
#   sluice.nonce=STR     echoed in the ready line, so the harness knows this boot is its own
#   sluice.hostnqn=NQN   overrides the default /etc/nvme/hostnqn
#   sluice.hostid=UUID   overrides the default /etc/nvme/hostid
#   sluice.initiatorname=IQN  overrides the default InitiatorName in
#                        /etc/iscsi/initiatorname.iscsi (open-iscsi's identity)
# The defaults must stay equal to HostNQN, HostID and InitiatorName in image.go
# (TestGuest checks).

export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /tmp /run /root
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run

nonce=none
hostnqn=nqn.2014-08.org.nvmexpress:uuid:5a1c3e00-7b2d-4c9e-8f10-2e6d4b8a9c01
hostid=5a1c3e00-7b2d-4c9e-8f10-2e6d4b8a9c01
initiatorname=iqn.2026-11.dev.sluice:guest
read -r cmdline </proc/cmdline
# Word splitting is the point: the command line is space-separated parameters.
# shellcheck disable=SC2086
for p in $cmdline; do
	case $p in
	sluice.nonce=*) nonce=${p#*=} ;;
	sluice.hostnqn=*) hostnqn=${p#*=} ;;
	sluice.hostid=*) hostid=${p#*=} ;;
	sluice.initiatorname=*) initiatorname=${p#*=} ;;
	esac
done

# Modules in dependency order, computed on the host from modules.dep (the guest
# has modprobe and a trimmed modules.dep too, for the kernel's own requests).
kdir=/lib/modules/$(uname -r)
while read -r m; do
	[ -n "$m" ] || continue
	insmod "$kdir/$m" || echo "init: insmod $m failed" >&2
done </etc/sluice/modules

# Boot ran with "quiet" (printing the whole boot log on the emulated UART costs
# about 1.5 s); from here on, informational messages such as nvme's "new ctrl"
# go to the kernel console (ttyS1) too, which is what one wants in a test log.
dmesg -n 7

# nvme-cli does not need configfs; the kernel's own target (nvmet, shipped for
# reference tests) is configured through it.
mount -t configfs configfs /sys/kernel/config 2>/dev/null

# Network: qemu user networking; 10.0.2.2 is the host's loopback and the only
# peer a test needs. Deliberately no default route (slirp would NAT it out to
# the world): the on-link 10.0.2.0/24 route reaches the host, and a mistyped
# address fails at once with "network unreachable" instead of leaving the machine.
ip link set lo up
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0

mkdir -p /etc/nvme
echo "$hostnqn" >/etc/nvme/hostnqn
echo "$hostid" >/etc/nvme/hostid

# open-iscsi: its identity, and the directories iscsid and iscsiadm expect (the
# node database lives in /etc/iscsi, locks in /run/lock/iscsi). iscsid itself
# starts on demand: iscsiadm runs /usr/sbin/iscsid-start when it finds no
# daemon (iscsid.startup in /etc/iscsi/iscsid.conf), which logs to /run/iscsid.log.
mkdir -p /etc/iscsi/nodes /etc/iscsi/send_targets /etc/iscsi/ifaces /etc/iscsi/isns \
	/etc/iscsi/static /run/lock/iscsi /var/lib/iscsi
echo "InitiatorName=$initiatorname" >/etc/iscsi/initiatorname.iscsi

# The command server. Protocol, one request per line from the host:
#   "<id> <timeout-seconds> <base64 of a shell script> <id>"
# answered with
#   "@@SLUICE-BEGIN <id>@@\n" <combined stdout+stderr> "\n@@SLUICE-END <id> <status>@@\n"
# Base64 keeps multi-line scripts and any quoting out of the tty and this
# parser; raw mode without echo means the tty neither echoes the request nor
# rewrites newlines. The id at both ends catches a line that lost bytes: it is
# answered with status 254 instead of running a mangled script. Each script
# runs in a fresh sh with stdin from /dev/null (so it cannot eat later
# requests) under a kill timeout (so a hung command cannot wedge the server).
serve() {
	echo "@@SLUICE-READY $nonce@@"
	while IFS= read -r line; do
		[ -n "$line" ] || continue
		# Split on spaces; base64 and ids contain none.
		# shellcheck disable=SC2086
		set -- $line
		id=$1 secs=$2 b64=$3
		if [ $# -ne 4 ] || [ "$1" != "$4" ] || ! echo "$b64" | base64 -d >/tmp/.sluice-cmd 2>/dev/null; then
			# Answer under the last id on the line: the host is waiting for it.
			last=${line##* }
			printf '@@SLUICE-BEGIN %s@@\nsluice: garbled request\n@@SLUICE-END %s 254@@\n' "$last" "$last"
			continue
		fi
		printf '@@SLUICE-BEGIN %s@@\n' "$id"
		timeout -s KILL "$secs" sh /tmp/.sluice-cmd </dev/null 2>&1
		rc=$?
		printf '\n@@SLUICE-END %s %d@@\n' "$id" "$rc"
	done
}

stty -F /dev/ttyS0 raw -echo
# The server runs in a child, not in PID 1. Orphans (what a killed command left
# behind, busybox timeout's watcher) are re-parented to PID 1, and each one's
# SIGCHLD interrupts PID 1's `read`: busybox ash then restarts the read from
# scratch and drops the bytes it had already taken from the tty (seen as a lost
# request right after a command timed out). PID 1 only waits, reaping orphans.
serve </dev/ttyS0 >/dev/ttyS0 2>&1 &
server=$!
while kill -0 "$server" 2>/dev/null; do
	wait "$server"
done
# The server ended (the host closed the console): nothing more can be asked,
# so power off instead of letting PID 1 exit (which would panic).
poweroff -f
