"""TensorBoard event files: written with tensorboardX, read back by the TFRecord + Event-protobuf reader."""

from __future__ import annotations

import pytest
from tensorboardX import SummaryWriter

from spectrotune.errors import InputError
from spectrotune.tracking.tensorboard import ScalarWriter, read_scalars


def test_scalars_per_step_are_on_disk_after_each_log(tmp_path):
    writer = ScalarWriter(tmp_path / "tb" / "run")
    writer.log({"train_loss": 1.5, "valid_clip_accuracy": 0.25}, step=1)
    writer.log({"train_loss": 0.75, "valid_clip_accuracy": 0.5}, step=2)
    # read while the writer is still open: log() flushed
    assert read_scalars(tmp_path / "tb" / "run") == {"train_loss": [(1, 1.5), (2, 0.75)],
                                                     "valid_clip_accuracy": [(1, 0.25), (2, 0.5)]}
    writer.close()


def test_a_second_writer_adds_a_file_and_the_reader_reads_both_in_order(tmp_path):
    for step in (1, 2):  # a resumed run adds a second events file to the same folder, within the same second
        w = ScalarWriter(tmp_path)
        w.log({"lr": 0.1 * step}, step=step)
        w.close()
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 2
    assert read_scalars(tmp_path) == {"lr": [(1, pytest.approx(0.1)), (2, pytest.approx(0.2))]}


def test_reader_reads_what_tensorboardx_summary_writer_wrote(tmp_path):
    w = SummaryWriter(str(tmp_path))  # as Ray Tune's TBXLoggerCallback writes them
    w.add_scalar("valid_loss", 0.5, global_step=4)
    w.close()
    assert read_scalars(tmp_path) == {"valid_loss": [(4, 0.5)]}


def test_damaged_or_missing_event_files_are_named(tmp_path):
    with pytest.raises(InputError, match="no TensorBoard event files"):
        read_scalars(tmp_path)
    w = SummaryWriter(str(tmp_path))
    w.add_scalar("x", 1.0, global_step=1)
    w.close()
    (path,) = tmp_path.glob("events.out.tfevents.*")
    blob = bytearray(path.read_bytes())
    blob[-6] ^= 0xFF  # flip a byte of the last record's payload
    path.write_bytes(bytes(blob))
    with pytest.raises(InputError, match="bad record checksum"):
        read_scalars(tmp_path)
