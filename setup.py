# Copyright (c) mmdr1 contributors. All rights reserved.
"""Build script for mmdr1 and its compiled ops (``mmdr1._ext``).

The ops in ``ops/csrc`` are built through mmcv's extension machinery
(``DISPATCH_DEVICE_IMPL`` / ``REGISTER_DEVICE_IMPL`` from the headers that
ship inside the installed mmcv). CPU kernels are always compiled; CUDA kernels
too when torch has CUDA or ``FORCE_CUDA=1``. Install with
``pip install --no-build-isolation .`` so that the build sees the runtime
torch and mmcv (build isolation would hide them).

Environment variables:
    MMDR1_WITH_OPS: ``0`` skips the extension (pure-Python install).
    FORCE_CUDA: ``1`` builds the CUDA kernels even without a visible GPU.
    MMDR1_CUDA_ARGS: extra nvcc flags.
    TORCH_CUDA_ARCH_LIST, MAX_JOBS: honoured by torch's build helpers.
"""
import glob
import os
import os.path as osp
from importlib.util import find_spec
from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_version() -> str:
    scope: dict = {}
    with open(osp.join(HERE, 'mmdr1', 'version.py')) as f:
        exec(compile(f.read(), 'version.py', 'exec'), scope)
    return scope['__version__']


def mmcv_common_headers() -> str:
    """Directory of mmcv's device-registry headers inside the installed mmcv.

    We include them from mmcv instead of copying them (spec mmdet_stack 4.2).
    """
    spec = find_spec('mmcv')
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            'mmdr1 ops are built with mmcv\'s extension headers: install mmcv '
            '2.1.0 with ops first (see README.md), or set MMDR1_WITH_OPS=0.')
    path = osp.join(spec.submodule_search_locations[0], 'ops', 'csrc',
                    'common')
    if not osp.isfile(osp.join(path, 'pytorch_device_registry.hpp')):
        raise RuntimeError(f'mmcv at {spec.submodule_search_locations[0]} '
                           'ships no ops/csrc/common headers; reinstall mmcv '
                           'with ops (MMCV_WITH_OPS=1).')
    return path


def get_extensions() -> list:
    if os.getenv('MMDR1_WITH_OPS', '1') == '0':
        print('MMDR1_WITH_OPS=0: building mmdr1 without compiled ops')
        return []
    try:
        import torch
        from torch.utils.cpp_extension import CppExtension, CUDAExtension
    except ImportError as e:  # build isolation hides the runtime torch
        raise RuntimeError(
            'Building mmdr1 ops needs torch: install with '
            '`pip install --no-build-isolation .` (or MMDR1_WITH_OPS=0).'
        ) from e
    csrc = osp.join('ops', 'csrc')
    sources = sorted(
        glob.glob(osp.join(csrc, 'pytorch', '*.cpp')) +
        glob.glob(osp.join(csrc, 'pytorch', 'cpu', '*.cpp')))
    include_dirs = [osp.join(HERE, csrc, 'common'), mmcv_common_headers()]
    define_macros = []
    # No -std flag: torch picks the standard its headers need.
    extra_compile_args = {'cxx': ['-O3']}
    with_cuda = ((torch.cuda.is_available() and torch.version.cuda is not None)
                 or os.getenv('FORCE_CUDA', '0') == '1')
    if with_cuda:
        print('Compiling mmdr1._ext with CPU and CUDA kernels')
        define_macros.append(('MMCV_WITH_CUDA', None))
        sources += sorted(
            glob.glob(osp.join(csrc, 'pytorch', 'cuda', '*.cu')) +
            glob.glob(osp.join(csrc, 'pytorch', 'cuda', '*.cpp')))
        include_dirs.append(osp.join(HERE, csrc, 'common', 'cuda'))
        nvcc = ['-O3']
        if os.getenv('MMDR1_CUDA_ARGS'):
            nvcc += os.environ['MMDR1_CUDA_ARGS'].split()
        extra_compile_args['nvcc'] = nvcc
        ext_cls = CUDAExtension
    else:
        print('Compiling mmdr1._ext with CPU kernels only')
        ext_cls = CppExtension
    return [
        ext_cls(
            'mmdr1._ext',
            sources=sources,
            include_dirs=include_dirs,
            define_macros=define_macros,
            extra_compile_args=extra_compile_args)
    ]


def get_cmdclass() -> dict:
    if os.getenv('MMDR1_WITH_OPS', '1') == '0':
        return {}
    from torch.utils.cpp_extension import BuildExtension
    return {'build_ext': BuildExtension.with_options(use_ninja=True)}


if __name__ == '__main__':
    setup(
        name='mmdr1',
        version=read_version(),
        description='DR1Mask, BlendMask and SpatialFlow for MMDetection 3.x',
        long_description=open(osp.join(HERE, 'README.md')).read(),
        long_description_content_type='text/markdown',
        license='Apache License 2.0',
        python_requires='>=3.8',
        packages=find_packages(
            exclude=('ops', 'configs', 'tools', 'tests', 'tests.*')),
        include_package_data=True,
        package_data={
            'mmdr1': [
                '.mim/configs/**/*.py', '.mim/tools/**/*.py',
                '.mim/tools/**/*.sh'
            ]
        },
        install_requires=[
            'mmengine>=0.10.0,<1.0', 'mmcv>=2.0.0rc4,<2.2.0',
            'mmdet>=3.3.0,<3.4', 'numpy', 'pycocotools'
        ],
        ext_modules=get_extensions(),
        cmdclass=get_cmdclass(),
        zip_safe=False)
