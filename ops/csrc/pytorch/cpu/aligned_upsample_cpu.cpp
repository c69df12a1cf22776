// Copyright (c) mmdr1 contributors. All rights reserved.
// CPU kernels of aligned upsampling (dr1mask spec section 6).
//
// The interpolation is separable, so each (n, c) plane is processed in two
// 1-D passes through a small buffer: forward interpolates along x (input
// rows -> buffer of H x fW), then along y (buffer -> fH x fW output rows, a
// blend of two contiguous rows that the compiler vectorises). The backward
// pass applies the transposed passes in the opposite order. Planes are
// independent and split across threads with at::parallel_for; every thread
// owns the planes it writes, so no atomics are needed.
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "aligned_upsample_utils.hpp"
#include "pytorch_cpp_helper.hpp"
#include "pytorch_device_registry.hpp"

namespace {

template <typename T>
struct Tap {
  int64_t idx0;
  int64_t idx1;
  T lambda;
};

template <typename T>
std::vector<Tap<T>> make_taps(const int64_t in_size, const int64_t factor) {
  std::vector<Tap<T>> taps(in_size * factor);
  for (int64_t o = 0; o < in_size * factor; ++o) {
    aligned_upsample_source_index<T>(o, factor, in_size, &taps[o].idx0,
                                     &taps[o].idx1, &taps[o].lambda);
  }
  return taps;
}

// Work per plane below which parallel_for keeps planes on one thread.
int64_t plane_grain(const int64_t work_per_plane) {
  const int64_t work = work_per_plane > 0 ? work_per_plane : 1;
  const int64_t grain = at::internal::GRAIN_SIZE / work;
  return grain > 0 ? grain : 1;
}

template <typename scalar_t>
void forward_kernel(const scalar_t* input, scalar_t* output,
                    const int64_t planes, const int64_t height,
                    const int64_t width, const int64_t factor) {
  const int64_t out_h = height * factor;
  const int64_t out_w = width * factor;
  const auto ty = make_taps<scalar_t>(height, factor);
  const auto tx = make_taps<scalar_t>(width, factor);
  at::parallel_for(
      0, planes, plane_grain(out_h * out_w),
      [&](int64_t begin, int64_t end) {
        std::vector<scalar_t> rows(height * out_w);
        for (int64_t p = begin; p < end; ++p) {
          const scalar_t* in = input + p * height * width;
          scalar_t* out = output + p * out_h * out_w;
          // Pass 1: along x, (H, W) -> (H, fW).
          for (int64_t r = 0; r < height; ++r) {
            const scalar_t* in_row = in + r * width;
            scalar_t* row = rows.data() + r * out_w;
            for (int64_t x = 0; x < out_w; ++x) {
              const Tap<scalar_t>& t = tx[x];
              row[x] = t.lambda == scalar_t(0)
                           ? in_row[t.idx0]
                           : (scalar_t(1) - t.lambda) * in_row[t.idx0] +
                                 t.lambda * in_row[t.idx1];
            }
          }
          // Pass 2: along y, (H, fW) -> (fH, fW).
          for (int64_t y = 0; y < out_h; ++y) {
            const Tap<scalar_t>& t = ty[y];
            const scalar_t* a = rows.data() + t.idx0 * out_w;
            scalar_t* out_row = out + y * out_w;
            if (t.lambda == scalar_t(0)) {
              for (int64_t x = 0; x < out_w; ++x) out_row[x] = a[x];
            } else {
              const scalar_t* b = rows.data() + t.idx1 * out_w;
              const scalar_t wa = scalar_t(1) - t.lambda;
              const scalar_t wb = t.lambda;
              for (int64_t x = 0; x < out_w; ++x) {
                out_row[x] = wa * a[x] + wb * b[x];
              }
            }
          }
        }
      });
}

template <typename scalar_t>
void backward_kernel(const scalar_t* grad_output, scalar_t* grad_input,
                     const int64_t planes, const int64_t height,
                     const int64_t width, const int64_t factor) {
  const int64_t out_h = height * factor;
  const int64_t out_w = width * factor;
  const auto ty = make_taps<scalar_t>(height, factor);
  const auto tx = make_taps<scalar_t>(width, factor);
  at::parallel_for(
      0, planes, plane_grain(out_h * out_w),
      [&](int64_t begin, int64_t end) {
        std::vector<scalar_t> rows(height * out_w);
        for (int64_t p = begin; p < end; ++p) {
          const scalar_t* go = grad_output + p * out_h * out_w;
          scalar_t* gi = grad_input + p * height * width;
          // Transposed pass 2: (fH, fW) -> (H, fW).
          std::fill(rows.begin(), rows.end(), scalar_t(0));
          for (int64_t y = 0; y < out_h; ++y) {
            const Tap<scalar_t>& t = ty[y];
            const scalar_t* g = go + y * out_w;
            scalar_t* a = rows.data() + t.idx0 * out_w;
            if (t.lambda == scalar_t(0)) {
              for (int64_t x = 0; x < out_w; ++x) a[x] += g[x];
            } else {
              scalar_t* b = rows.data() + t.idx1 * out_w;
              const scalar_t wa = scalar_t(1) - t.lambda;
              const scalar_t wb = t.lambda;
              for (int64_t x = 0; x < out_w; ++x) {
                a[x] += wa * g[x];
                b[x] += wb * g[x];
              }
            }
          }
          // Transposed pass 1: (H, fW) -> (H, W).
          std::fill(gi, gi + height * width, scalar_t(0));
          for (int64_t r = 0; r < height; ++r) {
            const scalar_t* row = rows.data() + r * out_w;
            scalar_t* gi_row = gi + r * width;
            for (int64_t x = 0; x < out_w; ++x) {
              const Tap<scalar_t>& t = tx[x];
              if (t.lambda == scalar_t(0)) {
                gi_row[t.idx0] += row[x];
              } else {
                gi_row[t.idx0] += (scalar_t(1) - t.lambda) * row[x];
                gi_row[t.idx1] += t.lambda * row[x];
              }
            }
          }
        }
      });
}

}  // namespace

// Shapes and dtypes are set by the public entry points in
// ../aligned_upsample.cpp, which allocate `output` / `grad_input` from their
// input; only the device and memory layout are checked here.
void aligned_upsample_forward_cpu(Tensor input, Tensor output,
                                  const int64_t factor) {
  CHECK_CPU_INPUT(input);
  CHECK_CPU_INPUT(output);
  const int64_t planes = input.size(0) * input.size(1);
  AT_DISPATCH_FLOATING_TYPES(
      input.scalar_type(), "aligned_upsample_forward_cpu", [&] {
        forward_kernel<scalar_t>(input.data_ptr<scalar_t>(),
                                 output.data_ptr<scalar_t>(), planes,
                                 input.size(2), input.size(3), factor);
      });
}

void aligned_upsample_backward_cpu(Tensor grad_output, Tensor grad_input,
                                   const int64_t factor) {
  CHECK_CPU_INPUT(grad_output);
  CHECK_CPU_INPUT(grad_input);
  const int64_t planes = grad_input.size(0) * grad_input.size(1);
  AT_DISPATCH_FLOATING_TYPES(
      grad_output.scalar_type(), "aligned_upsample_backward_cpu", [&] {
        backward_kernel<scalar_t>(grad_output.data_ptr<scalar_t>(),
                                  grad_input.data_ptr<scalar_t>(), planes,
                                  grad_input.size(2), grad_input.size(3),
                                  factor);
      });
}

void aligned_upsample_forward_impl(Tensor input, Tensor output,
                                   const int64_t factor);
void aligned_upsample_backward_impl(Tensor grad_output, Tensor grad_input,
                                    const int64_t factor);

REGISTER_DEVICE_IMPL(aligned_upsample_forward_impl, CPU,
                     aligned_upsample_forward_cpu);
REGISTER_DEVICE_IMPL(aligned_upsample_backward_impl, CPU,
                     aligned_upsample_backward_cpu);
