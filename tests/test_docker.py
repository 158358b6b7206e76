"""docker/: hadolint, pins equal to the project's, entry points of docker/README exist.
(No Docker engine here: the image itself is not built in CI, as docker/README says.)"""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / 'docker' / 'Dockerfile'


def _project_pins() -> dict:
    deps = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['dependencies']
    return dict(d.split('==') for d in deps if '==' in d)


def test_hadolint_passes():
    exe = shutil.which('hadolint') or str(Path(sys.executable).with_name('hadolint'))
    res = subprocess.run([exe, '--config', str(ROOT / '.hadolint.yaml'), str(DOCKERFILE)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_dockerfile_pins_match_project():
    text = DOCKERFILE.read_text()
    pins = _project_pins()
    pinned = dict(re.findall(r'"([A-Za-z0-9_.-]+)==([0-9][^"]*)"', text))
    pinned.pop('torch', None)  # given through ARG TORCH_VERSION, checked below
    pinned.pop('mmcv', None)
    assert pinned, 'no pins found in the Dockerfile'
    for name, version in pinned.items():
        if name in pins:
            assert pins[name] == version, (name, version, pins[name])
    for name in pins.keys() - {'torch', 'mmcv'}:  # every runtime pin reaches the image
        assert pinned.get(name) == pins[name], name
    args = dict(re.findall(r'^ARG (\w+)=(\S+)$', text, flags=re.M))
    assert args['TORCH_VERSION'] == pins['torch']
    assert args['MMCV_VERSION'] == pins['mmcv']
    assert not re.search(r'pip[^#\n]*mmcv-lite', text) and 'MMCV_WITH_OPS=1' in text


def test_entry_points_named_in_docker_readme_exist():
    readme = (ROOT / 'docker' / 'README.md').read_text()
    paths = set(re.findall(r'\b((?:tools|analysis|toy_mnist|configs|docker)/[\w./-]+\.(?:py|sh))',
                           readme))
    assert len(paths) >= 6
    missing = [p for p in paths if not (ROOT / p).is_file()]
    assert not missing, missing
    assert 'not been built' in readme  # says plainly that CI did not build the image
