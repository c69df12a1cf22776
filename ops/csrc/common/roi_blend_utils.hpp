// Copyright (c) mmdr1 contributors. All rights reserved.
// Sampling arithmetic shared by the CPU and CUDA kernels of the fused
// blenders (ops `blend` and `factored_blend`).
//
// RoIAlign (average pooling, aligned=True) follows mmcv's kernels
// (mmcv/ops/csrc/pytorch/cpu/roi_align.cpp and
// common/cuda/roi_align_cuda_kernel.cuh) operation for operation, so that the
// crops equal mmcv's RoIAlign to the last bit where the summation order
// allows:
//
//   start = roi * spatial_scale - 0.5, bin = (end - start) / R,
//   grid = sampling_ratio > 0 ? sampling_ratio : ceil(extent / R),
//   sample i of bin b at start + b * bin + (i + .5) * bin / grid,
//   a sample with y < -1, y > H, x < -1 or x > W contributes 0, otherwise it
//   is clamped to [0, size - 1] and interpolated bilinearly,
//   crop = sum of the samples / max(grid_h * grid_w, 1).
//
// The bilinear weights of a sample factor into a y part and an x part
// (w1 = hy * hx, ...), and a sample outside the map has weight 0 along the
// axis where it is outside, so the kernels precompute per-axis taps.
//
// Attention upsampling is F.interpolate(mode='bilinear',
// align_corners=False) from M to R: output pixel o samples
// src = max((M / R) * (o + 0.5) - 0.5, 0) between lo = min(floor(src), M - 1)
// and hi = min(lo + 1, M - 1) with weight lambda = clamp(src - lo, 0, 1),
// as ATen's upsample kernels.
#ifndef MMDR1_ROI_BLEND_UTILS_HPP
#define MMDR1_ROI_BLEND_UTILS_HPP

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define MMDR1_BLEND_HOST_DEVICE __host__ __device__
#else
#define MMDR1_BLEND_HOST_DEVICE
#endif

// Geometry of one RoI on the feature grid (mmcv RoIAlign, aligned=True).
template <typename T>
struct RoIAlignGeometry {
  int64_t batch;  // image index
  T start_h;
  T start_w;
  T bin_h;
  T bin_w;
  int grid_h;  // samples per bin along y (0 for an adaptive empty box)
  int grid_w;
  T count;  // max(grid_h * grid_w, 1), the divisor of the average
  T height;  // roi_end_h - roi_start_h (negative only for invalid boxes)
  T width;
};

// roi = [batch_index, x1, y1, x2, y2] in input pixels. spatial_scale is the
// value mmcv passes to its kernels: a C float converted to T.
template <typename T>
MMDR1_BLEND_HOST_DEVICE inline RoIAlignGeometry<T> roi_align_geometry(
    const T* roi, const T spatial_scale, const int64_t pooled,
    const int64_t sampling_ratio) {
  RoIAlignGeometry<T> g;
  g.batch = static_cast<int64_t>(roi[0]);
  const T offset = static_cast<T>(0.5);
  g.start_w = roi[1] * spatial_scale - offset;
  g.start_h = roi[2] * spatial_scale - offset;
  const T end_w = roi[3] * spatial_scale - offset;
  const T end_h = roi[4] * spatial_scale - offset;
  g.width = end_w - g.start_w;
  g.height = end_h - g.start_h;
  g.bin_h = static_cast<T>(g.height) / static_cast<T>(pooled);
  g.bin_w = static_cast<T>(g.width) / static_cast<T>(pooled);
  // mmcv: ceilf(roi_height / pooled_height), i.e. in float precision.
  g.grid_h = sampling_ratio > 0
                 ? static_cast<int>(sampling_ratio)
                 : static_cast<int>(ceilf(
                       static_cast<float>(g.height / static_cast<T>(pooled))));
  g.grid_w = sampling_ratio > 0
                 ? static_cast<int>(sampling_ratio)
                 : static_cast<int>(ceilf(
                       static_cast<float>(g.width / static_cast<T>(pooled))));
  if (g.grid_h < 0) g.grid_h = 0;
  if (g.grid_w < 0) g.grid_w = 0;
  const int n = g.grid_h * g.grid_w;
  g.count = static_cast<T>(n > 1 ? n : 1);
  return g;
}

// Coordinate of sample `i` (of `grid`) in bin `bin_idx`, as mmcv computes it.
template <typename T>
MMDR1_BLEND_HOST_DEVICE inline T roi_align_sample_coord(
    const T start, const T bin, const int64_t bin_idx, const int i,
    const int grid) {
  return start + static_cast<T>(bin_idx) * bin +
         static_cast<T>(i + .5f) * bin / static_cast<T>(grid);
}

// Bilinear taps of one sample coordinate along one axis of length `size`:
// the sample is (*w_lo) * v[*lo] + (*w_hi) * v[*hi]. A coordinate outside
// [-1, size] gives weights 0 (and indices 0).
template <typename T>
MMDR1_BLEND_HOST_DEVICE inline void roi_align_axis_tap(T coord,
                                                       const int64_t size,
                                                       int64_t* lo,
                                                       int64_t* hi, T* w_lo,
                                                       T* w_hi) {
  if (coord < static_cast<T>(-1) || coord > static_cast<T>(size)) {
    *lo = 0;
    *hi = 0;
    *w_lo = static_cast<T>(0);
    *w_hi = static_cast<T>(0);
    return;
  }
  if (coord <= 0) coord = 0;
  int64_t low = static_cast<int64_t>(coord);
  int64_t high;
  if (low >= size - 1) {
    high = low = size - 1;
    coord = static_cast<T>(low);
  } else {
    high = low + 1;
  }
  const T l = coord - static_cast<T>(low);
  *lo = low;
  *hi = high;
  *w_lo = static_cast<T>(1.) - l;
  *w_hi = l;
}

// Source taps of output pixel `out_idx` of a linear resize (align_corners
// False) from in_size to out_size pixels: the output is
// (1 - *lambda) * in[*lo] + *lambda * in[*hi].
template <typename T>
MMDR1_BLEND_HOST_DEVICE inline void upsample_linear_tap(
    const int64_t out_idx, const int64_t in_size, const int64_t out_size,
    int64_t* lo, int64_t* hi, T* lambda) {
  const T scale = static_cast<T>(in_size) / static_cast<T>(out_size);
  T src = scale * (static_cast<T>(out_idx) + static_cast<T>(0.5)) -
          static_cast<T>(0.5);
  if (src < static_cast<T>(0)) src = static_cast<T>(0);
  int64_t low = static_cast<int64_t>(src);  // floor, src >= 0
  if (low > in_size - 1) low = in_size - 1;
  T l = src - static_cast<T>(low);
  if (l < static_cast<T>(0)) l = static_cast<T>(0);
  if (l > static_cast<T>(1)) l = static_cast<T>(1);
  *lo = low;
  *hi = low < in_size - 1 ? low + 1 : low;
  *lambda = l;
}

#endif  // MMDR1_ROI_BLEND_UTILS_HPP
