"""The layering rules of tools/import_graph.py hold for this checkout, and the checker sees a
broken rule when there is one."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _import_graph():
    spec = importlib.util.spec_from_file_location('import_graph', ROOT / 'tools/import_graph.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_layering_rules_hold(capsys):
    assert _import_graph().main(['--check']) == 0
    out = capsys.readouterr().out
    assert 'circles: 0' in out and 'rules broken: 0' in out


def test_checker_reports_a_circle_and_a_core_import(tmp_path, capsys):
    core = tmp_path / 'projects' / 'c2am' / 'c2am'
    core.mkdir(parents=True)
    (tmp_path / 'analysis').mkdir()
    (tmp_path / 'toy_mnist').mkdir()
    (core / '__init__.py').write_text('')
    (core / 'a.py').write_text('from .b import x\nimport mmengine\n')
    (core / 'b.py').write_text('from projects.c2am.c2am.a import y\n')
    (tmp_path / 'analysis' / 'plot.py').write_text('def f():\n    import toy_mnist.run\n')
    (tmp_path / 'toy_mnist' / 'run.py').write_text('')
    assert _import_graph().main(['--root', str(tmp_path), '--check']) == 1
    out = capsys.readouterr().out
    assert 'projects.c2am.c2am.a <-> projects.c2am.c2am.b' in out
    assert 'projects.c2am.c2am.a imports mmengine' in out
    assert 'subproject analysis imports subproject toy_mnist' in out
