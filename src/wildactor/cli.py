"""The `wildactor` command: train | generate | data | bench | world | lora | app.

Each sub-command lives next to the code it drives, in a module that exposes
`add_arguments(parser)` and `main(args) -> int`. Those modules import their heavy
dependencies (torch, diffusers, ...) inside `main`, so `wildactor --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (name, module, one-line help). The module is imported only when the parser is built.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("generate", "wildactor.generate", "references + prompts -> one consistent actor across shots"),
    ("train", "wildactor.train", "fine-tune the reference LoRA with rectified flow"),
    ("data", "wildactor.data.curate.cli", "build an Actor-18M-style dataset from raw videos"),
    ("bench", "wildactor.bench.cli", "run and report Actor-Bench"),
    ("world", "wildactor.world.cli", "ActorWorld: synthetic actors with exact labels"),
    (
        "lora",
        "wildactor.lora",
        "convert reference-LoRA files between WildActor, official and Stand-In layouts",
    ),
    ("app", "wildactor.app", "a web page (Gradio) to try references + prompts in a browser"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wildactor", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name, help_text in COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module_name.startswith(exc.name):
                raise
            continue  # that part of the package is not installed in this build
        sp = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sp)
        _describe_subcommands(sp)
        sp.set_defaults(_main=module.main)
    return parser


def _describe_subcommands(parser: argparse.ArgumentParser) -> None:
    """Give every nested subcommand its one-line help as the description its own --help shows."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                if not sub.description and helps.get(name):
                    sub.description = helps[name]
                _describe_subcommands(sub)


def main(argv: list[str] | None = None) -> int:
    from wildactor.errors import WildActorError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "_main"):
        parser.print_help()
        return 1
    try:
        return int(args._main(args) or 0)
    except WildActorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
