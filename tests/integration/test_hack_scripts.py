"""hack/ fails clearly and cleans up: no Go, no module proxy, a port in use; and cluster-up is
harmless to run twice."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.localcluster import HACK, TEST_CLUSTER_ENV, LocalCluster


def run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HACK / script)], env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture
def path_without_go(tmp_path: Path) -> str:
    """A PATH that has the usual tools but no `go`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in ("/usr/local/bin", "/usr/bin", "/bin"):
        for tool in Path(directory).iterdir():
            target = bin_dir / tool.name
            if tool.name != "go" and not target.exists():
                target.symlink_to(tool)
    return str(bin_dir)


def test_building_without_a_go_toolchain_says_to_install_go(path_without_go: str) -> None:
    out = run("build-binaries.sh", {**os.environ, "PATH": path_without_go})
    assert out.returncode != 0
    assert "Go toolchain not found" in out.stderr


def test_building_without_the_module_proxy_names_the_component_and_its_log(
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "STEPLINE_CACHE": str(tmp_path / "cache"),
        "GOMODCACHE": str(tmp_path / "mod"),
        "GOPROXY": "http://127.0.0.1:9",
        "GOFLAGS": "-mod=mod",
    }
    out = subprocess.run(
        [str(HACK / "build-binaries.sh"), "kwok"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode != 0
    assert "kwok: go could not reach the module proxy" in out.stderr
    assert str(tmp_path / "cache" / "logs" / "build-kwok.log") in out.stderr
    assert not list((tmp_path / "cache" / "bin").glob("kwok-*")), "a half-built component was left"
    shutil.rmtree(tmp_path / "mod", ignore_errors=True)  # read-only files from the module cache


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_cluster_up_on_a_port_in_use_fails_naming_the_port_and_leaves_nothing(
    busy_port: int, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "STEPLINE_CLUSTER": "busy",
        "STEPLINE_STATE": str(tmp_path / "state"),
        "STEPLINE_APISERVER_PORT": str(busy_port),
    }
    out = run("cluster-up.sh", env)
    assert out.returncode != 0
    assert f"kube-apiserver: port {busy_port} on 127.0.0.1 is in use" in out.stderr
    assert not (tmp_path / "state" / "kwok" / "clusters" / "busy").exists()


def test_cluster_up_twice_is_harmless(cluster: LocalCluster) -> None:
    if not cluster.owned:
        pytest.fail(
            "this test needs the cluster the test session started; unset STEPLINE_TEST_KUBECONFIG"
        )
    pids = Path(TEST_CLUSTER_ENV["STEPLINE_STATE"]) / "kwok" / "clusters" / "stepline-test" / "pids"
    before = {p.name: p.read_text() for p in pids.iterdir()}
    out = run("cluster-up.sh", {**os.environ, **TEST_CLUSTER_ENV})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == f"export KUBECONFIG={cluster.kubeconfig}"
    assert {p.name: p.read_text() for p in pids.iterdir()} == before
