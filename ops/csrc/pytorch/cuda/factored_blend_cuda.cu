// Copyright (c) mmdr1 contributors. All rights reserved.
// CUDA kernels of the fused DR1Mask factored attention (see
// ../factored_blend.cpp).
//
// factored_project forward: one thread per projected pixel (p, k, y, x),
//   summing w[p, k, c] times the RoIAlign value of channel c over c.
// factored_project backward: one thread per (p, c, y, x) scatters
//   sum_k w[p, k, c] grad_proj[p, k, y, x] into the basis with atomic adds;
//   one block per (p, k, c) reduces grad_proj[p, k] * crop[p, c] over the
//   pixels for grad_weight.
// factored_blend forward: one thread per output pixel; it forms
//   Q^k[y, x] = sum_j U[k, y, j] s[p, k, j] V[k, j, x] and takes the softmax
//   over K online (running maximum).
// factored_blend backward: one thread per output pixel writes grad_proj and
//   dQ = g s_k (r_k - out) (P, K, R, R); the launcher contracts dQ with U, V
//   and s into grad_factors, grad_U and grad_V with ATen matmuls, which
//   avoids P * R * R atomic adds onto the few K * R * d elements of U and V.
// Arithmetic is in at::opmath_type (float for half).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include "mmdr1_cuda_helper.hpp"
#include "pytorch_cpp_helper.hpp"
#include "roi_blend_utils.hpp"

namespace mmdr1 {


template <typename scalar_t, typename T>
__device__ inline RoIAlignGeometry<T> factored_cuda_geometry(
    const scalar_t* roi, const T spatial_scale, const int64_t pooled,
    const int64_t sampling_ratio) {
  T box[5];
#pragma unroll
  for (int i = 0; i < 5; ++i) box[i] = static_cast<T>(roi[i]);
  return roi_align_geometry<T>(box, spatial_scale, pooled, sampling_ratio);
}

// RoIAlign value of bin (ph, pw) of one H x W plane (mmcv's arithmetic).
template <typename scalar_t, typename T>
__device__ inline T factored_cuda_crop(const scalar_t* plane,
                                       const int64_t height,
                                       const int64_t width,
                                       const RoIAlignGeometry<T>& g,
                                       const int64_t ph, const int64_t pw) {
  T val = static_cast<T>(0);
  for (int iy = 0; iy < g.grid_h; ++iy) {
    int64_t y0, y1;
    T wy0, wy1;
    roi_align_axis_tap<T>(
        roi_align_sample_coord<T>(g.start_h, g.bin_h, ph, iy, g.grid_h),
        height, &y0, &y1, &wy0, &wy1);
    for (int ix = 0; ix < g.grid_w; ++ix) {
      int64_t x0, x1;
      T wx0, wx1;
      roi_align_axis_tap<T>(
          roi_align_sample_coord<T>(g.start_w, g.bin_w, pw, ix, g.grid_w),
          width, &x0, &x1, &wx0, &wx1);
      const T w1 = wy0 * wx0, w2 = wy0 * wx1, w3 = wy1 * wx0, w4 = wy1 * wx1;
      val += w1 * static_cast<T>(plane[y0 * width + x0]) +
             w2 * static_cast<T>(plane[y0 * width + x1]) +
             w3 * static_cast<T>(plane[y1 * width + x0]) +
             w4 * static_cast<T>(plane[y1 * width + x1]);
    }
  }
  return val / g.count;
}

template <typename scalar_t>
__global__ void factored_project_forward_cuda_kernel(
    const int64_t nthreads, const scalar_t* __restrict__ basis,
    const scalar_t* __restrict__ rois, const scalar_t* __restrict__ weight,
    scalar_t* __restrict__ output, const int64_t channels,
    const int64_t height, const int64_t width, const int64_t num_bases,
    const int64_t res, const at::opmath_type<scalar_t> spatial_scale,
    const int64_t sampling_ratio) {
  using T = at::opmath_type<scalar_t>;
  const int64_t plane = height * width;
  MMDR1_CUDA_1D_KERNEL_LOOP(index, nthreads) {
    const int64_t x = index % res;
    const int64_t y = (index / res) % res;
    const int64_t k = (index / (res * res)) % num_bases;
    const int64_t p = index / (res * res * num_bases);
    const RoIAlignGeometry<T> g = factored_cuda_geometry<scalar_t, T>(
        rois + p * 5, spatial_scale, res, sampling_ratio);
    const scalar_t* base = basis + g.batch * channels * plane;
    const scalar_t* w = weight + (p * num_bases + k) * channels;
    T acc = static_cast<T>(0);
    for (int64_t c = 0; c < channels; ++c) {
      acc += static_cast<T>(w[c]) * factored_cuda_crop<scalar_t, T>(
                                        base + c * plane, height, width, g,
                                        y, x);
    }
    output[index] = static_cast<scalar_t>(acc);
  }
}

// One thread per (p, c, y, x): scatter the crop gradient of channel c.
template <typename scalar_t>
__global__ void factored_project_backward_basis_cuda_kernel(
    const int64_t nthreads, const scalar_t* __restrict__ grad_output,
    const scalar_t* __restrict__ rois, const scalar_t* __restrict__ weight,
    scalar_t* __restrict__ grad_basis, const int64_t channels,
    const int64_t height, const int64_t width, const int64_t num_bases,
    const int64_t res, const at::opmath_type<scalar_t> spatial_scale,
    const int64_t sampling_ratio) {
  using T = at::opmath_type<scalar_t>;
  const int64_t plane = height * width;
  const int64_t pixels = res * res;
  MMDR1_CUDA_1D_KERNEL_LOOP(index, nthreads) {
    const int64_t pix = index % pixels;
    const int64_t x = pix % res;
    const int64_t y = pix / res;
    const int64_t c = (index / pixels) % channels;
    const int64_t p = index / (pixels * channels);
    const RoIAlignGeometry<T> g = factored_cuda_geometry<scalar_t, T>(
        rois + p * 5, spatial_scale, res, sampling_ratio);
    T grad = static_cast<T>(0);
    for (int64_t k = 0; k < num_bases; ++k) {
      grad += static_cast<T>(weight[(p * num_bases + k) * channels + c]) *
              static_cast<T>(grad_output[(p * num_bases + k) * pixels + pix]);
    }
    const T gc = grad / g.count;
    scalar_t* plane_grad = grad_basis + (g.batch * channels + c) * plane;
    for (int iy = 0; iy < g.grid_h; ++iy) {
      int64_t y0, y1;
      T wy0, wy1;
      roi_align_axis_tap<T>(
          roi_align_sample_coord<T>(g.start_h, g.bin_h, y, iy, g.grid_h),
          height, &y0, &y1, &wy0, &wy1);
      if (wy0 == static_cast<T>(0) && wy1 == static_cast<T>(0)) continue;
      for (int ix = 0; ix < g.grid_w; ++ix) {
        int64_t x0, x1;
        T wx0, wx1;
        roi_align_axis_tap<T>(
            roi_align_sample_coord<T>(g.start_w, g.bin_w, x, ix, g.grid_w),
            width, &x0, &x1, &wx0, &wx1);
        if (wx0 == static_cast<T>(0) && wx1 == static_cast<T>(0)) continue;
        gpuAtomicAdd(plane_grad + y0 * width + x0,
                     static_cast<scalar_t>(gc * wy0 * wx0));
        gpuAtomicAdd(plane_grad + y0 * width + x1,
                     static_cast<scalar_t>(gc * wy0 * wx1));
        gpuAtomicAdd(plane_grad + y1 * width + x0,
                     static_cast<scalar_t>(gc * wy1 * wx0));
        gpuAtomicAdd(plane_grad + y1 * width + x1,
                     static_cast<scalar_t>(gc * wy1 * wx1));
      }
    }
  }
}

// One block of MMDR1_THREADS_PER_BLOCK threads per (p, k, c):
// grad_weight[p, k, c] = sum over pixels of grad_proj[p, k] * crop[p, c].
template <typename scalar_t>
__global__ void factored_project_backward_weight_cuda_kernel(
    const int64_t nblocks, const scalar_t* __restrict__ grad_output,
    const scalar_t* __restrict__ basis, const scalar_t* __restrict__ rois,
    scalar_t* __restrict__ grad_weight, const int64_t channels,
    const int64_t height, const int64_t width, const int64_t num_bases,
    const int64_t res, const at::opmath_type<scalar_t> spatial_scale,
    const int64_t sampling_ratio) {
  using T = at::opmath_type<scalar_t>;
  __shared__ T partial[MMDR1_THREADS_PER_BLOCK];
  const int64_t plane = height * width;
  const int64_t pixels = res * res;
  for (int64_t block = blockIdx.x; block < nblocks; block += gridDim.x) {
    const int64_t c = block % channels;
    const int64_t k = (block / channels) % num_bases;
    const int64_t p = block / (channels * num_bases);
    const RoIAlignGeometry<T> g = factored_cuda_geometry<scalar_t, T>(
        rois + p * 5, spatial_scale, res, sampling_ratio);
    const scalar_t* base = basis + (g.batch * channels + c) * plane;
    const scalar_t* go = grad_output + (p * num_bases + k) * pixels;
    T acc = static_cast<T>(0);
    for (int64_t pix = threadIdx.x; pix < pixels; pix += blockDim.x) {
      acc += static_cast<T>(go[pix]) *
             factored_cuda_crop<scalar_t, T>(base, height, width, g,
                                             pix / res, pix % res);
    }
    partial[threadIdx.x] = acc;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
      if (threadIdx.x < stride) {
        partial[threadIdx.x] += partial[threadIdx.x + stride];
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      grad_weight[block] = static_cast<scalar_t>(partial[0]);
    }
    __syncthreads();
  }
}

// Q^k[y, x] for RoI p.
template <typename scalar_t, typename T>
__device__ inline T factored_cuda_logit(const scalar_t* u, const scalar_t* s,
                                        const scalar_t* v, const int64_t k,
                                        const int64_t y, const int64_t x,
                                        const int64_t res,
                                        const int64_t rank) {
  T q = static_cast<T>(0);
  for (int64_t j = 0; j < rank; ++j) {
    q += static_cast<T>(u[(k * res + y) * rank + j]) *
         static_cast<T>(s[k * rank + j]) *
         static_cast<T>(v[(k * rank + j) * res + x]);
  }
  return q;
}

template <typename scalar_t>
__global__ void factored_blend_forward_cuda_kernel(
    const int64_t nthreads, const scalar_t* __restrict__ proj,
    const scalar_t* __restrict__ factors, const scalar_t* __restrict__ u,
    const scalar_t* __restrict__ v, scalar_t* __restrict__ output,
    scalar_t* __restrict__ lse, const int64_t num_bases, const int64_t res,
    const int64_t rank) {
  using T = at::opmath_type<scalar_t>;
  const int64_t pixels = res * res;
  MMDR1_CUDA_1D_KERNEL_LOOP(index, nthreads) {
    const int64_t pix = index % pixels;
    const int64_t x = pix % res;
    const int64_t y = pix / res;
    const int64_t p = index / pixels;
    const scalar_t* s = factors + p * num_bases * rank;
    const scalar_t* r = proj + p * num_bases * pixels + pix;
    Mmdr1OnlineSoftmaxBlend<T> blend(
        factored_cuda_logit<scalar_t, T>(u, s, v, 0, y, x, res, rank),
        static_cast<T>(r[0]));
    for (int64_t k = 1; k < num_bases; ++k) {
      blend.push(factored_cuda_logit<scalar_t, T>(u, s, v, k, y, x, res, rank),
                 static_cast<T>(r[k * pixels]));
    }
    output[index] = static_cast<scalar_t>(blend.value());
    if (lse != nullptr) {
      lse[index] = static_cast<scalar_t>(blend.lse());
    }
  }
}

template <typename scalar_t>
__global__ void factored_blend_backward_cuda_kernel(
    const int64_t nthreads, const scalar_t* __restrict__ grad_output,
    const scalar_t* __restrict__ proj, const scalar_t* __restrict__ factors,
    const scalar_t* __restrict__ u, const scalar_t* __restrict__ v,
    const scalar_t* __restrict__ lse, scalar_t* __restrict__ grad_proj,
    scalar_t* __restrict__ grad_logits, const int64_t num_bases,
    const int64_t res, const int64_t rank) {
  using T = at::opmath_type<scalar_t>;
  const int64_t pixels = res * res;
  MMDR1_CUDA_1D_KERNEL_LOOP(index, nthreads) {
    const int64_t pix = index % pixels;
    const int64_t x = pix % res;
    const int64_t y = pix / res;
    const int64_t p = index / pixels;
    const scalar_t* s = factors + p * num_bases * rank;
    const int64_t offset = p * num_bases * pixels + pix;
    const T go = static_cast<T>(grad_output[index]);
    const T l = static_cast<T>(lse[index]);
    T out = static_cast<T>(0);
    for (int64_t k = 0; k < num_bases; ++k) {
      const T q = factored_cuda_logit<scalar_t, T>(u, s, v, k, y, x, res,
                                                   rank);
      out += mmdr1_exp(q - l) *
             static_cast<T>(proj[offset + k * pixels]);
    }
    for (int64_t k = 0; k < num_bases; ++k) {
      const T q = factored_cuda_logit<scalar_t, T>(u, s, v, k, y, x, res,
                                                   rank);
      const T gs = go * mmdr1_exp(q - l);  // g * s_k
      const T rk = static_cast<T>(proj[offset + k * pixels]);
      grad_proj[offset + k * pixels] = static_cast<scalar_t>(gs);
      grad_logits[offset + k * pixels] = static_cast<scalar_t>(gs * (rk - out));
    }
  }
}

}  // namespace mmdr1

void FactoredProjectForwardCUDAKernelLauncher(const Tensor basis,
                                              const Tensor rois,
                                              const Tensor weight,
                                              Tensor output,
                                              const double spatial_scale,
                                              const int64_t sampling_ratio) {
  const int64_t nthreads = output.numel();
  if (nthreads == 0) return;
  const c10::cuda::CUDAGuard device_guard(basis.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND_HALF(
      basis.scalar_type(), "factored_project_forward_cuda", [&] {
        using opmath_t = at::opmath_type<scalar_t>;
        mmdr1::factored_project_forward_cuda_kernel<scalar_t>
            <<<mmdr1_get_blocks(nthreads), MMDR1_THREADS_PER_BLOCK, 0,
               stream>>>(
                nthreads, basis.data_ptr<scalar_t>(),
                rois.data_ptr<scalar_t>(), weight.data_ptr<scalar_t>(),
                output.data_ptr<scalar_t>(), basis.size(1), basis.size(2),
                basis.size(3), weight.size(1), output.size(2),
                static_cast<opmath_t>(static_cast<float>(spatial_scale)),
                sampling_ratio);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
}

void FactoredProjectBackwardCUDAKernelLauncher(
    const Tensor grad_output, const Tensor basis, const Tensor rois,
    const Tensor weight, Tensor grad_basis, Tensor grad_weight,
    const double spatial_scale, const int64_t sampling_ratio) {
  const int64_t num_rois = rois.size(0);
  const int64_t channels = basis.size(1);
  const int64_t num_bases = weight.size(1);
  const int64_t res = grad_output.size(2);
  if (num_rois == 0) return;
  const c10::cuda::CUDAGuard device_guard(basis.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND_HALF(
      basis.scalar_type(), "factored_project_backward_cuda", [&] {
        using opmath_t = at::opmath_type<scalar_t>;
        const opmath_t scale =
            static_cast<opmath_t>(static_cast<float>(spatial_scale));
        const int64_t nthreads = num_rois * channels * res * res;
        mmdr1::factored_project_backward_basis_cuda_kernel<scalar_t>
            <<<mmdr1_get_blocks(nthreads), MMDR1_THREADS_PER_BLOCK, 0,
               stream>>>(nthreads, grad_output.data_ptr<scalar_t>(),
                         rois.data_ptr<scalar_t>(),
                         weight.data_ptr<scalar_t>(),
                         grad_basis.data_ptr<scalar_t>(), channels,
                         basis.size(2), basis.size(3), num_bases, res, scale,
                         sampling_ratio);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        const int64_t nblocks = num_rois * num_bases * channels;
        const int grid = static_cast<int>(
            std::min<int64_t>(nblocks, MMDR1_MAX_BLOCKS));
        mmdr1::factored_project_backward_weight_cuda_kernel<scalar_t>
            <<<grid, MMDR1_THREADS_PER_BLOCK, 0, stream>>>(
                nblocks, grad_output.data_ptr<scalar_t>(),
                basis.data_ptr<scalar_t>(), rois.data_ptr<scalar_t>(),
                grad_weight.data_ptr<scalar_t>(), channels, basis.size(2),
                basis.size(3), num_bases, res, scale, sampling_ratio);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
}

void FactoredBlendForwardCUDAKernelLauncher(const Tensor proj,
                                            const Tensor factors,
                                            const Tensor u, const Tensor v,
                                            Tensor output, Tensor lse) {
  const int64_t nthreads = output.numel();
  if (nthreads == 0) return;
  const c10::cuda::CUDAGuard device_guard(proj.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND_HALF(
      proj.scalar_type(), "factored_blend_forward_cuda", [&] {
        mmdr1::factored_blend_forward_cuda_kernel<scalar_t>
            <<<mmdr1_get_blocks(nthreads), MMDR1_THREADS_PER_BLOCK, 0,
               stream>>>(
                nthreads, proj.data_ptr<scalar_t>(),
                factors.data_ptr<scalar_t>(), u.data_ptr<scalar_t>(),
                v.data_ptr<scalar_t>(), output.data_ptr<scalar_t>(),
                lse.numel() > 0 ? lse.data_ptr<scalar_t>() : nullptr,
                proj.size(1), proj.size(2), factors.size(2));
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
}

void FactoredBlendBackwardCUDAKernelLauncher(
    const Tensor grad_output, const Tensor proj, const Tensor factors,
    const Tensor u, const Tensor v, const Tensor lse, Tensor grad_proj,
    Tensor grad_factors, Tensor grad_u, Tensor grad_v) {
  const int64_t nthreads = grad_output.numel();
  if (nthreads == 0) return;
  const c10::cuda::CUDAGuard device_guard(proj.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  // dQ (P, K, R, R): gradient of the attention logits.
  Tensor grad_logits = at::empty_like(proj);
  AT_DISPATCH_FLOATING_TYPES_AND_HALF(
      proj.scalar_type(), "factored_blend_backward_cuda", [&] {
        mmdr1::factored_blend_backward_cuda_kernel<scalar_t>
            <<<mmdr1_get_blocks(nthreads), MMDR1_THREADS_PER_BLOCK, 0,
               stream>>>(
                nthreads, grad_output.data_ptr<scalar_t>(),
                proj.data_ptr<scalar_t>(), factors.data_ptr<scalar_t>(),
                u.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(),
                lse.data_ptr<scalar_t>(), grad_proj.data_ptr<scalar_t>(),
                grad_logits.data_ptr<scalar_t>(), proj.size(1), proj.size(2),
                factors.size(2));
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  // Q[p, k] = U^k diag(s_pk) V^k, so with T1 = dQ @ V^T (P, K, R, d):
  // grad_s = sum_y T1 * U, grad_U = sum_p T1 * s,
  // grad_V = sum_p (U diag(s))^T @ dQ.
  const Tensor t1 = at::matmul(grad_logits, v.transpose(1, 2));
  grad_factors.copy_((t1 * u.unsqueeze(0)).sum(2));
  grad_u.copy_((t1 * factors.unsqueeze(2)).sum(0));
  const Tensor us = u.unsqueeze(0) * factors.unsqueeze(2);  // (P, K, R, d)
  grad_v.copy_(at::matmul(us.transpose(2, 3), grad_logits).sum(0));
}
