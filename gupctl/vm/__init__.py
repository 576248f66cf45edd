"""gupctl's VM: real kernels under QEMU, with the host root shared read-only."""

from gupctl.vm.runner import Plan, VmResult, execute, plan

__all__ = ["Plan", "VmResult", "execute", "plan"]
