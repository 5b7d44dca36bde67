import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoprior.errors import ClassMismatchError, ConfigError, EmptyDataError, NonFiniteError
from geoprior.evaluate import (
    average_precision,
    error_reduction,
    event_average_precision,
    per_species_auc_ap,
    recall_at_k,
    roc_auc,
    top_k_accuracy,
)


# ------------------------------------------------------------------ brute-force references
def _auc_pairs(y, s):
    """Every (presence, absence) pair: 1 if the presence scores higher, 1/2 if tied."""
    pos, neg = s[y == 1], s[y == 0]
    return np.mean([1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg])


def _ap_thresholds(y, s):
    """AP by walking the distinct thresholds from high to low."""
    total, prev_recall = 0.0, 0.0
    for t in sorted(set(s.tolist()), reverse=True):
        sel = s >= t
        precision = y[sel].sum() / sel.sum()
        recall = y[sel].sum() / y.sum()
        total += (recall - prev_recall) * precision
        prev_recall = recall
    return total


def _topk_by_permutation(scores, labels, k):
    """Expected top-k accuracy over every order of tied classes (small S only)."""
    hits = []
    for row, y in zip(scores, labels):
        perms = list(itertools.permutations(range(row.size)))
        got = 0
        for p in perms:  # a random tie order: sort by (score desc, p position)
            order = sorted(range(row.size), key=lambda j: (-row[j], p.index(j)))
            got += y in order[:k]
        hits.append(got / len(perms))
    return float(np.mean(hits))


small_scores = st.lists(st.integers(0, 4), min_size=2, max_size=12).map(
    lambda v: np.array(v, dtype=float) / 4
)


# ------------------------------------------------------------------ top-k and error reduction
def test_top_k_hand_computed():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    labels = np.array([2, 0, 1])
    assert top_k_accuracy(scores, labels, 1) == pytest.approx(1 / 3)
    # row 2: label 1 ties with class 0 below class 2 -> in the top 2 half the time
    assert top_k_accuracy(scores, labels, 2) == pytest.approx((1 + 1 + 0.5) / 3)
    assert top_k_accuracy(scores, labels, 3) == 1.0


def test_top_k_constant_scores_give_k_over_s():
    assert top_k_accuracy(np.zeros((4, 10)), [0, 3, 5, 9], k=3) == pytest.approx(0.3)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 2), min_size=4, max_size=4), min_size=1, max_size=3),
    st.integers(1, 4),
    st.data(),
)
def test_top_k_matches_every_tie_order(rows, k, data):
    scores = np.array(rows, dtype=float)
    labels = np.array([data.draw(st.integers(0, 3)) for _ in rows])
    assert top_k_accuracy(scores, labels, k) == pytest.approx(
        _topk_by_permutation(scores, labels, k)
    )


def test_top_k_monotone_in_k_and_invariant_to_monotone_maps():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(50, 20))
    labels = rng.integers(0, 20, 50)
    acc = [top_k_accuracy(scores, labels, k) for k in range(1, 21)]
    assert acc == sorted(acc) and acc[-1] == 1.0
    assert top_k_accuracy(np.exp(scores), labels, 5) == top_k_accuracy(scores, labels, 5)


def test_top_k_bad_input():
    with pytest.raises(ClassMismatchError, match="outside"):
        top_k_accuracy([[0.1, 0.9]], [2])
    with pytest.raises(ClassMismatchError, match="1 rows of scores but 2 labels"):
        top_k_accuracy([[0.1, 0.9]], [0, 1])
    with pytest.raises(NonFiniteError, match="NaN; first: row 1"):
        top_k_accuracy([[0.1, np.nan]], [0])
    # -inf (a species a fusion filter removed) ranks last
    assert top_k_accuracy([[-np.inf, 0.2, 0.1]], [0], k=2) == 0.0
    with pytest.raises(ConfigError):
        top_k_accuracy([[0.1, 0.9]], [0], k=0)
    with pytest.raises(ClassMismatchError, match="integer"):
        top_k_accuracy([[0.1, 0.9]], [0.0])


def test_error_reduction():
    assert error_reduction(0.4, 0.3) == 0.25
    assert error_reduction(0.4, 0.4) == 0.0
    assert error_reduction(0.2, 0.3) == pytest.approx(-0.5)
    with pytest.raises(ConfigError, match="no error"):
        error_reduction(0.0, 0.1)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        error_reduction(1.5, 0.1)


# ------------------------------------------------------------------ AUC and AP
def test_auc_perfect_reversed_and_ties():
    y = np.array([0, 0, 0, 1, 1])
    s = np.arange(5.0)
    assert roc_auc(y, s) == 1.0
    assert roc_auc(y, -s) == 0.0
    assert roc_auc(y, np.ones(5)) == 0.5
    assert roc_auc([0, 1, 0, 1], [0.3, 0.3, 0.1, 0.9]) == pytest.approx((1 + 0.5 + 1 + 1) / 4)


def test_ap_hand_computed():
    assert average_precision([0, 1, 1, 0], [0.1, 0.9, 0.3, 0.5]) == pytest.approx(
        0.5 * 1 + 0.5 * 2 / 3
    )
    assert average_precision([1, 1, 0, 0], [4, 3, 2, 1]) == 1.0
    assert average_precision([1, 0, 0, 0], np.ones(4)) == 0.25  # a constant: the base rate


@settings(max_examples=60, deadline=None)
@given(small_scores, st.data())
def test_auc_ap_match_brute_force(s, data):
    y = np.array(data.draw(st.lists(st.integers(0, 1), min_size=s.size, max_size=s.size)))
    if 0 < y.sum() < y.size:
        assert roc_auc(y, s) == pytest.approx(_auc_pairs(y, s))
        # flipping the scores mirrors the AUC
        assert roc_auc(y, -s) == pytest.approx(1 - roc_auc(y, s))
    if y.sum() > 0:
        ap = average_precision(y, s)
        assert ap == pytest.approx(_ap_thresholds(y, s))
        assert 0 < ap <= 1


def test_auc_ap_need_both_classes_and_clean_labels():
    with pytest.raises(EmptyDataError, match="0 absences"):
        roc_auc([1, 1], [0.1, 0.2])
    with pytest.raises(EmptyDataError, match="presence"):
        average_precision([0, 0], [0.1, 0.2])
    with pytest.raises(ClassMismatchError, match="not 0/1; first: row 1 = 2"):
        roc_auc([0, 2], [0.1, 0.2])
    with pytest.raises(ClassMismatchError, match="shape"):
        roc_auc([0, 1, 1], [0.1, 0.2])


def test_per_species_matches_single_columns_and_marks_undefined():
    rng = np.random.default_rng(1)
    y = rng.random((40, 5)) < 0.3
    y[:, 3] = False  # no presence: both NaN
    y[:, 4] = True  # no absence: AUC NaN, AP 1
    s = rng.random((40, 5))
    auc, ap = per_species_auc_ap(y, s)
    for j in range(3):
        assert auc[j] == pytest.approx(roc_auc(y[:, j], s[:, j]))
        assert ap[j] == pytest.approx(average_precision(y[:, j], s[:, j]))
    assert np.isnan(auc[3]) and np.isnan(ap[3])
    assert np.isnan(auc[4]) and ap[4] == 1.0


# ------------------------------------------------------------------ per-event metrics
def test_event_ap_and_recall_hand_computed():
    scores = np.array([[0.9, 0.5, 0.1, 0.3], [0.2, 0.3, 0.4, 0.1], [0.1, 0.2, 0.3, 0.4]])
    present = np.array([[1, 0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
    ap = event_average_precision(scores, present)
    assert ap[0] == pytest.approx(0.5 * 1 + 0.5 * 2 / 4)
    assert ap[1] == 1.0 and np.isnan(ap[2])
    r = recall_at_k(scores, present, k=2)
    assert r[0] == 0.5 and r[1] == 1.0 and np.isnan(r[2])
    assert recall_at_k(scores, present, k=4)[:2].tolist() == [1.0, 1.0]


def test_recall_ties_are_expected_values():
    # 4 tied species, 1 detected: in the top 1 a quarter of the time
    assert recall_at_k(np.zeros((1, 4)), [[0, 1, 0, 0]], k=1)[0] == 0.25
    assert recall_at_k(np.zeros((1, 4)), [[0, 1, 1, 0]], k=2)[0] == 0.5


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_event_metrics_perfect_ranking_is_one(seed):
    rng = np.random.default_rng(seed)
    present = rng.random((6, 15)) < 0.3
    present[:, 0] = True
    scores = present + rng.random((6, 15)) * 0.5  # detected species always above the rest
    assert np.allclose(event_average_precision(scores, present), 1.0)
    k = int(present.sum(axis=1).max())
    assert np.allclose(recall_at_k(scores, present, k=k), 1.0)
    # event AP of a row equals the column-wise AP of the transposed problem
    auc, ap = per_species_auc_ap(present.T, scores.T)
    assert np.allclose(ap, event_average_precision(scores, present))
