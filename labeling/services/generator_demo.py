"""The second demo project: generated-looking images made in code, for a text-to-image evaluation.

Each prompt describes a small scene (shapes, their number and colour, a background). Three synthetic
"generators" of known strength render every prompt:

- ``crisp-xl`` (strength 3): the scene as asked, clean edges, a soft gradient sky;
- ``murky-v2`` (strength 2): the scene as asked, but blurred, noisy and with a colour cast;
- ``glitch-1b`` (strength 1): one shape too few, the wrong colour on the first shape, heavy noise and banding.

So a rater who reads the prompt should prefer crisp over murky over glitch, and the generator leaderboard
has a known answer. The project shows the prompt, pairs within prompts (``group_key = prompt_id``), allows
"both bad" and asks two questions per pair (prompt alignment, and overall). ``make demo`` seeds it after the photographs (``seed_demo``); running it again adds nothing.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from django.db import transaction
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFilter

from labeling.models import Project
from labeling.services.demo import ensure_demo_users
from labeling.services.imports import ImportReport, import_one
import worker.dispatch as dispatch

GENERATOR_DEMO_SLUG = "demo-generators"
SIZE = 192

# Two questions per pair; "overall" is the judgment's outcome (the human scores and the model use it).
CRITERIA = [
    {"key": "alignment", "question": "Which image shows the prompt better?"},
    {"key": "overall", "question": "Which image is better overall?"},
]

# generator -> its known strength (higher is better)
GENERATORS = {"crisp-xl": 3, "murky-v2": 2, "glitch-1b": 1}

COLOURS = {
    "red": (214, 48, 49), "blue": (41, 98, 196), "yellow": (246, 201, 14), "green": (46, 160, 67),
    "purple": (142, 68, 173), "orange": (240, 130, 30), "white": (245, 245, 245), "black": (25, 25, 25),
}
BACKGROUNDS = {"sky": ((135, 190, 235), (225, 240, 250)), "night": ((10, 14, 40), (40, 50, 90)),
               "sand": ((230, 205, 150), (250, 235, 200)), "grass": ((90, 160, 80), (160, 210, 130))}


@dataclass(frozen=True)
class Scene:
    prompt_id: str
    count: int
    colour: str
    shape: str  # circle, square, triangle, star
    background: str

    @property
    def prompt(self) -> str:
        number = {1: "one", 2: "two", 3: "three", 4: "four"}[self.count]
        plural = self.shape if self.count == 1 else self.shape + "s"
        return f"{number} {self.colour} {plural} on a {self.background} background"


SCENES = [
    Scene("p01", 1, "red", "circle", "sky"), Scene("p02", 3, "yellow", "star", "night"),
    Scene("p03", 2, "blue", "square", "sand"), Scene("p04", 4, "orange", "circle", "grass"),
    Scene("p05", 2, "purple", "triangle", "sky"), Scene("p06", 1, "white", "star", "night"),
    Scene("p07", 3, "green", "triangle", "sand"), Scene("p08", 2, "red", "square", "grass"),
    Scene("p09", 4, "yellow", "circle", "night"), Scene("p10", 3, "blue", "star", "sky"),
    Scene("p11", 1, "black", "square", "sand"), Scene("p12", 2, "orange", "triangle", "night"),
]


def _gradient(top, bottom) -> np.ndarray:
    t = np.linspace(0.0, 1.0, SIZE)[:, None, None]  # [H, 1, 1]
    column = (1 - t) * np.array(top, dtype=np.float32) + t * np.array(bottom, dtype=np.float32)  # [H, 1, 3]
    return np.repeat(column, SIZE, axis=1)  # [H, W, 3]


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, centre: tuple[float, float], radius: float, colour) -> None:
    x, y = centre
    if shape == "circle":
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
    elif shape == "square":
        draw.rectangle([x - radius, y - radius, x + radius, y + radius], fill=colour)
    elif shape == "triangle":
        draw.polygon([(x, y - radius), (x + radius, y + radius), (x - radius, y + radius)], fill=colour)
    else:  # a five-pointed star
        angles = np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, radius, radius * 0.45)
        draw.polygon([(x + r * np.cos(a), y - r * np.sin(a)) for r, a in zip(radii, angles)], fill=colour)


def render(scene: Scene, generator: str, seed: int) -> PILImage.Image:
    """The scene as ``generator`` draws it (see the module docstring for each generator's flaws)."""
    rng = np.random.default_rng(seed)
    pixels = _gradient(*BACKGROUNDS[scene.background])
    image = PILImage.fromarray(pixels.clip(0, 255).astype(np.uint8), mode="RGB")
    draw = ImageDraw.Draw(image)
    count = scene.count - 1 if generator == "glitch-1b" and scene.count > 1 else scene.count
    radius = SIZE / (3.4 + 2.0 * scene.count)
    for index in range(count):
        x = SIZE * (index + 1) / (count + 1) + rng.normal(0, 4)
        y = SIZE * 0.55 + rng.normal(0, 10)
        colour = COLOURS[scene.colour]
        if generator == "glitch-1b" and index == 0:
            colour = COLOURS["green" if scene.colour != "green" else "purple"]
        _draw_shape(draw, scene.shape, (x, y), radius, colour)
    if generator == "murky-v2":
        image = image.filter(ImageFilter.GaussianBlur(radius=2.2))
        pixels = np.asarray(image, dtype=np.float32) * np.array([1.08, 1.0, 0.86]) + rng.normal(0, 10, (SIZE, SIZE, 3))
        image = PILImage.fromarray(pixels.clip(0, 255).astype(np.uint8), mode="RGB")
    elif generator == "glitch-1b":
        pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, 28, (SIZE, SIZE, 3))
        pixels[::6] *= 0.7  # banding
        image = PILImage.fromarray(pixels.clip(0, 255).astype(np.uint8), mode="RGB")
    return image


def _png(image: PILImage.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class GeneratorDemoResult:
    project: Project
    report: ImportReport


def seed_generator_demo(scenes: list[Scene] | None = None) -> GeneratorDemoResult:
    """Create (or complete) the generated-images demo project. Running it again adds nothing new."""
    scenes = scenes or SCENES
    with transaction.atomic():
        project, _ = Project.objects.get_or_create(
            slug=GENERATOR_DEMO_SLUG,
            defaults={
                "name": "Demo: text-to-image generators",
                "question": "Which image shows the prompt better, and looks better?",
                "description": "Three synthetic generators of known strength render the same prompts: "
                               "crisp-xl > murky-v2 > glitch-1b.",
                "overlap": 1, "show_prompt": True, "group_key": "prompt_id", "allow_both_bad": True,
                "criteria": CRITERIA,
                "retrain_min_new_comparisons": 30, "retrain_max_age_hours": 1,
            },
        )
        ensure_demo_users(project)
    report = ImportReport()
    for scene_index, scene in enumerate(scenes):
        for generator_index, (generator, strength) in enumerate(GENERATORS.items()):
            image = render(scene, generator, seed=100 * scene_index + generator_index)
            name = f"{scene.prompt_id}/{generator}.png"
            metadata = {"prompt_id": scene.prompt_id, "generator": generator, "generator_strength": strength,
                        "shape": scene.shape}
            import_one(report, project, name, _png(image), caption=scene.prompt, metadata=metadata,
                       tags=[scene.shape, scene.colour, scene.background], external_id=f"{scene.prompt_id}-{generator}")
    dispatch.send_images_imported(project.pk, report.image_ids)
    return GeneratorDemoResult(project=project, report=report)
