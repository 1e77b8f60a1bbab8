"""What several commands share: their common arguments (config, --store, --set) and the checks and writes made
before any work (the config and data checked, a store that exists, paths inside the allowed roots)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path

from alignment.config.base import ConfigError
from alignment.config.run import RunConfig
from alignment.core.store import ARTIFACT_ID


def config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", default="configs/tiny.yaml", help="run config YAML (default: %(default)s)")
    override_arg(p, "override a config value with a dotted key, e.g. --set dpo.beta=0.2 (repeatable)")


def store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store", dest="store_root", metavar="DIR", help="artifact store root (same as --set store.root=DIR)"
    )


def override_arg(p: argparse.ArgumentParser, text: str) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=text)


def check_before_work(cfg: RunConfig, source: str = "config", data_dir: Path | None = None) -> None:
    """Everything checkable before any work: first, on a worker that confines paths, every path the run names
    (nothing outside the roots is opened, not even to validate it); the compute settings against this machine,
    then every data source the config names (file, row and column named on an error)."""
    from alignment.core.allowed_paths import confine
    from alignment.core.prechecks import check_chat_template, check_compute, check_lora_targets
    from alignment.data.sources import load

    confine(cfg, data_dir)
    check_compute(cfg.compute, source)
    check_chat_template(cfg.model, source)
    if cfg.model.name_or_path is not None:  # a given base: loadable, a causal LM, with a tokenizer and template
        from alignment.models.modeling import check_base

        try:
            check_base(cfg.model)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{source}: {exc}") from None
    check_lora_targets(cfg, source)

    kinds = {"sft": "sft", "preferences": "preferences", "eval_questions": "questions"}
    kinds |= {"reference_text": "reference", "preference_questions": "questions", "feedback": "feedback"}
    for name, kind in kinds.items():
        source = getattr(cfg.data, name)
        if source is not None:
            load(source, kind)


def existing_store(root: str, purpose: str) -> str:
    """``root`` if it is a store directory (inside the allowed roots where the worker confines paths), else an error
    naming it (a mistyped store is never an empty one)."""
    from alignment.core.allowed_paths import confine_paths

    confine_paths({"option '--store'": root})
    if not Path(root).is_dir():
        what = "is not a directory" if Path(root).exists() else "does not exist"
        raise ConfigError(f"store {root} {what}: {purpose} (--store names the store a run wrote)")
    return root


def confine_ref(name: str, ref: str) -> None:
    """On a worker that confines paths, an artifact given as a directory (not an id or 'latest') must be inside."""
    from alignment.core.allowed_paths import confine_paths

    if ref != "latest" and not re.fullmatch(ARTIFACT_ID, ref):
        confine_paths({name: ref})


def show_progress() -> None:
    """A progress bar per training stage on this terminal (besides the Prefect run log)."""
    from alignment.core.progress import ProgressBars
    from flows.pipeline import LOCAL_SINKS

    LOCAL_SINKS.append(ProgressBars())


def write_files(out: Path, write: Callable[[Path], dict], force: bool) -> dict:
    """Write a command's files into ``out`` through a temporary directory: a file already there with other content
    is replaced only with ``force`` (else an error naming the files, with nothing written)."""
    import shutil
    import tempfile

    from alignment.core.allowed_paths import confine_paths

    confine_paths({"option '--out'": out})
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as tmp:
        counts = write(Path(tmp))
        new = sorted(p.relative_to(tmp) for p in Path(tmp).rglob("*") if p.is_file())
        differ = [str(r) for r in new if (out / r).is_file() and (out / r).read_bytes() != (Path(tmp) / r).read_bytes()]
        if differ and not force:
            raise ConfigError(
                f"{out}: would overwrite {', '.join(differ)} with different content; nothing was written (pass "
                "--force to replace them, or --out another directory)"
            )
        shutil.copytree(tmp, out, dirs_exist_ok=True)
    return counts
