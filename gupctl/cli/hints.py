"""The one place where errors become text: what went wrong, and the next step."""

from __future__ import annotations

import errno as E
import os
import resource

from gupctl import errors
from gupctl.memory import PAGE_SIZE

KMOD_STEP = "sudo gupctl kmod install"

NOT_FOUND = {
    errors.DIAG_NO_DEBUGFS: "debugfs is not mounted (where CONFIG_GUP_TEST puts gup_test) and "
    "the gupctl kmod is not loaded: mount it with `sudo mount -t debugfs none "
    f"/sys/kernel/debug`, or load the kmod with `{KMOD_STEP}`",
    errors.DIAG_NO_KMOD: "this kernel has no gup_test (CONFIG_GUP_TEST is off) and the gupctl "
    f"kmod is not loaded: load it with `{KMOD_STEP}`, or run in a VM: `gupctl vm -- gupctl ...`",
    errors.DIAG_EXPLICIT: "{tried} does not exist: check --device or $GUPCTL_DEVICE",
}

DEVICE = {
    E.EACCES: "permission denied on {path}: gup_test is root-only unless the gupctl group is "
    "given the kmod's device; run as root, or `sudo gupctl kmod install --user $USER` and log "
    "in again",
    E.EPERM: "{path} refused: the kernel is locked down, and debugfs files with ioctls cannot "
    "be opened; load gupctl's kmod, signed with a key the kernel trusts (`{kmod}`): gupctl "
    "then uses its /dev/gup_test",
    E.ENOTTY: "{path} does not know {command}: ABI mismatch (gup_test's ABI changed in v5.7, "
    "v5.10, v5.11, v5.13 and v6.1); compare `gupctl abi` with the kernel's mm/gup_test.h",
    E.EINVAL: "{path} rejected {command}: an ABI mismatch (older kernel, see `gupctl abi`) "
    "or an argument it refuses (flags, alignment, size)",
    E.E2BIG: "{command} asks for more pages than the kmod allows: use a smaller --size, or "
    "reload the kmod with max_pages=N",
    E.EBUSY: "{path} already holds longterm test pins: stop them first",
    # kmod/gupctl_main.c gupctl_charge(): every page a command holds counts against
    # RLIMIT_MEMLOCK without CAP_IPC_LOCK, the benchmarks' included.
    E.ENOMEM: "the kernel could not allocate memory for {command}, or its pages would exceed "
    "this process's RLIMIT_MEMLOCK ({memlock}), which gupctl's kmod charges them to without "
    "CAP_IPC_LOCK: use a smaller --size, or raise the limit (`ulimit -l`, memlock in "
    "/etc/security/limits.conf)",
    E.EFAULT: "the kernel could not access the buffer for {command}",
    E.EINTR: "{command} was interrupted by a signal",
    E.ENOENT: "{path} does not exist: load the kmod (`{kmod}`) or pass --device",
}

MAPPING = {
    E.ENOMEM: "could not map {backing} memory ({what}): for hugetlb reserve pages with "
    "`echo N | sudo tee /proc/sys/vm/nr_hugepages`; otherwise use a smaller --size",
    E.ENOENT: "{what}: the file does not exist; pass --create to let gupctl create it",
    E.EEXIST: "{what}: the file exists already; drop --create to use it as it is",
    E.EFBIG: "{what}: grow the file, or use --create with a new path",
    E.EINVAL: "{what}: invalid for {backing} memory (check --size against the page size)",
    E.ENOSYS: "{what}: not supported by this kernel or architecture",
}

# gupctl/thp.py only(): the per-size knobs of --thp-size.
THP = {
    E.EACCES: "{what}: --thp-size writes the THP knobs for the run: run as root, or set them "
    "yourself (the size madvise or always, the others never) and drop --thp-size",
    E.EINVAL: "{what}: pass --thp-size with one of them",
}
THP[E.EPERM] = THP[E.EROFS] = THP[E.EACCES]

VM = {
    "tool": "{what}: install it (see README: `bash .ci/setup`)",
    "kernel": "{what}: pass --kernel with a series Debian has (6.1, 6.12, 7.2, 7.3), an "
    "exact release, a /boot/vmlinuz-* path, or source[:SERIES|PATH]",
    "archive": "{what}: gupctl fetches kernels from Debian's archive with its own apt "
    "configuration (apt/ in gupctl's cache); check that the archive is reachable, or set "
    "GUPCTL_DEBIAN_MIRROR",
    "build": "{what}",
    "boot": "{what}, before the command started; console log: {log}",
    "lost": "{what}: the guest died or hung before the command finished; console log: {log}",
    "timeout": "{what}: raise --timeout, or look at the console log: {log}",
    "problem": "{what}: the guest kernel reported it; console log: {log}",
    "usage": "{what}",
}

RESULTS = {
    "missing": "{what}: save results first with `gupctl bench ... --save {path}`",
    "unreadable": "{what} ({err}): check the path and its permissions",
    "json": "{what}: pass a file written by `gupctl bench --save`",
    "format": "{what}: pass a file written by `gupctl bench --save` (bench --json output is "
    "a bare list; re-run with --save FILE)",
    "fields": "{what}: the file is damaged or from an incompatible gupctl; re-run the "
    "benchmark with --save",
    "write": "{what} ({err}): check that the directory exists and is writable",
    "empty": "{what}: save a run with `gupctl bench ... --save FILE` first",
}

MODULE = {
    "root": "{what}: run `sudo gupctl kmod {command}`",
    "sources": "{what}: reinstall gupctl (the wheel carries kmod/), or point GUPCTL_KMOD_DIR "
    "at a gupctl checkout's kmod/",
    "dkms": "{what}: install it with `sudo apt-get install dkms`, or use `gupctl kmod build` "
    "and `sudo gupctl kmod load` (not rebuilt on kernel upgrades)",
    "headers": "{what}: install them with `sudo apt-get install linux-headers-{release}`",
    "user": "{what}: name an existing user with --user (see `getent passwd`)",
    "build": "{what}: the compiler's messages are in {log}",
    "load": "{what}: see `sudo dmesg | tail` for the kernel's reason",
    "signing": "{what}: enroll DKMS's key with `sudo mokutil --import /var/lib/dkms/mok.pub`, "
    "reboot, confirm it in MokManager, then `sudo gupctl kmod load`",
    "busy": "{what}: a process holds /dev/gup_test open (see `sudo fuser -v /dev/gup_test`); "
    "end it first",
}

ENV = {
    "cache": "{what}: point GUPCTL_CACHE at a directory gupctl may write, as an absolute "
    "path without commas or white space, or unset it (default: ~/.cache/gupctl)",
    "mirror": "{what}: set it to a Debian archive's URL (http://deb.debian.org/debian), or "
    "unset it",
    "kmod_dir": "{what}: point it at a gupctl checkout's kmod/, or unset it to use the kmod "
    "sources gupctl carries",
}

PIN_REFUSED = {
    # v6.5 check_vma_flags(): writable_file_mapping_allowed() says -EFAULT.
    (E.EFAULT, "file"): "the kernel refused to longterm-pin {backing} memory: "
    "FOLL_LONGTERM|FOLL_WRITE pins of shared file pages on ext4/xfs/btrfs are refused; "
    "use tmpfs (/dev/shm), memfd or anonymous memory, or drop --write",
    (E.EFAULT, ""): "the kernel could not longterm-pin {backing} memory (it faulted): "
    "check the mapping's permissions, or use --write on private memory",
    (E.EOPNOTSUPP, ""): "the kernel refuses FOLL_LONGTERM pins of {backing} memory "
    "(fsdax and similar): use tmpfs, memfd or anonymous memory",
    # mm/gup_test.c answers START with -EINVAL while its pins are held (global
    # state up to 6.12, so another process's), and 6.1's has no START at all.
    (E.EINVAL, ""): "{path} refused PIN_LONGTERM_TEST_START: up to 6.12 the in-kernel "
    "gup_test's longterm pins are global and another process holds them (`gupctl longterm "
    "stop`, then retry); 6.1's has no longterm commands (load the kmod)",
    # kmod/gupctl_main.c gupctl_charge(): longterm pins count against RLIMIT_MEMLOCK, as RDMA's.
    (E.ENOMEM, ""): "{path} refused PIN_LONGTERM_TEST_START (ENOMEM): the pins would exceed "
    "this process's RLIMIT_MEMLOCK ({memlock}), which the kmod charges them to without "
    "CAP_IPC_LOCK; raise it (`ulimit -l`, memlock in /etc/security/limits.conf) or use a "
    "smaller --size",
}

# Errnos whose meaning depends on the command (keyed by errno and command name).
DEVICE_COMMAND: dict[tuple[int | None, str | None], str] = {
    # kmod/gupctl_longterm.c gupctl_longterm_read(): READ only from the mm that started the pins.
    (E.EPERM, "PIN_LONGTERM_TEST_READ"): "{path} refused PIN_LONGTERM_TEST_READ: another "
    "process started these pins (the fd was inherited through fork() or passed); read them "
    "in the process that started them",
    # kmod/gupctl_extract.c: built against a kernel without iov_iter_extract_pages() (v6.3+).
    (E.EOPNOTSUPP, "GUPCTL_EXTRACT"): "{path} has no iov_iter_extract_pages(): this kernel "
    "predates v6.3, where it came in; run on 6.3 or newer (`gupctl vm --kernel 6.12 -- ...`)",
    # kmod/gupctl_pages.c gupctl_pages_ioctl(): what a frame holds is root's, as /proc/kpagecount.
    (E.EPERM, "GUPCTL_PAGES"): "{path} refused GUPCTL_PAGES: reading page frames needs "
    "CAP_SYS_ADMIN, as /proc/kpagecount does; run gupctl pins as root",
    # kmod/gupctl_main.c's privilege model: what root-only upstream does that a group must not.
    (E.EPERM, "DUMP_USER_PAGES_TEST"): "{path} refused DUMP_USER_PAGES_TEST: dump_page() "
    "logs page frame numbers and kernel addresses, so gupctl's kmod keeps it for "
    "CAP_SYS_ADMIN; run gupctl dump as root",
    (E.EPERM, "GUPCTL_EXTRACT"): "{path} refused GUPCTL_EXTRACT of kernel pages (bvec, "
    "kvec, xarray): gupctl's kmod allocates them on request, so it keeps them for "
    "CAP_SYS_ADMIN; run as root, or extract the caller's own memory (ubuf, iovec)",
}
for _name in ("GUP_FAST_BENCHMARK", "PIN_FAST_BENCHMARK", "PIN_LONGTERM_BENCHMARK",
              "GUP_BASIC_TEST", "PIN_BASIC_TEST"):  # fmt: skip
    DEVICE_COMMAND[(E.EPERM, _name)] = (
        f"{{path}} refused {_name}: FOLL_FORCE writes through mappings the caller may not "
        "write, so gupctl's kmod keeps it for CAP_SYS_ADMIN; drop force from --flags, or run "
        "as root"
    )


# Commands only gupctl's kmod serves (type 'x'): mm/gup_test.c answers every
# command it does not know with EINVAL, a kmod older than the command ENOTTY.
for _name in ("GUPCTL_EXTRACT", "GUPCTL_PAGES"):
    DEVICE_COMMAND[(E.EINVAL, _name)] = (
        f"{{path}} does not serve {_name}: the in-kernel gup_test has no such command; load "
        "gupctl's kmod and pass --device /dev/gup_test"
    )
    DEVICE_COMMAND[(E.ENOTTY, _name)] = (
        f"{{path}} does not know {_name}: the loaded kmod is older than this gupctl; "
        f"reinstall it with `{KMOD_STEP}`"
    )


def hint(err: errors.GupctlError) -> str:
    """One line for `err`: the problem, then the next step."""
    if isinstance(err, errors.FlagsError):
        step = "pass --force-flags if you mean it, or use" if err.internal else "use"
        return f"{err.what}: {step} this kernel's flags: {','.join(err.valid)}, or a number"
    if isinstance(err, errors.PinRefused):
        kind = "file" if err.backing.startswith("file") and err.write else ""
        for key in ((err.errno, kind), (err.errno, "")):
            if key in PIN_REFUSED:
                return PIN_REFUSED[key].format(
                    backing=err.backing, path=err.path, memlock=_memlock()
                )
    if isinstance(err, errors.DeviceNotFound):
        return _not_found(err)
    if isinstance(err, errors.Truncated):
        return _truncated(err)
    if isinstance(err, errors.DeviceError) and err.command == "identify":
        return (f"{err.what}, not a gup_test file: pass --device /sys/kernel/debug/gup_test "
                "or /dev/gup_test, or unset $GUPCTL_DEVICE")  # fmt: skip
    if isinstance(err, errors.DeviceError) and (err.errno, err.command) in DEVICE_COMMAND:
        return DEVICE_COMMAND[(err.errno, err.command)].format(path=err.path)
    if isinstance(err, errors.DeviceError) and err.errno in DEVICE:
        return DEVICE[err.errno].format(
            path=err.path, command=err.command or "open", kmod=KMOD_STEP, memlock=_memlock()
        )
    if isinstance(err, errors.MappingError) and err.backing == "thp" and err.errno in THP:
        return THP[err.errno].format(what=err.what)
    if isinstance(err, errors.MappingError) and err.errno in MAPPING:
        return MAPPING[err.errno].format(what=err.what, backing=err.backing)
    if isinstance(err, errors.ResultsError):
        reason = os.strerror(err.errno) if err.errno else "error"
        return RESULTS.get(err.kind, "{what}").format(what=err.what, path=err.path, err=reason)
    if isinstance(err, errors.ModuleError):
        return MODULE[err.kind].format(
            what=err.what,
            command=err.command,
            log=err.log,
            release=err.release or os.uname().release,
        )
    if isinstance(err, errors.VmError):
        return VM.get(err.kind, "{what}").format(what=err.what, log=err.log)
    if isinstance(err, errors.EnvError):
        return ENV[err.kind].format(what=err.what)
    if isinstance(err, errors.CpuError):
        from gupctl import cpus

        # Read here, in the main thread, its binding undone: a worker's own
        # affinity was its parent's single CPU.
        usable = cpus.format_list(cpus.allowed())
        return f"{err}: pick --cpus from those this process may use now: {usable}"
    if isinstance(err, errors.UnknownMachine):
        names = (f"{n} ({', '.join(a)})" if a else n for n, a in err.known.items())
        return f"{err.what}: use one of {', '.join(names)}"
    return str(err)


def _not_found(err: errors.DeviceNotFound) -> str:
    """No gup_test file: the next step, which is the VM where no module can load."""
    if err.diagnosis == errors.DIAG_NO_KMOD:
        from gupctl.doctor.facts import modules_missing

        why = modules_missing()
        if why:
            return (f"no gup_test here: CONFIG_GUP_TEST is off, and {why}, so gupctl's kmod "
                    "cannot load either: run in its VM: `gupctl vm -- gupctl ...`")  # fmt: skip
    return NOT_FOUND[err.diagnosis].format(tried=", ".join(err.tried))


def _memlock() -> str:
    """This process's RLIMIT_MEMLOCK (soft), as `ulimit -l` would say it."""
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    return "unlimited" if soft == resource.RLIM_INFINITY else f"{soft // 1024} KiB"


def _truncated(err: errors.Truncated) -> str:
    pages = f"{err.command} pinned {err.got // PAGE_SIZE} of {err.asked // PAGE_SIZE} pages"
    if "longterm" in err.command and err.backing.startswith("file") and err.write:
        return (
            f"{pages}: FOLL_LONGTERM write pins of file pages on a filesystem with "
            "writeback (ext4, xfs, btrfs) are refused; use tmpfs, memfd or anonymous memory"
        )
    if err.backing.startswith("file") and not err.got:
        return f"{pages}: the file's pages could not be faulted in; is it large enough?"
    return (
        f"{pages}: GUP stopped early (pages not present without --prefault, or the "
        "mapping forbids the access); rerun with --prefault and --write"
    )
