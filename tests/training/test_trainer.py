"""Tests of spectrotune.training.trainer that need no running Ray: settings resolved before the ``TorchTrainer`` is
built, and the one clear error a failed fit becomes (built from Ray Train's own exception classes, no cluster).
The trainer itself runs in ``test_driver.py``."""

from __future__ import annotations

import re

import pytest

from spectrotune.errors import ConfigError, SpectrotuneError
from spectrotune.training.trainer import MATERIALIZE_FRACTION, resolve_use_gpu, should_materialize, training_error


@pytest.mark.parametrize(("raised", "expected", "match"), [
    (ConfigError("cannot resume: other model"), ConfigError, "^cannot resume: other model$"),
    (RuntimeError("CUDA out of memory"), SpectrotuneError, "failed on rank 0: .*CUDA out of memory"),
])
def test_worker_failure_becomes_one_clear_error(tmp_path, raised, expected, match):
    from ray.train.v2._internal.exceptions import UserExceptionWithTraceback
    from ray.train.v2.api.exceptions import WorkerGroupError

    wrapped = UserExceptionWithTraceback(raised, f"Traceback (most recent call last):\n  ...\n{raised!r}")
    error = training_error(WorkerGroupError("Training failed", {0: wrapped}), run_dir=tmp_path / "run")
    assert type(error) is expected
    assert re.search(match, str(error))


def test_worker_failure_without_per_rank_failures_keeps_the_last_line(tmp_path):
    error = training_error(RuntimeError("Training failed\n\nsomething broke\n"), run_dir=tmp_path / "run")
    assert type(error) is SpectrotuneError and str(error).endswith("failed: something broke")


def test_worker_failure_message_is_the_last_line_unquoted(tmp_path):
    from ray.train.v2._internal.exceptions import UserExceptionWithTraceback
    from ray.train.v2.api.exceptions import WorkerGroupError

    raised = RuntimeError("CUDA out of memory")
    text = "Traceback (most recent call last):\n  ...\nRuntimeError: CUDA out of memory"
    wrapped = UserExceptionWithTraceback(raised, text)
    error = training_error(WorkerGroupError("Training failed", {0: wrapped}), run_dir="runs/r")
    assert str(error) == "training run runs/r failed on rank 0: RuntimeError: CUDA out of memory"


@pytest.mark.parametrize(("setting", "gpus", "expected"), [
    ("auto", 0.0, False), ("auto", 1.0, True), ("true", 0.0, True), ("false", 4.0, False)])
def test_use_gpu_auto_follows_the_cluster(setting, gpus, expected):
    assert resolve_use_gpu(setting, gpus) is expected


def test_materialize_auto_decides_by_share_of_the_object_store():
    store = 1000.0
    assert should_materialize(None, nbytes=int(MATERIALIZE_FRACTION * store), object_store_bytes=store)
    assert not should_materialize(None, nbytes=int(MATERIALIZE_FRACTION * store) + 1, object_store_bytes=store)
    assert should_materialize(True, nbytes=10**12, object_store_bytes=store)
    assert not should_materialize(False, nbytes=1, object_store_bytes=store)


def test_the_read_task_count_covers_every_folder_of_a_selection(tmp_path):
    """A streamed read gets one task per shard file, also for rows from several folders (a pyarrow UnionDataset,
    which has no ``files`` of its own: evaluate's embedding read of train + valid crashed on it)."""
    import pyarrow as pa
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    from spectrotune.training.trainer import _files

    for folder, n in (("a", 2), ("b", 3)):
        (tmp_path / folder).mkdir()
        for i in range(n):
            pq.write_table(pa.table({"x": [i]}), tmp_path / folder / f"part-{i}.parquet")
    one = pads.dataset(str(tmp_path / "a"), format="parquet")
    union = pads.dataset([one, pads.dataset(str(tmp_path / "b"), format="parquet")])
    (fs_one, files_one), (fs_union, files_union) = _files(one), _files(union)
    assert len(files_one) == 2 and len(files_union) == 5 and set(files_one) < set(files_union)
    assert type(fs_one).__name__ == type(fs_union).__name__ == "LocalFileSystem"  # one store: re-readable by path


def test_train_shards_are_read_in_an_order_drawn_from_the_seed_not_genre_by_genre():
    """prepare's shards come genre by genre (listing order); the run reads them in a permutation of the seed, the
    same on every call (every epoch, every resume), another for another seed."""
    from spectrotune.training.trainer import shard_order

    order = shard_order(16, seed=0)
    assert sorted(order) == list(range(16)) and order != list(range(16))
    assert shard_order(16, seed=0) == order and shard_order(16, seed=1) != order
    assert shard_order(1, seed=0) == [0] and shard_order(0, seed=0) == []


def test_a_split_held_in_one_block_is_permuted_by_rows():
    import pyarrow as pa

    from spectrotune.training.trainer import shuffled_rows

    table = pa.table({"label": [i // 10 for i in range(40)], "row": list(range(40))})  # 4 "genres" in order
    rows = shuffled_rows(table, seed=3).column("row").to_pylist()
    assert sorted(rows) == list(range(40)) and rows == shuffled_rows(table, seed=3).column("row").to_pylist()
    first_ten = {r // 10 for r in rows[:10]}
    assert len(first_ten) > 1  # the first rows no longer come from one genre
