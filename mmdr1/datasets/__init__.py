# Copyright (c) mmdr1 contributors. All rights reserved.
from .cityscapes import (CITYSCAPES_STUFF, CITYSCAPES_THINGS,
                         CityscapesPanopticDataset)
from .toy_cityscapes import make_toy_cityscapes
from .toy_data import TOY_PANOPTIC_CATEGORIES, make_toy_panoptic
from .toy_panoptic import ToyInstanceDataset, ToyPanopticDataset
from .transforms import *  # noqa: F401,F403

__all__ = [
    'TOY_PANOPTIC_CATEGORIES', 'make_toy_panoptic', 'ToyPanopticDataset',
    'ToyInstanceDataset', 'CITYSCAPES_THINGS', 'CITYSCAPES_STUFF',
    'CityscapesPanopticDataset', 'make_toy_cityscapes'
]
