# Copyright (c) mmdr1 contributors. All rights reserved.
"""Version of the mmdr1 package (single source, read by setup.py)."""
__version__ = '0.1.0'


def parse_version_info(version_str: str) -> tuple:
    """Turn ``'0.1.0'`` into ``(0, 1, 0)`` (non-numeric parts kept as str)."""
    return tuple(int(p) if p.isdigit() else p for p in version_str.split('.'))


version_info = parse_version_info(__version__)
