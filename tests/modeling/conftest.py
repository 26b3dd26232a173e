"""Fixtures of the model loop's tests."""
import pytest

from tests.modeling.model_loop_support import add_images


@pytest.fixture
def loop_images(project, image_bytes):
    """16 images in the project, distinct content."""
    return add_images(project, 16, image_bytes)
