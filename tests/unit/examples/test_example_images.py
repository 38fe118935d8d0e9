"""Every example's Dockerfiles copy each module their service imports, from the packages the
examples share as from its own, and start that service; and hack/build-images.sh builds by
default the image each ServiceStep runs. An image missing a module would build and then fail at
its first start, and a ServiceStep naming an image nobody builds would never become Ready: no
other unit test would see either."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from tests.unit.examples.conftest import EXAMPLES

BUILD_IMAGES = EXAMPLES.parent / "hack" / "build-images.sh"
IMAGE = re.compile(r"^stepline/(?P<name>[a-z0-9-]+):0\.1\.0$")


def service_steps() -> list[tuple[str, str, str]]:
    """(example, ServiceStep, image) of every example's servicesteps.yaml."""
    found = []
    for path in sorted(EXAMPLES.glob("*/servicesteps.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                found.append(
                    (path.parent.name, document["metadata"]["name"], document["spec"]["image"])
                )
    return found


SERVICE_STEPS = service_steps()


def module_of(example: str, step: str) -> str:
    """The module a step's image runs: `<example>.<step with underscores>`."""
    return f"{example}.{step.replace('-', '_')}"


def module_path(module: str) -> Path:
    return EXAMPLES.joinpath(*module.split(".")).with_suffix(".py")


def needed_files(module: str) -> set[str]:
    """The files under examples/ that importing `module` reads, packages' __init__ included."""
    needed: set[str] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        path = module_path(name)
        package = f"{name.split('.')[0]}/__init__.py"
        if path.relative_to(EXAMPLES).as_posix() in needed:
            continue
        needed |= {path.relative_to(EXAMPLES).as_posix(), package}
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported = node.module
                if module_path(imported).exists():
                    pending.append(imported)
    return needed


def copied_files(dockerfile: Path) -> set[str]:
    copies = re.findall(r"^COPY (.+) /app/\S*$", dockerfile.read_text(), flags=re.MULTILINE)
    return {source for line in copies for source in line.split() if source.endswith(".py")}


def test_every_example_has_its_service_steps() -> None:
    assert {example for example, _, _ in SERVICE_STEPS} == {"city", "finance", "manufacturing"}


@pytest.mark.parametrize(("example", "step"), [(e, s) for e, s, _ in SERVICE_STEPS])
def test_the_image_copies_each_module_its_service_imports_and_runs_it(
    example: str, step: str
) -> None:
    dockerfile = EXAMPLES / example / f"{step}.Dockerfile"
    module = module_of(example, step)

    assert copied_files(dockerfile) == needed_files(module)
    assert f'ENTRYPOINT ["python", "-m", "{module}"]' in dockerfile.read_text()


@pytest.mark.parametrize(("example", "step", "image"), SERVICE_STEPS)
def test_hack_build_images_builds_by_default_the_image_each_servicestep_runs(
    example: str, step: str, image: str
) -> None:
    script = BUILD_IMAGES.read_text()
    (defaults,) = re.findall(r"images=\((operator [^)]*)\)", script)
    named = IMAGE.match(image)

    assert named is not None, image
    name = named["name"]
    assert f'{name}) echo "examples/{example}/{step}.Dockerfile examples" ;;' in script
    assert name in defaults.split()
