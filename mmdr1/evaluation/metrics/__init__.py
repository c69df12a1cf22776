# Copyright (c) mmdr1 contributors. All rights reserved.
from .safe_coco_panoptic_metric import SafeCocoPanopticMetric

__all__ = ['SafeCocoPanopticMetric']
