"""`gupctl doctor`: what gupctl needs here, what it found, and what fixes the rest."""

from __future__ import annotations

import sys

import click

from gupctl.cli.options import json_option


@click.command()
@json_option
def doctor(use_json: bool) -> None:
    """Check this machine for what gupctl needs: each item, what was found, the fix.

    Exit status 0 when gupctl can benchmark here as this user (a gup_test it
    can open), 1 when a required item is missing; warnings never change it.
    """
    from gupctl import doctor as doctor_mod
    from gupctl import render

    report = doctor_mod.report()
    render.emit(report, use_json)
    sys.exit(doctor_mod.exit_status(report.checks))
