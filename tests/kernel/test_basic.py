"""gupctl test (GUP_BASIC_TEST, PIN_BASIC_TEST) and vmstat on a real kernel."""

from __future__ import annotations

from conftest import oracle_counters


def test_basic_tests_pass_and_balance(gupctl, node) -> None:
    before = oracle_counters(node)
    results = gupctl("test", "--json", "-s", "16M", "-n", "all").json()
    after = oracle_counters(node)
    assert [r["command"] for r in results] == ["gup_basic_test", "pin_basic_test"]
    assert after[0] - before[0] == after[1] - before[1] == 16 * (1 << 20) // 4096
    assert all(r["balance"]["exact"] for r in results)


def test_vmstat_agrees_with_proc(gupctl, node) -> None:
    counters = gupctl("vmstat", "--json").json()
    scopes = {c["scope"]: c for c in counters}
    assert "system" in scopes and "node0" in scopes
    if node is not None:
        # Node 1 holds only test memory, so nothing moves it between the reads.
        acquired, released = oracle_counters(node)
        assert scopes[f"node{node}"]["nr_foll_pin_acquired"] == acquired
        assert scopes[f"node{node}"]["nr_foll_pin_released"] == released
    assert all(c["refreshed"] for c in counters)
