"""hack/ fails clearly and cleans up: no Go, no module proxy, a port in use; cluster-up is harmless
to run twice and brings a half-dead cluster back in one run."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.localcluster import HACK, TEST_CLUSTER_ENV, LocalCluster, wait_until

COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok-controller",
)


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


@pytest.fixture
def own_cluster_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a one-node cluster of the test's own: the shared one is left alone."""
    env = {
        **{k: v for k, v in os.environ.items() if k != "STEPLINE_APISERVER_PORT"},
        "STEPLINE_CLUSTER": "half-dead",
        "STEPLINE_STATE": str(tmp_path / "state"),
        "STEPLINE_NODES": "1",
    }
    try:
        out = run("cluster-up.sh", env)
        assert out.returncode == 0, out.stderr
        yield env
    finally:
        run("cluster-down.sh", env)


def component_pid(env: dict[str, str], component: str) -> int:
    pids = Path(env["STEPLINE_STATE"]) / "kwok" / "clusters" / env["STEPLINE_CLUSTER"] / "pids"
    return int((pids / f"{component}.pid").read_text())


def process_running(pid: int) -> bool:
    """Alive and not a zombie: an exited component lingers as one until it is reaped."""
    out = subprocess.run(
        ["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    return out.returncode == 0 and not out.stdout.strip().startswith("Z")


def test_cluster_up_brings_back_a_cluster_whose_api_server_and_controller_manager_died(
    own_cluster_env: dict[str, str],
) -> None:
    env = own_cluster_env
    cluster = LocalCluster.attach(str(Path(env["STEPLINE_STATE"]) / "kubeconfig"))
    lease = ("get", "lease", "-n", "kube-system", "kube-controller-manager")
    holder = ("-o", "jsonpath={.spec.holderIdentity}")
    wait_until(  # only the leader exits when it cannot renew its lease
        lambda: cluster.kubectl(*lease, *holder, check=False).stdout,
        what="kube-controller-manager to hold its leader lease",
    )
    controller_manager = component_pid(env, "kube-controller-manager")

    os.kill(component_pid(env, "kube-apiserver"), signal.SIGKILL)
    wait_until(
        lambda: not process_running(controller_manager),
        timeout=60,
        interval=0.1,
        what="kube-controller-manager to exit after losing its lease",
    )
    out = run("cluster-up.sh", env)

    assert out.returncode == 0, out.stderr
    dead = [c for c in COMPONENTS if not process_running(component_pid(env, c))]
    assert dead == [], out.stderr
    assert cluster.kubectl("get", "--raw", "/readyz").stdout == "ok"
