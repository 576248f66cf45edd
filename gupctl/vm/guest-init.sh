#!/bin/busybox sh
# shellcheck shell=dash
# PID 1 of gupctl's VM (see gupctl/vm/runner.py for the host side).
#
# Mounts the host's root read-only over 9p under a memory-backed overlay, with
# fresh proc/sys/dev/debugfs/securityfs/hugetlbfs and tmpfs on /dev/shm and /run; loads
# the gupctl kmod if asked; runs the job script the host wrote into the shared
# run directory, its output on the virtio consoles; and leaves the exit status
# and dmesg beside it.
# Parameters come from the kernel command line: gupctl_run=DIR (the shared run
# directory, as a host path), gupctl_kmod=1 (insmod DIR/gupctl.ko) and
# gupctl_tty=1 (the host's stdout is a terminal), gupctl_modules=DIR (a host
# module tree to show as /lib/modules/$(uname -r)), gupctl_userland=1 (the
# 9p share "userland" holds another architecture's userland, to lay over the
# host root: gupctl/vm/userland.py) and gupctl_hvc=N (the first of the two virtio
# consoles, where the machine's own console is hvc0).  No dots in their names:
# "gupctl.x=" would be a parameter of the gupctl module.

/bin/busybox --install -s /bin
export PATH=/bin

say() { echo "gupctl-init: $*" > /dev/console; }
die() { say "FATAL: $*"; poweroff -f; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# Saved results and plots name the host they ran on (gupctl/results.py): the
# kernel's default, "(none)", would read as no host at all.
echo gupctl-vm > /proc/sys/kernel/hostname

# shellcheck disable=SC2013 # words, not lines, are wanted here
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	gupctl_run=*) run="${arg#gupctl_run=}" ;;
	gupctl_kmod=1) kmod=1 ;;
	gupctl_tty=1) tty=1 ;;
	gupctl_modules=*) modules="${arg#gupctl_modules=}" ;;
	gupctl_userland=1) userland=1 ;;
	gupctl_hvc=*) hvc="${arg#gupctl_hvc=}" ;;
	esac
done
[ -n "$run" ] || die "no gupctl_run= on the kernel command line"

while read -r m; do
	insmod "/lib/modules/$m" || die "insmod $m failed"
done < /modules.list

# The host root, read-only, under an overlay whose upper layer is guest
# memory: everything the host has is visible (a checkout under /tmp too), and
# whatever the guest writes stays in the guest.
opts=trans=virtio,version=9p2000.L,msize=262144
mkdir -p /lower /rw
# cache=loose: the guest keeps what it has looked up and read.  Nothing on the
# host side changes while the VM runs (gupctl waits for it), and Python's
# imports are thousands of lookups: measured, the kernel tests' CLI-heavy
# files ran in 79 % of the time (60 tests, 6.12, TCG).  The run directory
# below, which both sides write, stays uncached.
mount -t 9p -o "$opts,ro,cache=loose" hostroot /lower || die "cannot mount the host root"
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir -p /rw/upper /rw/work
# The host's Python files that gupctl packed into the initramfs
# (gupctl/vm/pyimage.py), at their host paths: the top lower layer, read from
# memory; what it lacks is still read over 9p beneath it.
# Another architecture's userland goes between them: its /usr/bin/python3 and
# /bin/sh are the ones that run, and the host's paths are still there.
lower=/lower
if [ -n "$userland" ]; then
	mkdir -p /userland
	mount -t 9p -o "$opts,ro,cache=loose" userland /userland ||
		die "cannot mount the userland"
	lower=/userland:/lower
fi
[ -d /pyimage ] && lower="/pyimage:$lower"
mount -t overlay -o "lowerdir=$lower,upperdir=/rw/upper,workdir=/rw/work" overlay /host ||
	die "cannot mount the overlay"
mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t devtmpfs devtmpfs /host/dev
mount -t debugfs debugfs /host/sys/kernel/debug
if [ -d /host/sys/kernel/security ]; then
	# /sys/kernel/security/lockdown (CONFIG_SECURITYFS), read by gupctl/lockdown.py
	mount -t securityfs securityfs /host/sys/kernel/security ||
		die "cannot mount securityfs"
fi
if grep -q cgroup2 /proc/filesystems; then
	# cgroup v2 where systemd puts it: memory.max for tests/kernel/test_faults.py
	mount -t cgroup2 cgroup2 /host/sys/fs/cgroup || die "cannot mount cgroup2"
fi
mkdir -p /host/dev/hugepages /host/dev/shm
mount -t hugetlbfs hugetlbfs /host/dev/hugepages
mount -t tmpfs -o mode=1777 tmpfs /host/dev/shm
mount -t tmpfs -o mode=0755 tmpfs /host/run
if [ -n "$modules" ]; then
	# A kernel unpacked into gupctl's cache: its modules where modprobe looks.
	release=$(uname -r)
	mkdir -p "/host/lib/modules/$release"
	mount --bind "/host$modules" "/host/lib/modules/$release" ||
		die "cannot bind $modules"
fi
mkdir -p "/host$run"
mount -t 9p -o "$opts" gupctl_run "/host$run" || die "cannot mount the run directory"

if [ -n "$kmod" ]; then
	insmod "/host$run/gupctl.ko" || die "insmod gupctl.ko failed"
fi
# The kernel booted and the job starts: a guest lost after this is the job's.
: > "/host$run/started" || die "cannot write to the run directory"

# hvc0 and hvc1 (or the two from gupctl_hvc on) are the host's stdout and stderr.  They are terminals here;
# where the host's are not, pipes keep programs from styling their output.
# Raw: no \n -> \r\n translation on the way out.  Held open (fds 3, 4) so
# that the setting outlives stty.
out=/dev/hvc${hvc:-0}
err=/dev/hvc$((${hvc:-0} + 1))
exec 3<> "$out" 4<> "$err"
stty raw -echo <&3 && stty raw -echo <&4
if [ -n "$tty" ]; then
	chroot /host /bin/sh "$run/job.sh" < /dev/null > "$out" 2> "$err"
	status=$?
else
	set -o pipefail
	mkfifo /stderr
	cat /stderr > "$err" &
	chroot /host /bin/sh "$run/job.sh" < /dev/null 2> /stderr | cat > "$out"
	status=$?
	wait
fi
dmesg > "/host$run/dmesg"
echo "$status" > "/host$run/status"
sync
poweroff -f
