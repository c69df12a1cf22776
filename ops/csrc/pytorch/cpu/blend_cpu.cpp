// Copyright (c) mmdr1 contributors. All rights reserved.
// CPU kernels of the fused BlendMask blender (see ../blend.cpp).
//
// Forward: RoIs are split across threads (at::parallel_for). For each RoI
// the RoIAlign taps are computed once; then, one output row at a time, the K
// crop rows and the K upsampled attention rows are formed in small
// thread-local buffers, and the softmax over K, the product and the sum are
// taken in loops over the row that vectorise (softmax_blend_row). Only the
// output (and the per-pixel logsumexp, when the backward will need it) is
// written: no (P, K, R, R) tensor exists.
//
// Backward, in two phases without atomics and with a fixed summation order
// (the result does not depend on the number of threads):
//   1. over RoIs (parallel): recompute the crop and attention rows, the
//      softmax s_k = exp(a_k - lse) and out = sum_k s_k c_k, and scatter
//      d out / d a_k = g * s_k * (c_k - out) through the transposed bilinear
//      upsampling into the RoI's own attention gradient (so no two threads
//      write the same element);
//   2. over basis planes (k, n) (parallel): for the RoIs of image n in
//      increasing order, recompute s_k from the attention and lse and add
//      d out / d c_k = g * s_k through the transposed RoIAlign into plane
//      (n, k), which only this task writes.
// Both transposes gather per source column (ColumnTaps) and then add whole
// rows, rather than scattering pixel by pixel.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "pytorch_cpp_helper.hpp"
#include "pytorch_device_registry.hpp"
#include "roi_blend_cpu.hpp"

namespace {

using mmdr1::LinearTap;
using mmdr1::RoITaps;

// Row `row` of the upsampled attention logits of one (M, M) map:
// out[0..R), interpolated along x within the two source rows first, as
// ATen's CPU bilinear kernel.
template <typename T>
inline void attention_row(const T* attn, const int64_t attn_size,
                          const std::vector<LinearTap<T>>& up,
                          const int64_t row, T* out) {
  const LinearTap<T>& ty = up[row];
  const T* r0 = attn + ty.lo * attn_size;
  const T* r1 = attn + ty.hi * attn_size;
  const T wy1 = ty.lambda;
  const T wy0 = T(1) - wy1;
  const int64_t res = static_cast<int64_t>(up.size());
  for (int64_t x = 0; x < res; ++x) {
    const LinearTap<T>& tx = up[x];
    const T wx1 = tx.lambda;
    const T wx0 = T(1) - wx1;
    const T t0 = wx0 * r0[tx.lo] + wx1 * r0[tx.hi];
    const T t1 = wx0 * r1[tx.lo] + wx1 * r1[tx.hi];
    out[x] = t0 * wy0 + t1 * wy1;
  }
}

// Transpose of attention_row: adds grad[0..R) into the (M, M) gradient.
// The x interpolation is transposed by gathering with `cols` (the x taps
// transposed) into the M-long buffer `tmp`, then the y weights add it to
// the two source rows.
template <typename T>
inline void attention_row_backward(const T* grad, const int64_t attn_size,
                                   const std::vector<LinearTap<T>>& up,
                                   const mmdr1::ColumnTaps<T>& cols,
                                   const int64_t row, T* tmp, T* attn_grad) {
  const LinearTap<T>& ty = up[row];
  const T wy1 = ty.lambda;
  const T wy0 = T(1) - wy1;
  std::fill(tmp, tmp + attn_size, T(0));
  mmdr1::gather_columns<T>(cols, grad, T(1), tmp + cols.first);
  T* a0 = attn_grad + ty.lo * attn_size;
  T* a1 = attn_grad + ty.hi * attn_size;
  for (int64_t m = 0; m < attn_size; ++m) a0[m] += wy0 * tmp[m];
  for (int64_t m = 0; m < attn_size; ++m) a1[m] += wy1 * tmp[m];
}

struct BlendShape {
  int64_t batch, channels, height, width, num_rois, attn_size, res;
};

template <typename T>
void blend_forward_kernel(const T* bases, const T* rois, const T* attns,
                          T* output, T* lse, const BlendShape& s,
                          const T spatial_scale,
                          const int64_t sampling_ratio) {
  const int64_t K = s.channels, R = s.res, M = s.attn_size;
  const int64_t plane = s.height * s.width;
  const auto up = mmdr1::make_linear_taps<T>(M, R);
  at::parallel_for(
      0, s.num_rois, mmdr1::blend_grain(K * R * R * 16),
      [&](int64_t begin, int64_t end) {
        RoITaps<T> taps;
        std::vector<T> crop(K * R), logit(K * R), mx(R), sum(R);
        for (int64_t p = begin; p < end; ++p) {
          mmdr1::make_roi_taps<T>(rois + p * 5, spatial_scale, R,
                                  sampling_ratio, s.height, s.width, &taps);
          const T* base = bases + taps.batch * K * plane;
          const T* attn = attns + p * K * M * M;
          for (int64_t y = 0; y < R; ++y) {
            for (int64_t k = 0; k < K; ++k) {
              mmdr1::crop_row<T>(base + k * plane, s.width, taps, y, R,
                                 crop.data() + k * R);
              attention_row<T>(attn + k * M * M, M, up, y,
                               logit.data() + k * R);
            }
            T* out = output + (p * R + y) * R;
            T* lse_row = lse == nullptr ? nullptr : lse + (p * R + y) * R;
            mmdr1::softmax_blend_row<T>(logit.data(), crop.data(), R, K, R,
                                        mx.data(), sum.data(), out, lse_row);
          }
        }
      });
}

template <typename T>
void blend_backward_kernel(const T* grad_output, const T* bases,
                           const T* rois, const T* attns, const T* lse,
                           T* grad_bases, T* grad_attns,
                           const BlendShape& s, const T spatial_scale,
                           const int64_t sampling_ratio) {
  const int64_t K = s.channels, R = s.res, M = s.attn_size;
  const int64_t N = s.batch, P = s.num_rois;
  const int64_t plane = s.height * s.width;
  const auto up = mmdr1::make_linear_taps<T>(M, R);
  const auto up_cols = mmdr1::linear_column_taps<T>(up);
  std::vector<RoITaps<T>> all_taps(P);

  // Phase 1: attention gradients, one RoI per task.
  at::parallel_for(
      0, P, mmdr1::blend_grain(K * R * R * 24),
      [&](int64_t begin, int64_t end) {
        std::vector<T> crop(K * R), logit(K * R), ga(K * R), out(R), tmp(M);
        for (int64_t p = begin; p < end; ++p) {
          RoITaps<T>& taps = all_taps[p];
          mmdr1::make_roi_taps<T>(rois + p * 5, spatial_scale, R,
                                  sampling_ratio, s.height, s.width, &taps,
                                  true);
          const T* base = bases + taps.batch * K * plane;
          const T* attn = attns + p * K * M * M;
          T* attn_grad = grad_attns + p * K * M * M;
          for (int64_t y = 0; y < R; ++y) {
            for (int64_t k = 0; k < K; ++k) {
              mmdr1::crop_row<T>(base + k * plane, s.width, taps, y, R,
                                 crop.data() + k * R);
              attention_row<T>(attn + k * M * M, M, up, y,
                               logit.data() + k * R);
            }
            const T* go = grad_output + (p * R + y) * R;
            const T* lse_row = lse + (p * R + y) * R;
            // logit becomes the softmax s_k = exp(a_k - lse).
            mmdr1::softmax_rows_from_lse<T>(logit.data(), lse_row, K, R);
            std::fill(out.begin(), out.end(), T(0));
            for (int64_t k = 0; k < K; ++k) {
              const T* sk = logit.data() + k * R;
              const T* ck = crop.data() + k * R;
              for (int64_t x = 0; x < R; ++x) out[x] += sk[x] * ck[x];
            }
            for (int64_t k = 0; k < K; ++k) {
              const T* sk = logit.data() + k * R;
              const T* ck = crop.data() + k * R;
              T* gak = ga.data() + k * R;
              for (int64_t x = 0; x < R; ++x) {
                gak[x] = go[x] * sk[x] * (ck[x] - out[x]);
              }
            }
            for (int64_t k = 0; k < K; ++k) {
              attention_row_backward<T>(ga.data() + k * R, M, up, up_cols,
                                        y, tmp.data(), attn_grad + k * M * M);
            }
          }
        }
      });

  // Phase 2: basis gradients, one (k, n) plane per task; k-major so that
  // threads get planes of every image.
  const auto groups = mmdr1::rois_by_image<T>(rois, P, N);
  at::parallel_for(0, K * N, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> logit(R), gc(R), cols(s.width + 1);
    for (int64_t q = begin; q < end; ++q) {
      const int64_t k = q / N, n = q % N;
      T* plane_grad = grad_bases + (n * K + k) * plane;
      for (const int64_t p : groups[n]) {
        const RoITaps<T>& taps = all_taps[p];
        const T* attn = attns + (p * K + k) * M * M;
        for (int64_t y = 0; y < R; ++y) {
          attention_row<T>(attn, M, up, y, logit.data());
          const T* go = grad_output + (p * R + y) * R;
          const T* lse_row = lse + (p * R + y) * R;
          mmdr1::softmax_rows_from_lse<T>(logit.data(), lse_row, 1, R);
          for (int64_t x = 0; x < R; ++x) gc[x] = go[x] * logit[x];
          mmdr1::crop_row_backward<T>(gc.data(), s.width, taps, y,
                                      cols.data(), plane_grad);
        }
      }
    }
  });
}

BlendShape blend_shape(const Tensor& bases, const Tensor& rois,
                          const Tensor& attns, const int64_t res) {
  return {bases.size(0), bases.size(1), bases.size(2), bases.size(3),
          rois.size(0),  attns.size(2), res};
}

// mmcv passes spatial_scale to its kernels as a C float.
template <typename T>
T as_mmcv_scale(const double spatial_scale) {
  return static_cast<T>(static_cast<float>(spatial_scale));
}

}  // namespace

// Shapes and dtypes are checked by the entry points in ../blend.cpp.
void blend_forward_cpu(Tensor bases, Tensor rois, Tensor attns, Tensor output,
                       Tensor lse, const double spatial_scale,
                       const int64_t sampling_ratio) {
  CHECK_CPU_INPUT(bases);
  CHECK_CPU_INPUT(rois);
  CHECK_CPU_INPUT(attns);
  CHECK_CPU_INPUT(output);
  CHECK_CPU_INPUT(lse);
  AT_DISPATCH_FLOATING_TYPES(bases.scalar_type(), "blend_forward_cpu", [&] {
    const scalar_t scale = as_mmcv_scale<scalar_t>(spatial_scale);
    mmdr1::check_rois_cpu<scalar_t>(rois.data_ptr<scalar_t>(), rois.size(0),
                                    bases.size(0), scale, "blend");
    blend_forward_kernel<scalar_t>(
        bases.data_ptr<scalar_t>(), rois.data_ptr<scalar_t>(),
        attns.data_ptr<scalar_t>(), output.data_ptr<scalar_t>(),
        lse.numel() > 0 ? lse.data_ptr<scalar_t>() : nullptr,
        blend_shape(bases, rois, attns, output.size(1)), scale,
        sampling_ratio);
  });
}

void blend_backward_cpu(Tensor grad_output, Tensor bases, Tensor rois,
                        Tensor attns, Tensor lse, Tensor grad_bases,
                        Tensor grad_attns, const double spatial_scale,
                        const int64_t sampling_ratio) {
  CHECK_CPU_INPUT(grad_output);
  CHECK_CPU_INPUT(bases);
  CHECK_CPU_INPUT(rois);
  CHECK_CPU_INPUT(attns);
  CHECK_CPU_INPUT(lse);
  CHECK_CPU_INPUT(grad_bases);
  CHECK_CPU_INPUT(grad_attns);
  AT_DISPATCH_FLOATING_TYPES(bases.scalar_type(), "blend_backward_cpu", [&] {
    const scalar_t scale = as_mmcv_scale<scalar_t>(spatial_scale);
    mmdr1::check_rois_cpu<scalar_t>(rois.data_ptr<scalar_t>(), rois.size(0),
                                    bases.size(0), scale, "blend");
    blend_backward_kernel<scalar_t>(
        grad_output.data_ptr<scalar_t>(), bases.data_ptr<scalar_t>(),
        rois.data_ptr<scalar_t>(), attns.data_ptr<scalar_t>(),
        lse.data_ptr<scalar_t>(), grad_bases.data_ptr<scalar_t>(),
        grad_attns.data_ptr<scalar_t>(),
        blend_shape(bases, rois, attns, grad_output.size(1)), scale,
        sampling_ratio);
  });
}

void blend_forward_impl(Tensor bases, Tensor rois, Tensor attns,
                        Tensor output, Tensor lse, const double spatial_scale,
                        const int64_t sampling_ratio);
void blend_backward_impl(Tensor grad_output, Tensor bases, Tensor rois,
                         Tensor attns, Tensor lse, Tensor grad_bases,
                         Tensor grad_attns, const double spatial_scale,
                         const int64_t sampling_ratio);

REGISTER_DEVICE_IMPL(blend_forward_impl, CPU, blend_forward_cpu);
REGISTER_DEVICE_IMPL(blend_backward_impl, CPU, blend_backward_cpu);
