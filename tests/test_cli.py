import json
import re
from pathlib import Path

import pytest

from flows.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_run_rejects_unknown_key_before_anything_starts(capsys):
    assert main(["run", str(ROOT / "configs/tiny.yaml"), "--set", "sft.learning_rat=0.1"]) == 2
    assert "unknown key 'sft.learning_rat'" in capsys.readouterr().err


def test_run_rejects_bad_preference_file_before_training(tmp_path, capsys):
    bad = tmp_path / "prefs.jsonl"
    bad.write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n{"prompt": "q", "chosen": "a"}\n')
    store = tmp_path / "runs"
    args = ["run", str(ROOT / "configs/tiny.yaml"), "--set", f"data.preferences={bad}", "--set", f"store.root={store}"]
    assert main(args) == 2
    assert f"{bad}: row 2 (line 2): column 'rejected' is missing" in capsys.readouterr().err
    assert not store.exists()  # nothing trained, nothing written


def test_validate_accepts_default_config(capsys):
    assert main(["validate", str(ROOT / "configs/tiny.yaml")]) == 0


def test_world_command_writes_files_and_never_silently_overwrites_others(tmp_path, capsys):
    out = tmp_path / "data"
    assert main(["world", str(ROOT / "configs/micro.yaml"), "--out", str(out)]) == 0
    assert (out / "preferences.jsonl").is_file()
    written = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["world", str(ROOT / "configs/micro.yaml"), "--out", str(out)]) == 0  # the same files: fine
    (out / "preferences.jsonl").write_text("my own pairs\n")
    capsys.readouterr()
    assert main(["world", str(ROOT / "configs/micro.yaml"), "--set", "world.seed=5", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {out}: would overwrite ") and "preferences.jsonl" in err and "--force" in err
    assert (out / "preferences.jsonl").read_text() == "my own pairs\n"  # nothing written
    assert main(["world", str(ROOT / "configs/micro.yaml"), "--out", str(out), "--force"]) == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == written
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".data-")]  # no temporary directory left


@pytest.mark.slow
def test_an_unchanged_run_is_answered_from_the_store(tmp_path, capsys, monkeypatch):
    from alignment.config.loading import load_config
    from alignment.core.context import StageContext
    from alignment.core.store import ArtifactStore
    from alignment.graph import run_local

    store = tmp_path / "runs"
    cfg = load_config(ROOT / "configs/micro.yaml", [f"store.root={store}"])
    values = run_local(StageContext(cfg, ArtifactStore(store), progress=lambda _: None))
    before = sorted(p.name for p in store.rglob("manifest.json"))
    assert main(["run", str(ROOT / "configs/micro.yaml"), "--store", str(store)]) == 0  # = --set store.root=
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"up to date: every artifact is already in {store}")
    assert out[1:4] == [
        f"evaluation: {values['evaluate'].path.resolve()}",
        f"report: {values['report'].path.resolve()}/report.md",
        f"exported policy: {values['export'].path.resolve()}/model",
    ]
    metrics = json.loads((values["evaluate"].path / "metrics.json").read_text())
    assert out[4] == "" and out[5].split() == [
        "model",
        "accuracy",
        "(known)",
        "prudence",
        "hallucination",
        "win-rate",
        "vs",
        "SFT",
    ]
    rows = {line.split()[0]: line.split()[1:] for line in out[6:]}
    assert list(rows) == ["base", "sft", "dpo"] and rows["base"][3] == rows["sft"][3] == "-"
    assert rows["dpo"] == [
        f"{metrics['dpo'][k]['value']:.3f}" for k in ("accuracy_known", "prudence", "hallucination_rate")
    ] + [f"{metrics['dpo']['win_rate_vs_sft']['gold']['value']:.3f}"]
    assert sorted(p.name for p in store.rglob("manifest.json")) == before
    assert main(["lineage", "latest", "--store", str(store), "--no-metrics"]) == 0  # latest: the newest export
    assert capsys.readouterr().out.startswith(f"- export: {values['export'].id}")
    monkeypatch.setenv("ALIGNMENT_ALLOWED_ROOTS", str(tmp_path / "elsewhere"))  # a worker confining paths
    assert main(["run", str(ROOT / "configs/micro.yaml"), "--store", str(store)]) == 2  # up to date, still checked
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(f"error: key 'store.root': {store} is outside the paths")


@pytest.mark.slow
def test_a_run_is_quiet_and_ends_with_its_numbers(tmp_path):
    """No deprecation warnings whose cause is known (is_gradient_checkpointing) and no load report for the reward
    model's fresh score head; the run ends with its headline table."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "flows.cli", "run", "configs/micro.yaml", "--set", f"store.root={tmp_path}"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    output = done.stdout + done.stderr
    assert "FutureWarning" not in output and "LOAD REPORT" not in output
    # Nothing but Prefect's INFO lines (and its one-line hint about the temporary server) before the run's outputs:
    # no warning from any library, no "layers were not sharded".
    log = re.compile(r"^\d\d:\d\d:\d\d\.\d+ \| INFO +\| ")
    rest = [line for line in output.splitlines() if not log.match(line) and not line.startswith("See https://docs.pre")]
    assert [line.split(":")[0] for line in rest[:3]] == ["evaluation", "report", "exported policy"], rest
    assert len(rest) == 8 and rest[3] == "", rest
    assert done.stdout.splitlines()[-4].split()[:3] == ["model", "accuracy", "(known)"]
    assert [line.split()[0] for line in done.stdout.splitlines()[-3:]] == ["base", "sft", "dpo"]


def _processes_marked(mark: str) -> dict[int, str]:
    """The running processes whose environment holds ``mark``, by pid, with their command lines: every process a
    command started, whatever session it moved to (torchrun's trainers each start their own)."""
    from prefect_server import alive, command_line

    found = {}
    for environ in Path("/proc").glob("[0-9]*/environ"):
        pid = int(environ.parent.name)
        try:
            if mark.encode() in environ.read_bytes() and alive(pid):
                found[pid] = command_line(pid)
        except OSError:  # ended while we looked, or not ours to read
            continue
    return found


def test_sigterm_and_sighup_end_a_command_through_the_exit_path_and_the_handlers_are_restored():
    """Inside a command, SIGTERM and SIGHUP raise SystemExit with 128 + the signal's number (so ``finally`` blocks
    and Prefect's ``atexit`` stop of its temporary server run); after it, the previous handlers are back."""
    import os
    import signal
    import time

    from flows.cli.parser import termination_exits

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    for sig, status in ((signal.SIGTERM, 143), (signal.SIGHUP, 129)):
        with pytest.raises(SystemExit) as stopped, termination_exits():
            os.kill(os.getpid(), sig)
            time.sleep(5)  # not reached: the handler raises as soon as the signal is delivered
        assert stopped.value.code == status
    assert {sig: signal.getsignal(sig) for sig in before} == before


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["sigterm", "ctrl-c"])
def test_a_run_stopped_mid_training_ends_in_seconds_and_leaves_no_process_behind(tmp_path, stop):
    """`kill` (SIGTERM to the command) or Ctrl-C (SIGINT to the terminal's foreground process group) of `alignment
    run` while a stage trains in two launched processes: the run is reported Crashed, the command exits in seconds
    (143 or 130), and nothing it started outlives it: not its temporary Prefect server, not the launcher or its
    trainers. Before, SIGTERM left the server running for good, and Ctrl-C ended the server first, so the command
    hung for minutes retrying to report the crash to it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    log = tmp_path / "run.log"
    mark = f"ALIGNMENT_TEST_MARK={tmp_path}"  # in the environment of every process the command starts
    overrides = [f"store.root={tmp_path / 'runs'}", "compute.num_processes=2", "sft.num_train_epochs=400"]
    command = [sys.executable, "-m", "flows.cli", "run", "configs/micro.yaml"]
    command += [a for o in overrides for a in ("--set", o)]
    env = os.environ | dict([mark.split("=", 1)])

    def as_a_foreground_job() -> None:  # its own session and group; Ctrl-C not ignored (a background shell ignores it)
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    with log.open("w") as out:
        proc = subprocess.Popen(
            command, cwd=ROOT, stdout=out, stderr=out, env=env, start_new_session=True, preexec_fn=as_a_foreground_job
        )
    try:
        deadline = time.monotonic() + 300
        while "sft: step" not in log.read_text():  # rank 0's progress, through the parent: the launch trains
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        started = _processes_marked(mark)
        assert len(started) == 5, started  # the command, its server, the launcher and its two trainers
        if stop == "sigterm":
            os.kill(proc.pid, signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=60) == (143 if stop == "sigterm" else 130), log.read_text()[-3000:]
        deadline = time.monotonic() + 30
        while (left := _processes_marked(mark)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert left == {}
        text = log.read_text()
        assert "sft: interrupted; stopping the launched processes" in text
        cause = "a termination signal" if stop == "sigterm" else "an interrupt signal"
        crashed = rf"Flow run '[\w-]+' - Finished in state Crashed\('Execution was aborted by {cause}\.'\)"
        assert re.search(crashed, text), text[-3000:]
        assert "Connection refused" not in text and "Traceback" not in text
        assert not any((tmp_path / "runs" / ".tmp").iterdir())  # no half-written artifact left
        assert not (tmp_path / "runs" / "sft").exists()
    finally:  # whatever the test saw, nothing it started runs on
        from prefect_server import kill_all

        kill_all(list(_processes_marked(mark)))


def test_retrain_options_are_validated_by_the_retrain_config(tmp_path, capsys):
    args = ["retrain", str(ROOT / "configs/micro.yaml"), "--data-dir", str(tmp_path), "--min-win-rate", "2"]
    assert main(args) == 2
    assert (
        "retrain options: key 'gates.min_gold_win_rate': Input should be less than or equal to 1"
        in capsys.readouterr().err
    )


def test_export_command_builds_the_standalone_policy_once(tmp_path, capsys):
    """With the run's config or without it (the settings then come from the manifests), the same export artifact;
    a wrong id, kind or store is one error line."""
    from alignment.config.loading import load_config
    from alignment.core.context import StageContext
    from alignment.core.store import ArtifactStore
    from alignment.graph import run_local

    store = tmp_path / "runs"
    cfg = load_config(ROOT / "configs/micro.yaml", [f"store.root={store}"])
    dpo = run_local(StageContext(cfg, ArtifactStore(store), progress=lambda _: None), ("dpo",))["dpo"]
    args = ["export", dpo.id, "--config", str(ROOT / "configs/micro.yaml"), "--store", str(store)]
    assert main(args) == 0
    [export] = list((store / "export").iterdir())
    assert capsys.readouterr().out.splitlines()[-1] == f"exported policy: {export / 'model'}"
    assert (export / "model" / "model.safetensors").is_file() and (export / "model" / "tokenizer.json").is_file()
    worlds = sorted((store / "world").iterdir())
    for ref in (dpo.id, "latest"):  # no config: the micro world and model read back from the manifests
        assert main(["export", ref, "--store", str(store)]) == 0
        assert capsys.readouterr().out.splitlines()[-1] == f"exported policy: {export / 'model'}"
    assert list((store / "export").iterdir()) == [export] and sorted((store / "world").iterdir()) == worlds
    assert main(["export", "sft-0123456789abcdef", "--store", str(store)]) == 2
    assert "sft-0123456789abcdef is not a policy artifact (one of dpo, rloo, kto, grpo)" in capsys.readouterr().err
    assert main(["export", "kto-0123456789abcdef", "--store", str(store)]) == 2
    assert "no artifact 'kto-0123456789abcdef'" in capsys.readouterr().err
    assert main(["export", "latest", "--policy", "rloo", "--store", str(store)]) == 2
    assert f"no rloo artifact in store {store} yet" in capsys.readouterr().err
    assert main(["export", "latest", "--store", str(tmp_path / "nope")]) == 2
    assert (
        capsys.readouterr().err
        == f"error: store {tmp_path / 'nope'} does not exist: nothing to export (--store names the store a run wrote)\n"
    )


def test_every_artifact_command_names_a_missing_store(tmp_path, capsys):
    missing = str(tmp_path / "nope")
    for command in (["chat", "latest", "--prompt", "hi"], ["lineage", "latest"], ["promoted"], ["verify"]):
        assert main([*command, "--store", missing]) == 2, command
        err = capsys.readouterr().err
        assert err.startswith(f"error: store {missing} does not exist: ") and err.count("\n") == 1, err


def test_check_refuses_compute_this_machine_lacks_before_any_work(capsys):
    import torch

    config = str(ROOT / "configs/tiny.yaml")
    assert main(["check", config]) == 0 and f"{config}: ok" in capsys.readouterr().out
    assert main(["check", config, "--set", "compute.accelerate_config=configs/accelerate/nope.yaml"]) == 2
    assert "key 'compute.accelerate_config': configs/accelerate/nope.yaml is not a file" in capsys.readouterr().err
    assert main(["check", config, "--set", "compute.accelerate_config=configs/accelerate/ddp.yaml"]) == 0
    if not torch.cuda.is_available():
        assert main(["check", config, "--set", "compute.device=cuda"]) == 2
        assert f"{config}: key 'compute.device' is 'cuda' but this machine has no CUDA" in capsys.readouterr().err


def test_check_refuses_lora_targets_the_base_does_not_have(capsys):
    config = str(ROOT / "configs/tiny.yaml")
    assert main(["check", config, "--set", "dpo.lora.target_modules=[q_proj,qkv]"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {config}: key 'dpo.lora.target_modules': ['qkv'] match no module of the base model; its linear "
        "layers: down_proj, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj"
    )
    assert main(["check", config, "--set", "dpo.lora.target_modules=[q_proj,v_proj]"]) == 0


def test_check_refuses_a_model_directory_that_is_not_a_model_before_any_work(tmp_path, capsys):
    config = str(ROOT / "configs/tiny.yaml")
    assert main(["check", config, "--set", f"model.name_or_path={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {config}: model.name_or_path '{tmp_path}': not a loadable model")


def test_a_model_path_that_does_not_exist_is_named_as_such_and_offline_hub_ids_name_the_switch(tmp_path, capsys):
    config = str(ROOT / "configs/micro.yaml")
    missing = tmp_path / "no-such-model"
    assert main(["check", config, "--set", f"model.name_or_path={missing}"]) == 2
    assert capsys.readouterr().err == f"error: {config}: model.name_or_path '{missing}': no such directory\n"
    assert main(["check", config, "--set", "model.name_or_path=someorg/not-cached-model"]) == 2
    err = capsys.readouterr().err
    assert "HF_HUB_OFFLINE" in err and "set HF_HUB_OFFLINE=0" in err and err.count("\n") == 1  # one line


def test_a_model_directory_without_a_tokenizer_is_named_in_one_line(tmp_path, capsys):
    from transformers import LlamaConfig, LlamaForCausalLM

    model_dir = tmp_path / "weights-only"
    shape = {"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2, "num_key_value_heads": 2}
    LlamaForCausalLM(LlamaConfig(vocab_size=32, num_hidden_layers=1, **shape)).save_pretrained(model_dir)
    assert main(["check", str(ROOT / "configs/micro.yaml"), "--set", f"model.name_or_path={model_dir}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {ROOT / 'configs/micro.yaml'}: {model_dir}: no usable tokenizer (save it with")
    assert err.count("\n") == 1


def test_export_latest_in_a_store_without_a_policy_names_every_policy(tmp_path, capsys):
    store = tmp_path / "runs"
    store.mkdir()
    assert main(["export", "latest", "--store", str(store)]) == 2
    assert capsys.readouterr().err == (
        f"error: no dpo, rloo, kto or grpo artifact in store {store} yet: run that stage or the pipeline\n"
    )


def test_facts_needs_the_facts_section_alone(tmp_path, capsys):
    """No model, no probe pairs: the question files need only `facts` (a run checks the rest when it loads)."""
    from alignment.data.facts import FILES

    config = tmp_path / "facts.yaml"
    config.write_text("facts:\n  max_entities: 10\n  reference_documents: 5\n")
    out = tmp_path / "facts"
    assert main(["facts", str(config), "--out", str(out)]) == 0
    assert all((out / name).read_text() for name in FILES.values()) and (out / "DATA_CARD.md").is_file()
    assert len((out / "reference.txt").read_text().splitlines()) == 5
    assert capsys.readouterr().out.splitlines()[-1] == f"data card: {out / 'DATA_CARD.md'}"
    assert main(["facts", str(config), "--set", "facts.sed=1", "--out", str(out)]) == 2  # an override: checked too
    assert capsys.readouterr().err == (
        f"error: {config} (with --set facts.sed=1): unknown key 'facts.sed'; did you mean 'facts.seed'?\n"
    )
    config.write_text("facts:\n  max_entitie: 10\n")
    assert main(["facts", str(config), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"error: {config}: unknown key 'facts.max_entitie'; did you mean 'facts.max_entities'?\n"
    )
    config.write_text("world:\n  seed: 3\n")
    assert main(["facts", str(config), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"error: {config}: no 'facts' section: nothing to build (see configs/real-facts.yaml)\n"
    )
