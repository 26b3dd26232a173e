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
