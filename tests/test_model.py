"""The learned half of the classifier: what ships holds no text, is current, and is used."""

from __future__ import annotations

import io
import json
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from tostrack.classify import classify_clauses, decide, explain, taxonomy
from tostrack.classify.model import (
    BUCKETS,
    MODEL_FILE,
    Model,
    features,
    packaged_model,
    rules_digest,
)
from tostrack.models import Clause

DATA = Path(__file__).parent / "data"


def _shipped() -> bytes:
    return resources.files("tostrack.classify").joinpath("data", MODEL_FILE).read_bytes()


def test_the_shipped_model_holds_numbers_and_label_ids_only() -> None:
    with np.load(io.BytesIO(_shipped()), allow_pickle=False) as data:
        for name in data.files:
            array = data[name]
            if name == "labels":
                assert list(array) == [label.id for label in taxonomy()]
            else:
                assert array.dtype.kind in "iuf", f"{name} is {array.dtype}: no text may ship"
    # and no member of the archive hides anything else
    names = zipfile.ZipFile(io.BytesIO(_shipped())).namelist()
    assert sorted(names) == sorted(
        f"{n}.npy"
        for n in (
            "feature_version",
            "labels",
            "rows",
            "values",
            "bias",
            "thresholds",
            "rules_digest",
        )
    )


def test_the_shipped_model_was_trained_on_todays_rules() -> None:
    model = packaged_model()
    assert model is not None
    assert model.trained_on_rules == rules_digest(), (
        "the rules changed since the model was trained; retrain it: "
        "pip install '.[train]' && python -m tostrack.classify.train"
    )


def test_features_are_deterministic_and_text_free_after_hashing() -> None:
    text = "You may not use the answers to build a rival model."
    assert features(text) == features(text)
    model = packaged_model()
    assert model is not None and model.weights.shape == (BUCKETS, len(model.labels))


def test_chinese_text_gets_character_features() -> None:
    feats = features("用户不得抓取本服务的数据")
    assert "y|抓取" in feats and "z|抓" in feats


def test_model_adds_a_label_the_rules_miss_and_says_why() -> None:
    # Chinese wording: no rule is written for it; the model learned the topic from examples.
    from tostrack.classify.rules import match_rules

    text = "您同意我们可以使用您输入的内容改进和训练我们的模型。"
    assert "customer-data-training" not in {label for label, _ in match_rules(text)}
    decisions = {d.label: d for d in explain(text)}
    assert "customer-data-training" in decisions
    d = decisions["customer-data-training"]
    assert d.by == "model" and d.probability is not None and d.probability >= 0.5
    assert d.evidence and d.evidence in text
    assert d.words  # the features that weighed most, rebuilt from the text


def test_without_a_model_the_rules_alone_decide() -> None:
    text = "You must not scrape the Services."
    assert [d.label for d in decide(text, model=None)] == ["data-extraction"]


def test_a_model_of_other_features_is_refused() -> None:
    with np.load(io.BytesIO(_shipped()), allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["feature_version"] = np.array(999)
    with pytest.raises(ValueError, match="retrain"):
        Model.from_arrays(arrays)


def test_training_learns_a_topic_from_examples(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    from tostrack.classify import train

    examples = train.read_examples(DATA / "dev_clauses.jsonl")
    model = train.fit(examples)
    assert model.trained_on_rules == rules_digest()
    column = model.labels.index("arbitration")
    assert model.scores("Any dispute goes to binding arbitration.")[column] > 0.5
    assert model.scores("Our office is open on weekdays.")[column] < 0.5


def test_labels_a_legal_team_must_see_need_less_probability() -> None:
    """High-severity labels and the restrictions on customers (not the residual
    acceptable-use) are decided from 0.4 on Latin text, the others from 0.5; CJK text keeps
    its own bar. The shipped model carries the same thresholds (retrain if this fails)."""
    pytest.importorskip("sklearn")
    from tostrack.classify import train

    labels = ("competing-models", "high-risk-use", "arbitration", "acceptable-use", "termination")
    latin, cjk = train.thresholds(labels)
    assert list(latin) == [0.4, 0.4, 0.4, 0.5, 0.5]
    assert set(cjk) == {0.25}
    shipped = packaged_model()
    assert shipped is not None
    assert (shipped.thresholds == train.thresholds(shipped.labels).astype(np.float32)).all()


def test_classify_clauses_uses_heading_and_lead_in() -> None:
    lead = "We will not use what you type into the chat window to train our models, except:"
    item = Clause("c1", "1", ("Your content",), "when you opt in through settings.", lead_in=lead)
    (labelled,) = classify_clauses([item])
    assert "customer-data-training" in labelled.labels


def test_eval_figures_on_project_sets_stay_high() -> None:
    from tostrack.evaluate import evaluate

    for name in ("dev_clauses.jsonl", "heldout_clauses.jsonl"):
        assert evaluate(DATA / name).micro_f1 >= 0.95, name
    assert json.loads((DATA / "dev_clauses.jsonl").read_text("utf-8").splitlines()[0])
