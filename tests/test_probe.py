from alignment.probe import agreement, categorize


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
