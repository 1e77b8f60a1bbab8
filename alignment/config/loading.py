"""Loading a run config from YAML with dotted ``--set`` overrides; errors name the file and the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError, create_model

from alignment.config.base import ConfigError, did_you_mean, section_class
from alignment.config.run import RunConfig


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (YAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _parse_value(text: str) -> Any:
    """Parse an override value with YAML rules (numbers, booleans, lists, null)."""
    return yaml.safe_load(text) if text.strip() else text


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply one dotted ``key=value`` assignment to a raw config dict in place."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r}: expected key=value, e.g. dpo.beta=0.2")
    key, value = assignment.split("=", 1)
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {assignment!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = _parse_value(value)


def _fields_at(model: type[BaseModel] | None, loc: tuple) -> list[str]:
    """The field names of the section at ``loc`` inside ``model`` (empty where it is not a section)."""
    cls: Any = model
    for part in loc:
        field = cls.model_fields.get(str(part)) if isinstance(cls, type) and issubclass(cls, BaseModel) else None
        if field is None:
            return []
        cls = section_class(field.annotation)
    return list(cls.model_fields) if cls is not None else []


def format_errors(err: ValidationError, source: str, model: type[BaseModel] | None = None) -> str:
    """Pydantic's errors as one line each, naming the source (file and overrides) and the dotted key; a mistyped
    key of ``model`` gets the closest field's name."""
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            parent = "".join(f"{p}." for p in e["loc"][:-1])
            hint = did_you_mean(str(e["loc"][-1]), _fields_at(model, tuple(e["loc"][:-1])), parent)
            lines.append(f"{source}: unknown key '{key}'{hint}")
        elif e["type"] in ("unknown_argument", "managed_argument", "non_finite_argument"):
            full = f"{key}.{e['ctx']['key']}" if key else e["ctx"]["key"]
            msg = e["msg"].replace(f"'{e['ctx']['key']}'", f"'{full}'", 1)
            lines.append(f"{source}: " + (msg.replace("did you mean '", f"did you mean '{key}.") if key else msg))
        elif key:
            lines.append(f"{source}: key '{key}': {e['msg']}")
        else:  # a check across sections (e.g. policies and data)
            lines.append(f"{source}: {e['msg']}")
    return "\n".join(lines)


def validate(model: type[BaseModel], raw: Any, source: str) -> Any:
    """``model.model_validate(raw)`` with errors as a ConfigError naming ``source`` and each key."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, source, model)) from None


def read_config(path: str | Path | None = None, overrides: list[str] | None = None) -> tuple[dict[str, Any], str]:
    """A run config's YAML mapping (empty when ``path`` is None) with the ``--set`` overrides applied, not yet
    validated, and its source for errors (the file and the overrides)."""
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            loaded = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if loaded is None:
            raise ConfigError(f"{path}: the file is empty; write {{}} for all defaults")
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping of sections")
        raw = loaded
    for assignment in overrides or []:
        apply_override(raw, assignment)
    if overrides:
        source += " (with --set " + ", ".join(overrides) + ")"
    return raw, source


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Load a run config from YAML (or defaults when ``path`` is None) and apply ``--set`` overrides."""
    return validate(RunConfig, *read_config(path, overrides))


def load_section(name: str, path: str | Path | None = None, overrides: list[str] | None = None) -> Any:
    """One section of a run config, validated as a whole load validates it (errors name the file and
    ``name.KEY``), its default where the file has none; the other sections are neither validated nor needed."""
    field = RunConfig.model_fields[name]
    alone = create_model(f"RunConfig_{name}", **{name: (field.annotation, field)})  # other keys: ignored
    return getattr(validate(alone, *read_config(path, overrides)), name)
