"""The Import page in Debian's Chromium (Playwright): upload an archive, watch the job run on the worker."""
from __future__ import annotations

import zipfile

import pytest

from labeling.models import Image, ImportJob, Membership
from tests.browser import OUTPUT, chromium_page, log_in
from tests.conftest import make_image_bytes


@pytest.mark.browser
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_import_page_starts_a_job_and_shows_its_progress(live_server, live_worker, project, make_user, tmp_path):
    manager = make_user("importer", password="pw-for-tests-1")
    Membership.objects.create(project=project, user=manager, role=Membership.Role.MANAGER)
    archive = tmp_path / "holiday.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for index in range(6):
            bundle.writestr(f"day{index % 2}/photo_{index}.jpg", make_image_bytes(fmt="JPEG", seed=300 + index))
        bundle.writestr("day0/photo_0_again.jpg", make_image_bytes(fmt="JPEG", seed=300))  # same content
        bundle.writestr("day1/broken.jpg", b"not a picture")
    OUTPUT.mkdir(exist_ok=True)
    with chromium_page() as page:
        log_in(page, live_server.url, "importer", "pw-for-tests-1")
        page.goto(f"{live_server.url}/projects/{project.slug}/")
        page.click("nav.manage-nav a[href$='/imports/']")
        page.set_input_files("#id_archive", str(archive))
        page.click("#import-form button[type=submit]")
        page.wait_for_url("**/imports/*/")
        # The page refreshes itself until the worker has finished the job.
        page.wait_for_selector('#job-status[data-status="succeeded"]', timeout=120_000)
        done = page.inner_text("#job-done")
        skipped = page.inner_text("#job-skipped")
        failed = page.inner_text("#job-failed")
        issues = page.eval_on_selector_all("#job-issues tbody tr", "rows => rows.map(r => r.innerText)")
        page.screenshot(path=str(OUTPUT / "import-job.png"), full_page=True)
        page.click("text=All imports")
        listed = page.inner_text("#import-jobs")
    assert (done, skipped, failed) == ("6", "1", "1")
    assert any("broken.jpg" in row and "Failed" in row for row in issues)
    assert any("photo_0_again.jpg" in row and "already in the project" in row for row in issues)
    assert "holiday.zip" in listed and "Succeeded" in listed
    assert Image.objects.filter(project=project).count() == 6 and ImportJob.objects.get().status == "succeeded"
