"""`alignment chat`: talk to an exported model with its own chat template and generation config."""

from pathlib import Path

from test_gguf import write_tiny_gguf

from alignment.config.model import ModelConfig
from alignment.models.chat import Chat, model_dir
from alignment.models.gguf import dequantize
from flows.cli import main


def tiny_model_dir(tmp_path: Path) -> Path:
    path, _ = write_tiny_gguf(tmp_path)
    out = tmp_path / "export-x" / "model"
    dequantize(ModelConfig(name_or_path=str(tmp_path), gguf_file=path.name, dtype="float32"), out)
    return out


def test_chat_answers_one_prompt_and_keeps_the_conversation(tmp_path, capsys, monkeypatch):
    model = tiny_model_dir(tmp_path)
    assert model_dir(str(model.parent), "unused") == model  # an export directory or its model directory
    chat = Chat(model, max_new_tokens=4)
    first = chat.say("Hello?")
    chat.say("And then?")
    assert [t["role"] for t in chat.history] == ["user", "assistant", "user", "assistant"]
    assert chat.history[1]["content"] == first
    assert main(["chat", str(model), "--prompt", "Hello?", "--max-new-tokens", "4"]) == 0
    assert capsys.readouterr().out == first + "\n"  # greedy: the same answer
    answers = iter(["Hello?", ""])
    monkeypatch.setattr("builtins.input", lambda _: next(answers))
    assert main(["chat", str(model), "--max-new-tokens", "4"]) == 0
    assert f"model> {first}" in capsys.readouterr().out


def test_chat_without_an_export_is_one_error_line(tmp_path, capsys):
    assert main(["chat", "latest", "--store", str(tmp_path), "--prompt", "hi"]) == 2
    assert (
        capsys.readouterr().err
        == f"error: no export artifact in store {tmp_path} yet: run that stage or the pipeline\n"
    )


def test_chat_stays_within_the_models_context(tmp_path, capsys):
    """Answers stop at the model's context length (128 here) and the oldest exchanges make way for new ones; a
    message longer than the model reads is an error that leaves the conversation as it was."""
    chat = Chat(tiny_model_dir(tmp_path), max_new_tokens=1000)
    context = chat.model.config.max_position_embeddings
    long = "Where does the river go after the mountains and the valley"  # 58 characters, one token each
    for question in (long, long.upper(), "And then?"):
        chat.say(question)
        text = chat.tok.apply_chat_template(chat.history, tokenize=False)
        assert len(chat.tok(text, add_special_tokens=False)["input_ids"]) <= context + 1  # + the closing marker
    assert chat.history[-2]["content"] == "And then?" and len(chat.history) < 6  # the oldest were dropped
    before = list(chat.history)
    try:
        chat.say("x" * 2 * context)
    except ValueError as exc:
        assert str(exc).endswith(f"tokens; the model reads at most {context}: write less")
    else:
        raise AssertionError("a message longer than the context was accepted")
    assert chat.history == before
    capsys.readouterr()
    assert main(["chat", str(chat.model_dir), "--prompt", "x" * 2 * context]) == 2
    assert capsys.readouterr().err.startswith("error: the message is ")
