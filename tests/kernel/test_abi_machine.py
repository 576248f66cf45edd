"""`gupctl abi` in the guest: this process's layout (cffi's, what its ioctls
use) is the one `--machine` computes for this machine's ABI, on every
architecture gupctl's VM boots; tests/unit/test_abi_cross.py holds the
computed ones to what compilers make of the kernel's header."""

from __future__ import annotations

import os


def test_this_machine_is_the_abi_computed_for_it(gupctl) -> None:
    own = gupctl("abi", "--json").json()
    computed = gupctl("abi", "--machine", os.uname().machine, "--json").json()
    assert own["this_process"] is True and computed["this_process"] is False
    for key in ("machine", "abi", "encoding", "u64_alignment", "commands", "structs"):
        assert own[key] == computed[key], key
