"""What every command shares: an error is one line on stderr and exit status 2."""

from __future__ import annotations

import typer

from ctforge import messages

EXIT_ERROR = 2


def fail(message: str) -> typer.Exit:
    typer.echo(messages.CLI_ERROR.format(message=message), err=True)
    return typer.Exit(EXIT_ERROR)
