from alignment.probe import agreement, categorize, preference_pairs


def test_slick_categories():
    assert categorize(True, [True, True]) == "highly_known"
    assert categorize(True, [True, False]) == "maybe_known"
    assert categorize(False, [False, True]) == "weakly_known"
    assert categorize(False, [False, False]) == "unknown"


def test_agreement_with_world():
    rows = [
        {"world_known": True, "probed_known": True},
        {"world_known": True, "probed_known": False},
        {"world_known": False, "probed_known": False},
        {"world_known": False, "probed_known": False},
    ]
    a = agreement(rows)
    assert a["agreement"] == 0.75
    assert a["world_known_probed_unknown"] == 1 and a["world_unknown_probed_unknown"] == 2


IDK = "I don't know."


def _row(answer, greedy, samples, probed_known):
    return {"prompt": "q?", "answer": answer, "greedy": greedy, "samples": samples, "probed_known": probed_known}


def test_probe_pairs_unknown_reject_the_models_own_wrong_answers():
    row = _row("Kavimar.", "Ostrell.", ["Ostrell.", "Kavimar.", IDK, "Brai.", "Zot."], probed_known=False)
    pairs = preference_pairs([row], IDK, max_rejected=2)
    # distinct wrong answers in order (greedy first), never the right one or an abstention
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [(IDK, "Ostrell."), (IDK, "Brai.")]
    assert {p["kind"] for p in pairs} == {"probe_unknown_idk>own_wrong"}


def test_probe_pairs_known_beat_idk_and_own_wrong_answers():
    row = _row("Kavimar.", "Kavimar.", ["Kavimar.", "Zot.", "kavimar ."], probed_known=True)
    pairs = preference_pairs([row], IDK)
    assert [(p["chosen"], p["rejected"], p["kind"]) for p in pairs] == [
        ("Kavimar.", IDK, "probe_known_correct>idk"),
        ("Kavimar.", "Zot.", "probe_known_correct>own_wrong"),
    ]


def test_probe_pairs_skip_a_question_the_model_already_abstains_on():
    assert preference_pairs([_row("Kavimar.", IDK, [IDK, IDK], probed_known=False)], IDK) == []
