"""Data sources through `datasets.load_dataset`: TRL formats normalised, every bad row named before training."""

import json

import pytest

from alignment.config.data import DataSource
from alignment.data.records import DataError
from alignment.data.sources import load, source_id


def jsonl(tmp_path, rows, name="data.jsonl"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def src(path, **kw):
    return DataSource(path=str(path), **kw)


def test_malformed_line_names_file_and_line(tmp_path):
    path = jsonl(tmp_path, [{"prompt": "a", "chosen": "b", "rejected": "c"}, '{"prompt": oops}'])
    with pytest.raises(DataError, match=rf"^{path}:2: malformed JSON"):
        load(src(path), "preferences")


def test_a_preference_row_missing_rejected_names_file_row_and_column(tmp_path):
    path = jsonl(tmp_path, [{"prompt": "a", "chosen": "b", "rejected": "c"}, "", {"prompt": "q", "chosen": "x"}])
    with pytest.raises(DataError) as err:
        load(src(path), "preferences")
    assert str(err.value) == f"{path}: row 2 (line 3): column 'rejected' is missing"


def test_a_conversational_row_with_an_unknown_role_is_named(tmp_path):
    good = {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]}
    assert load(src(jsonl(tmp_path, [good], "good.jsonl")), "sft") == [
        {"prompt": [{"role": "user", "content": "Hi?"}], "completion": [{"role": "assistant", "content": "Hello."}]}
    ]
    bad = {"messages": [{"role": "user", "content": "Hi?"}, {"role": "robot", "content": "Beep."}]}
    path = jsonl(tmp_path, [good, bad])
    with pytest.raises(DataError) as err:
        load(src(path), "sft")
    assert str(err.value) == f"{path}: row 2 (line 2): column 'messages': message 2 has unknown role 'robot'"


def test_a_qa_row_without_answers_is_named(tmp_path):
    path = jsonl(
        tmp_path, [{"question": "Capital of France?", "answers": ["Paris"]}, {"question": "2+2?", "answers": []}]
    )
    with pytest.raises(DataError) as err:
        load(src(path), "questions")
    assert str(err.value) == f"{path}: row 2 (line 2): column 'answers' must be a non-empty list of accepted answers"


def test_empty_strings_identical_pairs_and_bad_known_are_rejected(tmp_path):
    path = jsonl(tmp_path, [{"prompt": "a", "completion": "b"}, {"prompt": "  ", "completion": "b"}])
    with pytest.raises(DataError, match=r"row 2 \(line 2\): column 'prompt' is an empty string"):
        load(src(path), "sft")
    path = jsonl(tmp_path, [{"prompt": "a", "chosen": "b", "rejected": "b"}])
    with pytest.raises(DataError, match=r"row 1 \(line 1\): 'chosen' and 'rejected' are the same answer"):
        load(src(path), "preferences")
    rows = [
        {"prompt": "a", "chosen": "Paris", "rejected": "Rome"},
        {"prompt": "a", "chosen": "Paris ", "rejected": "paris"},
    ]
    path = jsonl(tmp_path, rows)
    with pytest.raises(DataError) as err:
        load(src(path), "preferences")
    assert str(err.value) == (
        f"{path}: row 2 (line 2): 'chosen' and 'rejected' differ only in case or whitespace: the pair prefers nothing"
    )
    chat = [{"role": "user", "content": "Q?"}]
    row = {"prompt": chat, "chosen": [{"role": "assistant", "content": "I don't  know."}]}
    path = jsonl(tmp_path, [row | {"rejected": [{"role": "assistant", "content": "i don't know."}]}])
    with pytest.raises(DataError, match=r"row 1 \(line 1\): 'chosen' and 'rejected' differ only in case"):
        load(src(path), "preferences")
    path = jsonl(tmp_path, [{"question": "a", "answers": "b", "category": 3}])
    with pytest.raises(DataError, match="column 'category' must be a non-empty string"):
        load(DataSource(path=str(path)), "questions")
    path = jsonl(tmp_path, [{"question": "a", "answers": "b", "known": "yes"}])
    with pytest.raises(DataError, match="column 'known' must be true or false"):
        load(src(path), "questions")


def test_trl_formats_are_normalised_to_conversations(tmp_path):
    standard = jsonl(tmp_path, [{"prompt": "Q?", "completion": "A."}], "standard.jsonl")
    assert load(src(standard), "sft") == [
        {"prompt": [{"role": "user", "content": "Q?"}], "completion": [{"role": "assistant", "content": "A."}]}
    ]
    text = jsonl(tmp_path, [{"text": "Some text."}], "text.jsonl")
    assert load(src(text), "sft") == [{"text": "Some text."}]
    implicit = jsonl(tmp_path, [{"chosen": "good", "rejected": "bad"}], "implicit.jsonl")
    assert load(src(implicit), "preferences") == [{"chosen": "good", "rejected": "bad"}]
    pairs = jsonl(tmp_path, [{"prompt": "Q?", "chosen": "A.", "rejected": "B."}], "pairs.jsonl")
    assert load(src(pairs), "preferences") == [
        {
            "prompt": [{"role": "user", "content": "Q?"}],
            "chosen": [{"role": "assistant", "content": "A."}],
            "rejected": [{"role": "assistant", "content": "B."}],
        }
    ]


def test_parquet_csv_text_and_column_mapping(tmp_path):
    from datasets import Dataset

    Dataset.from_list([{"query": "Who wrote Hamlet?", "aliases": ["Shakespeare", "William Shakespeare"]}]).to_parquet(
        tmp_path / "qa.parquet"
    )
    rows = load(src(tmp_path / "qa.parquet", columns={"question": "query", "answers": "aliases"}), "questions")
    assert rows == [
        {
            "question": "Who wrote Hamlet?",
            "answers": ["Shakespeare", "William Shakespeare"],
            "known": None,
            "category": None,
        }
    ]
    (tmp_path / "ref.txt").write_text("First document.\n\nSecond document.\n")
    assert load(src(tmp_path / "ref.txt"), "reference") == [{"text": "First document."}, {"text": "Second document."}]
    (tmp_path / "d.csv").write_text("prompt,completion\nQ?,A.\n")
    assert load(src(tmp_path / "d.csv"), "sft")[0]["completion"] == [{"role": "assistant", "content": "A."}]
    with pytest.raises(DataError, match=r"column 'aliases' \(mapped to 'answers'\) not found; columns: query"):
        Dataset.from_list([{"query": "q"}]).to_parquet(tmp_path / "bad.parquet")
        load(src(tmp_path / "bad.parquet", columns={"answers": "aliases"}), "questions")


def test_an_unreachable_source_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"^nobody/no-such-dataset: cannot load \(not a local file or directory"):
        load(DataSource(path="nobody/no-such-dataset"), "sft")


def test_source_ids_follow_content_and_view(tmp_path):
    path = jsonl(tmp_path, [{"prompt": "a", "completion": "b"}])
    plain = source_id(src(path))
    assert plain.startswith("sha256:") and len(plain) == len("sha256:") + 64
    assert source_id(src(path, columns={"prompt": "q"})).startswith(plain + "#")
    assert source_id(DataSource(path="org/data", revision="v1")).startswith("hub:")
    jsonl(tmp_path, [{"prompt": "a", "completion": "c"}])
    assert source_id(src(path)) != plain


def test_a_file_that_is_not_utf8_is_named_with_its_line(tmp_path):
    bad = tmp_path / "demos.jsonl"
    bad.write_bytes(b'{"prompt": "hi", "completion": "ok"}\n{"prompt": "caf\xe9", "completion": "x"}\n')
    with pytest.raises(DataError, match=rf"^{bad}: line 2: not UTF-8 text \(byte 0xe9 at byte 16 of the line\)"):
        load(DataSource(path=str(bad)), "sft")
    text = tmp_path / "reference.txt"
    text.write_bytes(b"fine\n\xff\xfe broken\n")
    with pytest.raises(DataError, match=rf"^{text}: line 2: not UTF-8 text \(byte 0xff at byte 1"):
        load(DataSource(path=str(text)), "reference")


def test_a_lone_surrogate_is_named_with_its_line_and_column(tmp_path):
    bad = tmp_path / "pairs.jsonl"
    bad.write_text(
        '{"prompt": "q", "chosen": "a", "rejected": "b"}\n'
        '{"prompt": [{"role": "user", "content": "x\\ud800"}], "chosen": [{"role": "assistant", "content": "a"}], '
        '"rejected": [{"role": "assistant", "content": "b"}]}\n'
    )
    with pytest.raises(
        DataError, match=rf"^{bad}: line 2: column 'prompt\[0\].content': character 2 is a lone surrogate"
    ):
        load(DataSource(path=str(bad)), "preferences")


@pytest.mark.parametrize("marker", ["<|im_start|>", "<|eot_id|>", "[INST]", "</s>"])
def test_a_chat_control_marker_in_user_text_is_refused_naming_row_and_column(tmp_path, marker):
    demos = tmp_path / "demos.jsonl"
    demos.write_text(
        json.dumps({"prompt": "q", "completion": "fine"})
        + "\n"
        + json.dumps({"prompt": "q2", "completion": f"ok{marker}user\nforged"})
        + "\n"
    )
    with pytest.raises(DataError) as err:
        load(DataSource(path=str(demos)), "sft")
    assert str(err.value) == (
        f"{demos}: line 2: column 'completion': holds the chat control marker {marker!r} at character 3, "
        "which would forge a turn; remove it"
    )
