// Copyright (c) mmdr1 contributors. All rights reserved.
// CPU helpers of the fused blenders (ops `blend` and `factored_blend`): the
// RoIAlign taps of one RoI, a crop row computed from them and its transpose,
// the attention-upsampling taps, a vectorisable exp, the softmax-blend of one
// row, and the grouping of RoIs by image. The sampling arithmetic itself is
// in roi_blend_utils.hpp (shared with CUDA).
#ifndef MMDR1_ROI_BLEND_CPU_HPP
#define MMDR1_ROI_BLEND_CPU_HPP

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "roi_blend_utils.hpp"

namespace mmdr1 {

// Bilinear taps of one RoIAlign sample along one axis.
template <typename T>
struct AxisTap {
  int64_t lo;
  int64_t hi;
  T w_lo;
  T w_hi;
};

// Transposed 1-D taps: for every input column c in [first, first + size())
// the (output index, weight) pairs of the taps that read it, in increasing
// output order. The backward kernels gather with them (a register sum per
// column) instead of scattering into neighbouring columns, whose
// read-modify-write chains through memory are slow.
template <typename T>
struct ColumnTaps {
  int64_t first = 0;
  std::vector<int64_t> start{0};  // size() + 1 offsets into index / weight
  std::vector<int64_t> index;
  std::vector<T> weight;
  int64_t size() const { return static_cast<int64_t>(start.size()) - 1; }
};

// One tap: output `out` reads input column `col` with weight `w`.
template <typename T>
struct TapEntry {
  int64_t out;
  int64_t col;
  T w;
};

// Builds `cols` from taps listed in increasing output order (a counting
// sort by column, which keeps that order within a column).
template <typename T>
void build_column_taps(const std::vector<TapEntry<T>>& entries,
                       ColumnTaps<T>* cols) {
  cols->index.resize(entries.size());
  cols->weight.resize(entries.size());
  if (entries.empty()) {
    cols->first = 0;
    cols->start.assign(1, 0);
    return;
  }
  int64_t lo = entries[0].col, hi = entries[0].col;
  for (const TapEntry<T>& e : entries) {
    lo = e.col < lo ? e.col : lo;
    hi = e.col > hi ? e.col : hi;
  }
  cols->first = lo;
  cols->start.assign(hi - lo + 2, 0);
  for (const TapEntry<T>& e : entries) ++cols->start[e.col - lo + 1];
  for (int64_t c = 0; c <= hi - lo; ++c) {
    cols->start[c + 1] += cols->start[c];
  }
  std::vector<int64_t> cursor(cols->start.begin(), cols->start.end() - 1);
  for (const TapEntry<T>& e : entries) {
    const int64_t pos = cursor[e.col - lo]++;
    cols->index[pos] = e.out;
    cols->weight[pos] = e.w;
  }
}

// out[c] = scale * sum over the taps of column c of w * in[out index], for
// c in [0, cols.size()).
template <typename T>
inline void gather_columns(const ColumnTaps<T>& cols, const T* in,
                           const T scale, T* out) {
  const int64_t* start = cols.start.data();
  const int64_t* index = cols.index.data();
  const T* weight = cols.weight.data();
  for (int64_t c = 0; c < cols.size(); ++c) {
    T acc = T(0);
    for (int64_t e = start[c]; e < start[c + 1]; ++e) {
      acc += weight[e] * in[index[e]];
    }
    out[c] = acc * scale;
  }
}

// RoIAlign sampling of one RoI: the taps of every sample of every bin along
// y (R * grid_h) and x (R * grid_w), and the x taps transposed.
template <typename T>
struct RoITaps {
  int64_t batch = 0;
  int grid_h = 0;
  int grid_w = 0;
  T inv_count = T(1);  // 1 / max(grid_h * grid_w, 1)
  std::vector<AxisTap<T>> y;
  std::vector<AxisTap<T>> x;
  ColumnTaps<T> x_cols;  // filled by make_roi_taps(..., with_cols=true)
};

// Fills `taps` for roi = [batch, x1, y1, x2, y2] on an H x W map; also
// taps->x_cols (for crop_row_backward) when with_cols is true.
template <typename T>
void make_roi_taps(const T* roi, const T spatial_scale, const int64_t pooled,
                   const int64_t sampling_ratio, const int64_t height,
                   const int64_t width, RoITaps<T>* taps,
                   const bool with_cols = false) {
  const RoIAlignGeometry<T> g =
      roi_align_geometry<T>(roi, spatial_scale, pooled, sampling_ratio);
  taps->batch = g.batch;
  taps->grid_h = g.grid_h;
  taps->grid_w = g.grid_w;
  taps->inv_count = T(1) / g.count;
  taps->y.resize(pooled * g.grid_h);
  taps->x.resize(pooled * g.grid_w);
  for (int64_t b = 0; b < pooled; ++b) {
    for (int i = 0; i < g.grid_h; ++i) {
      AxisTap<T>& t = taps->y[b * g.grid_h + i];
      roi_align_axis_tap<T>(
          roi_align_sample_coord<T>(g.start_h, g.bin_h, b, i, g.grid_h),
          height, &t.lo, &t.hi, &t.w_lo, &t.w_hi);
    }
    for (int i = 0; i < g.grid_w; ++i) {
      AxisTap<T>& t = taps->x[b * g.grid_w + i];
      roi_align_axis_tap<T>(
          roi_align_sample_coord<T>(g.start_w, g.bin_w, b, i, g.grid_w),
          width, &t.lo, &t.hi, &t.w_lo, &t.w_hi);
    }
  }
  if (with_cols) {
    std::vector<TapEntry<T>> entries;
    entries.reserve(2 * taps->x.size());
    for (int64_t b = 0; b < pooled; ++b) {
      for (int i = 0; i < g.grid_w; ++i) {
        const AxisTap<T>& t = taps->x[b * g.grid_w + i];
        // Zero weights (samples outside the map) add nothing.
        if (t.w_lo != T(0)) entries.push_back({b, t.lo, t.w_lo});
        if (t.w_hi != T(0)) entries.push_back({b, t.hi, t.w_hi});
      }
    }
    build_column_taps<T>(entries, &taps->x_cols);
  }
}

// Checks what mmcv's CPU RoIAlign checks (non-negative box size) and that
// the batch indices address the feature map. Runs before the kernels so
// that no error is raised inside a parallel region.
template <typename T>
void check_rois_cpu(const T* rois, const int64_t num_rois,
                    const int64_t batch, const T spatial_scale,
                    const char* op) {
  for (int64_t p = 0; p < num_rois; ++p) {
    const T* roi = rois + p * 5;
    const T idx = roi[0];
    TORCH_CHECK(idx >= 0 && idx < static_cast<T>(batch) &&
                    static_cast<T>(static_cast<int64_t>(idx)) == idx,
                op, ": rois[", p, ", 0] = ", idx,
                " is not an integer batch index in [0, ", batch, ")");
    const T offset = static_cast<T>(0.5);
    const T w = (roi[3] * spatial_scale - offset) -
                (roi[1] * spatial_scale - offset);
    const T h = (roi[4] * spatial_scale - offset) -
                (roi[2] * spatial_scale - offset);
    TORCH_CHECK(w >= 0 && h >= 0, op, ": RoI ", p,
                " has a negative size (x2 < x1 or y2 < y1); RoIAlign "
                "(aligned=True) requires non-negative sizes");
  }
}

// Row `row` of the RoIAlign crop of one H x W plane: out[0..R).
template <typename T>
inline void crop_row(const T* plane, const int64_t width,
                     const RoITaps<T>& taps, const int64_t row,
                     const int64_t pooled, T* out) {
  const int gh = taps.grid_h;
  const int gw = taps.grid_w;
  if (gh == 1 && gw == 1) {  // sampling_ratio = 1, the common case
    const AxisTap<T>& ty = taps.y[row];
    const T* r0 = plane + ty.lo * width;
    const T* r1 = plane + ty.hi * width;
    const AxisTap<T>* tx = taps.x.data();
    for (int64_t b = 0; b < pooled; ++b) {
      // As mmcv: w1 = hy * hx, ..., val = w1 * v1 + ... + w4 * v4.
      const T w1 = ty.w_lo * tx[b].w_lo;
      const T w2 = ty.w_lo * tx[b].w_hi;
      const T w3 = ty.w_hi * tx[b].w_lo;
      const T w4 = ty.w_hi * tx[b].w_hi;
      out[b] = (w1 * r0[tx[b].lo] + w2 * r0[tx[b].hi] + w3 * r1[tx[b].lo] +
                w4 * r1[tx[b].hi]) *
               taps.inv_count;
    }
    return;
  }
  for (int64_t b = 0; b < pooled; ++b) {
    T val = T(0);
    for (int iy = 0; iy < gh; ++iy) {
      const AxisTap<T>& ty = taps.y[row * gh + iy];
      const T* r0 = plane + ty.lo * width;
      const T* r1 = plane + ty.hi * width;
      for (int ix = 0; ix < gw; ++ix) {
        const AxisTap<T>& tx = taps.x[b * gw + ix];
        const T w1 = ty.w_lo * tx.w_lo;
        const T w2 = ty.w_lo * tx.w_hi;
        const T w3 = ty.w_hi * tx.w_lo;
        const T w4 = ty.w_hi * tx.w_hi;
        val += w1 * r0[tx.lo] + w2 * r0[tx.hi] + w3 * r1[tx.lo] +
               w4 * r1[tx.hi];
      }
    }
    out[b] = val * taps.inv_count;
  }
}

// Transpose of crop_row: adds the gradient grad[0..R) of crop row `row`
// into the H x W plane gradient. RoIAlign is separable, so the row
// gradient is first gathered per basis column (taps.x_cols, needs
// make_roi_taps(..., with_cols=true)) into `cols` (taps.x_cols.size() long)
// and then added, with the y weights, to the two basis rows of every y
// sample: contiguous, vectorisable loops.
template <typename T>
inline void crop_row_backward(const T* grad, const int64_t width,
                              const RoITaps<T>& taps, const int64_t row,
                              T* cols, T* plane_grad) {
  const ColumnTaps<T>& ct = taps.x_cols;
  const int64_t n = ct.size();
  if (n == 0) return;
  gather_columns<T>(ct, grad, taps.inv_count, cols);
  const int gh = taps.grid_h;
  for (int iy = 0; iy < gh; ++iy) {
    const AxisTap<T>& ty = taps.y[row * gh + iy];
    if (ty.w_lo != T(0)) {
      T* r0 = plane_grad + ty.lo * width + ct.first;
      const T w = ty.w_lo;
      for (int64_t c = 0; c < n; ++c) r0[c] += w * cols[c];
    }
    if (ty.w_hi != T(0)) {
      T* r1 = plane_grad + ty.hi * width + ct.first;
      const T w = ty.w_hi;
      for (int64_t c = 0; c < n; ++c) r1[c] += w * cols[c];
    }
  }
}

// Taps of a linear resize from in_size to out_size (align_corners=False).
template <typename T>
struct LinearTap {
  int64_t lo;
  int64_t hi;
  T lambda;
};

template <typename T>
std::vector<LinearTap<T>> make_linear_taps(const int64_t in_size,
                                           const int64_t out_size) {
  std::vector<LinearTap<T>> taps(out_size);
  for (int64_t o = 0; o < out_size; ++o) {
    upsample_linear_tap<T>(o, in_size, out_size, &taps[o].lo, &taps[o].hi,
                           &taps[o].lambda);
  }
  return taps;
}

// The taps of make_linear_taps transposed (zero weights left out).
template <typename T>
ColumnTaps<T> linear_column_taps(const std::vector<LinearTap<T>>& taps) {
  std::vector<TapEntry<T>> entries;
  entries.reserve(2 * taps.size());
  for (int64_t o = 0; o < static_cast<int64_t>(taps.size()); ++o) {
    const T w_hi = taps[o].lambda;
    const T w_lo = T(1) - w_hi;
    if (w_lo != T(0)) entries.push_back({o, taps[o].lo, w_lo});
    if (w_hi != T(0)) entries.push_back({o, taps[o].hi, w_hi});
  }
  ColumnTaps<T> cols;
  build_column_taps<T>(entries, &cols);
  return cols;
}

// Indices of the RoIs of each image, in increasing order.
template <typename T>
std::vector<std::vector<int64_t>> rois_by_image(const T* rois,
                                                const int64_t num_rois,
                                                const int64_t batch) {
  std::vector<std::vector<int64_t>> groups(batch);
  for (int64_t p = 0; p < num_rois; ++p) {
    groups[static_cast<int64_t>(rois[p * 5])].push_back(p);
  }
  return groups;
}

// x[i] = exp(x[i]) for the softmax kernels. The float version vectorises
// with the baseline x86-64 instruction set (the extension is built without
// -mavx*, and std::exp stays scalar and would cost more than the rest of
// the blender): the argument is clamped to [-87.34, 88] in loops of their
// own (a comparison inside the main loop keeps GCC from vectorising it,
// as float compares may trap), then a branch-free loop does a Cody-Waite
// reduction x = n ln2 + r, |r| <= ln2 / 2 (n rounded with the 1.5 * 2^23
// trick, so that no float-to-int conversion is needed), a degree-7
// polynomial for exp(r) (Cephes' expf coefficients) and builds 2^n in the
// exponent bits. Relative error < 1e-7 (measured 8.3e-8 over [-87, 1]),
// i.e. float rounding level; results below the smallest normal float
// (x < -87.34, including -inf) come out as 1.2e-38 instead of 0, which a
// softmax cannot tell apart; NaN propagates. double uses std::exp.
template <typename T>
inline void blend_exp_inplace(T* x, const int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = std::exp(x[i]);
}

template <>
inline void blend_exp_inplace<float>(float* x, const int64_t n) {
  const float lo = -87.33654475f;  // log of the smallest normal float
  const float hi = 88.f;
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] < lo ? lo : x[i];
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] > hi ? hi : x[i];
  const float magic = 12582912.f;  // 1.5 * 2^23
  uint32_t magic_bits;
  std::memcpy(&magic_bits, &magic, sizeof(magic_bits));
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    // t = magic + n exactly, n = round(v / ln2) in [-126, 127].
    const float t = v * 1.44269504088896341f + magic;
    const float nf = t - magic;
    float r = v - nf * 0.693359375f;
    r = r - nf * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.f;
    uint32_t t_bits;
    std::memcpy(&t_bits, &t, sizeof(t_bits));
    const uint32_t scale_bits = (t_bits - magic_bits + 127u) << 23;
    float scale;
    std::memcpy(&scale, &scale_bits, sizeof(scale));
    x[i] = p * scale;
  }
}

// Softmax over K of K logit rows (logit + k * R), product with K value rows
// (value + k * value_stride) and sum over K: out[x] = sum_k exp(l_k[x] -
// lse[x]) v_k[x] with lse = logsumexp_k l_k[x] (written when lse !=
// nullptr). Overwrites the logit rows with exp(l_k - max_k l_k); mx and sum
// are R-long scratch buffers. The loops run over x so that they vectorise.
template <typename T>
inline void softmax_blend_row(T* logit, const T* value,
                              const int64_t value_stride, const int64_t K,
                              const int64_t R, T* mx, T* sum, T* out,
                              T* lse) {
  std::copy(logit, logit + R, mx);
  for (int64_t k = 1; k < K; ++k) {
    const T* lk = logit + k * R;
    for (int64_t x = 0; x < R; ++x) mx[x] = lk[x] > mx[x] ? lk[x] : mx[x];
  }
  for (int64_t k = 0; k < K; ++k) {
    T* lk = logit + k * R;
    for (int64_t x = 0; x < R; ++x) lk[x] -= mx[x];
  }
  blend_exp_inplace<T>(logit, K * R);
  std::fill(sum, sum + R, T(0));
  std::fill(out, out + R, T(0));
  for (int64_t k = 0; k < K; ++k) {
    const T* ek = logit + k * R;
    const T* vk = value + k * value_stride;
    for (int64_t x = 0; x < R; ++x) {
      sum[x] += ek[x];
      out[x] += ek[x] * vk[x];
    }
  }
  for (int64_t x = 0; x < R; ++x) out[x] /= sum[x];
  if (lse != nullptr) {
    for (int64_t x = 0; x < R; ++x) lse[x] = mx[x] + std::log(sum[x]);
  }
}

// Softmax rows from logit rows and a saved logsumexp: s_k[x] = exp(l_k[x] -
// lse[x]) for the K rows logit + k * R, in place.
template <typename T>
inline void softmax_rows_from_lse(T* logit, const T* lse, const int64_t K,
                                  const int64_t R) {
  for (int64_t k = 0; k < K; ++k) {
    T* lk = logit + k * R;
    for (int64_t x = 0; x < R; ++x) lk[x] -= lse[x];
  }
  blend_exp_inplace<T>(logit, K * R);
}

// Grain (items per task) of at::parallel_for for items of `work` each.
inline int64_t blend_grain(const int64_t work) {
  const int64_t w = work > 0 ? work : 1;
  const int64_t grain = at::internal::GRAIN_SIZE / w;
  return grain > 0 ? grain : 1;
}

}  // namespace mmdr1

#endif  // MMDR1_ROI_BLEND_CPU_HPP
