import json
import os

import pytest

import alignment
from alignment.core.code_version import code_version
from alignment.core.store import ArtifactStore, CorruptArtifact


def test_materialize_builds_once_then_reuses(tmp_path):
    store = ArtifactStore(tmp_path)
    calls = []

    def build(out):
        calls.append(out)
        (out / "weights.bin").write_text("w")
        return {"loss": 1.0}

    art, reused = store.materialize("sft", {"lr": 1}, {"base": "base-x"}, build, seed=3)
    assert not reused and len(calls) == 1
    assert art.id == ArtifactStore.artifact_id("sft", {"lr": 1}, {"base": "base-x"}, code_version())
    assert art.path == tmp_path / "sft" / art.id
    assert (art.path / "weights.bin").read_text() == "w"
    assert not calls[0].exists()  # the build's tmp dir was renamed into place
    manifest = json.loads((art.path / "manifest.json").read_text())
    assert manifest == art.manifest
    assert manifest["id"] == art.id and manifest["stage"] == "sft"
    assert manifest["config"] == {"lr": 1} and manifest["inputs"] == {"base": "base-x"}
    assert manifest["metrics"] == {"loss": 1.0} and manifest["seed"] == 3
    assert manifest["code_version"] == code_version() and manifest["flow_run_id"] is None
    again, reused = store.materialize("sft", {"lr": 1}, {"base": "base-x"}, build)
    assert reused and again.id == art.id and again.path == art.path and again.manifest == manifest
    assert len(calls) == 1


def test_changed_config_or_input_gives_new_id():
    a = ArtifactStore.artifact_id("sft", {"lr": 1}, {"base": "b1"}, "v")
    assert a == ArtifactStore.artifact_id("sft", {"lr": 1}, {"base": "b1"}, "v")
    assert a.startswith("sft-") and len(a) == len("sft-") + 16
    assert a != ArtifactStore.artifact_id("sft", {"lr": 2}, {"base": "b1"}, "v")
    assert a != ArtifactStore.artifact_id("sft", {"lr": 1}, {"base": "b2"}, "v")
    assert a != ArtifactStore.artifact_id("sft", {"lr": 1}, {"base": "b1"}, "v2")


def test_crashed_build_leaves_no_artifact(tmp_path):
    store = ArtifactStore(tmp_path)

    def build(out):
        (out / "half.bin").write_text("partial")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        store.materialize("dpo", {}, {}, build)
    # The build failed before the rename, so the stage directory was never created and the tmp dir was removed.
    assert not (tmp_path / "dpo").exists()
    assert (tmp_path / ".tmp").is_dir() and list((tmp_path / ".tmp").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [".locks", ".tmp"]  # the lock file is not an artifact


def test_code_version_is_per_module_closure():
    assert code_version("alignment.methods.sft") != code_version("alignment.methods.dpo")
    # Deterministic: an uncached recomputation (the cached call would trivially match itself) gives the same string.
    assert code_version.__wrapped__("alignment.methods.sft") == code_version("alignment.methods.sft")
    assert code_version("alignment.methods.sft").startswith(f"{alignment.__version__}+")
    assert len(code_version("alignment.methods.sft")) == len(f"{alignment.__version__}+") + 12


def test_latest_and_resolve_by_stage(tmp_path):
    store = ArtifactStore(tmp_path)
    with pytest.raises(FileNotFoundError, match="no sft artifact"):
        store.resolve("latest", "sft")
    older, _ = store.materialize("sft", {"lr": 1}, {}, lambda out: {})
    newer, _ = store.materialize("sft", {"lr": 2}, {}, lambda out: {})
    manifest = older.path / "manifest.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps(data | {"created_at": "2000-01-01T00:00:00Z"}))
    assert store.resolve("latest", "sft").id == newer.id
    assert store.resolve(older.id, "sft").id == older.id
    with pytest.raises(ValueError, match="is a sft artifact, expected dpo"):
        store.resolve(older.id, "dpo")


def _weights_store(tmp_path):
    """A store with one artifact holding a 64-byte 'weights' file; returns (store, build calls, artifact)."""
    store = ArtifactStore(tmp_path / "runs")
    calls = []

    def build(tmp):
        calls.append(1)
        (tmp / "adapter").mkdir()
        (tmp / "adapter" / "weights.bin").write_bytes(bytes(range(64)))
        return {"loss": 0.5}

    def run():
        return store.materialize("sft", {"lr": 1}, {}, build)

    art, reused = run()
    assert not reused and art.manifest["files"]["adapter/weights.bin"]["size"] == 64
    return store, calls, run, art


def _flip_one_byte(path):
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF
    path.write_bytes(bytes(data))


def test_an_artifact_with_one_byte_changed_is_quarantined_and_rebuilt_with_a_warning(tmp_path, caplog):
    store, calls, run, art = _weights_store(tmp_path)
    _flip_one_byte(art.path / "adapter" / "weights.bin")  # same size, new contents
    assert store.verify_all() == {art.id: "adapter/weights.bin does not match its sha256"}
    with caplog.at_level("WARNING", logger="alignment.core.store"):
        again, reused = run()
    assert not reused and len(calls) == 2 and again.id == art.id
    assert (again.path / "adapter" / "weights.bin").read_bytes() == bytes(range(64))
    (moved,) = (tmp_path / "runs" / ".quarantine").iterdir()
    assert moved.name.startswith(art.id) and (moved / "adapter" / "weights.bin").read_bytes() != bytes(range(64))
    assert f"artifact {art.id} is not served: adapter/weights.bin does not match its sha256" in caplog.text
    assert run()[1] is True and store.verify_all() == {art.id: None}  # the rebuilt one is served


def test_a_touched_but_unchanged_file_is_still_served(tmp_path):
    store, calls, run, art = _weights_store(tmp_path)
    weights = art.path / "adapter" / "weights.bin"
    os.utime(weights, ns=(1, 1))  # time changed, contents not: re-hashed and accepted
    assert run()[1] is True and len(calls) == 1


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda p: (p / "manifest.json").unlink(), "its manifest is missing"),
        (lambda p: (p / "manifest.json").write_text('{"id": "sft-'), "its manifest is unreadable (JSONDecodeError)"),
        (lambda p: (p / "adapter" / "weights.bin").write_bytes(b"x"), "adapter/weights.bin has 1 bytes, the manifest"),
        (lambda p: (p / "adapter" / "weights.bin").unlink(), "adapter/weights.bin is missing"),
    ],
)
def test_a_damaged_artifact_never_blocks_the_next_run(tmp_path, damage, problem, caplog):
    store, calls, run, art = _weights_store(tmp_path)
    damage(art.path)
    with caplog.at_level("WARNING", logger="alignment.core.store"):
        again, reused = run()
    assert not reused and len(calls) == 2 and problem in caplog.text
    assert json.loads((again.path / "manifest.json").read_text())["id"] == art.id


def test_loading_a_corrupted_artifact_by_path_is_a_clear_error(tmp_path):
    store, _, _, art = _weights_store(tmp_path)
    _flip_one_byte(art.path / "adapter" / "weights.bin")
    with pytest.raises(CorruptArtifact, match=f"artifact {art.path}: adapter/weights.bin does not match its sha256"):
        store.load(art.path)


def test_alignment_verify_reports_every_artifact_and_fails_on_a_broken_one(tmp_path, capsys):
    from flows.cli import main

    store, _, _, art = _weights_store(tmp_path)
    assert main(["verify", "--store", str(store.root)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{art.id}: ok",
        f"1 artifacts in {store.root}, 0 broken " + ("(the next run that needs one rebuilds it)"),
    ]
    _flip_one_byte(art.path / "adapter" / "weights.bin")
    assert main(["verify", "--store", str(store.root)]) == 1
    assert f"{art.id}: adapter/weights.bin does not match its sha256" in capsys.readouterr().out
    # a store that is not there is an error, not "0 broken": a mistyped path must not pass a scheduled check
    assert main(["verify", "--store", str(tmp_path / "nowhere")]) == 2
    missing = f"error: store {tmp_path / 'nowhere'} does not exist: nothing to verify"
    assert capsys.readouterr().err == missing + " (--store names the store a run wrote)\n"
    (tmp_path / "a-file").write_text("")
    assert main(["verify", "--store", str(tmp_path / "a-file")]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_alignment_version(capsys):
    from flows.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == "alignment 0.1.0\n"


RACER = """
import sys, time
from pathlib import Path
from alignment.core.store import ArtifactStore

def build(tmp):
    with open(sys.argv[2], "a") as log:
        log.write("built\\n")
    time.sleep(1.5)  # long enough for the other run to arrive while this one builds
    (tmp / "weights.bin").write_bytes(b"w" * 32)
    return {}

art, reused = ArtifactStore(sys.argv[1]).materialize("sft", {"lr": 1}, {}, build)
print(art.id, reused)
"""


def test_two_runs_on_one_store_build_an_artifact_once(tmp_path):
    import subprocess
    import sys

    log = tmp_path / "builds.log"
    command = [sys.executable, "-c", RACER, str(tmp_path / "runs"), str(log)]
    racers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in racers]
    assert [p.returncode for p in racers] == [0, 0], outputs
    assert log.read_text() == "built\n"  # one build
    results = sorted(out.split() for out, _ in outputs)
    assert results[0][0] == results[1][0] and sorted(r[1] for r in results) == ["False", "True"]
    waited = [err for _, err in outputs if "is being built by another run on this store: waiting for it" in err]
    assert len(waited) == 1


def test_a_full_disk_is_a_clear_error_and_leaves_nothing_half_written(tmp_path):
    import errno

    from alignment.core.store import StoreFull

    store = ArtifactStore(tmp_path / "runs")

    def build(tmp):
        (tmp / "weights.bin").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(StoreFull) as err:
        store.materialize("sft", {"lr": 1}, {}, build)
    assert err.value.errno == errno.ENOSPC
    assert err.value.strerror.startswith("sft-") and f"no space left on the device of the store {store.root}" in (
        err.value.strerror
    )
    assert not (tmp_path / "runs" / "sft").exists() and list((tmp_path / "runs" / ".tmp").iterdir()) == []
    again, reused = store.materialize("sft", {"lr": 1}, {}, lambda tmp: (tmp / "w.bin").write_bytes(b"w") and {})
    assert not reused and again.path.is_dir()  # the next run, with space again, builds it


def test_the_frontier_is_not_rebuilt_by_the_pair_rules():
    """The frontier (the slowest real-facts stage) runs the probe, not the pair rules: changing how pairs are built
    (``probe_pairs``) rebuilds the pairs and what follows, never the frontier."""
    from alignment.core.code_version import import_closure

    frontier = {p.name for p in import_closure("alignment.evaluation.frontier")}
    assert "probe.py" in frontier and "frontier.py" in frontier
    assert not frontier & {"probe_pairs.py", "run_data.py", "knowledge.py"}
    assert "probe_pairs.py" in {p.name for p in import_closure("alignment.evaluation.probe_pairs")}


def test_code_versions_survive_cpythons_spurious_ast_error(monkeypatch, tmp_path):
    """Python < 3.13 shares the AST constructor's recursion counter between threads: a parse in another thread
    (Prefect's) made a flow run's ``pin`` fail with "AST constructor recursion depth mismatch". That error is retried;
    any other is not, and each file is parsed once per content."""
    from alignment.core import code_version as cv

    pkg = tmp_path / "alignment"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "stage.py").write_text("import alignment.helper\n")
    (pkg / "helper.py").write_text("X = 1\n")
    calls, real = [], cv._ast_parse

    def flaky(source, filename="<unknown>", *args, **kwargs):
        calls.append(filename)
        if len(calls) == 1:
            raise SystemError("AST constructor recursion depth mismatch (before=54, after=71)")
        return real(source, filename, *args, **kwargs)

    monkeypatch.setattr(cv, "_ast_parse", flaky)
    assert [p.name for p in cv.import_closure("alignment.stage", pkg)] == ["__init__.py", "helper.py", "stage.py"]
    assert len(calls) == 4  # the failed try, then each of the three files once
    cv.import_closure("alignment.stage", pkg)
    assert len(calls) == 4  # unchanged files are not parsed again

    (pkg / "helper.py").write_text("X = 2\n")
    monkeypatch.setattr(cv, "_ast_parse", lambda *a, **k: (_ for _ in ()).throw(SystemError("something else")))
    with pytest.raises(SystemError, match="something else"):
        cv.import_closure("alignment.stage", pkg)
