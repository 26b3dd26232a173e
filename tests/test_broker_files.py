"""The embedded broker writes each message atomically, so a consumer never reads a half-written one."""
import os

from kombu import Connection


def test_a_message_appears_complete_under_its_final_name(tmp_path, monkeypatch):
    folder = tmp_path / "queue"
    folder.mkdir()
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder), "store_processed": False,
               "control_folder": str(tmp_path / "control")}
    seen_while_writing, renamed = [], []
    real_replace = os.replace

    def replace(source, target):
        # At the moment of the rename, no consumer-visible message file exists yet.
        seen_while_writing.extend(name for name in os.listdir(folder) if name.endswith(".msg"))
        renamed.append((os.path.getsize(source), os.path.basename(target)))
        return real_replace(source, target)

    monkeypatch.setattr("worker.broker_files.os.replace", replace)
    with Connection(transport="worker.broker_files:Transport", transport_options=options) as connection:
        queue = connection.SimpleQueue("default")
        queue.put({"refill": 7})
        assert seen_while_writing == []
        assert len(renamed) == 1 and renamed[0][0] > 0  # written in full before it got its queue name
        assert [name.endswith(".default.msg") for name in os.listdir(folder)] == [True]
        message = queue.get(timeout=5)
        assert message.payload == {"refill": 7}
        message.ack()
        queue.close()
