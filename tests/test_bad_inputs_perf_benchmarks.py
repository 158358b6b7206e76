"""Bad input to the speed benchmarks: one line and exit 2 before any work; outputs kept."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script, *args):
    return subprocess.run([sys.executable, str(ROOT / 'benchmarks' / script), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


@pytest.mark.parametrize('args,message', [
    (['--n', '0'], 'integer >= 1'),
    (['--n', 'many'], 'integer >= 1'),
    (['--repeats', '-3'], 'integer >= 1'),
    (['--warmup', '-1'], 'integer >= 0'),
    (['--device', 'cuda'], 'no CUDA device'),
    (['--device', 'tpu:0'], 'device'),
    (['--dtypes', 'fp8'], 'invalid choice'),
])
def test_loss_bench_refuses_bad_arguments(args, message):
    run = _run('loss_bench.py', *args)
    assert run.returncode == 2
    assert message in run.stderr and 'Traceback' not in run.stderr
    assert run.stdout == ''  # nothing measured


def test_benchmark_json_outputs_are_checked_before_measuring(tmp_path):
    spec = importlib.util.spec_from_file_location('lb', ROOT / 'benchmarks' / 'loss_bench.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    existing = tmp_path / 'old.json'
    existing.write_text('{"mine": 1}')
    blocker = tmp_path / 'file'
    blocker.write_text('')
    for script in ('loss_bench.py', 'train_step_bench.py'):
        run = _run(script, '--json', str(existing))
        assert run.returncode == 2 and '--force' in run.stderr and 'Traceback' not in run.stderr
        run = _run(script, '--json', str(blocker / 'out.json'))
        assert run.returncode == 2 and 'is a file' in run.stderr
    assert existing.read_text() == '{"mine": 1}'
    assert module.main(['--device', 'cpu', '--n', '8', '--dtypes', 'fp32', '--repeats', '1',
                        '--warmup', '0', '--json', str(existing), '--force']) == 0
    assert '"results"' in existing.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['file', 'old.json']  # no temporaries
