"""Bad input to every command: one line, the right status, nothing left behind.

Each case runs the real `gupctl` in a child process (so that a traceback or an
exit status is the real one) in a directory of its own, and checks:

- stderr is exactly one line, `gupctl: error: ...`, holding the words that
  name the problem (the value or option at fault) and the next step;
- the exit status: 2 for a usage error (found before any work), 1 for the
  rest;
- no traceback, no "Exception ignored";
- nothing left behind: the directory holds what it held before, and no QEMU
  process was started.

This machine has no gup_test: arguments must be refused before gupctl looks
for one, and a wrong --device diagnosed as such.  The cases run in parallel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from gupctl import output, thp


def _doc(**run: object) -> str:
    """A saved document (test_plot's sweep, a real RunResult) with one run changed."""
    from test_plot import sweep

    data = json.loads(output.dumps(sweep()))
    data["results"] = [{**data["results"][0], **run}]
    return json.dumps(data)


def _top(**fields: object) -> bytes:
    """A saved document with top-level `fields` changed."""
    return json.dumps({**json.loads(_doc()), **fields}).encode()


def _balance(**fields: object) -> bytes:
    """A saved document whose run's balance has `fields` changed."""
    run = json.loads(_doc())["results"][0]
    return _doc(balance={**run["balance"], **fields}).encode()


def _without(field: str) -> bytes:
    data = json.loads(_doc())
    del data["results"][0][field]
    return json.dumps(data).encode()


HUGE = 10**30
#: Hostile saved runs: file -> (bytes, the words naming the field and the fault).
HOSTILE: dict[str, tuple[bytes, str]] = {
    "results_dict.json": (_top(results={"a": "b"}), "results is not a list (an object)"),
    "results_strings.json": (_top(results=["x"]), "results[0] is not an object (a string)"),
    "results_null.json": (_top(results=None), "results is not a list (null)"),
    "kernel_int.json": (_top(kernel=5), "kernel is not a string (an integer)"),
    "no_kernel.json": (_top(kernel=None), "kernel is not a string (null)"),
    "no_command.json": (_without("command"), "results[0].command is missing"),
    "command_null.json": (_doc(command=None).encode(), "results[0].command is not a string"),
    "command_list.json": (_doc(command=["a"]).encode(), "results[0].command is not a string"),
    "write_string.json": (_doc(write="yes").encode(), "results[0].write is not true or false"),
    "repeats_bool.json": (_doc(repeats=True).encode(), "results[0].repeats is not an integer"),
    "threads_float.json": (_doc(threads=1.5).encode(), "results[0].threads is not an integer"),
    "size_huge.json": (_doc(size=HUGE).encode(), "results[0].size is out of range"),
    "size_negative.json": (_doc(size=-4096).encode(), "results[0].size is not positive"),
    "nr_pages_zero.json": (_doc(nr_pages=0).encode(), "results[0].nr_pages is not positive"),
    "repeats_zero.json": (_doc(repeats=0).encode(), "results[0].repeats is not positive"),
    "flags_huge.json": (_doc(gup_flags=HUGE).encode(), "results[0].gup_flags is out of range"),
    "sample_huge.json": (_doc(get_usec=[HUGE]).encode(), "results[0].get_usec[0] is out of"),
    "sample_float.json": (_doc(put_usec=[1.5]).encode(), "results[0].put_usec[0] is not an"),
    "sample_str.json": (_doc(get_usec=["1"]).encode(), "results[0].get_usec[0] is not an"),
    "samples_dict.json": (_doc(get_usec={"a": 1}).encode(), "results[0].get_usec is not a list"),
    "samples_nested.json": (_doc(get_usec=[[1]]).encode(), "results[0].get_usec[0] is not an"),
    "loop_zero.json": (_doc(loop_ns=[0]).encode(), "results[0].loop_ns holds a time"),
    "loop_str.json": (_doc(loop_ns="fast").encode(), "results[0].loop_ns is not a list"),
    "cpus_str.json": (_doc(cpus="0").encode(), "results[0].cpus is not a list"),
    "folio_zero.json": (_doc(folio_size=0).encode(), "results[0].folio_size is not a positive"),
    "folio_str.json": (_doc(folio_size="2M").encode(), "results[0].folio_size is not an"),
    "cpus_huge.json": (_doc(cpus=[HUGE]).encode(), "results[0].cpus[0] is out of range"),
    "balance_str.json": (_doc(balance="x").encode(), "results[0].balance is not an object"),
    "balance_list.json": (_doc(balance=[1]).encode(), "results[0].balance is not an object"),
    "acquired_str.json": (_balance(acquired="1"), "balance.acquired is not an integer"),
    "acquired_huge.json": (_balance(acquired=HUGE), "balance.acquired is out of range"),
    "exact_int.json": (_balance(exact=1), "balance.exact is not true or false"),
    "expected_str.json": (_balance(expected="3"), "balance.expected is not an integer"),
    "settle_str.json": (_balance(settle_seconds="x"), "balance.settle_seconds is not a finite"),
    "settle_huge.json": (_balance(settle_seconds=HUGE), "balance.settle_seconds is out of"),
    "before_short.json": (_balance(before=[1]), "balance.before does not hold 2 values"),
    "before_str.json": (_balance(before=["a", 1]), "balance.before[0] is not an integer"),
    "scope_null.json": (_balance(scope=None), "balance.scope is not a string"),
    "no_balance.json": (_without("balance"), "results[0].balance is missing"),
    "escape_format.json": (_top(format="\x1b[2J"), "format: '\\x1b[2J'"),
}

#: Files each case's directory starts with (name -> bytes, or a kind).
FILES = {
    "list.json": b"[1, 2, 3]",
    "deep.json": b"[" * 100_000 + b"]" * 100_000,
    "latin1.json": "r\xe9sultats".encode("latin-1"),
    "notjson.json": b"not json",
    "empty.json": b"",
    "nan.json": _doc(get_usec=[1, 2]).replace("[1, 2]", "[NaN, 2]").encode(),
    "inf.json": _doc(put_usec=[1, 2]).replace("[1, 2]", "[Infinity, 2]").encode(),
    "negative.json": _doc(get_usec=[-5, 2]).encode(),
    "zero_per_call.json": _doc(nr_pages_per_call=0).encode(),
    "string_size.json": _doc(size="1M").encode(),
    "bad_cpus.json": _doc(cpus=[-1]).encode(),
    "cpus_per_thread.json": _doc(cpus=[0, 1]).encode(),
    "no_samples.json": _doc(get_usec=[]).encode(),
    "no_results.json": _doc().replace('"results"', '"runs"').encode(),
    **{name: body for name, (body, _) in HOSTILE.items()},
    "regular": b"",
    "good.json": _doc().encode(),
    "vmlinuz-json": b'{"a kernel": false}\n',
    "dir": "dir",
    "fifo": "fifo",
}


#: Case.stdout for a closed stdout (>&-).
CLOSED = "&-"


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    status: int
    words: tuple[str, ...]  # each must appear in the one line
    stdout: str | None = None  # a file to send stdout to (/dev/full)
    env: tuple[tuple[str, str], ...] = ()  # variables set for the case

    @property
    def id(self) -> str:
        env = " ".join(f"{k}={v!r}" for k, v in self.env)
        text = " ".join(self.argv)[:70] + (" >" + self.stdout if self.stdout else "")
        return f"{env} {text}" if env else text


def _cases() -> list[Case]:
    cases: list[Case] = []

    def add(status: int, words: str | tuple[str, ...], *argv: str, stdout: str | None = None,
            env: dict[str, str] | None = None):  # fmt: skip
        words = (words,) if isinstance(words, str) else words
        cases.append(Case(argv, status, words, stdout, tuple((env or {}).items())))

    # Sizes, for every command that takes one.
    for command in (("bench",), ("test",), ("dump", "0"), ("longterm", "start"),
                    ("longterm", "read"), ("selftest",), ("extract",)):  # fmt: skip
        for bad, words in (("0", "is not a size"), ("-1", "is not a size"),
                           ("abc", "is not a size"), ("1X", "is not a size"),
                           ("99999999999999999999999", "more than a process can map"),
                           ("200T", "more than a process can map")):  # fmt: skip
            add(2, ("--size", words), *command, "-s", bad)
    for command in ("bench", "test"):
        add(2, ("--size", "'' is not a size"), command, "-s", "4K,")
        for bad in ("0", "abc", "-2"):
            add(2, ("--nr-pages-per-call", "page count"), command, "-n", bad)
        for bad in ("0", "99999999999", "x"):
            add(2, "--repeats", command, "-r", bad)
        for bad in ("0", "100000", "x"):
            add(2, "--threads", command, "-j", bad)
        for bad in ("x", "1-0", "-1", "1,,2"):
            add(2, ("--cpus", "is not a CPU list"), command, "--cpus", bad)
        add(2, ("--cpus", "CPU 4096 is not one this process may run on"), command, "--cpus",
            "4096")  # fmt: skip
    # FOLL_* names.
    for command in (("bench",), ("test",), ("dump", "0")):
        for bad in (",,,", "write,,force", ","):
            add(2, ("--gup-flags", "empty flag name"), *command, "--gup-flags", bad)
        for bad in ("nosuch", "0xzz"):
            add(1, (f"unknown GUP flag '{bad}'", "this kernel's flags"), *command,
                "--gup-flags", bad)  # fmt: skip
        add(1, ("foll_pin", "--force-flags"), *command, "--gup-flags", "foll_pin")
    for command in ("bench", "selftest"):
        for bad in ("99", "-1", "x"):
            add(2, ("--numa-node", "is not a NUMA node"), command, "--numa-node", bad)
    # Devices that are not gup_test files.
    for path, words in (("/dev/null", "the character device 1:3"),
                        ("/dev/zero", "the character device 1:5"),
                        ("regular", "a regular file outside debugfs"), ("fifo", "a fifo"),
                        ("dir", "a directory")):  # fmt: skip
        for command in ("bench", "test", "extract"):
            add(1, (words, "not a gup_test file", "--device"), command, "--device", path)
        add(1, (words, "not a gup_test file", "--device"), "pins", "--pid", "1", "--device", path)
    add(1, ("does not exist", "--device"), "bench", "--device", "nonexistent")
    # Backing files.
    add(2, ("does not exist", "add --create"), "bench", "--file", "absent")
    add(2, ("exists", "drop --create"), "bench", "--file", "regular", "--create")
    add(2, ("is a directory",), "bench", "--file", "dir")
    add(2, ("its directory does not exist",), "bench", "--file", "no/such", "--create")
    add(2, ("--create needs --file",), "test", "--create")
    add(2, ("--memfd and --file",), "bench", "--memfd", "--file", "regular")
    # THP sizes: the host's own, whatever its kernel lists.
    for command in ("bench", "test"):
        add(2, ("--thp-size", "'x' is not a size"), command, "--thp-size", "x")
        add(2, ("--thp-size", "'3K'", "THP"), command, "--thp-size", "3K")
        if thp.sizes():
            size = f"{thp.sizes()[0] >> 10}K"
            add(2, ("--thp-size and --no-thp",), command, "--thp-size", size, "--no-thp")
            add(2, ("--thp-size", "not --shared", "drop one"), command, "--thp-size", size,
                "--shared")  # fmt: skip
    # Output files: refused before the work whose result they would hold.
    add(2, ("--save", "does not exist"), "bench", "--save", "no/such.json")
    add(2, ("--save", "is a directory"), "bench", "--save", "dir")
    add(2, ("--junit", "does not exist"), "selftest", "--junit", "no/such.xml")
    add(2, ("--output", "does not exist"), "plot", "list.json", "-o", "no/such.svg")
    # selftest.
    add(2, ("no case matches zzz*",), "selftest", "--list", "zzz*")
    add(2, ("no case matches nosuch",), "selftest", "nosuch")
    for bad in ("-1", "0", "nan", "inf", "x"):
        add(2, ("--timeout", "positive number of seconds"), "selftest", "--timeout", bad)
    add(2, ("--ext4-dir", "does not exist"), "selftest", "--ext4-dir", "absent")
    # vm: refused before QEMU starts.
    for bad in ("-1", "nan"):
        add(2, ("--timeout", "positive number of seconds"), "vm", "--timeout", bad, "--", "true")
    add(1, ("'nosuch'", "kernel series"), "vm", "--kernel", "nosuch", "--", "true")
    add(1, ("vmlinuz-json is no kernel image",), "vm", "--kernel", "./vmlinuz-json", "--", "true")
    add(2, ("--lockdown", "nosuch"), "vm", "--lockdown", "nosuch", "--", "true")
    add(2, ("Missing argument",), "vm")
    # Numbers in other scripts' digits: int() takes '١' for 1, and isdigit() takes '²'.
    for argv, word in ((("pins", "--pid", "١"), "digits 0-9"),
                       (("bench", "-s", "٤K"), "not a size"),
                       (("bench", "--numa-node", "²"), "NUMA node"),
                       (("bench", "-n", "²"), "page count"),
                       (("bench", "-r", "٣"), "digits 0-9"),
                       (("test", "-j", "٢"), "digits 0-9"),
                       (("dump", "٣"), "digits 0-9")):  # fmt: skip
        add(2, (repr(argv[-1]), word), *argv)
    for unknown in (("--cpus", "2", "--", "true"), ("-x", "--", "true"), ("--no-such", "true")):
        add(2, (f"no such option: {unknown[0]}", "gupctl vm --help"), "vm", *unknown)
    for bad in ("3G", "1000K", "0"):
        add(2, ("--movablecore",), "vm", "--movablecore", bad, "--", "true")
    two = ("vm", "--kernel", "6.12", "--kernel", "7.3")
    add(2, ("must be `gupctl bench ...`",), *two, "--", "true")
    add(2, ("drop --save and --json",), *two, "--", "gupctl", "bench", "--save", "x.json")
    add(2, ("--out", "does not exist"), *two, "--out", "no/such/dir", "--", "gupctl", "bench")
    add(2, ("--out", "not a directory"), *two, "--out", "regular", "--", "gupctl", "bench")
    add(2, ("--if-needed", "one --kernel"), *two, "--if-needed", "--", "gupctl", "bench")
    # Saved results.
    for name, words in (("list.json", "not a gupctl-bench/1 document"),
                        ("deep.json", "nests too deeply"), ("latin1.json", "not UTF-8"),
                        ("notjson.json", "is not JSON"), ("empty.json", "is not JSON"),
                        ("nan.json", "NaN"), ("inf.json", "Infinity"),
                        ("negative.json", "results[0].get_usec[0] is out of range (-5)"),
                        ("zero_per_call.json", "nr_pages_per_call is not positive"),
                        ("string_size.json", "size is not an integer"),
                        ("bad_cpus.json", "results[0].cpus holds a negative CPU number"),
                        ("cpus_per_thread.json", "cpus does not name one CPU per thread"),
                        ("no_samples.json", "results[0].get_usec has no samples"),
                        ("no_results.json", "results is missing"),
                        ("absent.json", "does not exist"), ("dir", "cannot read")):  # fmt: skip
        add(1, (name.removesuffix(".json"), words), "compare", name, name)
        add(1, (name.removesuffix(".json"), words), "plot", name, "--json")
    for name, (_, words) in HOSTILE.items():
        add(1, (name, words), "compare", name, name)
        add(1, (name, words), "plot", name, "--json")
    # Files that are no file of results: a fifo nobody writes, endless zeros.
    add(1, ("fifo is not JSON",), "compare", "fifo", "fifo")
    add(1, ("/dev/zero is larger than 256 MiB",), "plot", "/dev/zero", "--json")
    # The rest.
    add(1, ("unknown machine 'nosuch'", "use one of"), "abi", "--machine", "nosuch")
    add(2, ("No such command 'nosuch'", "--help"), "kmod", "nosuch")
    add(1, ("linux-headers-9.99.9-bogus",), "kmod", "build", "--kernel", "9.99.9-bogus")
    add(2, ("No such option '--nosuch'", "--help"), "doctor", "--nosuch")
    add(2, ("No such command", "--help"), "nosuch")
    add(2, ("--hold",), "longterm", "start", "--hold", "-1")
    add(2, ("--type", "'pipe' is not one of"), "extract", "--type", "pipe")
    add(2, ("--direction",), "extract", "--direction", "up")
    for bad in ("4096", "-1", "x"):
        add(2, ("--offset",), "extract", "--offset", bad)
    for bad in ("0", "17"):
        add(2, ("--segs",), "extract", "--segs", bad)
    add(2, ("at most 8 pages",), "dump", *map(str, range(9)))
    add(2, ("Missing option", "--pid"), "pins")
    add(2, ("Missing argument",), "check")
    add(2, ("no memory-only NUMA node", "gupctl vm -- gupctl check"), "check", "--", "true")
    # Environment variables: validated as their option is, and named.
    for bad in ("x", "99", "²", "-1"):
        for argv in (("bench",), ("test",), ("check", "--", "true"), ("selftest", "--list")):
            add(2, (f"$GUPCTL_NUMA_NODE={bad!r}", "--numa-node"), *argv,
                env={"GUPCTL_NUMA_NODE": bad})  # fmt: skip
    for bad, words in (("relative", "not an absolute path"), ("/dev/null", "be a directory"),
                       ("/dev/null/sub", "be a directory"), ("/tmp/a,b", "comma"),
                       ("/tmp/a b", "white space"), ("/tmp/a\nb", "control")):  # fmt: skip
        add(1, ("$GUPCTL_CACHE=", words, "point GUPCTL_CACHE at"), "vm", "--", "true",
            env={"GUPCTL_CACHE": bad})  # fmt: skip
    for variable, bad in (("GUPCTL_DEBIAN_MIRROR", "ftp://x y"), ("GUPCTL_DEBIAN_SECURITY", "x")):
        add(1, (f"${variable}=", "URL"), "vm", "--kernel", "7.2", "--", "true",
            env={variable: bad})  # fmt: skip
    add(1, ("$GUPCTL_KMOD_DIR=", "no Kbuild"), "vm", "--", "true", env={"GUPCTL_KMOD_DIR": "/"})
    # Output that is no regular file: written in place or refused, never replaced.
    add(1, ("cannot write fifo", "No such device or address"), "plot", "good.json", "-o", "fifo")
    add(1, ("cannot write /dev/full", "No space left"), "plot", "good.json", "-o", "/dev/full")
    # Names that are escape sequences, or not UTF-8: escaped in the one line.
    add(1, ("\\x1b[2J.json does not exist",), "compare", "\x1b[2J.json", "good.json")
    add(1, ("\\udcff.json does not exist",), "plot", "\udcff.json", "--json")
    add(2, ("--numa-node", "is not a NUMA node"), "check", "--numa-node", "99", "--", "true")
    for bad in ("0", "x"):
        add(2, ("--pid",), "pins", "--pid", bad)
    add(2, ("--pid", "no process 4194305", "see ps"), "pins", "--pid", "4194305")
    for bad, words in (("zz", "not START-END in hex"), ("1000", "not START-END in hex"),
                       ("2000-1000", "START must be below END"),
                       ("1001-2000", "page-aligned")):  # fmt: skip
        add(2, ("--range", words), "pins", "--pid", "1", "--range", bad)
    add(1, ("cannot write the output", "No space left on device"), "abi", stdout="/dev/full")
    add(1, ("cannot write the output",), "abi", "--json", stdout="/dev/full")
    for argv in (("abi",), ("doctor", "--json"), ("kmod", "status"), ("vmstat", "--json")):
        add(1, ("cannot write the output", "stdout is closed"), *argv, stdout=CLOSED)
    return cases


CASES = _cases()


def _populate(where: Path) -> None:
    for name, content in FILES.items():
        if content == "dir":
            (where / name).mkdir()
        elif content == "fifo":
            os.mkfifo(where / name)
        else:
            assert isinstance(content, bytes)
            (where / name).write_bytes(content)


MARK = f"GUPCTL_BAD_INPUT_{os.getpid()}"


def _qemus() -> list[str]:
    """QEMU processes started by these cases: they inherit MARK in their
    environment (other VMs on this machine do not count)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if MARK.encode() in environ.read_bytes():
                cmdline = (environ.parent / "cmdline").read_bytes()
                if b"qemu-system" in cmdline:
                    found.append(environ.parent.name)
        except OSError:
            continue
    return found


def _run(case: Case, where: Path) -> tuple[int, str, list[str]]:
    _populate(where)
    before = sorted(os.listdir(where))
    closed = case.stdout == CLOSED
    out = open(case.stdout, "w") if case.stdout and not closed else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.run([sys.executable, "-m", "gupctl", *case.argv], cwd=where,
                              stdout=out, stderr=subprocess.PIPE, text=True, timeout=60,
                              preexec_fn=(lambda: os.close(1)) if closed else None,
                              env={**os.environ, **dict(case.env), MARK: "1", "GUPCTL_DEVICE": "",
                                   "NO_COLOR": "1",
                                   "COLUMNS": "200"})  # fmt: skip
    finally:
        if case.stdout and not closed:
            out.close()  # type: ignore[union-attr]
    left = sorted(set(os.listdir(where)) - set(before))
    return proc.returncode, proc.stderr, left


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[Case, tuple[int, str, list[str]]]:
    """Every case, run in parallel, each in a directory of its own."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = {c: pool.submit(_run, c, tmp_path_factory.mktemp("case")) for c in CASES}
        results = {c: f.result() for c, f in futures.items()}
    assert _qemus() == [], "a bad-input case started QEMU"
    return results


def test_at_least_316_cases() -> None:
    assert len(CASES) >= 316 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input(case: Case, outcomes) -> None:
    status, stderr, left = outcomes[case]
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gupctl: error: "), stderr
    assert status == case.status, stderr
    for words in case.words:
        assert words in lines[0], f"{words!r} not in {lines[0]!r}"
    assert left == [], f"left behind: {left}"
