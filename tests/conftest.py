# Copyright (c) mmdr1 contributors. All rights reserved.
"""Session-wide test setup.

The suite tests the ``mmdr1`` that Python imports: the installed copy when
run through ``tools/run_tests.sh``, or the checkout itself with
``PYTHONPATH=<repo>`` after ``python setup.py build_ext --inplace``. An
installed copy that differs from the checkout would test old code, so the
session stops with instructions instead.
"""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _differing_files(pkg_dir: Path) -> list:
    """Python files of the checkout's ``mmdr1/`` that ``pkg_dir`` lacks or
    holds with other content."""
    src_root = REPO / 'mmdr1'
    differ = []
    for src in sorted(src_root.rglob('*.py')):
        rel = src.relative_to(src_root)
        if rel.parts[0] == '.mim':
            continue
        dst = pkg_dir / rel
        if not dst.is_file() or dst.read_bytes() != src.read_bytes():
            differ.append(str(rel))
    return differ


def pytest_configure(config: pytest.Config) -> None:
    import mmdr1
    pkg_dir = Path(mmdr1.__file__).resolve().parent
    if pkg_dir == REPO / 'mmdr1':
        return
    differ = _differing_files(pkg_dir)
    if differ:
        pytest.exit(
            f'The installed mmdr1 at {pkg_dir} is not this checkout '
            f'({len(differ)} files differ, e.g. {differ[:3]}). Run '
            '`bash tools/install.sh` to reinstall it, or test the checkout '
            'directly: `python setup.py build_ext --inplace` and '
            f'PYTHONPATH={REPO}.',
            returncode=4)


@pytest.fixture
def one_thread():
    """Run on one intra-op thread: small convolutions are faster so, and a
    second thread competing with other processes for two cores makes them
    ~10x slower."""
    import torch
    num = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(num)


@pytest.fixture(scope='session')
def toy_cityscapes(tmp_path_factory) -> str:
    """A converted toy Cityscapes set (2 train images, 1 val, 64 x 128):
    ``leftImg8bit/``, ``gtFine/`` and the converter's ``annotations/``."""
    import contextlib
    import importlib.util
    import io
    import os
    import sys

    from mmdr1.datasets import make_toy_cityscapes
    root = str(tmp_path_factory.mktemp('toy_cityscapes'))
    make_toy_cityscapes(root, num_train=2, num_val=1, img_size=(64, 128))
    name = 'mmdr1_cityscapes_converter'
    if name not in sys.modules:
        converter = REPO / 'tools' / 'dataset_converters' / 'cityscapes.py'
        spec = importlib.util.spec_from_file_location(name, str(converter))
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    out = os.path.join(root, 'annotations')
    os.makedirs(out)
    with contextlib.redirect_stdout(io.StringIO()):
        for split in ('train', 'val'):
            sys.modules[name].convert_split(root, out, split)
    return root
