# Copyright (c) mmdr1 contributors. All rights reserved.
from ._utils import (demo_coco_batch, demo_panoptic_sample, flatten_config,
                     no_sync_bn, toy_cityscapes_batch, type_name)

__all__ = [
    'demo_coco_batch', 'demo_panoptic_sample', 'flatten_config', 'no_sync_bn',
    'toy_cityscapes_batch', 'type_name'
]
