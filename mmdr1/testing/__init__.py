# Copyright (c) mmdr1 contributors. All rights reserved.
from ._utils import demo_coco_batch, demo_panoptic_sample, no_sync_bn

__all__ = ['demo_coco_batch', 'demo_panoptic_sample', 'no_sync_bn']
