"""Shared pytest fixtures: the real models in ../shared (skipped with a reason where absent)."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
MODELS = SHARED / "models"
IMAGES = SHARED / "images"


def _shared_file(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: the real SqueezeNet models and images live in ../shared "
                    f"beside the checkout")
    return path


@pytest.fixture
def squeezenet11_path() -> Path:
    return _shared_file(MODELS / "squeezenet1.1.onnx")


@pytest.fixture
def squeezenet10_path() -> Path:
    return _shared_file(MODELS / "squeezenet1.0.onnx")


@pytest.fixture
def shared_images() -> Path:
    return _shared_file(IMAGES)
