"""The pure parts of rayka.export_topic: commit planning, resume, option checks, state text."""

import pyarrow as pa
import pytest

from rayka.clients.export import (ExportState, check_options, options_of, plan_commits, resume_ranges)
from rayka.clients.topic_read import PartitionRange
from rayka.errors import ConfigError, OffsetOutOfRangeError


def rng(p, start, end):
    return PartitionRange("t", p, start, end)


def test_plan_commits_bounds_every_commit_and_covers_every_offset_once():
    ranges = [rng(0, 0, 25), rng(1, 5, 8), rng(2, 0, 0), rng(3, 10, 14)]
    commits = plan_commits(ranges, 10)
    assert all(sum(p.records for p in c) <= 10 for c in commits)
    seen = sorted((p.partition, o) for c in commits for p in c for o in range(p.start, p.end))
    assert seen == sorted((r.partition, o) for r in ranges for o in range(r.start, r.end))
    # small partitions share a commit: 25 + 3 + 4 offsets in 4 commits, not 5
    assert [[(p.partition, p.start, p.end) for p in c] for c in commits] == [
        [(0, 0, 10)], [(0, 10, 20)], [(0, 20, 25), (1, 5, 8)], [(3, 10, 14)]]


def test_resume_continues_from_the_committed_offsets():
    planned = [rng(0, 0, 100), rng(1, 0, 50), rng(2, 0, 10)]
    out, lost = resume_ranges("t", planned, {0: 60, 1: 50})
    assert [(r.partition, r.start, r.end) for r in out] == [(0, 60, 100), (1, 50, 50), (2, 0, 10)]
    assert lost == {}
    assert resume_ranges("t", planned, None) == (planned, {})


def test_resume_past_retention_is_refused_unless_asked_and_then_counted():
    planned = [rng(0, 40, 100), rng(1, 0, 50)]
    with pytest.raises(OffsetOutOfRangeError, match=r"t-0.*stopped at offset 30.*starts at 40.*skip_lost"):
        resume_ranges("t", planned, {0: 30, 1: 10})
    out, lost = resume_ranges("t", planned, {0: 30, 1: 10}, skip_lost=True)
    assert [(r.start, r.end) for r in out] == [(40, 100), (10, 50)]
    assert lost == {0: 10}


def test_resume_beyond_the_log_end_means_another_topic():
    with pytest.raises(OffsetOutOfRangeError, match="created again"):
        resume_ranges("t", [rng(0, 0, 5)], {0: 9})


def test_a_resume_with_other_options_is_refused_naming_the_option():
    before = options_of("t", "parquet", ["offset", "value"], None, "partition")
    check_options("d", before, options_of("t", "parquet", ["offset", "value"], None, "partition"))
    with pytest.raises(ConfigError, match=r"columns=\['offset', 'value'\].*not \['value'\]"):
        check_options("d", before, options_of("t", "parquet", ["value"], None, "partition"))
    with pytest.raises(ConfigError, match="partition_by='partition'"):
        check_options("d", before, options_of("t", "parquet", ["offset", "value"], None, "date"))


def test_state_round_trips_and_damage_is_a_clear_error():
    state = ExportState({"topic": "t"}, {0: 5, 3: 7})
    back = ExportState.from_json(state.to_json({0: (1, 5)}))
    assert back.next_offsets == {0: 5, 3: 7} and back.options == {"topic": "t"}
    with pytest.raises(ConfigError, match="cannot be read"):
        ExportState.from_json("{not json")


def test_dates_are_utc_days_of_timestamp_ms():
    import pyarrow as pa

    from rayka.clients.export_base import date_of

    day = 1_796_169_600_000  # 2026-12-02T00:00:00Z
    batch = pa.record_batch({"timestamp_ms": pa.array([day - 1, day, day + 86_399_999], pa.int64())})
    assert date_of(batch).to_pylist() == ["2026-12-01", "2026-12-02", "2026-12-02"]


def test_cli_bounds_are_offsets_or_iso_times_and_bad_ones_are_refused():
    from click.testing import CliRunner

    from rayka.cli import cli

    out = CliRunner().invoke(cli, ["export", "t", "/tmp/x", "--from", "yesterday"])
    assert out.exit_code == 2 and "ISO 8601" in out.output
    out = CliRunner().invoke(cli, ["export", "t", "/tmp/x", "--columns", " , "])
    assert out.exit_code == 2 and "name at least one column" in out.output


def test_one_export_lock_holder_per_destination_and_the_next_gets_it_after_release(tmp_path):
    from rayka.clients.export_base import ExportLock

    first, second = ExportLock(str(tmp_path / "d" / "_lock"), "d"), ExportLock(str(tmp_path / "d" / "_lock"), "d")
    first.take()
    first.take()  # the holder taking it again is a no-op, not a deadlock
    with pytest.raises(ConfigError, match="another export to d is running"):
        second.take()
    first.release()
    second.take()
    second.release()


def test_a_parquet_commit_that_fails_leaves_no_temp_file_and_raises_the_first_error(tmp_path):
    from rayka.clients.export_base import ExportState
    from rayka.clients.export_parquet import ParquetExport

    class Boom(Exception):
        pass

    class Source:
        def batches(self):
            for p in range(2):
                yield PartitionRange("t", p, 0, 1), pa.record_batch({"offset": [p]})
            raise Boom("the disk is full")

        def output(self, batch):
            return batch

    export = ParquetExport(str(tmp_path / "dest"))
    export.recover()
    try:
        with pytest.raises(Boom, match="the disk is full"):
            export.commit(Source(), "partition", ExportState({}, {}), {0: (0, 1), 1: (0, 1)})
    finally:
        export.close()
    assert list((tmp_path / "dest" / "_rayka_export" / "tmp").iterdir()) == []
    assert not list((tmp_path / "dest").glob("partition=*/*.parquet"))
