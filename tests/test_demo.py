"""The demo's code path, reduced to CI size: data, CE + C2AM training side by side, LVISMetric,
per-class AP, Figure 1, the toy's Figure 3 and the index."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_demo_reduced_end_to_end(tmp_path):
    out = tmp_path / 'demo'
    cmd = [sys.executable, 'tools/demo.py', '--iters', '2', '--val-images', '8',
           '--toy-epochs', '1', '--data-root', str(tmp_path / 'lt_digits'), '--out', str(out)]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    results = json.loads((out / 'results.json').read_text())['results']
    assert set(results) == {'ce', 'c2am'}
    for r in results.values():
        assert {'AP mask', 'AP box', 'APr', 'APc', 'APf'} <= set(r)
    for name in ('index.md', 'figure1.png', 'figure1.pdf', 'figure1.json',
                 'per_class_ap_ce.json', 'per_class_ap_c2am.json',
                 'toy_figure3/figure3.png', 'toy_figure3/figure3.pdf'):
        assert (out / name).is_file(), name
    index = (out / 'index.md').read_text()
    assert '| CE |' in index and '| C2AM |' in index and 'figure1.png' in index
    labels = [s['label'] for s in json.loads((out / 'figure1.json').read_text())['summary']]
    assert labels == ['CE', 'C2AM']
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and 'already holds' in again.stderr  # never overwrites a demo
