"""What CLI commands print, with the cluster faked out (no Ray)."""

from click.testing import CliRunner

from rayka import cli
from rayka.clients.types import GroupDescription, GroupPartitionDescription


class _Admin:
    def describe_group(self, group_id):
        return GroupDescription(group_id, "Empty", None, 1, [], [
            GroupPartitionDescription("clicks", 0, 2, 2, None, 0),
            GroupPartitionDescription("clicks", 1, None, None, None, None),
        ])


def test_groups_describe_prints_no_none_fields(monkeypatch):
    monkeypatch.setattr(cli.group_commands, "_admin", lambda ctx: _Admin())  # where the command finds it
    result = CliRunner().invoke(cli.cli, ["groups", "describe", "g"])
    assert result.exit_code == 0, result.output
    assert "None" not in result.output
    assert result.output.splitlines()[0] == "group g  state Empty  generation 1  members 0"
    assert result.output.splitlines()[3].split() == ["clicks", "1", "-", "-", "-", "-"]
