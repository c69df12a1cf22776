// Copyright (c) mmdr1 contributors. All rights reserved.
// CPU kernels of the fused DR1Mask factored attention (see
// ../factored_blend.cpp).
//
// factored_project forward: RoIs split across threads; per RoI and output
//   row, each of the C crop rows is formed in a thread-local buffer and
//   accumulated into the K projected rows, so the (P, C, R, R) crop is never
//   stored.
// factored_project backward: per basis plane (c, n) (parallel, c-major), the
//   RoIs of image n in increasing order: recompute the crop row of channel c,
//   accumulate grad_weight[p, :, c] (written only by this task) and scatter
//   sum_k w[p, k, c] grad_proj[p, k] through the transposed RoIAlign into
//   plane (n, c) (written only by this task). No atomics; the summation
//   order does not depend on the number of threads.
// factored_blend forward: RoIs split across threads; per RoI U^k diag(s^k)
//   is formed once (R x d), then per output row the K logit rows
//   Q^k[y, :] = sum_j (U^k diag(s^k))[y, j] V^k[j, :] and the softmax over K,
//   product and sum are taken in thread-local buffers.
// factored_blend backward: RoIs split into one contiguous chunk per thread;
//   grad_proj and grad_factors of a RoI are written by its chunk only, and
//   the shared grad_U / grad_V are accumulated per chunk and summed in chunk
//   order at the end. The reductions over pixels and RoIs (grad_factors,
//   grad_U, grad_V, grad_weight) accumulate in double.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "pytorch_cpp_helper.hpp"
#include "pytorch_device_registry.hpp"
#include "roi_blend_cpu.hpp"

namespace {

using mmdr1::RoITaps;

struct ProjectShape {
  int64_t batch, channels, height, width, num_rois, num_bases, res;
};

template <typename T>
void project_forward_kernel(const T* basis, const T* rois, const T* weight,
                            T* output, const ProjectShape& s,
                            const T spatial_scale,
                            const int64_t sampling_ratio) {
  const int64_t C = s.channels, K = s.num_bases, R = s.res;
  const int64_t plane = s.height * s.width;
  at::parallel_for(
      0, s.num_rois, mmdr1::blend_grain(C * R * R * 8),
      [&](int64_t begin, int64_t end) {
        RoITaps<T> taps;
        std::vector<T> crop(R);
        for (int64_t p = begin; p < end; ++p) {
          mmdr1::make_roi_taps<T>(rois + p * 5, spatial_scale, R,
                                  sampling_ratio, s.height, s.width, &taps);
          const T* base = basis + taps.batch * C * plane;
          const T* w = weight + p * K * C;
          T* out = output + p * K * R * R;
          std::fill(out, out + K * R * R, T(0));
          for (int64_t y = 0; y < R; ++y) {
            for (int64_t c = 0; c < C; ++c) {
              mmdr1::crop_row<T>(base + c * plane, s.width, taps, y, R,
                                 crop.data());
              for (int64_t k = 0; k < K; ++k) {
                const T wkc = w[k * C + c];
                T* dst = out + (k * R + y) * R;
                for (int64_t x = 0; x < R; ++x) dst[x] += wkc * crop[x];
              }
            }
          }
        }
      });
}

template <typename T>
void project_backward_kernel(const T* grad_output, const T* basis,
                             const T* rois, const T* weight, T* grad_basis,
                             T* grad_weight, const ProjectShape& s,
                             const T spatial_scale,
                             const int64_t sampling_ratio) {
  const int64_t C = s.channels, K = s.num_bases, R = s.res;
  const int64_t N = s.batch, P = s.num_rois;
  const int64_t plane = s.height * s.width;
  std::vector<RoITaps<T>> all_taps(P);
  at::parallel_for(0, P, 16, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      mmdr1::make_roi_taps<T>(rois + p * 5, spatial_scale, R, sampling_ratio,
                              s.height, s.width, &all_taps[p], true);
    }
  });
  const auto groups = mmdr1::rois_by_image<T>(rois, P, N);
  at::parallel_for(0, C * N, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> crop(R), gc(R), cols(s.width + 1);
    std::vector<double> gw(K);  // sums over R * R pixels: accumulate in double
    for (int64_t q = begin; q < end; ++q) {
      const int64_t c = q / N, n = q % N;
      const T* base = basis + (n * C + c) * plane;
      T* plane_grad = grad_basis + (n * C + c) * plane;
      for (const int64_t p : groups[n]) {
        const RoITaps<T>& taps = all_taps[p];
        const T* w = weight + p * K * C;
        const T* go = grad_output + p * K * R * R;
        std::fill(gw.begin(), gw.end(), 0.);
        for (int64_t y = 0; y < R; ++y) {
          mmdr1::crop_row<T>(base, s.width, taps, y, R, crop.data());
          std::fill(gc.begin(), gc.end(), T(0));
          for (int64_t k = 0; k < K; ++k) {
            const T* g = go + (k * R + y) * R;
            const T wkc = w[k * C + c];
            T dot = T(0);
            for (int64_t x = 0; x < R; ++x) {
              gc[x] += wkc * g[x];
              dot += g[x] * crop[x];
            }
            gw[k] += static_cast<double>(dot);
          }
          mmdr1::crop_row_backward<T>(gc.data(), s.width, taps, y,
                                      cols.data(), plane_grad);
        }
        for (int64_t k = 0; k < K; ++k) {
          grad_weight[(p * K + k) * C + c] = static_cast<T>(gw[k]);
        }
      }
    }
  });
}

struct BlendShape {
  int64_t num_rois, num_bases, res, rank;
};

// us[(k * R + y) * d + j] = U[k, y, j] * s[k, j] for one RoI.
template <typename T>
inline void scaled_u(const T* u, const T* factors, const BlendShape& s,
                     T* us) {
  const int64_t K = s.num_bases, R = s.res, d = s.rank;
  for (int64_t k = 0; k < K; ++k) {
    for (int64_t y = 0; y < R; ++y) {
      for (int64_t j = 0; j < d; ++j) {
        us[(k * R + y) * d + j] = u[(k * R + y) * d + j] * factors[k * d + j];
      }
    }
  }
}

// Row y of the K logit maps: q[k * R + x] = sum_j us[k, y, j] V[k, j, x].
template <typename T>
inline void logit_rows(const T* us, const T* v, const BlendShape& s,
                       const int64_t y, T* q) {
  const int64_t K = s.num_bases, R = s.res, d = s.rank;
  for (int64_t k = 0; k < K; ++k) {
    T* qk = q + k * R;
    std::fill(qk, qk + R, T(0));
    for (int64_t j = 0; j < d; ++j) {
      const T a = us[(k * R + y) * d + j];
      const T* vkj = v + (k * d + j) * R;
      for (int64_t x = 0; x < R; ++x) qk[x] += a * vkj[x];
    }
  }
}

template <typename T>
void blend_forward_kernel(const T* proj, const T* factors, const T* u,
                          const T* v, T* output, T* lse,
                          const BlendShape& s) {
  const int64_t K = s.num_bases, R = s.res, d = s.rank;
  at::parallel_for(
      0, s.num_rois, mmdr1::blend_grain(K * R * R * (d + 8)),
      [&](int64_t begin, int64_t end) {
        std::vector<T> us(K * R * d), q(K * R), mx(R), sum(R);
        for (int64_t p = begin; p < end; ++p) {
          scaled_u<T>(u, factors + p * K * d, s, us.data());
          const T* r = proj + p * K * R * R;
          for (int64_t y = 0; y < R; ++y) {
            logit_rows<T>(us.data(), v, s, y, q.data());
            T* out = output + (p * R + y) * R;
            T* lse_row = lse == nullptr ? nullptr : lse + (p * R + y) * R;
            mmdr1::softmax_blend_row<T>(q.data(), r + y * R, R * R, K, R,
                                        mx.data(), sum.data(), out, lse_row);
          }
        }
      });
}

template <typename T>
void blend_backward_kernel(const T* grad_output, const T* proj,
                           const T* factors, const T* u, const T* v,
                           const T* lse, T* grad_proj, T* grad_factors,
                           T* grad_u, T* grad_v, const BlendShape& s) {
  const int64_t K = s.num_bases, R = s.res, d = s.rank, P = s.num_rois;
  const int64_t size_u = K * R * d;  // == size of V
  const int64_t chunks =
      std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), P));
  // Per-chunk partial sums of grad_U and grad_V, in double: they add up
  // P * R (grad_U) and P * R * R (grad_V) terms.
  std::vector<double> partial(chunks * 2 * size_u, 0.);
  at::parallel_for(0, chunks, 1, [&](int64_t c_begin, int64_t c_end) {
    std::vector<T> us(K * R * d), q(K * R), out(R);
    std::vector<double> gs(K * d);
    for (int64_t chunk = c_begin; chunk < c_end; ++chunk) {
      double* gu = partial.data() + chunk * 2 * size_u;
      double* gv = gu + size_u;
      const int64_t p_begin = P * chunk / chunks;
      const int64_t p_end = P * (chunk + 1) / chunks;
      for (int64_t p = p_begin; p < p_end; ++p) {
        const T* sp = factors + p * K * d;
        scaled_u<T>(u, sp, s, us.data());
        std::fill(gs.begin(), gs.end(), 0.);
        const T* r = proj + p * K * R * R;
        T* gr = grad_proj + p * K * R * R;
        for (int64_t y = 0; y < R; ++y) {
          logit_rows<T>(us.data(), v, s, y, q.data());
          const T* go = grad_output + (p * R + y) * R;
          const T* lse_row = lse + (p * R + y) * R;
          // q becomes the softmax s_k = exp(Q_k - lse), out the output;
          // gr row k holds g * s_k.
          mmdr1::softmax_rows_from_lse<T>(q.data(), lse_row, K, R);
          std::fill(out.begin(), out.end(), T(0));
          for (int64_t k = 0; k < K; ++k) {
            const T* sk = q.data() + k * R;
            const T* rk = r + (k * R + y) * R;
            T* grk = gr + (k * R + y) * R;
            for (int64_t x = 0; x < R; ++x) {
              out[x] += sk[x] * rk[x];
              grk[x] = go[x] * sk[x];
            }
          }
          for (int64_t k = 0; k < K; ++k) {
            const T* rk = r + (k * R + y) * R;
            const T* grk = gr + (k * R + y) * R;
            T* qk = q.data() + k * R;
            // qk := d out / d Q^k[y, :] = g s_k (r_k - out).
            for (int64_t x = 0; x < R; ++x) qk[x] = grk[x] * (rk[x] - out[x]);
            for (int64_t j = 0; j < d; ++j) {
              const T* vkj = v + (k * d + j) * R;
              double t = 0.;
              for (int64_t x = 0; x < R; ++x) {
                t += static_cast<double>(qk[x]) * static_cast<double>(vkj[x]);
              }
              gs[k * d + j] += static_cast<double>(u[(k * R + y) * d + j]) * t;
              gu[(k * R + y) * d + j] += static_cast<double>(sp[k * d + j]) * t;
              const double a = static_cast<double>(us[(k * R + y) * d + j]);
              double* gvkj = gv + (k * d + j) * R;
              for (int64_t x = 0; x < R; ++x) {
                gvkj[x] += a * static_cast<double>(qk[x]);
              }
            }
          }
        }
        for (int64_t i = 0; i < K * d; ++i) {
          grad_factors[p * K * d + i] = static_cast<T>(gs[i]);
        }
      }
    }
  });
  for (int64_t i = 0; i < size_u; ++i) {
    double su = 0., sv = 0.;
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      su += partial[chunk * 2 * size_u + i];
      sv += partial[chunk * 2 * size_u + size_u + i];
    }
    grad_u[i] = static_cast<T>(su);
    grad_v[i] = static_cast<T>(sv);
  }
}

// mmcv passes spatial_scale to its kernels as a C float.
template <typename T>
T as_mmcv_scale(const double spatial_scale) {
  return static_cast<T>(static_cast<float>(spatial_scale));
}

ProjectShape project_shape(const Tensor& basis, const Tensor& rois,
                           const Tensor& weight, const int64_t res) {
  return {basis.size(0), basis.size(1), basis.size(2), basis.size(3),
          rois.size(0),  weight.size(1), res};
}

BlendShape blend_shape(const Tensor& proj, const Tensor& factors) {
  return {proj.size(0), proj.size(1), proj.size(2), factors.size(2)};
}

}  // namespace

// Shapes and dtypes are checked by the entry points in
// ../factored_blend.cpp.
void factored_project_forward_cpu(Tensor basis, Tensor rois, Tensor weight,
                                  Tensor output, const double spatial_scale,
                                  const int64_t sampling_ratio) {
  CHECK_CPU_INPUT(basis);
  CHECK_CPU_INPUT(rois);
  CHECK_CPU_INPUT(weight);
  CHECK_CPU_INPUT(output);
  AT_DISPATCH_FLOATING_TYPES(
      basis.scalar_type(), "factored_project_forward_cpu", [&] {
        const scalar_t scale = as_mmcv_scale<scalar_t>(spatial_scale);
        mmdr1::check_rois_cpu<scalar_t>(rois.data_ptr<scalar_t>(),
                                        rois.size(0), basis.size(0), scale,
                                        "factored_project");
        project_forward_kernel<scalar_t>(
            basis.data_ptr<scalar_t>(), rois.data_ptr<scalar_t>(),
            weight.data_ptr<scalar_t>(), output.data_ptr<scalar_t>(),
            project_shape(basis, rois, weight, output.size(2)), scale,
            sampling_ratio);
      });
}

void factored_project_backward_cpu(Tensor grad_output, Tensor basis,
                                   Tensor rois, Tensor weight,
                                   Tensor grad_basis, Tensor grad_weight,
                                   const double spatial_scale,
                                   const int64_t sampling_ratio) {
  CHECK_CPU_INPUT(grad_output);
  CHECK_CPU_INPUT(basis);
  CHECK_CPU_INPUT(rois);
  CHECK_CPU_INPUT(weight);
  CHECK_CPU_INPUT(grad_basis);
  CHECK_CPU_INPUT(grad_weight);
  AT_DISPATCH_FLOATING_TYPES(
      basis.scalar_type(), "factored_project_backward_cpu", [&] {
        const scalar_t scale = as_mmcv_scale<scalar_t>(spatial_scale);
        mmdr1::check_rois_cpu<scalar_t>(rois.data_ptr<scalar_t>(),
                                        rois.size(0), basis.size(0), scale,
                                        "factored_project");
        project_backward_kernel<scalar_t>(
            grad_output.data_ptr<scalar_t>(), basis.data_ptr<scalar_t>(),
            rois.data_ptr<scalar_t>(), weight.data_ptr<scalar_t>(),
            grad_basis.data_ptr<scalar_t>(), grad_weight.data_ptr<scalar_t>(),
            project_shape(basis, rois, weight, grad_output.size(2)), scale,
            sampling_ratio);
      });
}

void factored_blend_forward_cpu(Tensor proj, Tensor factors, Tensor u,
                                Tensor v, Tensor output, Tensor lse) {
  CHECK_CPU_INPUT(proj);
  CHECK_CPU_INPUT(factors);
  CHECK_CPU_INPUT(u);
  CHECK_CPU_INPUT(v);
  CHECK_CPU_INPUT(output);
  CHECK_CPU_INPUT(lse);
  AT_DISPATCH_FLOATING_TYPES(
      proj.scalar_type(), "factored_blend_forward_cpu", [&] {
        blend_forward_kernel<scalar_t>(
            proj.data_ptr<scalar_t>(), factors.data_ptr<scalar_t>(),
            u.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(),
            output.data_ptr<scalar_t>(),
            lse.numel() > 0 ? lse.data_ptr<scalar_t>() : nullptr,
            blend_shape(proj, factors));
      });
}

void factored_blend_backward_cpu(Tensor grad_output, Tensor proj,
                                 Tensor factors, Tensor u, Tensor v,
                                 Tensor lse, Tensor grad_proj,
                                 Tensor grad_factors, Tensor grad_u,
                                 Tensor grad_v) {
  CHECK_CPU_INPUT(grad_output);
  CHECK_CPU_INPUT(proj);
  CHECK_CPU_INPUT(factors);
  CHECK_CPU_INPUT(u);
  CHECK_CPU_INPUT(v);
  CHECK_CPU_INPUT(lse);
  CHECK_CPU_INPUT(grad_proj);
  CHECK_CPU_INPUT(grad_factors);
  CHECK_CPU_INPUT(grad_u);
  CHECK_CPU_INPUT(grad_v);
  AT_DISPATCH_FLOATING_TYPES(
      proj.scalar_type(), "factored_blend_backward_cpu", [&] {
        blend_backward_kernel<scalar_t>(
            grad_output.data_ptr<scalar_t>(), proj.data_ptr<scalar_t>(),
            factors.data_ptr<scalar_t>(), u.data_ptr<scalar_t>(),
            v.data_ptr<scalar_t>(), lse.data_ptr<scalar_t>(),
            grad_proj.data_ptr<scalar_t>(), grad_factors.data_ptr<scalar_t>(),
            grad_u.data_ptr<scalar_t>(), grad_v.data_ptr<scalar_t>(),
            blend_shape(proj, factors));
      });
}

void factored_project_forward_impl(Tensor basis, Tensor rois, Tensor weight,
                                   Tensor output, const double spatial_scale,
                                   const int64_t sampling_ratio);
void factored_project_backward_impl(Tensor grad_output, Tensor basis,
                                    Tensor rois, Tensor weight,
                                    Tensor grad_basis, Tensor grad_weight,
                                    const double spatial_scale,
                                    const int64_t sampling_ratio);
void factored_blend_forward_impl(Tensor proj, Tensor factors, Tensor u,
                                 Tensor v, Tensor output, Tensor lse);
void factored_blend_backward_impl(Tensor grad_output, Tensor proj,
                                  Tensor factors, Tensor u, Tensor v,
                                  Tensor lse, Tensor grad_proj,
                                  Tensor grad_factors, Tensor grad_u,
                                  Tensor grad_v);

REGISTER_DEVICE_IMPL(factored_project_forward_impl, CPU,
                     factored_project_forward_cpu);
REGISTER_DEVICE_IMPL(factored_project_backward_impl, CPU,
                     factored_project_backward_cpu);
REGISTER_DEVICE_IMPL(factored_blend_forward_impl, CPU,
                     factored_blend_forward_cpu);
REGISTER_DEVICE_IMPL(factored_blend_backward_impl, CPU,
                     factored_blend_backward_cpu);
