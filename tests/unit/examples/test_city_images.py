"""The city example's Dockerfiles copy every module their service imports, from the packages the
examples share as from its own, and start that service: an image missing one would build and
then fail at its first start, which no unit test would otherwise see."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from tests.unit.examples.conftest import EXAMPLES

CITY = EXAMPLES / "city"
BUILD_IMAGES = EXAMPLES.parent / "hack" / "build-images.sh"
# ServiceStep → (its image in hack/build-images.sh, its module), its Dockerfile named after it.
SERVICES = {
    "traffic-flow": ("city-traffic-flow", "city.traffic_flow"),
    "air-quality": ("city-air-quality", "city.air_quality"),
    "service-complaints": ("city-service-complaints", "city.service_complaints"),
    "city-report": ("city-report", "city.city_report"),
}


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


@pytest.mark.parametrize(("step", "module"), [(s, m) for s, (_, m) in SERVICES.items()])
def test_the_image_copies_each_module_its_service_imports_and_runs_it(
    step: str, module: str
) -> None:
    dockerfile = CITY / f"{step}.Dockerfile"

    assert copied_files(dockerfile) == needed_files(module)
    assert f'ENTRYPOINT ["python", "-m", "{module}"]' in dockerfile.read_text()


@pytest.mark.parametrize(("step", "image"), [(s, i) for s, (i, _) in SERVICES.items()])
def test_hack_build_images_builds_by_default_the_image_each_servicestep_runs(
    step: str, image: str
) -> None:
    script = BUILD_IMAGES.read_text()
    (defaults,) = re.findall(r"images=\((operator [^)]*)\)", script)
    documents = yaml.safe_load_all((CITY / "servicesteps.yaml").read_text())
    (spec,) = (d["spec"] for d in documents if d["metadata"]["name"] == step)

    assert f'{image}) echo "examples/city/{step}.Dockerfile examples" ;;' in script
    assert image in defaults.split()
    assert spec["image"] == f"stepline/{image}:0.1.0"
