"""Cluster files (cluster/), their offline checks (raygan.cluster_check), .rayignore, the docs,
and a `ray start --head` + `ray job submit` of a tiny config on this machine.

Every rule of `raygan.cluster_check` is shown to pass on the shipped files and to fail on a
copy broken on purpose; Ray's own launcher validation runs with network connections refused.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from raygan.cluster_check import (
    KUBERAY_CHECKS,
    LAUNCHER_CHECKS,
    Problem,
    check_file,
    check_kuberay,
    check_launcher,
    default_files,
    load_documents,
    main,
    pinned_ray_version,
    placeholders,
    ray_validate,
)

REPO = Path(__file__).resolve().parent.parent
CLUSTER = REPO / "cluster"
AWS = CLUSTER / "aws-gpu.yaml"
GCP = CLUSTER / "gcp-gpu.yaml"
RAYCLUSTER = CLUSTER / "kuberay" / "raycluster.yaml"
RAYJOB = CLUSTER / "kuberay" / "rayjob.yaml"
LAUNCHERS = [AWS, GCP]
KUBERAY = [RAYCLUSTER, RAYJOB]
PIN = pinned_ray_version()

Doc = dict[str, Any]


def _load(path: Path) -> Doc:
    (doc,) = load_documents(path)
    return doc


def _checks(problems: list[Problem]) -> set[str]:
    return {p.check for p in problems}


# -- the pinned Ray version -----------------------------------------------------------------
def test_pin_comes_from_pyproject_and_matches_installed_ray_and_extras(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    assert PIN == ray.__version__  # Ray's validation below is that of the pinned version
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for extra in ("dev", "cluster"):
        pins = [r for r in project["optional-dependencies"][extra] if r.startswith("ray[")]
        assert pins and all(r.endswith(f"=={PIN}") for r in pins), (extra, pins)
    # read from the file, not hard-coded
    other = tmp_path / "pyproject.toml"
    other.write_text('[project]\ndependencies = ["torch", "ray[tune] == 9.8.7"]\n')
    assert pinned_ray_version(other) == "9.8.7"
    other.write_text('[project]\ndependencies = ["ray[tune]>=2"]\n')
    with pytest.raises(LookupError):
        pinned_ray_version(other)


def test_default_files_are_the_shipped_cluster_files() -> None:
    assert default_files() == [AWS, GCP, RAYCLUSTER, RAYJOB]  # runtime_env.yaml is not one


# -- the shipped files pass -----------------------------------------------------------------
@pytest.mark.parametrize("path", LAUNCHERS, ids=lambda p: p.name)
def test_launcher_file_passes_ray_validation_offline(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the offline validation opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    config = _load(path)
    prepared = ray_validate(config)  # Ray's prepare_config + validate_config
    head = prepared["head_node_type"]
    assert prepared["available_node_types"][head]["max_workers"] == 0
    assert prepared["available_node_types"][head]["resources"] == {"CPU": 0}
    workers = {k: v for k, v in prepared["available_node_types"].items() if k != head}
    assert workers and all(v["resources"]["GPU"] >= 1 for v in workers.values())
    assert all(v["min_workers"] == 0 < v["max_workers"] for v in workers.values())
    assert check_launcher(config, PIN) == []
    assert _load(path) == config  # neither Ray nor the checks changed the caller's dict


@pytest.mark.parametrize("path", KUBERAY, ids=lambda p: p.name)
def test_kuberay_file_parses_and_passes(path: Path) -> None:
    doc = _load(path)
    assert doc["apiVersion"] == "ray.io/v1"
    assert check_kuberay(doc, PIN) == []
    assert check_file(path) == []


def test_rayjob_entrypoint_runs_a_shipped_config_into_a_bucket() -> None:
    entry = _load(RAYJOB)["spec"]["entrypoint"]
    assert re.match(r"python -m raygan train tune_configs/\w+\.yaml\b", entry)
    assert re.search(r"--storage (s3|gs)://", entry)


# -- each rule fails on a broken copy -------------------------------------------------------
def _aws_worker(doc: Doc, name: str = "gpu_1x_a10g") -> Doc:
    return doc["available_node_types"][name]


def _gcp_worker(doc: Doc, name: str = "gpu_1x_t4") -> Doc:
    return doc["available_node_types"][name]


def _head_start(doc: Doc, old: str, new: str) -> None:
    commands = doc["head_start_ray_commands"]
    assert any(old in c for c in commands)
    doc["head_start_ray_commands"] = [c.replace(old, new) for c in commands]


def _aws_no_spot(doc: Doc) -> None:
    del _aws_worker(doc)["node_config"]["InstanceMarketOptions"]


def _gcp_on_demand(doc: Doc) -> None:
    _gcp_worker(doc, "gpu_4x_t4")["node_config"]["scheduling"]["provisioningModel"] = "STANDARD"


def _no_gpus(doc: Doc) -> None:
    for name, node_type in doc["available_node_types"].items():
        if name != doc["head_node_type"]:
            del node_type["resources"]["GPU"]


def _docker_to_setup(version: str) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        del doc["docker"]
        doc["setup_commands"] = [f'pip install "ray[default]=={version}"'] + doc["setup_commands"]

    return mutate


def _no_ray_source(doc: Doc) -> None:
    del doc["docker"]  # setup commands install raygan only: nothing fixes the Ray version


LAUNCHER_BREAKS: list[tuple[Path, str, Callable[[Doc], None], str]] = [
    (AWS, "unknown-top-level-key", lambda d: d.update(workers=3), "ray-schema"),
    (GCP, "negative-resource", lambda d: _gcp_worker(d)["resources"].update(GPU=-1),
     "ray-schema"),
    (AWS, "head-not-a-node-type", lambda d: d.update(head_node_type="nope"), "ray-schema"),
    (AWS, "min-above-max", lambda d: _aws_worker(d, "gpu_4x_a10g").update(min_workers=3),
     "workers-min-max"),
    (GCP, "negative-max", lambda d: _gcp_worker(d).update(max_workers=-1),
     "workers-min-max"),  # Ray's schema lets a node type's max_workers be negative
    (GCP, "min-above-max", lambda d: _gcp_worker(d, "gpu_4x_t4").update(min_workers=5),
     "workers-min-max"),
    (AWS, "no-gpu-type", _no_gpus, "gpu-workers"),
    (GCP, "gpu-type-not-from-zero", lambda d: _gcp_worker(d).update(min_workers=1),
     "gpu-workers"),
    (AWS, "on-demand", _aws_no_spot, "spot"),
    (GCP, "on-demand", _gcp_on_demand, "spot"),
    (AWS, "old-image", lambda d: d["docker"].update(image="rayproject/ray:2.59.0-py311-gpu"),
     "ray-version"),
    (GCP, "latest-head-image", lambda d: d["docker"].update(head_image="rayproject/ray:latest"),
     "ray-version"),
    (AWS, "unpinned-pip", lambda d: d["setup_commands"].append('pip install -U "ray[default]"'),
     "ray-version"),
    (GCP, "wheel-url", lambda d: d["setup_commands"].append(
        'which ray || pip install -U "ray[default] @ https://example.com/ray-3.0.0.dev0.whl"'),
     "ray-version"),
    (AWS, "other-pip-pin", _docker_to_setup("2.59.0"), "ray-version"),
    (GCP, "nothing-fixes-ray", _no_ray_source, "ray-version"),
    (AWS, "head-offers-cpus", lambda d: d["available_node_types"]["head"].update(
        resources={"CPU": 8}), "head-resources"),
    (GCP, "head-cpus-autodetected", lambda d: d["available_node_types"]["head"].update(
        resources={}), "head-resources"),
    (AWS, "head-offers-gpu", lambda d: d["available_node_types"]["head"].update(
        resources={"CPU": 0, "GPU": 1}), "head-resources"),
    (GCP, "head-start-num-cpus", lambda d: _head_start(d, "--head", "--head --num-cpus=4"),
     "head-resources"),
    (AWS, "dashboard-public", lambda d: _head_start(
        d, "--dashboard-host=127.0.0.1", "--dashboard-host=0.0.0.0"), "dashboard-localhost"),
    (GCP, "dashboard-public-space-form", lambda d: _head_start(
        d, "--dashboard-host=127.0.0.1", "--dashboard-host 0.0.0.0"), "dashboard-localhost"),
    (AWS, "no-head-start", lambda d: d.update(head_start_ray_commands=["ray stop"]),
     "dashboard-localhost"),
    (AWS, "gcs-uri-on-aws", lambda d: d["metadata"]["raygan"].update(
        storage_path="gs://b/raygan"), "storage"),
    (GCP, "local-storage", lambda d: d["metadata"]["raygan"].update(storage_path="./results"),
     "storage"),
    (GCP, "no-storage", lambda d: d.pop("metadata"), "storage"),
    (AWS, "worker-without-role", lambda d: _aws_worker(d, "gpu_4x_a10g")["node_config"].pop(
        "IamInstanceProfile"), "bucket-access"),
    (GCP, "worker-without-storage-scope", lambda d: _gcp_worker(d)["node_config"][
        "serviceAccounts"][0].update(scopes=["https://www.googleapis.com/auth/compute"]),
     "bucket-access"),
]


def test_launcher_accepts_a_setup_command_pin_instead_of_an_image() -> None:
    doc = _load(AWS)
    _docker_to_setup(PIN)(doc)
    doc["setup_commands"].append("pip install raygan ray-lightning 'rayon>=1' && ray --version")
    assert check_launcher(doc, PIN) == []  # only `ray` itself is held to the pin
    doc["setup_commands"].append("pip3 install --upgrade ray[tune]>=2.0")
    assert _checks(check_launcher(doc, PIN)) == {"ray-version"}


def _group(doc: Doc) -> Doc:
    spec = doc["spec"].get("rayClusterSpec", doc["spec"])
    return spec["workerGroupSpecs"][0]


def _cluster(doc: Doc) -> Doc:
    return doc["spec"].get("rayClusterSpec", doc["spec"])


def _worker_container(doc: Doc) -> Doc:
    return _group(doc)["template"]["spec"]["containers"][0]


def _entry(old: str, new: str) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        assert old in doc["spec"]["entrypoint"]
        doc["spec"]["entrypoint"] = doc["spec"]["entrypoint"].replace(old, new)

    return mutate


def _drop_gpu_limits(doc: Doc) -> None:
    resources = _worker_container(doc)["resources"]
    for part in ("requests", "limits"):
        del resources[part]["nvidia.com/gpu"]


KUBERAY_BREAKS: list[tuple[Path, str, Callable[[Doc], None], str]] = [
    (RAYCLUSTER, "alpha-api", lambda d: d.update(apiVersion="ray.io/v1alpha1"), "kuberay-api"),
    (RAYJOB, "no-cluster-spec", lambda d: d["spec"].pop("rayClusterSpec"), "kuberay-api"),
    (RAYCLUSTER, "old-ray-version", lambda d: _cluster(d).update(rayVersion="2.59.0"),
     "ray-version"),
    (RAYJOB, "old-worker-image", lambda d: _worker_container(d).update(
        image="rayproject/ray:2.59.0-py311-gpu"), "ray-version"),
    (RAYCLUSTER, "not-a-ray-image", lambda d: _worker_container(d).update(image="python:3.11"),
     "ray-version"),
    (RAYCLUSTER, "no-autoscaling", lambda d: _cluster(d).update(enableInTreeAutoscaling=False),
     "autoscaling"),
    (RAYJOB, "autoscaling-unset", lambda d: _cluster(d).pop("enableInTreeAutoscaling"),
     "autoscaling"),
    (RAYCLUSTER, "min-above-max", lambda d: _group(d).update(minReplicas=9, replicas=9),
     "workers-min-max"),
    (RAYJOB, "replicas-outside", lambda d: _group(d).update(replicas=7), "workers-min-max"),
    (RAYCLUSTER, "no-gpu", _drop_gpu_limits, "gpu-workers"),
    (RAYJOB, "gpu-not-from-zero", lambda d: _group(d).update(minReplicas=1, replicas=1),
     "gpu-workers"),
    (RAYCLUSTER, "head-offers-cpus", lambda d: _cluster(d)["headGroupSpec"].update(
        rayStartParams={}), "head-resources"),
    (RAYJOB, "head-offers-gpus", lambda d: _cluster(d)["headGroupSpec"]["rayStartParams"].update(
        {"num-gpus": "1"}), "head-resources"),
    (RAYCLUSTER, "no-shm-mount", lambda d: _worker_container(d).pop("volumeMounts"), "dev-shm"),
    (RAYJOB, "shm-on-disk", lambda d: _group(d)["template"]["spec"]["volumes"][0].update(
        emptyDir={}), "dev-shm"),
    (RAYCLUSTER, "no-auth", lambda d: _cluster(d).pop("authOptions"), "auth-token"),
    (RAYJOB, "auth-disabled", lambda d: _cluster(d)["authOptions"].update(mode="disabled"),
     "auth-token"),
    (RAYJOB, "bare-raygan", _entry("python -m raygan train", "raygan train"), "entrypoint"),
    (RAYJOB, "missing-config", _entry("tune_configs/toy_ring8_mustangs.yaml",
                                      "tune_configs/nope.yaml"), "entrypoint"),
    (RAYJOB, "bad-override", _entry("resources.gpus_per_cell=0.25",
                                    "resources.gpus_per_cell=1.5"), "entrypoint"),
    (RAYJOB, "local-storage", _entry("--storage gs://", "--storage ./results/gs/"),
     "entrypoint"),
    (RAYJOB, "no-working-dir", lambda d: d["spec"].update(runtimeEnvYAML="pip: [torch]\n"),
     "entrypoint"),
]


# each rule set with its broken copies: every rule must have one, and each copy must fail
# exactly its rule while the shipped file passes them all
RULE_SETS = [
    ("launcher", check_launcher, LAUNCHER_BREAKS, LAUNCHER_CHECKS),
    ("kuberay", check_kuberay, KUBERAY_BREAKS, KUBERAY_CHECKS),
]


@pytest.mark.parametrize(
    ("breaks", "checks"), [pytest.param(b, c, id=kind) for kind, _, b, c in RULE_SETS]
)
def test_every_rule_has_a_broken_copy(breaks: list[Any], checks: Any) -> None:
    assert {check for *_, check in breaks} == set(checks)


@pytest.mark.parametrize(
    ("checker", "path", "mutate", "check"),
    [
        pytest.param(checker, p, m, c, id=f"{p.stem}-{name}")
        for _, checker, breaks, _ in RULE_SETS
        for p, name, m, c in breaks
    ],
)
def test_broken_copy_fails_that_rule(
    checker: Callable[[Doc, str], list[Any]], path: Path, mutate: Callable[[Doc], None], check: str
) -> None:
    doc = _load(path)
    assert checker(doc, PIN) == []
    mutate(doc)
    problems = checker(doc, PIN)
    assert _checks(problems) == {check}, problems


# -- the command ----------------------------------------------------------------------------
def test_command_passes_shipped_files_and_fails_a_broken_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.count(": ok") == 4 and "YOUR-BUCKET" in out
    broken = copy.deepcopy(_load(AWS))
    _head_start(broken, "--dashboard-host=127.0.0.1", "--dashboard-host=0.0.0.0")
    path = tmp_path / "aws.yaml"
    path.write_text(yaml.safe_dump(broken))
    assert main([str(path)]) == 1
    assert "[dashboard-localhost]" in capsys.readouterr().out
    assert main(["--strict", str(AWS)]) == 1  # the bucket is still a placeholder
    assert "error: edit the placeholders YOUR-BUCKET" in capsys.readouterr().out
    edited = tmp_path / "edited.yaml"
    edited.write_text(AWS.read_text().replace("YOUR-BUCKET", "my-bucket"))
    assert placeholders(_load(edited)) == []
    assert main(["--strict", str(edited)]) == 0
    (tmp_path / "bad.yaml").write_text("- a\n- b\n")
    assert check_file(tmp_path / "bad.yaml")[0].check == "yaml"


def test_python_m_raygan_and_python_m_raygan_cluster_check_run() -> None:
    for module, word in (("raygan", "train"), ("raygan.cluster_check", "--strict")):
        done = subprocess.run(
            [sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=REPO
        )
        assert done.returncode == 0 and word in done.stdout, done.stderr


# -- .rayignore -----------------------------------------------------------------------------
KEPT = [
    "pyproject.toml",
    "README.md",
    "raygan/cli.py",
    "raygan/data/toy.py",
    "tune_configs/toy_ring8_single.yaml",
    "cluster/aws-gpu.yaml",
]
LEFT_OUT = [
    "results/toy/trial_1/result.json",
    "runs/my_run/cells.jsonl",
    "data/MNIST/raw/train-images-idx3-ubyte.gz",
    "checkpoints/cell_0.bin",
    "exp/trial_1/checkpoint_000003/state.bin",
    "weights.pt",
    "raygan/model.pth",
    ".git/HEAD",
    "raygan/__pycache__/cli.cpython-311.pyc",
    ".venv/bin/python",
    ".pytest_cache/v/cache/nodeids",
    "raygan.egg-info/PKG-INFO",
    "exp/events.out.tfevents.1.host",
]


def test_rayignore_keeps_results_data_and_checkpoints_out_of_the_upload(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    from ray._private.runtime_env.packaging import _zip_files  # what --working-dir uses

    tree = tmp_path / "repo"
    for name in KEPT + LEFT_OUT:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text("x")
    shutil.copy(REPO / ".rayignore", tree / ".rayignore")
    package = tmp_path / "pkg.zip"
    # .gitignore is not consulted, so .rayignore alone must do it
    _zip_files(str(tree), [], str(package), include_gitignore=False)
    names = set(zipfile.ZipFile(package).namelist())
    assert {n for n in KEPT if n not in names} == set()
    assert {n for n in LEFT_OUT if n in names} == set()
    (tree / ".rayignore").unlink()
    _zip_files(str(tree), [], str(package), include_gitignore=False)
    assert set(LEFT_OUT) <= set(zipfile.ZipFile(package).namelist())  # the check can fail


# -- the docs -------------------------------------------------------------------------------
def _doc_texts() -> dict[str, str]:
    files = [REPO / "README.md", CLUSTER / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    files += default_files()
    return {str(p.relative_to(REPO)): p.read_text() for p in files}


def test_docs_give_the_commands() -> None:
    cluster_readme = (CLUSTER / "README.md").read_text()
    main_readme = (REPO / "docs" / "clusters.md").read_text()  # README.md links to it
    for text in (cluster_readme, main_readme):
        for needed in (
            "ray up -y cluster/aws-gpu.yaml",
            "ray dashboard cluster/",
            "--working-dir . -- \\\n    python -m raygan train tune_configs/",
            "ray job logs",
            "ray job stop",
            "ray down -y cluster/",
            "kubectl apply -f cluster/kuberay/",
            "tensorboard --logdir",
            "s3://",
            "gs://",
            "cluster/README.md" if text is main_readme else "python -m raygan.cluster_check",
        ):
            assert needed in text, needed


def test_doc_commands_use_python_m_raygan_and_existing_configs() -> None:
    submits = 0
    for name, text in _doc_texts().items():
        joined = re.sub(r"\\\n\s*(#\s*)?", " ", text)  # shell and commented continuations
        for line in joined.splitlines():
            if re.match(r"\s*(#\s*)?ray job submit\s", line):  # a command, not prose
                submits += 1
                entry = line.split(" -- ", 1)[1].strip()
                assert entry.startswith("python -m raygan "), (name, line)
        for config in re.findall(r"tune_configs/[\w./-]+\.yaml", text):
            assert (REPO / config).is_file(), (name, config)
    assert submits >= 6


# -- a real job on a local cluster ----------------------------------------------------------
JOB_CONFIG = """\
name: cluster_job_tiny
seed: 3
data: {name: ring8, samples: 400}
networks: {latent_dim: 8, g_hidden: 16, d_hidden: 16, hidden_layers: 1}
grid: {rows: 1, cols: 1}
evolution: {fitness_sample_size: 100}
mixture: {samples: 100}
training: {generations: 2, batch_size: 50, device: cpu}
metrics: {every: 1, samples: 100}
output: {figures: false}
"""
_PORT_FLAGS = (
    "port",
    "dashboard-port",
    "ray-client-server-port",
    "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port",
    "metrics-export-port",
    "runtime-env-agent-port",
    "node-manager-port",
    "object-manager-port",
)


def _free_ports(n: int) -> list[int]:
    """`n` distinct free ports: every socket stays bound until all are chosen, so the OS
    cannot hand the same port out twice (Ray refuses to start when two components share one)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _ray_cli(*args: str) -> list[str]:
    # this interpreter's Ray, not whatever `ray` is first on PATH
    return [sys.executable, "-m", "ray.scripts.scripts", *args]


def _stop_head(head: subprocess.Popen[bytes], temp_dir: Path) -> None:
    """Stop the cluster this test started: its `ray start --block` process, then stragglers."""
    if head.poll() is None:
        head.send_signal(signal.SIGTERM)  # --block: shuts down the processes it started
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)  # its own session, see start_new_session
            head.wait()
    for proc in Path("/proc").glob("[0-9]*"):  # anything still running from our temp dir
        try:
            if str(temp_dir) in (proc / "cmdline").read_bytes().decode(errors="replace"):
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue


def _one_machine_commands() -> list[list[str]]:
    """The commands of cluster/README.md's "To try this on one machine first" block."""
    text = (CLUSTER / "README.md").read_text()
    block = text.split("To try this on one machine first:", 1)[1]
    block = block.split("```bash\n", 1)[1].split("```", 1)[0]
    lines = re.sub(r"\\\n\s*", " ", block).splitlines()  # shell continuations
    words = [shlex.split(line, comments=True) for line in lines]
    return [[w for w in line if not w.startswith(">")] for line in words if line]


def test_one_machine_block_sets_token_auth_before_ray_start() -> None:
    commands = _one_machine_commands()
    heads = [" ".join(c[:2]) for c in commands]
    assert heads[0] == "export RAY_AUTH_MODE=token", heads
    assert heads.index("ray get-auth-token") < heads.index("ray start") < heads.index("ray job")


@pytest.mark.slow
def test_ray_job_submit_to_a_local_cluster_writes_the_experiment_to_storage() -> None:
    """cluster/README.md's one-machine block, command by command, in a shell without
    RAY_AUTH_MODE on a machine that already holds ~/.ray/auth_token (as any local `raygan
    train` leaves): `ray start --head` then turns token authentication on, so `ray job submit`
    works only if the block makes it send the token. The experiment lands in the storage."""
    if importlib.util.find_spec("aiohttp") is None:
        pytest.fail("`ray job submit` needs ray[default]: pip install -e '.[dev]'")
    temp_dir = Path(tempfile.mkdtemp(prefix="rgjob"))  # short: Ray's socket paths
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    env.update(RAY_USAGE_STATS_ENABLED="0", HOME=str(temp_dir / "home"))
    # the job's `python` is this interpreter (Ray runs the entrypoint through the shell, and a
    # CI machine may have no `python`, or another one, on PATH)
    bin_dir = temp_dir / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "python").chmod(0o755)
    env["PATH"] = str(bin_dir) + os.pathsep + env.get("PATH", "")
    token = subprocess.run(_ray_cli("get-auth-token", "--generate"), env=env,
                           capture_output=True, text=True, timeout=120)
    assert token.returncode == 0 and (temp_dir / "home" / ".ray" / "auth_token").is_file()
    ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS))))
    address = f"http://127.0.0.1:{ports['dashboard-port']}"
    config = temp_dir / "tiny.yaml"
    config.write_text(JOB_CONFIG)
    storage = temp_dir / "results"
    head: subprocess.Popen[bytes] | None = None
    try:
        for command in _one_machine_commands():
            if command[0] == "export":
                key, value = command[1].split("=", 1)
                env[key] = value
            elif command[:2] == ["ray", "get-auth-token"]:
                done = subprocess.run(_ray_cli(*command[1:]), env=env, capture_output=True,
                                      text=True, timeout=120)
                assert done.returncode == 0, done.stderr
            elif command[:3] == ["ray", "start", "--head"]:
                head = _start_head(command[1:], ports, temp_dir, env)
                _wait_for_job_api(address, head, temp_dir)
            elif command[:3] == ["ray", "job", "submit"]:
                done = _submit(command[1:], address, config, storage, env)
                assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-4000:])
                assert "succeeded" in done.stdout + done.stderr
            else:  # `ray stop` would stop every Ray on this machine; stop just this one
                assert command == ["ray", "stop"], command
                assert head is not None
                _stop_head(head, temp_dir)
        experiment = storage / "cluster_job_tiny"
        assert experiment.is_dir(), sorted(p.name for p in storage.iterdir())
        assert list(experiment.glob("experiment_state-*.json"))
        trials = [d for d in experiment.iterdir() if (d / "result.json").is_file()]
        assert len(trials) == 1, sorted(p.name for p in experiment.iterdir())
        rows = [json.loads(line) for line in (trials[0] / "result.json").read_text().splitlines()]
        assert len(rows) == 2 and rows[-1]["generation"] == 2
        assert list(experiment.rglob("events.out.tfevents.*")), "no TensorBoard files"
    finally:
        if head is not None:
            _stop_head(head, temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _start_head(args: list[str], ports: dict[str, int], temp_dir: Path,
                env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The block's `ray start --head ...`, held in the foreground (--block) on free ports and
    its own temp dir, so that it can be stopped alone."""
    start = _ray_cli(*args, "--block", "--num-gpus", "0", "--include-dashboard=true",
                     "--dashboard-host", "127.0.0.1", "--temp-dir", str(temp_dir / "ray"),
                     "--disable-usage-stats")
    for flag, port in ports.items():
        start += [f"--{flag}", str(port)]
    with (temp_dir / "ray_start.log").open("wb") as out:
        return subprocess.Popen(start, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _wait_for_job_api(address: str, head: subprocess.Popen[bytes], temp_dir: Path) -> None:
    began = time.monotonic()
    while True:
        try:
            urllib.request.urlopen(f"{address}/api/version", timeout=2)
            return
        except urllib.error.HTTPError:  # it answers (401 without the token): it is up
            return
        except OSError:
            assert head.poll() is None, (temp_dir / "ray_start.log").read_text()[-3000:]
            assert time.monotonic() - began < 120, "the job API did not come up"
            time.sleep(0.5)


def _submit(args: list[str], address: str, config: Path, storage: Path,
            env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The block's `ray job submit ...` from the repository root, to this cluster, with the
    tiny config and `storage`."""
    submit = list(args)
    submit[submit.index("--address") + 1] = address
    submit = [str(config) if w.endswith(".yaml") else w for w in submit]
    submit[submit.index("--storage") + 1] = str(storage)
    for _ in range(2):
        # the dashboard answers before its job agent does: a submission in that window is
        # dropped ("Connection aborted"); that is Ray starting up, so it is tried once more
        done = subprocess.run(_ray_cli(*submit), env=env, cwd=REPO, capture_output=True,
                              text=True, timeout=400)
        if done.returncode == 0 or "Connection aborted" not in done.stderr + done.stdout:
            break
        shutil.rmtree(storage, ignore_errors=True)
        time.sleep(5)
    return done
