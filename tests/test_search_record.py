"""Adding up what processes record of a search (the real runs are in test_distributed)."""

import json

from bench.tuning.search_record import add_notes, combined, worker_records


def test_counts_add_up_and_notes_are_said_once_in_the_order_first_said():
    first = {"notes": ["b", "a"], "models": {"compiled": 2, "reused": 5},
             "together": {"trials": 1, "retried_alone": 0}, "device_data": False}
    second = {"notes": ["a", "c", "c"], "models": {"compiled": 1, "reused": 3},
              "prefix_cache": {"executions": 4}, "device_data": True}
    assert combined([first, second]) == {
        "notes": ["b", "a", "c"], "models": {"compiled": 3, "reused": 8},
        "together": {"trials": 1, "retried_alone": 0}, "prefix_cache": {"executions": 4},
        "device_data": True}
    assert combined([]) == {"notes": []}


def test_a_resumed_process_adds_only_the_notes_not_said():
    record = {"notes": ["reuse off"]}
    add_notes(record, ["evaluation at 32", "reuse off", "evaluation at 32"])
    assert record["notes"] == ["reuse off", "evaluation at 32"]


def test_worker_records_are_read_in_worker_order_and_a_damaged_one_passed_over(tmp_path):
    for name, text in (("tuner10", json.dumps({"notes": ["w"]})),
                       ("tuner1", json.dumps({"notes": ["y"]})),
                       ("tuner0", json.dumps({"notes": ["x"]})),
                       ("tuner2", '{"notes": ["z"'), ("tuner3", "[1]"),
                       ("tuner4", json.dumps({"notes": "abc"})),
                       ("tuner5", json.dumps({"models": {"compiled": "2"}}))):
        (tmp_path / "workers" / name).mkdir(parents=True)
        (tmp_path / "workers" / name / "search.json").write_text(text)
    assert worker_records(tmp_path) == [{"notes": ["x"]}, {"notes": ["y"]}, {"notes": ["w"]}]
