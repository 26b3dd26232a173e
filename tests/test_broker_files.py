"""The embedded broker writes each message atomically, so a consumer never reads a half-written one."""
import os

from kombu import Connection

from worker import broker_files


def test_a_message_appears_complete_under_its_final_name(tmp_path, monkeypatch):
    folder = tmp_path / "queue"
    folder.mkdir()
    (tmp_path / "control").mkdir()
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder), "store_processed": False,
               "control_folder": str(tmp_path / "control")}
    seen_while_writing, renamed = [], []
    real_replace = os.replace

    def replace(source, target):
        # At the moment of the rename, no consumer-visible message file exists yet.
        seen_while_writing.extend(name for name in os.listdir(folder) if name.endswith(".msg"))
        renamed.append((os.path.getsize(source), os.path.basename(target)))
        return real_replace(source, target)

    monkeypatch.setattr(broker_files.os, "replace", replace)
    with Connection(transport=broker_files.Transport, transport_options=options) as connection:
        channel = connection.default_channel
        assert isinstance(channel, broker_files.Channel)
        channel._put("default", {"refill": 7})
        assert seen_while_writing == []
        assert len(renamed) == 1 and renamed[0][0] > 0  # written in full before it got its queue name
        assert os.listdir(folder) == [renamed[0][1]] and renamed[0][1].endswith(".default.msg")
        assert channel._get("default") == {"refill": 7}
        assert os.listdir(folder) == []
