# Copyright (c) mmdr1 contributors. All rights reserved.
"""DR1Mask detector for instance segmentation (DR1Mask paper section 3.2)."""
import math
from typing import Dict, Tuple

from mmdet.registry import MODELS
from mmdet.structures import SampleList
from torch import Tensor

from .blendmask import BlendMask


@MODELS.register_module()
class DR1Mask(BlendMask):
    """DR1Mask: FCOS + contexts/embeddings, DR1Basis, instance module.

    Chen et al., "DR1Mask: Dynamic Rank-1 Convolution for Instance
    Segmentation" (arXiv 2011.09796). Data flow (paper Figure 2, dr1mask
    spec sections 2-4):

    - ``bbox_head`` (:class:`DR1MaskFCOSHead`) gives the FCOS outputs, the
      per-location embeddings (``top_feats``) and caches the per-level
      contexts ``[A^l, B^l]``;
    - ``mask_head`` (:class:`DR1MaskHead`) builds the basis with DR1Basis
      conditioned on those contexts, at a quarter of the padded input (a
      multiple of 4 with ``pad_size_divisor=4``, spec section 6), and
      predicts the masks with the instance module from the embeddings of
      the FCOS positives (training: assigned GT boxes) or detections
      (inference: unclipped boxes).

    The arguments are :class:`BlendMask`'s.
    """

    def instance_feats(self, x: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
        """The FPN levels of the FCOS head (P3-P7).

        All neck outputs, except P2 when the basis takes it
        (``DR1Basis(fine_level=True)``: the neck then gives P2-P7 and the
        mask head receives them all).
        """
        basis = getattr(self.mask_head, 'basis', None)
        inst = tuple(x[1:]) if getattr(basis, 'fine_level', False) else x
        num_levels = len(self.bbox_head.strides)
        if len(inst) != num_levels:
            raise ValueError(
                f'{type(self).__name__}: the neck gives {len(x)} levels, '
                f'{len(inst)} of them for the FCOS head, which has '
                f'{num_levels} strides; with mask_head.basis.fine_level the '
                'neck must also output P2 (e.g. FPN start_level=0, '
                'num_outs=6)')
        return tuple(inst)

    @staticmethod
    def basis_size(batch_inputs: Tensor) -> Tuple[int, int]:
        """Basis size: a quarter of the padded input (rounded up)."""
        h, w = batch_inputs.shape[-2:]
        return math.ceil(h / 4), math.ceil(w / 4)

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList,
             **kwargs) -> Dict[str, Tensor]:
        """FCOS losses, ``loss_mask`` and ``loss_basis_sem``.

        Args:
            batch_inputs (Tensor): (B, 3, H, W) images.
            batch_data_samples (list[:obj:`DetDataSample`]): Samples.

        Returns:
            dict[str, Tensor]: Losses.
        """
        x = self.extract_feat(batch_inputs)
        losses = self.bbox_head.loss(
            self.instance_feats(x), batch_data_samples)
        mask_losses = self.mask_head.loss(
            x,
            batch_data_samples,
            positive_infos=self.bbox_head.get_positive_infos(),
            contexts=self.bbox_head.get_contexts(),
            output_size=self.basis_size(batch_inputs))
        assert not set(mask_losses) & set(losses)
        losses.update(mask_losses)
        return losses

    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True,
                **kwargs) -> SampleList:
        """Instance masks at ``ori_shape`` (``img_shape`` if not rescale).

        Args:
            batch_inputs (Tensor): (B, 3, H, W) images.
            batch_data_samples (list[:obj:`DetDataSample`]): Samples.
            rescale (bool): Defaults to True.

        Returns:
            list[:obj:`DetDataSample`]: With ``pred_instances``.
        """
        x = self.extract_feat(batch_inputs)
        results_list = self.bbox_head.predict(
            self.instance_feats(x), batch_data_samples, rescale=False)
        results_list = self.mask_head.predict(
            x,
            batch_data_samples,
            rescale=rescale,
            results_list=results_list,
            contexts=self.bbox_head.get_contexts(),
            output_size=self.basis_size(batch_inputs))
        return self.add_pred_to_datasample(batch_data_samples, results_list)

    def _forward(self, batch_inputs: Tensor, *args, **kwargs) -> tuple:
        """Raw outputs: FCOS head (with embeddings) and (basis, None)."""
        x = self.extract_feat(batch_inputs)
        bbox_outs = self.bbox_head.forward(self.instance_feats(x))
        mask_outs = self.mask_head.forward(
            x,
            self.bbox_head.get_contexts(),
            output_size=self.basis_size(batch_inputs))
        return bbox_outs, mask_outs
