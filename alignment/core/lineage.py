"""Lineage: the tree of artifacts and dataset files an artifact was built from, read from manifests.

Self-hosted Prefect has no lineage view, so this is ours: every manifest names its inputs (artifact ids
or ``sha256:`` content hashes of dataset files), and the tree is followed back to the base model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from alignment.core.store import Artifact, ArtifactStore, file_sha256, is_dataset_ref, stage_of


@dataclass
class Node:
    """One lineage node: an artifact (with its config and metrics) or a dataset file (with its hash)."""

    name: str
    ref: str
    artifact: Artifact | None = None
    files: list[str] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)


# Stages whose artifacts are dataset files built from other inputs: a file of theirs links to its maker.
_DERIVED = ("pairs", "dataset")


def _known_files(store: ArtifactStore) -> dict[str, list[tuple[str, str]]]:
    """sha256 -> (path, artifact id) of the dataset files held by the store's world, pairs and dataset
    artifacts."""
    found: dict[str, list[tuple[str, str]]] = {}
    for stage in ("world", *_DERIVED):
        for path in sorted((store.root / stage).glob("*/*")):
            if path.is_file() and path.name != "manifest.json":
                found.setdefault("sha256:" + file_sha256(path), []).append((str(path), path.parent.name))
    return found


def lineage(store: ArtifactStore, ref: str | Path) -> Node:
    """The lineage tree of an artifact (id or directory). Missing input artifacts are an error."""
    files = _known_files(store)

    def walk(name: str, art: Artifact) -> Node:
        node = Node(name, art.id, art)
        for input_name, value in sorted(art.manifest.get("inputs", {}).items()):
            if is_dataset_ref(value):  # a dataset: a file's sha256 (and view), or a hub reference
                held = files.get(value.split("#", 1)[0], [])
                file_node = Node(input_name, value, files=[path for path, _ in held])
                makers = [store.get(holder) for _, holder in held if stage_of(holder) in _DERIVED]
                if makers and makers[0] is not None:  # a merged or probe-built file: show what it came from
                    file_node.children.append(walk("built by", makers[0]))
                node.children.append(file_node)
            else:
                child = store.get(value)
                if child is None:
                    raise FileNotFoundError(f"{art.id}: input {input_name} = {value} is not in store {store.root}")
                node.children.append(walk(input_name, child))
        source = art.manifest.get("source")
        if source:
            node.children.append(Node("model", source))
        return node

    art = store.load(ref)
    return walk(art.stage, art)


def _summary(art: Artifact) -> str:
    m = art.manifest
    parts = [f"created {m.get('created_at', '?')}", f"code {m.get('code_version', '?')}"]
    if m.get("flow_run_id"):
        parts.append(f"flow run {m['flow_run_id']}")
    return ", ".join(parts)


def _scalars(metrics: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in metrics.items():
        if isinstance(v, dict):
            out += _scalars(v, f"{prefix}{k}.")
        elif isinstance(v, int | float) and not isinstance(v, bool):
            out.append(f"{prefix}{k}={v:.4g}")
    return out


def render_text(node: Node, depth: int = 0, metrics: bool = True, seen: set[str] | None = None) -> str:
    """The tree as indented text (for the terminal); an artifact met again is named, not repeated."""
    seen = set() if seen is None else seen
    pad = "  " * depth
    if node.artifact is None:
        more = f" (+{len(node.files) - 1} identical)" if len(node.files) > 1 else ""
        where = f" ({node.files[0]}{more})" if node.files else ""
        children = [render_text(c, depth + 1, metrics, seen) for c in node.children]
        return "\n".join([f"{pad}- {node.name}: {node.ref}{where}", *children])
    art = node.artifact
    if art.id in seen:
        return f"{pad}- {node.name}: {art.id} (shown above)"
    seen.add(art.id)
    lines = [f"{pad}- {node.name}: {art.id}  [{art.path}]", f"{pad}    {_summary(art)}"]
    config = art.manifest.get("config", {}).get("section")
    if config:
        lines.append(f"{pad}    config: {config}")
    if metrics and art.metrics:
        lines.append(f"{pad}    metrics: {', '.join(_scalars(art.metrics)[:12])}")
    lines += [render_text(child, depth + 1, metrics, seen) for child in node.children]
    return "\n".join(lines)


def render_markdown(node: Node, link: str = "file://", depth: int = 0, seen: set[str] | None = None) -> str:
    """The tree as a Markdown list with links to artifact directories and dataset files."""
    seen = set() if seen is None else seen
    pad = "  " * depth
    if node.artifact is None:
        target = node.files[0] if node.files else None
        ref = f"[`{node.ref[:19]}…`]({link}{Path(target).resolve()})" if target else f"`{node.ref}`"
        line = f"{pad}- **{node.name}** (dataset file): {ref}"
        return "\n".join([line] + [render_markdown(c, link, depth + 1, seen) for c in node.children])
    art = node.artifact
    if art.id in seen:
        return f"{pad}- **{node.name}**: `{art.id}` (above)"
    seen.add(art.id)
    line = f"{pad}- **{node.name}**: [`{art.id}`]({link}{art.path.resolve()}) — {_summary(art)}"
    metrics = ", ".join(_scalars(art.metrics)[:6])
    if metrics:
        line += f"; {metrics}"
    return "\n".join([line] + [render_markdown(c, link, depth + 1, seen) for c in node.children])
