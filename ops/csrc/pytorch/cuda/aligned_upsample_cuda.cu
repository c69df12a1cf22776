// Copyright (c) mmdr1 contributors. All rights reserved.
// CUDA kernels of aligned upsampling (dr1mask spec section 6).
//
// Forward: one thread per output pixel, bilinear blend of four input pixels.
// Backward: one thread per input pixel that gathers the weighted gradients of
// the (at most (2f - 1) x (2f - 1)) output pixels that sample it, so it needs
// no atomics and is deterministic. Accumulation is in at::opmath_type (float
// for half).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include "aligned_upsample_utils.hpp"
#include "mmdr1_cuda_helper.hpp"
#include "pytorch_cpp_helper.hpp"

// Kernels live in a named namespace: nvcc's registration stub cannot resolve
// kernels in an anonymous namespace once `using namespace at;` (from
// pytorch_cpp_helper.hpp) makes at's anonymous namespaces visible too.
namespace mmdr1 {

template <typename scalar_t>
__global__ void aligned_upsample_forward_cuda_kernel(
    const int64_t nthreads, const scalar_t* __restrict__ input,
    scalar_t* __restrict__ output, const int64_t height, const int64_t width,
    const int64_t factor) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t out_h = height * factor;
  const int64_t out_w = width * factor;
  MMDR1_CUDA_1D_KERNEL_LOOP(index, nthreads) {
    const int64_t x = index % out_w;
    const int64_t y = (index / out_w) % out_h;
    const int64_t plane = index / (out_w * out_h);
    int64_t y0, y1, x0, x1;
    opmath_t ly, lx;
    aligned_upsample_source_index<opmath_t>(y, factor, height, &y0, &y1, &ly);
    aligned_upsample_source_index<opmath_t>(x, factor, width, &x0, &x1, &lx);
    const scalar_t* in = input + plane * height * width;
    const opmath_t v00 = static_cast<opmath_t>(in[y0 * width + x0]);
    const opmath_t v01 = static_cast<opmath_t>(in[y0 * width + x1]);
    const opmath_t v10 = static_cast<opmath_t>(in[y1 * width + x0]);
    const opmath_t v11 = static_cast<opmath_t>(in[y1 * width + x1]);
    const opmath_t one = static_cast<opmath_t>(1);
    const opmath_t top = (one - lx) * v00 + lx * v01;
    const opmath_t bottom = (one - lx) * v10 + lx * v11;
    output[index] = static_cast<scalar_t>((one - ly) * top + ly * bottom);
  }
}

template <typename scalar_t>
__global__ void aligned_upsample_backward_cuda_kernel(
    const int64_t nthreads, const scalar_t* __restrict__ grad_output,
    scalar_t* __restrict__ grad_input, const int64_t height,
    const int64_t width, const int64_t factor) {
  using opmath_t = at::opmath_type<scalar_t>;
  const int64_t out_h = height * factor;
  const int64_t out_w = width * factor;
  MMDR1_CUDA_1D_KERNEL_LOOP(index, nthreads) {
    const int64_t j = index % width;
    const int64_t i = (index / width) % height;
    const int64_t plane = index / (width * height);
    int64_t y_first, y_last, x_first, x_last;
    aligned_upsample_output_range(i, factor, height, &y_first, &y_last);
    aligned_upsample_output_range(j, factor, width, &x_first, &x_last);
    const scalar_t* go = grad_output + plane * out_h * out_w;
    opmath_t sum = static_cast<opmath_t>(0);
    for (int64_t y = y_first; y <= y_last; ++y) {
      const opmath_t wy =
          aligned_upsample_weight<opmath_t>(y, i, factor, height);
      if (wy == static_cast<opmath_t>(0)) continue;
      opmath_t row_sum = static_cast<opmath_t>(0);
      for (int64_t x = x_first; x <= x_last; ++x) {
        const opmath_t wx =
            aligned_upsample_weight<opmath_t>(x, j, factor, width);
        row_sum += wx * static_cast<opmath_t>(go[y * out_w + x]);
      }
      sum += wy * row_sum;
    }
    grad_input[index] = static_cast<scalar_t>(sum);
  }
}

}  // namespace mmdr1

void AlignedUpsampleForwardCUDAKernelLauncher(const Tensor input,
                                              Tensor output,
                                              const int64_t factor) {
  const int64_t nthreads = output.numel();
  if (nthreads == 0) return;
  const int64_t height = input.size(2);
  const int64_t width = input.size(3);
  const c10::cuda::CUDAGuard device_guard(input.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND_HALF(
      input.scalar_type(), "aligned_upsample_forward_cuda", [&] {
        mmdr1::aligned_upsample_forward_cuda_kernel<scalar_t>
            <<<mmdr1_get_blocks(nthreads), MMDR1_THREADS_PER_BLOCK, 0,
               stream>>>(nthreads, input.data_ptr<scalar_t>(),
                         output.data_ptr<scalar_t>(), height, width, factor);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
}

void AlignedUpsampleBackwardCUDAKernelLauncher(const Tensor grad_output,
                                               Tensor grad_input,
                                               const int64_t factor) {
  const int64_t nthreads = grad_input.numel();
  if (nthreads == 0) return;
  const int64_t height = grad_input.size(2);
  const int64_t width = grad_input.size(3);
  const c10::cuda::CUDAGuard device_guard(grad_output.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND_HALF(
      grad_output.scalar_type(), "aligned_upsample_backward_cuda", [&] {
        mmdr1::aligned_upsample_backward_cuda_kernel<scalar_t>
            <<<mmdr1_get_blocks(nthreads), MMDR1_THREADS_PER_BLOCK, 0,
               stream>>>(nthreads, grad_output.data_ptr<scalar_t>(),
                         grad_input.data_ptr<scalar_t>(), height, width,
                         factor);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
}
