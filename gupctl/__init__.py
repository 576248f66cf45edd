"""gupctl: drive the kernel's gup_test interface from userspace."""

__version__ = "0.1.0"
