"""Bulk import jobs: archives, server folders, manifests of URLs and S3 keys; progress, resuming,
idempotence on content, the API and the Import page. One test runs a job on a real worker."""
import functools
import http.server
import io
import tarfile
import threading
import time
import zipfile

import pytest
from django.urls import reverse

from labeling.models import Image, ImportJob
from labeling.services import import_jobs
from labeling.services.imports import store_image
from tests.conftest import make_image_bytes

JOBS = "/api/v1/projects/test-project/imports/"


def jpeg(seed: int) -> bytes:
    return make_image_bytes(size=(24, 16), fmt="JPEG", seed=seed)


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def tar_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def archive_dir(settings, tmp_path):
    settings.TAGRANK_IMPORT_ARCHIVE_DIR = tmp_path / "archives"
    return settings.TAGRANK_IMPORT_ARCHIVE_DIR


def upload(name: str, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data)


def run(job: ImportJob) -> ImportJob:
    import_jobs.run_job(job.pk)
    job.refresh_from_db()
    return job


@pytest.mark.django_db
def test_zip_job_stores_new_skips_known_and_names_failures(project, manager, archive_dir):
    store_image(project, "known.jpg", jpeg(1))
    files = {"b/two.jpg": jpeg(2), "a/one.jpg": jpeg(1), "c/broken.jpg": b"not an image", "notes.txt": b"x",
             "d/three.jpg": jpeg(3)}
    job = import_jobs.create_job(project, manager, archive=upload("batch.zip", zip_of(files)))
    assert job.status == "queued" and job.source == "batch.zip"
    job = run(job)
    assert (job.status, job.total, job.position, job.done, job.skipped, job.failed) == ("succeeded", 4, 4, 2, 1, 1)
    assert set(Image.objects.filter(project=project).values_list("original_name", flat=True)) == {
        "known.jpg", "b/two.jpg", "d/three.jpg"}
    issues = {issue.name: (issue.kind, issue.reason) for issue in job.issues.all()}
    assert issues["a/one.jpg"][0] == "skipped" and "already in the project" in issues["a/one.jpg"][1]
    assert issues["c/broken.jpg"][0] == "failed" and issues["c/broken.jpg"][1]
    assert not list(archive_dir.rglob("*.zip"))  # the archive is removed once the job succeeded
    assert import_jobs.run_job(job.pk) == {"job": job.pk, "skipped": "not queued"}  # a duplicate message: nothing


@pytest.mark.django_db
def test_tar_gz_job_and_a_refused_archive(project, manager, archive_dir):
    job = run(import_jobs.create_job(project, manager, archive=upload("x.tar.gz", tar_of({"p.jpg": jpeg(4)}))))
    assert (job.status, job.done) == ("succeeded", 1)
    with pytest.raises(import_jobs.ImportJobRefused, match="not a zip or tar"):
        import_jobs.create_job(project, manager, archive=upload("x.zip", b"plain bytes"))
    assert not list(archive_dir.rglob("*x.zip"))


@pytest.mark.django_db
def test_folder_job_only_inside_the_import_root(project, manager, settings, tmp_path):
    root = tmp_path / "root"
    (root / "shoot" / "day1").mkdir(parents=True)
    for index in range(3):
        (root / "shoot" / "day1" / f"{index}.jpg").write_bytes(jpeg(10 + index))
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "private.jpg").write_bytes(jpeg(19))
    (root / "shoot" / "day1" / "escape.jpg").symlink_to(tmp_path / "secret" / "private.jpg")
    settings.TAGRANK_IMPORT_ROOT = None
    with pytest.raises(import_jobs.ImportJobRefused, match="TAGRANK_IMPORT_ROOT"):
        import_jobs.create_job(project, manager, folder="shoot")
    settings.TAGRANK_IMPORT_ROOT = str(root)
    for outside in ("../secret", str(tmp_path / "secret"), "missing"):
        with pytest.raises(import_jobs.ImportJobRefused):
            import_jobs.create_job(project, manager, folder=outside)
    job = run(import_jobs.create_job(project, manager, folder="shoot"))
    assert (job.status, job.done, job.failed, job.total) == ("succeeded", 3, 1, 4)
    assert "outside the import root" in job.issues.get(name="day1/escape.jpg").reason
    assert sorted(Image.objects.values_list("original_name", flat=True)) == [f"day1/{i}.jpg" for i in range(3)]


@pytest.fixture
def http_folder(tmp_path):
    """A local HTTP server (127.0.0.1, a free port) serving a folder."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


@pytest.fixture
def s3_server(monkeypatch, settings):
    """moto's S3 in server mode on 127.0.0.1 (a free port); boto3 reaches it through the endpoint setting."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    settings.TAGRANK_S3_ENDPOINT_URL = f"http://{host}:{port}"
    yield import_jobs.s3_client()
    server.stop()


@pytest.mark.django_db
def test_manifest_of_urls_and_s3_keys(project, manager, http_folder, s3_server, settings):
    settings.TAGRANK_OUTBOUND_ALLOW_PRIVATE = True  # the served folder is on 127.0.0.1
    folder, base = http_folder
    (folder / "web.jpg").write_bytes(jpeg(20))
    s3_server.create_bucket(Bucket="photos")
    s3_server.put_object(Bucket="photos", Key="set/s3.jpg", Body=jpeg(21))
    manifest = "\n".join([
        "# a comment", f"{base}/web.jpg", f"{base}/missing.jpg", "s3://photos/set/s3.jpg", "s3://photos/none.jpg", "",
    ])
    job = import_jobs.create_job(project, manager, manifest=manifest)
    assert job.total == 4
    job = run(job)
    assert (job.status, job.done, job.failed) == ("succeeded", 2, 2)
    failures = dict(job.issues.values_list("name", "reason"))
    assert "404" in failures[f"{base}/missing.jpg"] and "NoSuchKey" in failures["s3://photos/none.jpg"]
    assert Image.objects.filter(project=project, original_name="s3://photos/set/s3.jpg").exists()


@pytest.mark.django_db
def test_a_manifest_with_a_private_host_is_refused_with_its_line(project, manager, settings, fake_dns):
    settings.TAGRANK_OUTBOUND_ALLOW_PRIVATE = False
    fake_dns({"cdn.example": "93.184.215.14", "intranet.example": "10.0.0.1"})
    for bad in ("http://intranet.example/a.jpg", "http://127.0.0.1:8000/a.jpg", "http://[::ffff:10.1.2.3]/a.jpg"):
        manifest = f"https://cdn.example/1.jpg\n{bad}\ns3://photos/set/1.jpg\n"
        with pytest.raises(import_jobs.ImportJobRefused, match="manifest line 2") as refused:
            import_jobs.create_job(project, manager, manifest=manifest)
        assert bad in str(refused.value)
    assert not ImportJob.objects.exists()
    assert import_jobs.create_job(project, manager, manifest="https://cdn.example/1.jpg\n").total == 1


@pytest.fixture
def redirecting_server():
    """A local server (127.0.0.1) that answers every GET with a redirect to the URL in its path."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(302)
            self.send_header("Location", self.path.lstrip("/"))
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    thread.join()


@pytest.mark.django_db
def test_the_worker_refuses_private_addresses_at_fetch_time_and_in_redirects(
        project, manager, settings, fake_dns, redirecting_server, monkeypatch):
    from core import outbound

    settings.TAGRANK_OUTBOUND_ALLOW_PRIVATE = False
    # "cdn.example" was public when the job was made and now resolves inside the network.
    fake_dns({"cdn.example": ["93.184.215.14", "10.0.0.1"], "intranet.example": "10.0.0.1",
              "hop.example": "127.0.0.1"})
    # The redirecting server's loopback address counts as public here; every other address keeps the real rule.
    public = outbound.is_public
    monkeypatch.setattr(outbound, "is_public", lambda address: address == "127.0.0.1" or public(address))
    hop = f"http://hop.example:{redirecting_server}"
    manifest = f"https://cdn.example/1.jpg\n{hop}/http://intranet.example/2.jpg\n{hop}/http://169.254.169.254/3.jpg\n"
    job = run(import_jobs.create_job(project, manager, manifest=manifest))
    assert (job.status, job.done, job.failed) == ("succeeded", 0, 3)
    reasons = dict(job.issues.values_list("name", "reason"))
    assert "10.0.0.1" in reasons["https://cdn.example/1.jpg"]
    assert "http://intranet.example/2.jpg" in reasons[f"{hop}/http://intranet.example/2.jpg"]
    assert "169.254.169.254" in reasons[f"{hop}/http://169.254.169.254/3.jpg"]
    assert all("refused" in reason for reason in reasons.values())


@pytest.mark.django_db
def test_a_bad_manifest_line_is_named(project, manager):
    with pytest.raises(import_jobs.ImportJobRefused, match="manifest line 2"):
        import_jobs.create_job(project, manager, manifest="https://example.org/a.jpg\nfile:///etc/passwd\n")
    assert not ImportJob.objects.exists()


@pytest.mark.django_db
def test_a_stopped_job_resumes_from_its_position_and_stores_nothing_twice(project, manager, archive_dir, monkeypatch):
    files = {f"{index}.jpg": jpeg(30 + index) for index in range(6)}
    job = import_jobs.create_job(project, manager, archive=upload("six.zip", zip_of(files)))
    real_store = import_jobs.store_image
    calls = []

    def store_then_die(project, name, data):
        calls.append(name)
        result = real_store(project, name, data)
        if name == "3.jpg":
            raise RuntimeError("worker lost")  # stored, but the job's position was not advanced
        return result

    monkeypatch.setattr(import_jobs, "store_image", store_then_die)
    monkeypatch.setattr(import_jobs, "BATCH_SIZE", 2)
    with pytest.raises(RuntimeError):
        import_jobs.run_job(job.pk)
    job.refresh_from_db()
    # The batch of 2.jpg and 3.jpg was rolled back whole: its image, issues and position.
    assert (job.status, job.position, job.done) == ("failed", 2, 2) and "worker lost" in job.error
    assert Image.objects.filter(project=project).count() == 2
    monkeypatch.setattr(import_jobs, "store_image", real_store)
    assert import_jobs.resume_job(job)
    job = run(job)
    assert (job.status, job.position, job.done, job.skipped) == ("succeeded", 6, 6, 0)
    assert Image.objects.filter(project=project).count() == 6  # every file once
    assert calls == ["0.jpg", "1.jpg", "2.jpg", "3.jpg"]
    again = run(import_jobs.create_job(project, manager, archive=upload("six.zip", zip_of(files))))
    assert (again.done, again.skipped) == (0, 6)  # the same files again: skipped by content


@pytest.mark.django_db
def test_a_running_job_is_taken_over_only_when_its_heartbeat_is_stale(project, manager, archive_dir):
    from django.utils import timezone

    job = import_jobs.create_job(project, manager, archive=upload("one.zip", zip_of({"a.jpg": jpeg(40)})))
    ImportJob.objects.filter(pk=job.pk).update(status="running", heartbeat_at=timezone.now(), claim="other")
    assert import_jobs.claim(job.pk) is None
    job.refresh_from_db()
    assert not import_jobs.resume_job(job)
    ImportJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - import_jobs.STALE_AFTER * 2)
    assert run(job).status == "succeeded" and job.done == 1


@pytest.mark.django_db
def test_api_starts_a_job_and_reports_progress(api, project, manager, rater, archive_dir, monkeypatch):
    sent = []
    monkeypatch.setattr("worker.dispatch.send_import_job", sent.append)
    assert api(rater).post(JOBS, {"manifest": "https://example.org/a.jpg"}).status_code == 403
    data = zip_of({"a.jpg": jpeg(50), "b.jpg": b"nope"})
    response = api(manager).post(JOBS, {"archive": upload("api.zip", data)}, format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "queued" and body["source_kind"] == "archive" and sent == [body["id"]]
    import_jobs.run_job(body["id"])
    detail = api(manager).get(f"{JOBS}{body['id']}/").json()
    assert (detail["status"], detail["done"], detail["failed"], detail["total"]) == ("succeeded", 1, 1, 2)
    assert detail["issues"][0]["name"] == "b.jpg" and detail["issues"][0]["kind"] == "failed"
    assert api(manager).get(JOBS).json()["results"][0]["id"] == body["id"]
    assert api(manager).post(f"{JOBS}{body['id']}/resume/").status_code == 409  # succeeded: nothing to resume
    bad = api(manager).post(JOBS, {"manifest": "ftp://x/y.jpg"}, format="json")
    assert bad.status_code == 400 and "manifest line 1" in bad.json()["detail"]
    both = api(manager).post(JOBS, {"archive": upload("x.zip", data), "folder": "x"}, format="multipart")
    assert both.status_code == 400 and "exactly one source" in both.json()["detail"]
    assert api(manager).get(f"{JOBS}999999/").status_code == 404


@pytest.mark.django_db
def test_import_page_starts_a_job_and_shows_its_progress(client, project, manager, rater, archive_dir, monkeypatch):
    monkeypatch.setattr("worker.dispatch.send_import_job", lambda job_id: None)
    client.force_login(rater)
    assert client.get(reverse("project-imports", args=[project.slug])).status_code == 403
    client.force_login(manager)
    page = client.get(reverse("project-imports", args=[project.slug]))
    assert page.status_code == 200 and b"Start the import" in page.content
    response = client.post(reverse("project-imports", args=[project.slug]),
                           {"archive": upload("page.zip", zip_of({"a.jpg": jpeg(60), "bad.jpg": b"x"}))})
    job = ImportJob.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/imports/{job.pk}/")
    import_jobs.run_job(job.pk)
    page = client.get(response["Location"]).content.decode()
    assert 'data-status="succeeded"' in page and 'id="job-done">1<' in page and "bad.jpg" in page
    refused = client.post(reverse("project-imports", args=[project.slug]), {"manifest": "nonsense"})
    assert refused.status_code == 200 and "manifest line 1" in refused.content.decode()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_an_archive_job_runs_on_the_worker(api, project, manager, live_worker):
    # The archive waits in TAGRANK_IMPORT_ARCHIVE_DIR (under TAGRANK_VAR_DIR, which the worker shares).
    data = zip_of({f"{index}.jpg": jpeg(70 + index) for index in range(5)})
    response = api(manager).post(JOBS, {"archive": upload("w.zip", data)}, format="multipart")
    assert response.status_code == 201
    job_id = response.json()["id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        body = api(manager).get(f"{JOBS}{job_id}/").json()
        if body["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.5)
    assert body["status"] == "succeeded", (body, live_worker.log())
    assert body["done"] == 5 and Image.objects.filter(project=project).count() == 5
