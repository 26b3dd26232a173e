"""Demo data: real photographs shipped in scikit-image's wheel, each at graded distortions.

Quality follows the distortion strength, which makes the demo a ladder with a known answer:
raters (and the simulated raters of the benchmarks) should prefer weaker distortions, and a
trained model's score should fall as blur, noise or compression rise.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.contrib.auth import get_user_model
from django.db import transaction
from PIL import Image as PILImage
from PIL import ImageFilter

from labeling.models import Membership, Project
from labeling.services.imports import ImportReport, import_one, import_session

DEMO_SLUG = "demo-photos"
# A second campaign on fresh photos with the same question: the warm start's demo (docs/active-learning.md).
DEMO_NEXT_SLUG = "demo-next-campaign"
DEMO_USERS = {
    "manager": ("manager", "tagrank-manager", Membership.Role.MANAGER),
    "rater": ("rater", "tagrank-rater", Membership.Role.RATER),
    # A second rater, so that the demo's pairs (overlap 2) can show human-human agreement.
    "rater2": ("rater2", "tagrank-rater2", Membership.Role.RATER),
}

# scikit-image sample photo file (in its wheel's data folder) → content tags
DEMO_PHOTOS = {
    "astronaut.png": ["person", "portrait", "space", "flag"],
    "chelsea.png": ["cat", "animal", "indoor"],
    "coffee.png": ["coffee", "cup", "food", "drink"],
    "rocket.jpg": ["rocket", "sky", "vehicle", "outdoor"],
    "motorcycle_left.png": ["motorcycle", "vehicle", "indoor"],
    "hubble_deep_field.jpg": ["space", "galaxy", "night sky"],
    "camera.png": ["person", "photographer", "black and white", "outdoor"],
}

# The next campaign's photos: none of them is in the first campaign.
DEMO_NEXT_PHOTOS = {
    "motorcycle_right.png": ["motorcycle", "vehicle", "indoor"],
    "coins.png": ["coins", "black and white"],
    "moon.png": ["moon", "space", "black and white"],
    "retina.jpg": ["retina", "medical"],
    "brick.png": ["brick", "texture"],
}

# distortion → the metadata field that measures it, and three strengths from mild to severe
DISTORTIONS = {
    "blur": ("blur_sigma", [1.0, 2.5, 5.0]),
    "noise": ("noise_std", [12.0, 30.0, 60.0]),
    "jpeg": ("jpeg_quality", [30, 12, 4]),
    "color_shift": ("color_shift", [0.15, 0.35, 0.6]),
}
CLEAN_VALUES = {"blur_sigma": 0.0, "noise_std": 0.0, "jpeg_quality": 100, "color_shift": 0.0}
DEMO_ORDER_SEED = 26


@dataclass
class DemoResult:
    project: Project
    report: ImportReport
    credentials: dict[str, tuple[str, str]]
    next_project: Project | None = None  # the second campaign, fresh photos, same question
    next_report: ImportReport | None = None


def load_photo(file_name: str, max_side: int = 512) -> PILImage.Image:
    import skimage.data

    with PILImage.open(Path(skimage.data.__file__).parent / file_name) as source:
        image = source.convert("RGB")
    image.thumbnail((max_side, max_side), PILImage.Resampling.LANCZOS)
    return image


def distort(image: PILImage.Image, kind: str, value: float, seed: int) -> PILImage.Image:
    if kind == "blur":
        return image.filter(ImageFilter.GaussianBlur(radius=value))
    if kind == "noise":
        rng = np.random.default_rng(seed)
        pixels = np.asarray(image, dtype=np.float32) + rng.normal(0.0, value, size=(image.height, image.width, 3))
        return PILImage.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="RGB")
    if kind == "jpeg":
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(value))
        return PILImage.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    if kind == "color_shift":
        pixels = np.asarray(image, dtype=np.float32)
        tint = np.array([1.0 + value, 1.0, 1.0 - value], dtype=np.float32)  # warm cast
        return PILImage.fromarray(np.clip(pixels * tint, 0, 255).astype(np.uint8), mode="RGB")
    raise ValueError(f"unknown distortion {kind!r}")


def png_bytes(image: PILImage.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def ensure_demo_users(project: Project) -> dict[str, tuple[str, str]]:
    User = get_user_model()
    credentials = {}
    for key, (username, password, role) in DEMO_USERS.items():
        user, created = User.objects.get_or_create(username=username)
        if created:
            user.set_password(password)
        # A manager is a role in one project, never site staff: no admin flag, no model permissions (they would
        # span every project). Earlier demos gave the manager both; running seed_demo again takes them back.
        user.is_staff = user.is_superuser = False
        user.save()
        user.user_permissions.clear()
        Membership.objects.update_or_create(project=project, user=user, defaults={"role": role, "is_active": True})
        credentials[key] = (username, password)
    return credentials


DEMO_QUESTION = "Which photo has the better technical quality?"


def seed_demo(photos: dict[str, list[str]] | None = None, next_photos: dict[str, list[str]] | None = None
              ) -> DemoResult:
    """Create (or complete) the demo project, and the next campaign beside it. Running it again adds nothing new.

    The next campaign asks the same question of fresh photos. Once the demo project has an active model
    (after its first 30 judgments), its Models page offers to warm-start the next campaign from it in one
    click ("Warm-start … from this model"), or to start yet another campaign from it."""
    first, report, credentials = _seed_project(DEMO_SLUG, {
        "name": "Demo: distorted photographs",
        "description": "scikit-image sample photos at graded blur, noise, JPEG and colour-shift distortions.",
    }, photos or DEMO_PHOTOS)
    second, next_report, _ = _seed_project(DEMO_NEXT_SLUG, {
        "name": "Demo: next campaign (fresh photos)",
        "description": "Other scikit-image photos at the same distortions, and the same question: warm-start it "
                       "from the first demo project's model (its Models page, or this project's training settings).",
    }, DEMO_NEXT_PHOTOS if next_photos is None else next_photos)
    return DemoResult(first, report, credentials, second, next_report)


def _seed_project(slug: str, defaults: dict, photos: dict[str, list[str]]
                  ) -> tuple[Project, ImportReport, dict[str, tuple[str, str]]]:
    with transaction.atomic():
        project, _ = Project.objects.get_or_create(
            slug=slug,
            defaults={
                "question": DEMO_QUESTION,
                "overlap": 2,
                "gold_rate": 0.0,
                "retrain_min_new_comparisons": 30,
                "retrain_max_age_hours": 1,
                **defaults,
            },
        )
        credentials = ensure_demo_users(project)
    variants = []  # (photo index, photo file, distortion, strength, metadata values)
    for photo_index, file_name in enumerate(photos):
        variants.append((photo_index, file_name, "original", 0, dict(CLEAN_VALUES)))
        for kind, (field, values) in DISTORTIONS.items():
            variants += [(photo_index, file_name, kind, strength, {field: value})
                         for strength, value in enumerate(values, start=1)]
    # Imported in a shuffled (fixed) order: image ids follow the import, and raters see ids. In photo order,
    # an id would tell the distortion and its strength as plainly as the file name does.
    np.random.default_rng(DEMO_ORDER_SEED).shuffle(variants)
    clean_photos = {file_name: load_photo(file_name) for file_name in photos}
    with import_session(project) as report:
        for photo_index, file_name, kind, strength, values in variants:
            photo = file_name.rsplit(".", 1)[0]
            clean = clean_photos[file_name]
            image = clean if strength == 0 else distort(clean, kind, values[DISTORTIONS[kind][0]], photo_index * 100 + strength)
            name = f"{photo}/{photo}_{kind}{'' if strength == 0 else f'_{strength}'}.png"
            metadata = {"source": "scikit-image", "photo": photo, "distortion": kind, "distortion_strength": strength}
            metadata.update(values)
            import_one(report, project, name, png_bytes(image), tags=photos[file_name], metadata=metadata,
                       external_id=name[:-4])
    return project, report, credentials
