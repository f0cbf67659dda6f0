#!/bin/sh
# iscsid-start [iscsid options]: start open-iscsi's iscsid in the sluice guest
# (build-image.sh installs this as /usr/sbin/iscsid-start) and wait until it
# answers iscsiadm. The guest has no init system: iscsiadm runs this itself when
# iscsid is not running (iscsid.startup in /etc/iscsi/iscsid.conf), and a test
# may run it first to pass options, e.g. `iscsid-start -d 4` for debug output.
# Does nothing when iscsid already runs.
#
# iscsid stays in the foreground (-f) of a background job, so that its messages
# go to /run/iscsid.log (there is no syslog to take them); cat that file, with
# dmesg, when a login fails. setsid puts it out of the caller's session: the
# command server's timeout kills a script, never the daemon it started.

ready() { grep -q '@ISCSIADM_ABSTRACT_NAMESPACE' /proc/net/unix; }

ready && exit 0
if ! pidof iscsid >/dev/null; then
	# init.sh creates these too; a daemon started by hand must not depend on it.
	mkdir -p /run/lock/iscsi /var/lib/iscsi /etc/iscsi/nodes /etc/iscsi/send_targets \
		/etc/iscsi/ifaces /etc/iscsi/isns /etc/iscsi/static
	setsid iscsid -f "$@" </dev/null >>/run/iscsid.log 2>&1 &
fi
i=0
while ! ready; do
	if [ $i -ge 100 ]; then
		echo "iscsid-start: iscsid does not answer after 10 s; /run/iscsid.log:" >&2
		cat /run/iscsid.log >&2
		exit 1
	fi
	sleep 0.1
	i=$((i + 1))
done
