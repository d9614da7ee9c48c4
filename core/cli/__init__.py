"""`deblur`: the command line (predict, models, simulate, info, estimate, export-bioimageio, bench).

Each subcommand lives in its own module with `add_parser(subparsers)` and `run(args) -> int`.
Bad input exits 2 with one plain line on stderr; a traceback is never shown for a user error.
An unexpected error (a bug) exits 1 with one plain line that says where its report was saved
(`core.crash_report`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import entry_points

from core import __version__
from core.crash_report import internal_error

SUBCOMMANDS = ["predict", "models", "simulate", "info", "estimate", "export_bioimageio"]
#: packages that add subcommands (e.g. `bench` from training) declare them in this entry-point
#: group, so core finds them without importing those packages by name
PLUGIN_GROUP = "deblur.commands"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """One clean help text per option: the default is added only when there is one worth
    reading (not None, False or an empty list) and the help does not already say it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text.lower() or default is None or default is False
                or default is argparse.SUPPRESS or default == [] or action.required
                or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)"


class UserError(Exception):
    """An error caused by the input: printed as one line, exit code 2."""


def fail(message: str) -> int:
    """Print `deblur: error: message` on stderr and return exit code 2."""
    print(f"deblur: error: {message}", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deblur",
        description="Repair out-of-focus regions in microscopy images.",
    )
    parser.add_argument("--version", action="version", version=f"deblur {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        module_name = f"core.cli.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.add_parser(sub)
    for ep in entry_points(group=PLUGIN_GROUP):
        ep.load().add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except UserError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        print("deblur: cancelled; nothing was written", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug: one plain line, the traceback in a report
        return internal_error("deblur", exc, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
