"""`alignment chat`: talk to an exported model (its chat template and generation config)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flows.cli.common import confine_ref, existing_store


def add_chat(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chat", help="talk to an exported model (its chat template and generation config)")
    p.add_argument("export", help="an export artifact id, 'latest', an export directory or a model directory")
    p.add_argument("--store", default="runs", help="artifact store root (default: %(default)s)")
    p.add_argument("--prompt", help="one message: print the answer and exit (no interactive session)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="longest answer, in tokens (default: %(default)s)")
    p.set_defaults(func=cmd_chat)


def cmd_chat(args: argparse.Namespace) -> int:
    """Talk to an exported model; ``--prompt``: one answer, printed (for scripts)."""
    from alignment.models.chat import Chat, model_dir

    confine_ref("argument EXPORT", args.export)
    if not Path(args.export).expanduser().exists():  # an id or 'latest', not a directory: the store must exist
        existing_store(args.store, f"no export {args.export} to talk to")
    try:
        chat = Chat(model_dir(args.export, args.store), max_new_tokens=args.max_new_tokens)
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.prompt is not None:
        try:
            print(chat.say(args.prompt))
        except ValueError as exc:  # a message longer than the model reads
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    print(f"chatting with {chat.model_dir} (an empty line or Ctrl-D ends)")
    while True:
        try:
            text = input("you> ").strip()
        except EOFError:
            break
        if not text:
            break
        try:
            print(f"model> {chat.say(text)}")
        except ValueError as exc:  # a message longer than the model reads: say so, and go on
            print(f"error: {exc}")
    return 0
