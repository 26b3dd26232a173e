"""The second demo project: three synthetic generators of known strength render the same prompts."""
import numpy as np
import pytest

from labeling.models import Image, Project
from labeling.services import generator_demo


@pytest.mark.django_db
def test_seeding_is_idempotent_and_sets_up_a_text_to_image_campaign(monkeypatch):
    monkeypatch.setattr(generator_demo, "SCENES", generator_demo.SCENES[:2])
    first = generator_demo.seed_generator_demo()
    assert len(first.report.image_ids) == 2 * len(generator_demo.GENERATORS)
    again = generator_demo.seed_generator_demo()
    assert again.report.image_ids == [] and again.report.duplicates == 2 * len(generator_demo.GENERATORS)
    project = Project.objects.get(slug=generator_demo.GENERATOR_DEMO_SLUG)
    assert (project.show_prompt, project.group_key, project.allow_both_bad) == (True, "prompt_id", True)
    assert [criterion["key"] for criterion in project.criteria] == ["alignment", "overall"]
    image = Image.objects.get(project=project, original_name="p02/crisp-xl.png")
    assert image.caption == "three yellow stars on a night background"
    assert image.metadata == {"prompt_id": "p02", "generator": "crisp-xl", "generator_strength": 3, "shape": "star"}
    roles = dict(project.memberships.values_list("user__username", "role"))
    assert roles == {"manager": "manager", "rater": "rater", "rater2": "rater"}


def test_weaker_generators_draw_further_from_the_prompt():
    scene = generator_demo.SCENES[1]
    reference = np.asarray(generator_demo.render(scene, "crisp-xl", seed=0), dtype=np.float32)
    errors = [np.abs(np.asarray(generator_demo.render(scene, name, seed=0), dtype=np.float32) - reference).mean()
              for name in ("murky-v2", "glitch-1b")]
    assert 0 < errors[0] < errors[1]
