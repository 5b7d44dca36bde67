import numpy as np
import pandas as pd
import pytest
from conftest import regional_observations

from geoprior import EmptyDataError
from geoprior.train.batches import BlockPlan, MemoryRows, PermutationPlan


def test_permutation_plan_visits_every_row_once_per_epoch():
    species = np.arange(100) % 7
    plan = PermutationPlan(species, 7, None, seed=3, batch=10)
    rows = np.concatenate([plan.rows(t) for t in range(10)])
    assert sorted(rows.tolist()) == list(range(100))
    # pure function of (seed, step): a fresh plan gives the same rows at any step
    again = PermutationPlan(species, 7, None, seed=3, batch=10)
    np.testing.assert_array_equal(again.rows(13), plan.rows(13))
    assert not np.array_equal(plan.rows(0), plan.rows(10))  # a new order each epoch
    other = PermutationPlan(species, 7, None, seed=3, batch=10, process=1)
    assert not np.array_equal(other.rows(0), plan.rows(0))


def test_class_balanced_cap():
    species = np.array([0] * 100 + [1] * 5)
    plan = PermutationPlan(species, 2, cap=10, seed=0, batch=15)
    assert plan.epoch_len == 15
    assert np.bincount(species[plan.rows(0)], minlength=2).tolist() == [10, 5]
    assert not np.array_equal(np.sort(plan.rows(0)), np.sort(plan.rows(1)))


@pytest.mark.parametrize("n,block,batch", [(1000, 64, 128), (999, 64, 100), (50, 256, 32)])
def test_block_plan_covers_rows_in_contiguous_runs(n, block, batch):
    plan = BlockPlan(n, seed=1, batch=batch, block=block)
    steps = -(-plan.epoch_len // batch)
    rows = np.concatenate([plan.rows(t) for t in range(steps)])[: plan.epoch_len]
    counts = np.bincount(rows, minlength=n)
    # every row once per epoch; at most block - 1 rows a second time (the wrapped block)
    assert counts.min() == 1 and counts.max() <= 2 and (counts == 2).sum() < plan.block
    runs = np.flatnonzero(np.diff(rows) % n != 1).size + 1
    assert runs <= -(-len(rows) // plan.block) + 1  # reads are runs of whole blocks
    np.testing.assert_array_equal(BlockPlan(n, 1, batch, block).rows(5), plan.rows(5))
    assert ((0 <= plan.background_rows(3)) & (plan.background_rows(3) < n)).all()
    assert plan.background_rows(3).size == batch


def test_memory_rows_take_and_background_pool():
    obs = regional_observations(10)
    extra = regional_observations(2, seed=1)
    rows = MemoryRows(obs, 10, 30, use_date=True, extra=extra)
    got = rows.take(np.array([0, 19]))
    assert got["lat"][0] == np.float32(obs.lat[10]) and got["species"][1] == obs.species_index[29]
    assert rows.n == 20 and rows.n_pool == 20 + len(extra)
    bg = rows.take_background(np.array([0, 20]))
    assert "species" not in bg and np.isnan(bg["doy"][1]) and np.isfinite(bg["doy"][0])


def test_block_plan_draws_extra_places_by_their_share_of_the_pool():
    n, extra, batch = 1000, 500, 256
    plain, plan = BlockPlan(n, 1, batch), BlockPlan(n, 1, batch, n_extra=extra)
    rows = np.concatenate([plan.background_rows(t) for t in range(200)])
    assert rows.size == 200 * batch and rows.min() >= 0 and rows.max() < n + extra
    share = (rows >= n).mean()
    assert abs(share - extra / (n + extra)) < 0.01  # 51,200 draws: sd 0.002
    np.testing.assert_array_equal(plan.background_rows(7), BlockPlan(n, 1, batch, n_extra=extra).background_rows(7))
    # the store's part keeps its contiguous blocks
    inner = plan.background_rows(3)
    inner = inner[inner < n]
    assert np.flatnonzero(np.diff(inner) % n != 1).size + 1 <= -(-inner.size // plan.block) + 1
    assert not (plain.background_rows(3) >= n).any()


def test_store_rows_extra_places_are_undated_and_standardised(tmp_path):
    from geoprior import Observations, convert_to_columns
    from geoprior.train.batches import StoreRows

    obs = regional_observations(20)
    pd.DataFrame(
        {"lat": obs.lat, "lon": obs.lon, "species": np.array(obs.species)[obs.species_index],
         "date": obs.date.astype(str), "t": np.arange(len(obs), dtype=float)}
    ).to_csv(tmp_path / "o.csv", index=False)
    store = convert_to_columns(tmp_path / "o.csv", tmp_path / "s", covariates=["t"])
    extra = Observations.from_arrays([1.0, 2.0], [3.0, 4.0], ["x", "x"], covariates=np.array([[10.0], [20.0]]), covariate_names=["t"])
    rows = StoreRows(store, 0, len(store), use_date=True, cov_mean=np.float32([5.0]), cov_std=np.float32([2.0]), extra=extra)
    assert rows.n_pool == len(store) + 2 and rows.n_extra == 2
    bg = rows.take_background(np.array([0, len(store) + 1, 1, len(store)]))
    assert bg["lat"].tolist() == [store.lat[0], 2.0, store.lat[1], 1.0]
    assert np.isnan(bg["doy"][[1, 3]]).all() and np.isfinite(bg["doy"][[0, 2]]).all()
    assert bg["cov"][[1, 3], 0].tolist() == [7.5, 2.5]
    assert bg["cov"][0, 0] == np.float32((store.covariates[0, 0] - 5.0) / 2.0)


def test_empty_plans_raise():
    with pytest.raises(EmptyDataError):
        BlockPlan(0, 0, 8)
    with pytest.raises(EmptyDataError):
        PermutationPlan(np.zeros(0, np.int32), 1, None, 0, 8)


def test_capped_rows_keeps_at_most_cap_of_each_species():
    from geoprior.train.batches import capped_rows

    species = np.array([0] * 50 + [1] * 3 + [2] * 10)
    rows = capped_rows(species, 3, cap=5, seed=1)
    assert np.bincount(species[rows], minlength=3).tolist() == [5, 3, 5]
    assert (np.diff(rows) > 0).all()
    np.testing.assert_array_equal(rows, capped_rows(species, 3, cap=5, seed=1))
