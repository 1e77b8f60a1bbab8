import pytest

from alignment.records import DataError, load_demonstrations, load_preferences, load_questions


def write(tmp_path, text):
    path = tmp_path / "data.jsonl"
    path.write_text(text)
    return path


def test_malformed_line_names_file_and_line(tmp_path):
    path = write(tmp_path, '{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": oops}\n')
    with pytest.raises(DataError, match=rf"{path}:2: malformed JSON"):
        load_preferences(path)


def test_missing_field_names_field_and_line(tmp_path):
    path = write(tmp_path, '{"prompt": "a", "chosen": "b"}\n')
    with pytest.raises(DataError, match=rf"{path}:1: missing field 'rejected'"):
        load_preferences(path)


def test_empty_string_is_rejected(tmp_path):
    path = write(tmp_path, '{"prompt": "a", "completion": "b"}\n\n{"prompt": "  ", "completion": "b"}\n')
    with pytest.raises(DataError, match=rf"{path}:3: field 'prompt' is an empty string"):
        load_demonstrations(path)


def test_identical_chosen_and_rejected_is_rejected(tmp_path):
    path = write(tmp_path, '{"prompt": "a", "chosen": "b", "rejected": "b"}\n')
    with pytest.raises(DataError, match=rf"{path}:1: 'chosen' and 'rejected' are the same"):
        load_preferences(path)


def test_questions_need_boolean_known(tmp_path):
    path = write(tmp_path, '{"prompt": "a", "answer": "b", "known": "yes"}\n')
    with pytest.raises(DataError, match="'known' must be true or false"):
        load_questions(path)


def test_valid_rows_load(tmp_path):
    path = write(tmp_path, '{"prompt": "a", "completion": "b", "extra": 1}\n')
    assert load_demonstrations(path) == [{"prompt": "a", "completion": "b", "extra": 1}]
