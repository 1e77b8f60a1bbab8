"""The real-facts questions: real answers with their aliases, split by entity (no held-out entity in training),
deterministic by facts.seed, real prose for perplexity, and a data card naming sources and licenses."""

import json

import pytest

from alignment.config.base import ConfigError
from alignment.config.facts import FactsConfig
from alignment.config.loading import load_config
from alignment.data.facts import FILES, ROLES, aliases, build_facts, write_facts
from alignment.evaluation.metrics import CORRECT, judge


def test_aliases_fold_diacritics_and_the_judge_accepts_either_form():
    assert aliases("Lomé") == ["Lomé", "Lome"] and aliases("Asunción", "PYG") == ["Asunción", "Asuncion", "PYG"]
    assert aliases("Paris") == ["Paris"]
    assert judge("Lomé.", ["Lome"]) == CORRECT and judge("Asuncion", ["Asunción"]) == CORRECT


def test_the_facts_are_the_real_ones():
    rows = [r for role in ROLES for r in build_facts(FactsConfig())[role]]
    found = {(r["entity"], r["family"]): r["answers"] for r in rows}
    assert found[("France", "capital")] == ["Paris"]
    assert found[("France", "currency")] == ["Euro", "EUR"]
    assert found[("Togo", "continent")] == ["Africa"]
    assert found[("Iron", "symbol")] == ["Fe"] and found[("Gold", "atomic_number")] == ["79"]
    assert len({e for e, f in found if f == "symbol"}) == 118
    question = next(r["question"] for r in rows if (r["entity"], r["family"]) == ("Australia", "capital"))
    assert question == "What is the capital of Australia?"


def test_roles_split_by_entity_deterministically_by_seed():
    cfg = FactsConfig(max_entities=60)
    rows = build_facts(cfg)
    entities = {role: {r["entity"] for r in rows[role]} for role in ROLES}
    assert not entities["eval"] & (entities["sft"] | entities["pref"]) and not entities["sft"] & entities["pref"]
    assert sum(len(e) for e in entities.values()) == 120  # 60 countries and 60 elements
    assert [len(e) for e in entities.values()] == [48, 36, 36]  # 0.4 / 0.3 / 0.3 of each source
    assert build_facts(cfg) == rows
    other = build_facts(cfg.model_copy(update={"seed": 1}))
    assert {r["entity"] for r in other["eval"]} != entities["eval"]
    only = build_facts(FactsConfig(families=["symbol"], max_entities=10))
    assert {r["family"] for role in ROLES for r in only[role]} == {"symbol"}


def test_the_reference_text_is_prose_the_project_did_not_write():
    paragraphs = build_facts(FactsConfig(reference_documents=50))["reference"]
    assert len(paragraphs) == 50 and len(set(paragraphs)) == 50
    assert all(len(p.split()) >= 20 and p.endswith(".") and ">>>" not in p and "*" not in p for p in paragraphs)


def test_the_files_and_the_data_card(tmp_path, capsys):
    from flows.cli import main

    counts = write_facts(FactsConfig(max_entities=30, reference_documents=20), tmp_path)
    for role in ROLES:
        lines = (tmp_path / FILES[role]).read_text().splitlines()
        assert len(lines) == counts[role] and set(json.loads(lines[0])) == {"question", "answers", "family", "entity"}
    assert len((tmp_path / "reference.txt").read_text().splitlines()) == 20
    card = (tmp_path / "DATA_CARD.md").read_text()
    assert "GeoNames data (geonames.org, CC BY 4.0)" in card and "periodictable package (public domain)" in card
    assert "Python Software Foundation License" in card and "no held-out (eval) entity appears" in card

    out = tmp_path / "cli"
    assert main(["facts", "configs/real-facts.yaml", "--out", str(out)]) == 0
    assert (out / "DATA_CARD.md").is_file() and "eval: " in capsys.readouterr().out


def test_the_facts_section_is_checked_and_never_silently_ignored():
    from alignment import graph

    with pytest.raises(ConfigError, match=r"key 'facts': split \(0.5, 0.5, 0.0\) gives a role no entity"):
        load_config(None, ["facts={split: [0.5, 0.5, 0]}"])
    with pytest.raises(ConfigError, match="facts: the real-facts questions probe a given pretrained model"):
        graph.stages(load_config(None, ["facts={seed: 1}", "data.preference_source=probe"]))
