// Copyright (c) mmdr1 contributors. All rights reserved.
// Index arithmetic of aligned upsampling shared by the CPU and CUDA kernels
// (dr1mask spec section 6).
//
// Along one axis an input of size `in_size` is upsampled by an integer
// `factor` to `factor * in_size` pixels. Output pixel `y` samples the input
// at the coordinate
//
//     clamp((y - factor / 2) / factor, 0, in_size - 1)      (factor / 2 is
//                                                            integer division)
//
// with linear interpolation between the two neighbouring input pixels. This
// is CondInst's `aligned_bilinear` (replicate pad right/bottom, resize with
// align_corners=True to factor * in_size + 1, replicate pad factor / 2 at the
// top/left, keep the first factor * in_size pixels) written in closed form;
// the index and the weight are computed exactly with integer arithmetic.
#ifndef MMDR1_ALIGNED_UPSAMPLE_UTILS_HPP
#define MMDR1_ALIGNED_UPSAMPLE_UTILS_HPP

#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define MMDR1_HOST_DEVICE __host__ __device__
#else
#define MMDR1_HOST_DEVICE
#endif

// Source pixels of output pixel `out_idx`: the output equals
// (1 - *lambda) * in[*idx0] + *lambda * in[*idx1], with idx1 = idx0 + 1 or,
// at the far border, idx1 = idx0 = in_size - 1 (then *lambda = 0).
template <typename T>
MMDR1_HOST_DEVICE inline void aligned_upsample_source_index(
    const int64_t out_idx, const int64_t factor, const int64_t in_size,
    int64_t* idx0, int64_t* idx1, T* lambda) {
  const int64_t t = out_idx - factor / 2;
  int64_t q = 0;
  int64_t r = 0;
  if (t > 0) {
    q = t / factor;
    r = t - q * factor;
    if (q >= in_size - 1) {
      q = in_size - 1;
      r = 0;
    }
  }
  *idx0 = q;
  *idx1 = q + 1 < in_size ? q + 1 : in_size - 1;
  *lambda = static_cast<T>(r) / static_cast<T>(factor);
}

// Weight of input pixel `in_idx` in output pixel `out_idx` (0 if unused).
template <typename T>
MMDR1_HOST_DEVICE inline T aligned_upsample_weight(const int64_t out_idx,
                                                   const int64_t in_idx,
                                                   const int64_t factor,
                                                   const int64_t in_size) {
  int64_t idx0, idx1;
  T lambda;
  aligned_upsample_source_index<T>(out_idx, factor, in_size, &idx0, &idx1,
                                   &lambda);
  T w = static_cast<T>(0);
  if (idx0 == in_idx) w += static_cast<T>(1) - lambda;
  if (idx1 == in_idx) w += lambda;
  return w;
}

// Inclusive range [*first, *last] of the output pixels that use input pixel
// `in_idx` (a superset: a few of them may have weight 0).
MMDR1_HOST_DEVICE inline void aligned_upsample_output_range(
    const int64_t in_idx, const int64_t factor, const int64_t in_size,
    int64_t* first, int64_t* last) {
  const int64_t out_size = factor * in_size;
  // idx0(y) >= in_idx - 1 with a nonzero weight for in_idx needs
  // y - factor / 2 > factor * (in_idx - 1).
  *first = in_idx == 0 ? 0 : factor * (in_idx - 1) + factor / 2 + 1;
  // idx0(y) <= in_idx needs y - factor / 2 < factor * (in_idx + 1), except
  // at the far border where all remaining outputs clamp onto in_idx.
  int64_t l = in_idx == in_size - 1 ? out_size - 1
                                    : factor * (in_idx + 1) + factor / 2 - 1;
  *last = l < out_size - 1 ? l : out_size - 1;
}

#endif  // MMDR1_ALIGNED_UPSAMPLE_UTILS_HPP
