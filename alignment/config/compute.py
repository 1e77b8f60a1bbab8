"""The ``compute`` and ``store`` sections: where stages run and where their artifacts go."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from alignment.config.base import Section


class ComputeConfig(Section):
    """Where and how stages run."""

    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="'auto': CUDA when available, else CPU.")
    threads: int | None = Field(None, ge=1, description="torch CPU threads; None = torch's default.")
    bf16: bool = Field(False, description="bf16 mixed precision (GPU only; on CPU it is far slower).")
    num_processes: int = Field(
        1,
        ge=1,
        description="Processes each TRL training stage (SFT, reward, every policy) runs in, through `accelerate "
        "launch`: one per GPU; on CPU each is a gloo DDP process. 1: in the calling process, no launch.",
    )
    accelerate_config: str | None = Field(
        None,
        description="An accelerate config file for the launch (configs/accelerate/: ddp, fsdp2, zero2, zero3); "
        "None: one-node DDP. Its num_processes is replaced by compute.num_processes.",
    )
    checkpoint_steps: int | None = Field(
        50,
        ge=1,
        description="Training stages save a resumable checkpoint every N optimizer steps under "
        "<store>/.checkpoints/<artifact id>; a re-run after a crash resumes from it. None: no checkpoints.",
    )


class StoreConfig(Section):
    """The artifact store."""

    root: Path = Field(Path("runs"), description="Directory of the artifact store (created if missing).")

    @model_validator(mode="before")
    @classmethod
    def _root_given(cls, data: Any) -> Any:
        if isinstance(data, dict) and "root" in data and (data["root"] is None or not str(data["root"]).strip()):
            raise PydanticCustomError("empty_store_root", "store.root is empty: name the store's directory")
        return data

    @model_validator(mode="after")
    def _root_can_be_a_directory(self) -> StoreConfig:
        existing = next((p for p in (self.root, *self.root.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            raise PydanticCustomError(
                "store_root_file",
                "store.root {root}: {file} is a file, not a directory: name the store's directory",
                {"root": str(self.root), "file": str(existing)},
            )
        return self
