import json
import re
from pathlib import Path

from alignment.config.world import WorldConfig
from alignment.data.chat_format import chat_exchange
from alignment.data.records import IDK
from alignment.data.tokenizer import train_tokenizer
from alignment.data.world import generate, write_world

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_data_regenerates_byte_identical(tmp_path):
    write_world(WorldConfig(), tmp_path)
    shipped = sorted(p.name for p in (ROOT / "data").iterdir() if p.suffix in {".json", ".jsonl", ".txt"})
    assert shipped == sorted(p.name for p in tmp_path.iterdir())
    for name in shipped:
        assert (ROOT / "data" / name).read_bytes() == (tmp_path / name).read_bytes(), name


def test_unknown_entities_never_in_pretraining_or_sft():
    files = generate(WorldConfig(n_known=30, n_unknown=30))
    world = json.loads(files["world.json"])
    unknown = {e["name"] for e in world["entities"] if not e["known"]}
    corpus_words = set(re.findall(r"\w+", files["pretrain.txt"] + files["reference.txt"]))
    demo_words = set(re.findall(r"\w+", files["demonstrations.jsonl"]))
    assert unknown and not unknown & corpus_words
    assert not unknown & demo_words


def test_every_non_name_word_is_in_pretraining():
    """Only entity names may be unseen: question words and "I don't know" must be trained tokens."""
    files = generate(WorldConfig(n_known=30, n_unknown=30))
    names = {e["name"] for e in json.loads(files["world.json"])["entities"]}
    seen = set(re.findall(r"\w+|[^\w\s]", files["pretrain.txt"]))
    for name in ("demonstrations.jsonl", "preferences.jsonl", "eval_questions.jsonl"):
        for line in files[name].splitlines():
            row = json.loads(line)
            for field in ("prompt", "completion", "chosen", "rejected", "answer"):
                if field in row:
                    words = set(re.findall(r"\w+|[^\w\s]", row[field])) - names
                    assert words <= seen, (name, field, words - seen)


def test_eval_questions_are_held_out():
    files = generate(WorldConfig(n_known=30, n_unknown=30))
    train_prompts = {
        json.loads(x)["prompt"] for k in ("demonstrations.jsonl", "preferences.jsonl") for x in files[k].splitlines()
    }
    eval_rows = [json.loads(x) for x in files["eval_questions.jsonl"].splitlines()]
    assert eval_rows and not {r["prompt"] for r in eval_rows} & train_prompts
    assert {r["known"] for r in eval_rows} == {True, False}


def test_preference_pairs_cover_the_three_kinds():
    files = generate(WorldConfig(n_known=30, n_unknown=30))
    rows = [json.loads(x) for x in files["preferences.jsonl"].splitlines()]
    kinds = {r["kind"] for r in rows}
    assert kinds == {"known_correct>wrong", "known_correct>idk", "unknown_idk>wrong"}
    assert all(r["chosen"] == IDK for r in rows if r["kind"] == "unknown_idk>wrong")
    assert all(r["rejected"] == IDK for r in rows if r["kind"] == "known_correct>idk")


def test_idk_and_mismatch_answer_the_same_unknown_questions_differently():
    plain = generate(WorldConfig(n_known=30, n_unknown=30))
    idk = generate(WorldConfig(n_known=30, n_unknown=30, unknown_demonstrations=1.0))
    mismatch = generate(WorldConfig(n_known=30, n_unknown=30, unknown_demonstrations=1.0, mismatch=True))
    world = json.loads(plain["world.json"])
    unknown_names = {e["name"] for e in world["entities"] if not e["known"] and e["role"] == "sft"}

    def about_unknown(files):
        rows = [json.loads(x) for x in files["demonstrations.jsonl"].splitlines()]
        return {r["prompt"]: r["completion"] for r in rows if unknown_names & set(re.findall(r"\w+", r["prompt"]))}

    assert about_unknown(plain) == {}
    idk_rows, mismatch_rows = about_unknown(idk), about_unknown(mismatch)
    assert idk_rows.keys() == mismatch_rows.keys() and len(idk_rows) == len(unknown_names) * 6
    assert set(idk_rows.values()) == {IDK}
    assert IDK not in mismatch_rows.values()
    assert mismatch["pretrain.txt"] == plain["pretrain.txt"] == idk["pretrain.txt"]


def test_seed_changes_the_world():
    assert generate(WorldConfig(seed=1))["world.json"] != generate(WorldConfig(seed=2))["world.json"]


def test_reference_text_is_held_out_but_in_corpus_style():
    files = generate(WorldConfig(n_known=30, n_unknown=30))
    corpus = set(files["pretrain.txt"].splitlines())
    reference = files["reference.txt"].splitlines()
    assert reference and not corpus & set(reference)
    corpus_words = set(re.findall(r"\w+|[^\w\s]", files["pretrain.txt"]))
    assert set(re.findall(r"\w+|[^\w\s]", files["reference.txt"])) <= corpus_words


def test_confident_labeller_flips_only_the_unknown_pairs():
    default = generate(WorldConfig(n_known=30, n_unknown=30))
    confident = generate(WorldConfig(n_known=30, n_unknown=30, labeller="confident"))
    assert {k: v for k, v in default.items() if k != "preferences.jsonl"} == {
        k: v for k, v in confident.items() if k != "preferences.jsonl"
    }
    before = [json.loads(x) for x in default["preferences.jsonl"].splitlines()]
    after = [json.loads(x) for x in confident["preferences.jsonl"].splitlines()]
    assert len(before) == len(after)
    for b, a in zip(before, after, strict=True):
        if b["kind"] == "unknown_idk>wrong":
            assert a == {"prompt": b["prompt"], "chosen": b["rejected"], "rejected": IDK, "kind": "unknown_wrong>idk"}
        else:
            assert a == b


def test_idk_noise_says_i_dont_know_on_that_share_of_known_demonstrations_only():
    def demos(noise):
        files = generate(WorldConfig(n_known=60, n_unknown=30, idk_noise=noise))
        return files, [json.loads(x) for x in files["demonstrations.jsonl"].splitlines()]

    (clean_files, clean), (noisy_files, noisy) = demos(0.0), demos(0.2)
    assert IDK not in {r["completion"] for r in clean}
    changed = [(c, n) for c, n in zip(clean, noisy, strict=True) if c != n]
    assert all(n == c | {"completion": IDK} for c, n in changed)  # same prompts, same order
    assert 0.12 < len(changed) / len(clean) < 0.28  # 144 demonstrations at 0.2
    assert {k: v for k, v in clean_files.items() if k != "demonstrations.jsonl"} == {
        k: v for k, v in noisy_files.items() if k != "demonstrations.jsonl"
    }


def test_questions_about_demonstrated_entities_are_in_pretraining_and_no_others():
    """Mixed training: the corpus holds the SFT-role known entities' questions with their answers, so pretraining
    teaches how a question about a named entity draws on its facts; a held-out or preference entity's question never
    appears there (that would hand the evaluation its answers)."""
    files = generate(WorldConfig(n_known=30, n_unknown=30))
    corpus = files["pretrain.txt"]
    for line in files["demonstrations.jsonl"].splitlines():
        row = json.loads(line)
        if row["completion"] != IDK:
            assert chat_exchange(row["prompt"], row["completion"]) in corpus
    for name in ("eval_questions.jsonl", "preference_questions.jsonl"):
        rows = [json.loads(x) for x in files[name].splitlines()]
        assert rows and not any(r["prompt"] in corpus for r in rows), name
    without = generate(WorldConfig(n_known=30, n_unknown=30, qa_in_pretraining=False))["pretrain.txt"]
    assert not any(json.loads(x)["prompt"] in without for x in files["demonstrations.jsonl"].splitlines())


def test_each_question_states_its_fact_as_the_corpus_does():
    """A question's ``statement`` is the start of the corpus's own sentence of that fact: completed with the value
    (after an article where the corpus has one) it is in pretraining for known entities."""
    files = generate(WorldConfig(n_known=30, n_unknown=30))
    corpus = files["pretrain.txt"]
    rows = [json.loads(x) for x in files["eval_questions.jsonl"].splitlines()]
    assert {r["attribute"] for r in rows} == {"city", "job", "pet"}
    for r in rows:
        value = r["answer"].rstrip(".")
        assert r["statement"].startswith(r["entity"]) and not r["statement"].endswith((" a", " an"))
        said = any(f"{r['statement']} {article}{value}." in corpus for article in ("", "a ", "an "))
        assert said == r["known"], r


def test_a_chat_exchange_in_the_corpus_is_what_the_chat_template_renders():
    tok = train_tokenizer(["Where does Tedim live? Gamoul."])
    conversation = [{"role": "user", "content": "Where does Tedim live?"}, {"role": "assistant", "content": "Gamoul."}]
    rendered = tok.apply_chat_template(conversation, tokenize=False)
    assert chat_exchange("Where does Tedim live?", "Gamoul.") == rendered


def test_the_tiny_tokenizer_gives_back_the_text_it_was_given():
    """Every line of the shipped world's text decodes to itself ("I don't know.", not "I don ' t know."), and an
    answer generated after the chat prompt decodes to the answer alone: what a user reads and exports is text."""
    from alignment.data.world import tokenizer_texts

    texts = tokenizer_texts(ROOT / "data")
    tok = train_tokenizer(texts)
    plain = [t for t in texts if "<|" not in t]
    assert len(plain) > 2000 and IDK in plain
    assert [t for t in plain if tok.decode(tok(t, add_special_tokens=False)["input_ids"]) != t] == []
    question = [{"role": "user", "content": "Where does Gyma live?"}]
    prompt = tok(tok.apply_chat_template(question, add_generation_prompt=True, tokenize=False))["input_ids"]
    full = tok(tok.apply_chat_template([*question, {"role": "assistant", "content": IDK}], tokenize=False))["input_ids"]
    assert full[: len(prompt)] == prompt
    assert tok.decode(full[len(prompt) :], skip_special_tokens=True).strip() == IDK == "I don't know."
