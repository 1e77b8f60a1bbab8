"""What an artifact id says about the code: the version of the modules that compute a stage's output.

A stage's code version is the package version, the store format and a hash of the source of every ``alignment``
module its own module runs (its import closure: imports inside functions count, ``if TYPE_CHECKING:`` imports do
not, and importing ``a.b.c`` runs the ``__init__`` of ``a`` and ``a.b``). The closure stops at the infrastructure
(``INFRASTRUCTURE``: the store, locks, launch, progress, checkpoints, path confinement, prechecks): it carries an
output, it does not compute one, so mending it rebuilds nothing. What infrastructure decides that can change an
output (the device, bf16, the seed, the process count) reaches the id as config values
(``alignment.core.context.StageContext``), never as source.

To make every artifact in every store stale on purpose (a change to what an artifact holds, or to how it is keyed,
that no config value and no computing module carries), bump ``STORE_FORMAT``: the next run rebuilds each artifact
once. Say so in CHANGELOG.md.
"""

from __future__ import annotations

import ast
import hashlib
import threading
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import alignment

STORE_FORMAT = 2
"""The artifact store's format: part of every artifact id. Bump it (and say so in CHANGELOG.md) to rebuild every
artifact once. 1: ids hashed the whole import closure, infrastructure included (before 0.1.0's 2026-12-06 change)."""

INFRASTRUCTURE = ("alignment.core",)
"""Packages that store, lock, launch, report on, confine or check a stage, and compute none of its output: not in
any code version, and their imports are not followed (infrastructure never imports a stage's computing code)."""


def _type_checking(node: ast.AST) -> bool:
    """Whether ``node`` is an ``if TYPE_CHECKING:`` block (imports for annotations only, never executed)."""
    test = getattr(node, "test", None) if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_names(tree: ast.AST, annotations: bool = False) -> list[str]:
    """The ``alignment`` modules a module's code imports when it runs (imports inside functions included,
    ``if TYPE_CHECKING:`` blocks only with ``annotations``): for ``from P import x`` both ``P`` and ``P.x`` (which
    may be a name in ``P``, not a module)."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if _type_checking(node) and not annotations:
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend(a.name for a in node.names if a.name.split(".")[0] == "alignment")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "alignment":
            found.append(node.module)
            found.extend(f"{node.module}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def module_file(name: str, root: Path) -> Path | None:
    """The source file of the ``alignment`` module ``name``: ``a/b.py``, or ``a/b/__init__.py`` for a package;
    None when it is neither (e.g. a function imported by name)."""
    parts = name.split(".")[1:]
    if not parts:
        return root / "__init__.py"
    single = root.joinpath(*parts).with_suffix(".py")
    if single.is_file():
        return single
    package = root.joinpath(*parts, "__init__.py")
    return package if package.is_file() else None


def is_infrastructure(name: str) -> bool:
    """Whether the module ``name`` belongs to the infrastructure (``INFRASTRUCTURE``)."""
    return any(name == pkg or name.startswith(pkg + ".") for pkg in INFRASTRUCTURE)


_PARSE_LOCK = threading.Lock()
_ast_parse = ast.parse  # the parser ``_parse`` calls (a test makes it fail once)
_IMPORTS: dict[tuple[str, bytes], list[str]] = {}


def _parse(source: bytes, path: Path, tries: int = 3) -> ast.AST:
    """``ast.parse``, serialised, and tried again on CPython's spurious "AST constructor recursion depth mismatch"
    ``SystemError``: before 3.13 the AST constructor's recursion counter is shared by every thread of the interpreter,
    so a parse in another thread (Prefect parses flow entrypoints) can make ours fail (python/cpython#106905; met in
    a flow run's ``pin``). Parsing is pure, so a second try is the same parse."""
    for attempt in range(1, tries + 1):
        try:
            with _PARSE_LOCK:
                return _ast_parse(source, str(path))
        except SystemError as error:
            if "recursion depth mismatch" not in str(error) or attempt == tries:
                raise
    raise ValueError(f"tries must be at least 1, got {tries}")  # each try returns or, the last, raises


def _imports_of(path: Path) -> list[str]:
    """``imported_names`` of a source file, parsed once per content (a run asks for each file many times)."""
    source = path.read_bytes()
    key = (str(path), hashlib.sha256(source).digest())
    if key not in _IMPORTS:
        _IMPORTS[key] = imported_names(_parse(source, path))
    return _IMPORTS[key]


def import_closure(module: str, root: Path | None = None) -> list[Path]:
    """The source files of the ``alignment`` modules that ``module`` (e.g. ``"alignment.methods.sft"``) runs,
    directly or through each other, itself included: imports inside functions count, annotation-only imports
    (``if TYPE_CHECKING:``) do not, and importing ``a.b.c`` runs the ``__init__`` of ``a`` and ``a.b`` too.
    Infrastructure modules are left out, and not followed. ``root``: the package directory (default: this
    package's)."""
    root = root or Path(alignment.__file__).parent
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or is_infrastructure(name):
            continue
        path = module_file(name, root)
        if path is None:
            continue
        seen[name] = path
        parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        todo += parents + _imports_of(path)
    return sorted(set(seen.values()))


def module_name(path: Path, root: Path) -> str:
    """The ``alignment`` module a source file under ``root`` is (a package's ``__init__.py``: the package)."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(("alignment", *(parts[:-1] if parts[-1] == "__init__" else parts)))


def computing_modules(root: Path) -> list[Path]:
    """Every module of the package under ``root`` but the infrastructure's."""
    return sorted(p for p in root.rglob("*.py") if not is_infrastructure(module_name(p, root)))


def source_hash(module: str | None = None, root: Path | None = None) -> str:
    """A hash of the store format and the library source ``module`` computes with (its import closure without the
    infrastructure; every computing module when None)."""
    root = root or Path(alignment.__file__).parent
    digest = hashlib.sha256(f"store format {STORE_FORMAT}\n".encode())
    for path in import_closure(module, root) if module else computing_modules(root):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def current_version(module: str | None = None) -> str:
    """Package version plus the hash of the source ``module`` computes with, as the files are on disk now."""
    return f"{alignment.__version__}+{source_hash(module)}"


@lru_cache(maxsize=64)
def code_version(module: str | None = None) -> str:
    """Package version plus the hash of the source ``module`` computes with, so changing that code invalidates the
    artifacts built with it, and changing a module it does not run, or the infrastructure, does not. Kept from the
    first call (``pin``): a run labels its artifacts with the code it began with."""
    return current_version(module)


class CodeChanged(RuntimeError):
    """A stage's source changed on disk while the run that built it was going."""


def check_unchanged(module: str, version: str) -> None:
    """Raise ``CodeChanged`` if ``module``'s code version on disk is no longer ``version`` (the one the run pinned
    when it began, ``pin``): the modules a process imported before an edit and the ones it imports after would then
    be mixed in one artifact, labelled with either version. Nothing is stored; running again builds it cleanly."""
    if current_version(module) != version:
        raise CodeChanged(
            f"the code of {module} (or of a module it imports) changed on disk while this run was going: its artifact "
            "would be labelled with code it was not built with, so it was not stored. Run again."
        )


def pin(modules: Iterable[str]) -> None:
    """Fix the code versions of ``modules`` as they are now, before any stage runs (``code_version`` keeps them)."""
    for module in modules:
        code_version(module)
