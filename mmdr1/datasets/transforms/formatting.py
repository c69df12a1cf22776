# Copyright (c) mmdr1 contributors. All rights reserved.
"""Packing of the thing-semantic map next to mmdet's usual fields."""
from mmcv.transforms import to_tensor
from mmdet.datasets.transforms import PackDetInputs
from mmdet.registry import TRANSFORMS
from mmengine.structures import PixelData


@TRANSFORMS.register_module()
class PackDetInputsWithThingSem(PackDetInputs):
    """:class:`PackDetInputs` that also packs the thing-semantic map.

    Panoptic data already use ``gt_seg_map`` (packed as ``gt_sem_seg``) for
    the panoptic semantic labels, so BlendMask's auxiliary thing-semantic
    target (blendmask spec sections 6.3, 6.4 and 12.1: panoptic BlendMask
    trains both) needs its own field. This transform packs
    ``results[thing_sem_key]`` (uint8 (H, W), e.g. made by
    :class:`GenerateThingSemanticSeg` ``(seg_key='gt_thing_sem_seg')``) as
    ``data_sample.<field>`` = ``PixelData(sem_seg=(1, H, W) tensor)``; read
    by :class:`BlendMaskHead` with ``thing_sem_field=field``.

    Args:
        thing_sem_key (str): Key of the map in ``results``. Defaults to
            ``'gt_thing_sem_seg'``.
        field (str): Data-sample field to create. Defaults to
            ``'gt_thing_sem_seg'``.
        **kwargs: Passed to :class:`PackDetInputs` (e.g. ``meta_keys``).
    """

    def __init__(self,
                 thing_sem_key: str = 'gt_thing_sem_seg',
                 field: str = 'gt_thing_sem_seg',
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if field in ('gt_instances', 'ignored_instances', 'gt_sem_seg',
                     'proposals', 'gt_panoptic_seg'):
            raise ValueError(
                f'PackDetInputsWithThingSem: field {field!r} is a standard '
                'DetDataSample field; choose another name')
        self.thing_sem_key = thing_sem_key
        self.field = field

    def transform(self, results: dict) -> dict:
        """Pack as :class:`PackDetInputs`, plus the thing-semantic map.

        Args:
            results (dict): Result dict of the pipeline.

        Returns:
            dict: ``inputs`` and ``data_samples``.
        """
        packed = super().transform(results)
        if self.thing_sem_key in results:
            sem = results[self.thing_sem_key]
            packed['data_samples'].set_field(
                PixelData(sem_seg=to_tensor(sem[None, ...].copy())),
                self.field)
        return packed

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(thing_sem_key='
                f"'{self.thing_sem_key}', field='{self.field}', "
                f'meta_keys={self.meta_keys})')
