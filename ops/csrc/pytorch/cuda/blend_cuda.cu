// Copyright (c) mmdr1 contributors. All rights reserved.
// CUDA kernels of the fused BlendMask blender (see ../blend.cpp).
//
// Forward: one thread per output pixel (p, y, x). It samples the K crops
// (RoIAlign as mmcv, roi_blend_utils.hpp) and the K upsampled attention
// logits and takes the softmax over K with a running maximum (online
// softmax), so it needs no K-sized buffer; it writes the output and, for the
// backward, logsumexp_k of the logits.
// Backward: one thread per output pixel; it recomputes out = sum_k s_k c_k
// with s_k = exp(a_k - lse), then scatters g * s_k into the bases (through
// the RoIAlign taps) and g * s_k * (c_k - out) into the attentions (through
// the bilinear taps) with atomic adds. Arithmetic is in at::opmath_type
// (float for half).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include "mmdr1_cuda_helper.hpp"
#include "pytorch_cpp_helper.hpp"
#include "roi_blend_utils.hpp"

// Kernels live in a named namespace: nvcc's registration stub cannot resolve
// kernels in an anonymous namespace once `using namespace at;` (from
// pytorch_cpp_helper.hpp) makes at's anonymous namespaces visible too.
namespace mmdr1 {


// Geometry of RoI `roi` (5 values of scalar_t) in opmath precision.
template <typename scalar_t, typename T>
__device__ inline RoIAlignGeometry<T> blend_cuda_geometry(
    const scalar_t* roi, const T spatial_scale, const int64_t pooled,
    const int64_t sampling_ratio) {
  T box[5];
#pragma unroll
  for (int i = 0; i < 5; ++i) box[i] = static_cast<T>(roi[i]);
  return roi_align_geometry<T>(box, spatial_scale, pooled, sampling_ratio);
}

// RoIAlign value of bin (ph, pw) of one H x W plane (mmcv's arithmetic).
template <typename scalar_t, typename T>
__device__ inline T blend_cuda_crop(const scalar_t* plane,
                                    const int64_t height, const int64_t width,
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

// Transpose of blend_cuda_crop: adds grad * (RoIAlign weights) into the
// plane gradient with atomics; samples outside the map are skipped.
template <typename scalar_t, typename T>
__device__ inline void blend_cuda_crop_backward(
    scalar_t* plane_grad, const int64_t height, const int64_t width,
    const RoIAlignGeometry<T>& g, const int64_t ph, const int64_t pw,
    const T grad) {
  const T gc = grad / g.count;
  for (int iy = 0; iy < g.grid_h; ++iy) {
    int64_t y0, y1;
    T wy0, wy1;
    roi_align_axis_tap<T>(
        roi_align_sample_coord<T>(g.start_h, g.bin_h, ph, iy, g.grid_h),
        height, &y0, &y1, &wy0, &wy1);
    if (wy0 == static_cast<T>(0) && wy1 == static_cast<T>(0)) continue;
    for (int ix = 0; ix < g.grid_w; ++ix) {
      int64_t x0, x1;
      T wx0, wx1;
      roi_align_axis_tap<T>(
          roi_align_sample_coord<T>(g.start_w, g.bin_w, pw, ix, g.grid_w),
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

// Bilinear (align_corners=False) value of output pixel (y, x) of an M x M
// map resized to R x R, in ATen's order (along x first).
template <typename scalar_t, typename T>
__device__ inline T blend_cuda_attention(const scalar_t* attn,
                                         const int64_t attn_size,
                                         const int64_t res, const int64_t y,
                                         const int64_t x) {
  int64_t y0, y1, x0, x1;
  T ly, lx;
  upsample_linear_tap<T>(y, attn_size, res, &y0, &y1, &ly);
  upsample_linear_tap<T>(x, attn_size, res, &x0, &x1, &lx);
  const T one = static_cast<T>(1);
  const T t0 = (one - lx) * static_cast<T>(attn[y0 * attn_size + x0]) +
               lx * static_cast<T>(attn[y0 * attn_size + x1]);
  const T t1 = (one - lx) * static_cast<T>(attn[y1 * attn_size + x0]) +
               lx * static_cast<T>(attn[y1 * attn_size + x1]);
  return t0 * (one - ly) + t1 * ly;
}

template <typename scalar_t, typename T>
__device__ inline void blend_cuda_attention_backward(
    scalar_t* attn_grad, const int64_t attn_size, const int64_t res,
    const int64_t y, const int64_t x, const T grad) {
  int64_t y0, y1, x0, x1;
  T ly, lx;
  upsample_linear_tap<T>(y, attn_size, res, &y0, &y1, &ly);
  upsample_linear_tap<T>(x, attn_size, res, &x0, &x1, &lx);
  const T one = static_cast<T>(1);
  gpuAtomicAdd(attn_grad + y0 * attn_size + x0,
               static_cast<scalar_t>(grad * (one - ly) * (one - lx)));
  gpuAtomicAdd(attn_grad + y0 * attn_size + x1,
               static_cast<scalar_t>(grad * (one - ly) * lx));
  gpuAtomicAdd(attn_grad + y1 * attn_size + x0,
               static_cast<scalar_t>(grad * ly * (one - lx)));
  gpuAtomicAdd(attn_grad + y1 * attn_size + x1,
               static_cast<scalar_t>(grad * ly * lx));
}

template <typename scalar_t>
__global__ void blend_forward_cuda_kernel(
    const int64_t nthreads, const scalar_t* __restrict__ bases,
    const scalar_t* __restrict__ rois, const scalar_t* __restrict__ attns,
    scalar_t* __restrict__ output, scalar_t* __restrict__ lse,
    const int64_t channels, const int64_t height, const int64_t width,
    const int64_t attn_size, const int64_t res,
    const at::opmath_type<scalar_t> spatial_scale,
    const int64_t sampling_ratio) {
  using T = at::opmath_type<scalar_t>;
  const int64_t plane = height * width;
  const int64_t attn_plane = attn_size * attn_size;
  MMDR1_CUDA_1D_KERNEL_LOOP(index, nthreads) {
    const int64_t x = index % res;
    const int64_t y = (index / res) % res;
    const int64_t p = index / (res * res);
    const RoIAlignGeometry<T> g = blend_cuda_geometry<scalar_t, T>(
        rois + p * 5, spatial_scale, res, sampling_ratio);
    const scalar_t* base = bases + g.batch * channels * plane;
    const scalar_t* attn = attns + p * channels * attn_plane;
    Mmdr1OnlineSoftmaxBlend<T> blend(
        blend_cuda_attention<scalar_t, T>(attn, attn_size, res, y, x),
        blend_cuda_crop<scalar_t, T>(base, height, width, g, y, x));
    for (int64_t k = 1; k < channels; ++k) {
      blend.push(blend_cuda_attention<scalar_t, T>(attn + k * attn_plane,
                                                   attn_size, res, y, x),
                 blend_cuda_crop<scalar_t, T>(base + k * plane, height,
                                              width, g, y, x));
    }
    output[index] = static_cast<scalar_t>(blend.value());
    if (lse != nullptr) {
      lse[index] = static_cast<scalar_t>(blend.lse());
    }
  }
}

template <typename scalar_t>
__global__ void blend_backward_cuda_kernel(
    const int64_t nthreads, const scalar_t* __restrict__ grad_output,
    const scalar_t* __restrict__ bases, const scalar_t* __restrict__ rois,
    const scalar_t* __restrict__ attns, const scalar_t* __restrict__ lse,
    scalar_t* __restrict__ grad_bases, scalar_t* __restrict__ grad_attns,
    const int64_t channels, const int64_t height, const int64_t width,
    const int64_t attn_size, const int64_t res,
    const at::opmath_type<scalar_t> spatial_scale,
    const int64_t sampling_ratio) {
  using T = at::opmath_type<scalar_t>;
  const int64_t plane = height * width;
  const int64_t attn_plane = attn_size * attn_size;
  MMDR1_CUDA_1D_KERNEL_LOOP(index, nthreads) {
    const int64_t x = index % res;
    const int64_t y = (index / res) % res;
    const int64_t p = index / (res * res);
    const RoIAlignGeometry<T> g = blend_cuda_geometry<scalar_t, T>(
        rois + p * 5, spatial_scale, res, sampling_ratio);
    const scalar_t* base = bases + g.batch * channels * plane;
    scalar_t* base_grad = grad_bases + g.batch * channels * plane;
    const scalar_t* attn = attns + p * channels * attn_plane;
    scalar_t* attn_grad = grad_attns + p * channels * attn_plane;
    const T go = static_cast<T>(grad_output[index]);
    const T l = static_cast<T>(lse[index]);
    T out = static_cast<T>(0);
    for (int64_t k = 0; k < channels; ++k) {
      const T a = blend_cuda_attention<scalar_t, T>(attn + k * attn_plane,
                                                    attn_size, res, y, x);
      const T c = blend_cuda_crop<scalar_t, T>(base + k * plane, height,
                                               width, g, y, x);
      out += mmdr1_exp(a - l) * c;
    }
    for (int64_t k = 0; k < channels; ++k) {
      const T a = blend_cuda_attention<scalar_t, T>(attn + k * attn_plane,
                                                    attn_size, res, y, x);
      const T c = blend_cuda_crop<scalar_t, T>(base + k * plane, height,
                                               width, g, y, x);
      const T gs = go * mmdr1_exp(a - l);  // g * s_k
      blend_cuda_crop_backward<scalar_t, T>(base_grad + k * plane, height,
                                            width, g, y, x, gs);
      blend_cuda_attention_backward<scalar_t, T>(
          attn_grad + k * attn_plane, attn_size, res, y, x, gs * (c - out));
    }
  }
}

}  // namespace mmdr1

void BlendForwardCUDAKernelLauncher(const Tensor bases, const Tensor rois,
                                    const Tensor attns, Tensor output,
                                    Tensor lse, const double spatial_scale,
                                    const int64_t sampling_ratio) {
  const int64_t nthreads = output.numel();
  if (nthreads == 0) return;
  const c10::cuda::CUDAGuard device_guard(bases.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND_HALF(
      bases.scalar_type(), "blend_forward_cuda", [&] {
        using opmath_t = at::opmath_type<scalar_t>;
        mmdr1::blend_forward_cuda_kernel<scalar_t>
            <<<mmdr1_get_blocks(nthreads), MMDR1_THREADS_PER_BLOCK, 0,
               stream>>>(
                nthreads, bases.data_ptr<scalar_t>(),
                rois.data_ptr<scalar_t>(), attns.data_ptr<scalar_t>(),
                output.data_ptr<scalar_t>(),
                lse.numel() > 0 ? lse.data_ptr<scalar_t>() : nullptr,
                bases.size(1), bases.size(2), bases.size(3), attns.size(2),
                output.size(1),
                static_cast<opmath_t>(static_cast<float>(spatial_scale)),
                sampling_ratio);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
}

void BlendBackwardCUDAKernelLauncher(const Tensor grad_output,
                                     const Tensor bases, const Tensor rois,
                                     const Tensor attns, const Tensor lse,
                                     Tensor grad_bases, Tensor grad_attns,
                                     const double spatial_scale,
                                     const int64_t sampling_ratio) {
  const int64_t nthreads = grad_output.numel();
  if (nthreads == 0) return;
  const c10::cuda::CUDAGuard device_guard(bases.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND_HALF(
      bases.scalar_type(), "blend_backward_cuda", [&] {
        using opmath_t = at::opmath_type<scalar_t>;
        mmdr1::blend_backward_cuda_kernel<scalar_t>
            <<<mmdr1_get_blocks(nthreads), MMDR1_THREADS_PER_BLOCK, 0,
               stream>>>(
                nthreads, grad_output.data_ptr<scalar_t>(),
                bases.data_ptr<scalar_t>(), rois.data_ptr<scalar_t>(),
                attns.data_ptr<scalar_t>(), lse.data_ptr<scalar_t>(),
                grad_bases.data_ptr<scalar_t>(),
                grad_attns.data_ptr<scalar_t>(), bases.size(1),
                bases.size(2), bases.size(3), attns.size(2),
                grad_output.size(1),
                static_cast<opmath_t>(static_cast<float>(spatial_scale)),
                sampling_ratio);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
}
