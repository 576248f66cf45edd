"""`gupctl kmod build|install|uninstall|load|unload|status`: the kmod's whole life."""

from __future__ import annotations

import click

from gupctl.cli.options import json_option


@click.group()
def kmod() -> None:
    """Build, install (DKMS), load and inspect gupctl's kmod, which serves the
    gup_test ABI on /dev/gup_test where the kernel has no CONFIG_GUP_TEST.

    /dev/gup_test is root-only until `install --user NAME` lets NAME open it
    through the gupctl group.
    """


@kmod.command()
@click.option("--kernel", "release", metavar="RELEASE",
              help="The kernel to build for (default: the running one); its headers must be "
              "in /lib/modules/RELEASE/build.")  # fmt: skip
def build(release: str | None) -> None:
    """Build gupctl.ko against installed headers and print its path (cached)."""
    from gupctl import install

    click.echo(install.build(release))


@kmod.command(name="install")
@click.option("--user", "users", multiple=True, metavar="NAME",
              help="Let NAME open /dev/gup_test: adds NAME to the gupctl group and installs "
              "the udev rule that gives the group the device (repeatable).")  # fmt: skip
@json_option
def install_(users: tuple[str, ...], use_json: bool) -> None:
    """Install through DKMS for the running kernel (rebuilt on kernel upgrades), load
    it now and at boot."""
    from gupctl import install, render

    done = install.install(list(users))
    render.emit(done, use_json)
    if done.next_step:
        render.warn(f"the kernel refuses the module until its signing key is enrolled: "
                    f"{done.next_step}")  # fmt: skip
    if users:
        render.warn(f"{', '.join(users)} can use /dev/gup_test after logging in again "
                    "(or `newgrp gupctl`)")  # fmt: skip


@kmod.command()
def uninstall() -> None:
    """Unload, remove from DKMS, and remove the udev rule, boot-time load and group."""
    from gupctl import install, render

    for what in install.uninstall():
        render.warn(f"removed {what}")


@kmod.command()
def load() -> None:
    """Load the installed kmod (modprobe), else a build for the running kernel (insmod)."""
    from gupctl import install

    install.load()


@kmod.command()
def unload() -> None:
    """Unload the kmod; refused while a process holds /dev/gup_test open."""
    from gupctl import install

    install.unload()


@kmod.command()
@json_option
def status(use_json: bool) -> None:
    """Sources, headers, DKMS, loaded module, device access and signing, as found."""
    from gupctl import module, render

    render.emit(module.status(), use_json)
