"""Image import through the CLI and the shared service: good files, each kind of bad file, side files, AVA."""
import io
import json

import pytest
from django.core.management import CommandError, call_command
from PIL import Image as PILImage

from labeling.models import Image, ImageTag, ReferenceRating, Tag
from labeling.services.imports import RejectedImage, import_uploaded_file, validate_image_bytes
from tests.conftest import make_image_bytes


def write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_pngs(folder, count: int, first_seed: int):
    """``count`` PNGs, 0.png, 1.png, ..., each with content of its own."""
    for index in range(count):
        write(folder / f"{index}.png", make_image_bytes(seed=first_seed + index))
    return folder


def run_import(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_images", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def stored_files(media_root):
    return sorted(p.relative_to(media_root).as_posix() for p in media_root.rglob("*") if p.is_file()
                  and not p.relative_to(media_root).as_posix().startswith("features"))


@pytest.mark.django_db
def test_import_folder_with_tags_and_metadata(project, tmp_path, isolated_media):
    media_root = isolated_media
    folder = tmp_path / "photos"
    write(folder / "a.jpg", make_image_bytes(seed=1, fmt="JPEG"))
    write(folder / "nested" / "b.png", make_image_bytes(seed=2))
    write(folder / "c.webp", make_image_bytes(seed=3, fmt="WEBP"))
    write(folder / "notes.txt", b"ignored: not an image suffix")
    tags_csv = write(tmp_path / "tags.csv", b"file,tags\na.jpg,Cat; Indoor\nnested/b.png,dog|outdoor\n")
    metadata = write(tmp_path / "meta.jsonl", "\n".join([
        json.dumps({"file": "a.jpg", "prompt": "a cat on a sofa", "cfg_scale": 7.5, "seed": 42, "external_id": "ext-a"}),
        json.dumps({"file": "c.webp", "caption": "something", "sampler": "euler", "tags": ["Abstract"]}),
    ]).encode())

    out, err = run_import(project.slug, str(folder), "--tags", str(tags_csv), "--metadata", str(metadata))

    assert "imported 3" in out
    a = Image.objects.get(original_name="a.jpg")
    assert a.caption == "a cat on a sofa"
    assert a.metadata == {"cfg_scale": 7.5, "seed": 42}
    assert a.external_id == "ext-a"
    assert (a.width, a.height) == (64, 48)
    assert sorted(a.image_tags.values_list("tag__name", flat=True)) == ["cat", "indoor"]
    assert sorted(Image.objects.get(original_name="nested/b.png").image_tags.values_list("tag__name", flat=True)) == [
        "dog", "outdoor"]
    c = Image.objects.get(original_name="c.webp")
    assert c.metadata == {"sampler": "euler"} and c.caption == "something"
    assert list(c.image_tags.values_list("tag__name", flat=True)) == ["abstract"]
    assert ImageTag.objects.filter(source="import").count() == 5
    for image in Image.objects.all():
        assert image.thumbnail.name.endswith(".webp")
        assert (media_root / image.thumbnail.name).is_file()
        assert (media_root / image.file.name).is_file()


@pytest.mark.django_db
def test_each_kind_of_bad_file_is_reported_by_name_and_nothing_is_stored(project, tmp_path, isolated_media):
    media_root = isolated_media
    folder = tmp_path / "bad"
    good = make_image_bytes(seed=7, fmt="JPEG")
    write(folder / "good.jpg", good)
    write(folder / "duplicate.jpg", good)
    write(folder / "truncated.jpg", make_image_bytes(seed=8, fmt="JPEG", size=(256, 256))[:700])
    write(folder / "text.jpg", b"this is not an image at all\n")
    write(folder / "empty.png", b"")
    bomb = io.BytesIO()
    PILImage.new("1", (12_000, 12_000)).save(bomb, format="PNG")  # 144 Mpx in a few kB
    write(folder / "bomb.png", bomb.getvalue())
    gif = io.BytesIO()
    PILImage.new("RGB", (8, 8)).save(gif, format="GIF")
    write(folder / "really_a_gif.png", gif.getvalue())

    out, err = run_import(project.slug, str(folder))

    assert "imported 1" in out and "duplicates skipped 1" in out and "rejected 5" in out
    assert "rejected truncated.jpg: corrupt or truncated image" in err
    assert "rejected text.jpg: not an image file" in err
    assert "rejected empty.png: the file is empty" in err
    assert "rejected bomb.png:" in err and "bomb" in err.split("rejected bomb.png:")[1].splitlines()[0]
    assert "rejected really_a_gif.png: format GIF is not allowed" in err
    assert Image.objects.count() == 1
    assert len(stored_files(media_root)) == 2  # the good image and its thumbnail, nothing of the others


@pytest.mark.django_db
def test_strict_mode_fails_on_rejections(project, tmp_path):
    write(tmp_path / "x" / "text.jpg", b"nope")
    with pytest.raises(CommandError, match="1 file"):
        run_import(project.slug, str(tmp_path / "x"), "--strict")


@pytest.mark.django_db
def test_bad_side_file_line_is_named_and_nothing_is_imported(project, tmp_path):
    folder = tmp_path / "ok"
    write(folder / "a.png", make_image_bytes(seed=11))
    metadata = write(tmp_path / "meta.jsonl", b'{"file": "a.png", "seed": 1}\n\n{"file": "b.png", oops}\n')
    with pytest.raises(CommandError, match=r"meta\.jsonl:3: invalid JSON"):
        run_import(project.slug, str(folder), "--metadata", str(metadata))
    tags = write(tmp_path / "tags.csv", b"file,tags\na.png,cat\nlonely-file-without-tags\n")
    with pytest.raises(CommandError, match=r"tags\.csv:3: expected `file,tags`"):
        run_import(project.slug, str(folder), "--tags", str(tags))
    assert Image.objects.count() == 0


@pytest.mark.django_db
def test_unknown_project_and_missing_files_are_clear_errors(project, tmp_path):
    with pytest.raises(CommandError, match="no project with slug 'nope'"):
        run_import("nope", str(tmp_path))
    with pytest.raises(CommandError, match="missing.csv: no such file"):
        run_import(project.slug, str(tmp_path), "--tags", str(tmp_path / "missing.csv"))


def test_exif_orientation_is_applied_to_the_size():
    image = PILImage.new("RGB", (40, 20), (10, 200, 10))
    exif = PILImage.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    checked = validate_image_bytes(buffer.getvalue(), "rotated.jpg")
    assert (checked.width, checked.height) == (20, 40)


@pytest.mark.django_db
def test_upload_service_shares_the_validation(project):
    with pytest.raises(RejectedImage, match="not an image"):
        import_uploaded_file(project, io.BytesIO(b"GIF89a but not really"), "x.gif")
    image, created = import_uploaded_file(project, io.BytesIO(make_image_bytes(seed=5)), "up.png", tags=["Sky"])
    assert created and image.image_tags.get().tag.name == "sky"
    again, created_again = import_uploaded_file(project, io.BytesIO(make_image_bytes(seed=5)), "copy.png")
    assert not created_again and again.pk == image.pk


def write_ava_fixture(tmp_path):
    """A small AVA in the dataset's own formats: three listed images, one of them absent from the folder."""
    images = tmp_path / "ava" / "images"
    write(images / "953619.jpg", make_image_bytes(seed=21, fmt="JPEG"))
    write(images / "953958.jpg", make_image_bytes(seed=22, fmt="JPEG"))
    ava = write(tmp_path / "ava" / "AVA.txt", (
        "1 953619 0 1 5 17 38 36 15 6 5 1 1 22 1396\n"
        "2 953958 10 7 15 26 26 21 10 8 1 2 15 21 1396\n"
        "3 954184 0 0 4 8 41 56 10 3 4 0 0 0 1396\n"
    ).encode())
    tags = write(tmp_path / "ava" / "tags.txt", b"1 Abstract\n15 Nature\n21 Black and White\n22 Landscape\n")
    return ava, tags, images


@pytest.mark.django_db
def test_import_ava(project, tmp_path):
    ava, tags, images = write_ava_fixture(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    call_command("import_ava", project.slug, str(ava), str(tags), str(images), stdout=out, stderr=err)
    assert "imported 2" in out.getvalue() and "missing 1" in out.getvalue()
    assert "1 image(s) listed" in err.getvalue()
    first = Image.objects.get(external_id="953619")
    votes = [0, 1, 5, 17, 38, 36, 15, 6, 5, 1]
    assert first.reference_rating.votes == votes
    expected_mean = sum(s * v for s, v in enumerate(votes, 1)) / sum(votes)
    assert first.reference_rating.mean == pytest.approx(expected_mean)
    assert sorted(first.image_tags.values_list("tag__name", flat=True)) == ["abstract", "landscape"]
    assert first.metadata["challenge_id"] == 1396
    assert set(Tag.objects.values_list("name", flat=True)) == {"abstract", "landscape", "nature", "black and white"}
    assert ReferenceRating.objects.count() == 2


@pytest.mark.django_db
def test_import_ava_limit_and_bad_lines(project, tmp_path):
    ava, tags, images = write_ava_fixture(tmp_path)
    call_command("import_ava", project.slug, str(ava), str(tags), str(images), "--limit", "1",
                 stdout=io.StringIO(), stderr=io.StringIO())
    assert Image.objects.count() == 1
    bad = write(tmp_path / "bad.txt", b"1 953619 0 1 5 17 38 36 15 6 5 1 1 22 1396\n2 953958 10 7 15\n")
    with pytest.raises(CommandError, match=r"bad\.txt:2: expected 15 columns, found 5"):
        call_command("import_ava", project.slug, str(bad), str(tags), str(images), stdout=io.StringIO())
    unknown_tag = write(tmp_path / "unknown.txt", b"1 953958 10 7 15 26 26 21 10 8 1 2 99 0 1396\n")
    with pytest.raises(CommandError, match=r"unknown\.txt:1: semantic tag id 99"):
        call_command("import_ava", project.slug, str(unknown_tag), str(tags), str(images), stdout=io.StringIO())
    assert Image.objects.count() == 1


# --- The batch path: many files per transaction ------------------------------------------------


def photo_jpeg(size=(1600, 1200), orientation: int | None = None, seed: int = 0, quality: int = 90) -> bytes:
    """A smooth photo-like JPEG, left half reddish and right half bluish, large enough for draft decoding."""
    import numpy as np

    coarse = np.random.default_rng(seed).integers(0, 60, size=(size[1] // 32, size[0] // 32, 3), dtype=np.uint8)
    coarse[:, : coarse.shape[1] // 2, 0] += 190  # left: red
    coarse[:, coarse.shape[1] // 2 :, 2] += 190  # right: blue
    image = PILImage.fromarray(coarse, mode="RGB").resize(size, PILImage.Resampling.BILINEAR)
    buffer = io.BytesIO()
    exif = PILImage.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(buffer, format="JPEG", quality=quality, exif=exif.tobytes())
    return buffer.getvalue()


@pytest.mark.django_db
def test_duplicates_within_one_batch_and_already_stored_are_skipped(project, tmp_path, isolated_media):
    from labeling.services.imports import import_folder, store_image

    folder = tmp_path / "dups"
    first = make_image_bytes(seed=31, fmt="JPEG")
    write(folder / "a.jpg", first)
    write(folder / "b.jpg", first)  # the same bytes, same batch
    write(folder / "c.png", make_image_bytes(seed=32))
    write(folder / "d.png", make_image_bytes(seed=33))
    stored, _ = store_image(project, "earlier.png", make_image_bytes(seed=33))  # d.png is already there

    report = import_folder(project, folder, workers=1)

    assert (report.imported, report.duplicates, report.rejected) == (2, 2, [])
    assert sorted(Image.objects.values_list("original_name", flat=True)) == ["a.jpg", "c.png", "earlier.png"]
    assert sorted(report.image_ids) == sorted(Image.objects.exclude(pk=stored.pk).values_list("pk", flat=True))
    assert len(stored_files(isolated_media)) == 6  # three images, three thumbnails
    from labeling.models import ImageStats

    assert ImageStats.objects.filter(image__project=project).count() == 3  # made for bulk rows too


@pytest.mark.django_db
def test_corrupt_file_among_good_ones_in_one_batch_leaves_nothing_of_itself(project, tmp_path, isolated_media):
    from labeling.services.imports import import_folder

    folder = tmp_path / "mixed"
    write(folder / "1_good.jpg", photo_jpeg(seed=1))
    write(folder / "2_truncated.jpg", photo_jpeg(seed=2)[:-4000])  # large: decoded in draft mode
    write(folder / "3_good.png", make_image_bytes(seed=3))
    write(folder / "4_garbage.jpg", b"\xff\xd8\xff\xe0 not really a JPEG")

    report = import_folder(project, folder, workers=1)

    assert report.imported == 2
    reasons = dict(report.rejected)
    assert set(reasons) == {"2_truncated.jpg", "4_garbage.jpg"}
    assert reasons["2_truncated.jpg"].startswith("corrupt or truncated image")
    assert sorted(Image.objects.values_list("original_name", flat=True)) == ["1_good.jpg", "3_good.png"]
    assert len(stored_files(isolated_media)) == 4


@pytest.mark.django_db
def test_a_failing_batch_is_rolled_back_with_its_files_and_earlier_batches_stay(
    project, tmp_path, isolated_media, monkeypatch
):
    from labeling.models import ImageStats
    from labeling.services import imports

    folder = write_pngs(tmp_path / "batches", 5, first_seed=40)
    tags_csv = write(tmp_path / "tags.csv", b"".join(f"{i}.png,tag{i}\n".encode() for i in range(5)))
    monkeypatch.setattr(imports, "BATCH_FILES", 2)
    calls = []
    real_bulk_create = ImageTag.objects.bulk_create

    def failing_third_batch(objs, *args, **kwargs):
        calls.append(len(objs))
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return real_bulk_create(objs, *args, **kwargs)

    monkeypatch.setattr(ImageTag.objects, "bulk_create", failing_third_batch)

    with pytest.raises(RuntimeError, match="disk full"):
        imports.import_folder(project, folder, tags_csv=tags_csv, workers=1)

    assert calls == [2, 2, 1]
    assert sorted(Image.objects.values_list("original_name", flat=True)) == ["0.png", "1.png", "2.png", "3.png"]
    assert ImageStats.objects.count() == 4 and ImageTag.objects.count() == 4
    assert not Tag.objects.filter(name="tag4").exists()
    assert len(stored_files(isolated_media)) == 8  # nothing of 4.png


@pytest.mark.django_db
def test_a_duplicate_stored_concurrently_falls_back_to_one_transaction_per_file(
    project, tmp_path, isolated_media, monkeypatch
):
    from labeling.services import imports

    folder = write_pngs(tmp_path / "race", 3, first_seed=60)
    imports.store_image(project, "other-process.png", make_image_bytes(seed=61))
    # As if another import committed 1.png between the duplicate check and the insert.
    monkeypatch.setattr(imports, "existing_hashes", lambda project, hashes: set())

    report = imports.import_folder(project, folder, tags_csv=None, workers=1)

    assert (report.imported, report.duplicates, report.rejected) == (2, 1, [])
    assert Image.objects.count() == 3
    assert len(stored_files(isolated_media)) == 6  # no file left from the rolled-back batch


def test_draft_decoding_gives_the_right_thumbnail_size_orientation_and_content():
    import numpy as np

    data = photo_jpeg(size=(1600, 1200), orientation=6)  # displayed turned 90° clockwise
    checked = validate_image_bytes(data, "turned.jpg")
    assert (checked.width, checked.height) == (1200, 1600)  # the full size, not the draft size
    thumb = PILImage.open(io.BytesIO(checked.thumbnail))
    assert thumb.format == "WEBP" and thumb.size == (288, 384)
    pixels = np.asarray(thumb.convert("RGB"), dtype=np.float32)
    top, bottom = pixels[:100].mean(axis=(0, 1)), pixels[-100:].mean(axis=(0, 1))
    assert top[0] > top[2] + 100 and bottom[2] > bottom[0] + 100  # the red left half is now on top

    with PILImage.open(io.BytesIO(data)) as original:  # the same thumbnail from a full-size decode
        full = original.convert("RGB").transpose(PILImage.Transpose.ROTATE_270)
    full.thumbnail((384, 384), PILImage.Resampling.LANCZOS)
    difference = np.abs(pixels - np.asarray(full, dtype=np.float32)).mean()
    assert difference < 4  # draft decoding is not visibly different at thumbnail size


def test_jpeg_is_decoded_once_at_reduced_size(monkeypatch):
    from PIL import JpegImagePlugin

    sizes = []
    real_load = JpegImagePlugin.JpegImageFile.load

    def recording_load(self):
        if self.tile:  # a decode still to do, not a call on a loaded image
            sizes.append(self.size)
        return real_load(self)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", recording_load)
    validate_image_bytes(photo_jpeg(size=(1600, 1200)), "big.jpg")
    assert sizes == [(800, 600)]  # one decode, at half size (still at least the 384-px thumbnail)
