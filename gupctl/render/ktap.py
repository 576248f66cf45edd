"""KTAP (Documentation/dev-tools/ktap.rst) and JUnit XML for `gupctl selftest`.

KTAP is what kselftest runners, LKFT and KernelCI parse: names become test IDs,
so they are stable.  JUnit is for CI web UIs.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator

from gupctl.selftest import CaseResult, Report
from gupctl.selftest.runner import run_balanced


def ktap_header(total: int) -> str:
    return f"KTAP version 1\n1..{total}\n"


def ktap_line(number: int, r: CaseResult) -> str:
    """One result line, with '# ' diagnostics after a failure."""
    if r.status == "skip":
        return f"ok {number} {r.name} # SKIP {r.reason}\n"
    if r.status == "xfail":  # kselftest's ksft_test_result_xfail(): a failure expected
        return f"ok {number} {r.name} # XFAIL {r.reason}\n"
    if r.status == "pass":
        return f"ok {number} {r.name}\n"
    return f"# {r.name}: {r.reason}\nnot ok {number} {r.name}\n"


def ktap_totals(report: Report) -> str:
    c = report.counts
    lines = [f"# Totals: pass:{c['pass']} fail:{c['fail']} xfail:{c['xfail']} xpass:0 "
             f"skip:{c['skip']} error:0\n"]  # fmt: skip
    b = report.balance
    if b is not None:
        verdict = "balanced" if run_balanced(b) else "NOT balanced"
        lines.insert(0, f"# pin balance of the whole run ({b.scope}): {verdict}: outstanding "
                     f"{b.outstanding_before} -> {b.outstanding_after}, acquired {b.acquired}, "
                     f"released {b.released}; control windows of {b.window_seconds:g} s saw "
                     f"{b.background_acquired}/{b.background_released}\n")  # fmt: skip
    return "".join(lines)


def ktap(report: Report) -> Iterator[str]:
    """The whole report as KTAP lines."""
    yield ktap_header(len(report.results))
    for i, r in enumerate(report.results, 1):
        yield ktap_line(i, r)
    yield ktap_totals(report)


def junit(report: Report) -> bytes:
    """The report as a JUnit XML document (one testsuite, a testcase per case)."""
    c = report.counts
    # An expected failure is a skip of type xfail, as pytest's JUnit writes it.
    skipped = str(c["skip"] + c["xfail"])
    seconds = sum(r.seconds for r in report.results)
    suites = ET.Element("testsuites", name="gupctl selftest", tests=str(len(report.results)),
                        failures=str(c["fail"]), errors="0", skipped=skipped,
                        time=f"{seconds:.3f}")  # fmt: skip
    suite = ET.SubElement(suites, "testsuite", name=f"gupctl.selftest.{report.kernel}",
                          tests=str(len(report.results)), failures=str(c["fail"]), errors="0",
                          skipped=skipped, time=f"{seconds:.3f}")  # fmt: skip
    props = ET.SubElement(suite, "properties")
    for key, value in (("kernel", report.kernel), ("device", report.device),
                       ("numa_node", str(report.node))):  # fmt: skip
        ET.SubElement(props, "property", name=key, value=value)
    for r in report.results:
        group = r.name.split(".", 1)[0]
        case = ET.SubElement(suite, "testcase", classname=f"gupctl.selftest.{group}",
                             name=r.name, time=f"{r.seconds:.3f}")  # fmt: skip
        if r.status == "fail":
            ET.SubElement(case, "failure", message=r.reason, type="failure").text = r.reason
        elif r.status == "skip":
            ET.SubElement(case, "skipped", message=r.reason)
        elif r.status == "xfail":
            ET.SubElement(case, "skipped", message=r.reason, type="xfail")
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True) + b"\n"
