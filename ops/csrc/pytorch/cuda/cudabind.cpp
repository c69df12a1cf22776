// Copyright (c) mmdr1 contributors. All rights reserved.
// Registers mmdr1's CUDA kernels in mmcv's device registry. Compiled only
// when setup.py builds the CUDA kernels (macro MMCV_WITH_CUDA).
#include "pytorch_cpp_helper.hpp"
#include "pytorch_device_registry.hpp"

// aligned_upsample (cuda/aligned_upsample_cuda.cu)
void AlignedUpsampleForwardCUDAKernelLauncher(const Tensor input,
                                              Tensor output,
                                              const int64_t factor);
void AlignedUpsampleBackwardCUDAKernelLauncher(const Tensor grad_output,
                                               Tensor grad_input,
                                               const int64_t factor);

// Shapes and dtypes are set by the public entry points in
// ../aligned_upsample.cpp; only device and layout are checked here.
void aligned_upsample_forward_cuda(Tensor input, Tensor output,
                                   const int64_t factor) {
  CHECK_CUDA_INPUT(input);
  CHECK_CUDA_INPUT(output);
  AlignedUpsampleForwardCUDAKernelLauncher(input, output, factor);
}

void aligned_upsample_backward_cuda(Tensor grad_output, Tensor grad_input,
                                    const int64_t factor) {
  CHECK_CUDA_INPUT(grad_output);
  CHECK_CUDA_INPUT(grad_input);
  AlignedUpsampleBackwardCUDAKernelLauncher(grad_output, grad_input, factor);
}

void aligned_upsample_forward_impl(Tensor input, Tensor output,
                                   const int64_t factor);
void aligned_upsample_backward_impl(Tensor grad_output, Tensor grad_input,
                                    const int64_t factor);

REGISTER_DEVICE_IMPL(aligned_upsample_forward_impl, CUDA,
                     aligned_upsample_forward_cuda);
REGISTER_DEVICE_IMPL(aligned_upsample_backward_impl, CUDA,
                     aligned_upsample_backward_cuda);

// blend (cuda/blend_cuda.cu)
void BlendForwardCUDAKernelLauncher(const Tensor bases, const Tensor rois,
                                    const Tensor attns, Tensor output,
                                    Tensor lse, const double spatial_scale,
                                    const int64_t sampling_ratio);
void BlendBackwardCUDAKernelLauncher(const Tensor grad_output,
                                     const Tensor bases, const Tensor rois,
                                     const Tensor attns, const Tensor lse,
                                     Tensor grad_bases, Tensor grad_attns,
                                     const double spatial_scale,
                                     const int64_t sampling_ratio);

// Shapes and dtypes are set by the public entry points in ../blend.cpp;
// only device and layout are checked here.
void blend_forward_cuda(Tensor bases, Tensor rois, Tensor attns,
                        Tensor output, Tensor lse, const double spatial_scale,
                        const int64_t sampling_ratio) {
  CHECK_CUDA_INPUT(bases);
  CHECK_CUDA_INPUT(rois);
  CHECK_CUDA_INPUT(attns);
  CHECK_CUDA_INPUT(output);
  CHECK_CUDA_INPUT(lse);
  BlendForwardCUDAKernelLauncher(bases, rois, attns, output, lse,
                                 spatial_scale, sampling_ratio);
}

void blend_backward_cuda(Tensor grad_output, Tensor bases, Tensor rois,
                         Tensor attns, Tensor lse, Tensor grad_bases,
                         Tensor grad_attns, const double spatial_scale,
                         const int64_t sampling_ratio) {
  CHECK_CUDA_INPUT(grad_output);
  CHECK_CUDA_INPUT(bases);
  CHECK_CUDA_INPUT(rois);
  CHECK_CUDA_INPUT(attns);
  CHECK_CUDA_INPUT(lse);
  CHECK_CUDA_INPUT(grad_bases);
  CHECK_CUDA_INPUT(grad_attns);
  BlendBackwardCUDAKernelLauncher(grad_output, bases, rois, attns, lse,
                                  grad_bases, grad_attns, spatial_scale,
                                  sampling_ratio);
}

void blend_forward_impl(Tensor bases, Tensor rois, Tensor attns,
                        Tensor output, Tensor lse, const double spatial_scale,
                        const int64_t sampling_ratio);
void blend_backward_impl(Tensor grad_output, Tensor bases, Tensor rois,
                         Tensor attns, Tensor lse, Tensor grad_bases,
                         Tensor grad_attns, const double spatial_scale,
                         const int64_t sampling_ratio);

REGISTER_DEVICE_IMPL(blend_forward_impl, CUDA, blend_forward_cuda);
REGISTER_DEVICE_IMPL(blend_backward_impl, CUDA, blend_backward_cuda);

// factored_blend (cuda/factored_blend_cuda.cu)
void FactoredProjectForwardCUDAKernelLauncher(const Tensor basis,
                                              const Tensor rois,
                                              const Tensor weight,
                                              Tensor output,
                                              const double spatial_scale,
                                              const int64_t sampling_ratio);
void FactoredProjectBackwardCUDAKernelLauncher(
    const Tensor grad_output, const Tensor basis, const Tensor rois,
    const Tensor weight, Tensor grad_basis, Tensor grad_weight,
    const double spatial_scale, const int64_t sampling_ratio);
void FactoredBlendForwardCUDAKernelLauncher(const Tensor proj,
                                            const Tensor factors,
                                            const Tensor u, const Tensor v,
                                            Tensor output, Tensor lse);
void FactoredBlendBackwardCUDAKernelLauncher(
    const Tensor grad_output, const Tensor proj, const Tensor factors,
    const Tensor u, const Tensor v, const Tensor lse, Tensor grad_proj,
    Tensor grad_factors, Tensor grad_u, Tensor grad_v);

// Shapes and dtypes are set by the public entry points in
// ../factored_blend.cpp; only device and layout are checked here.
void factored_project_forward_cuda(Tensor basis, Tensor rois, Tensor weight,
                                   Tensor output, const double spatial_scale,
                                   const int64_t sampling_ratio) {
  CHECK_CUDA_INPUT(basis);
  CHECK_CUDA_INPUT(rois);
  CHECK_CUDA_INPUT(weight);
  CHECK_CUDA_INPUT(output);
  FactoredProjectForwardCUDAKernelLauncher(basis, rois, weight, output,
                                           spatial_scale, sampling_ratio);
}

void factored_project_backward_cuda(Tensor grad_output, Tensor basis,
                                    Tensor rois, Tensor weight,
                                    Tensor grad_basis, Tensor grad_weight,
                                    const double spatial_scale,
                                    const int64_t sampling_ratio) {
  CHECK_CUDA_INPUT(grad_output);
  CHECK_CUDA_INPUT(basis);
  CHECK_CUDA_INPUT(rois);
  CHECK_CUDA_INPUT(weight);
  CHECK_CUDA_INPUT(grad_basis);
  CHECK_CUDA_INPUT(grad_weight);
  FactoredProjectBackwardCUDAKernelLauncher(grad_output, basis, rois, weight,
                                            grad_basis, grad_weight,
                                            spatial_scale, sampling_ratio);
}

void factored_blend_forward_cuda(Tensor proj, Tensor factors, Tensor u,
                                 Tensor v, Tensor output, Tensor lse) {
  CHECK_CUDA_INPUT(proj);
  CHECK_CUDA_INPUT(factors);
  CHECK_CUDA_INPUT(u);
  CHECK_CUDA_INPUT(v);
  CHECK_CUDA_INPUT(output);
  CHECK_CUDA_INPUT(lse);
  FactoredBlendForwardCUDAKernelLauncher(proj, factors, u, v, output, lse);
}

void factored_blend_backward_cuda(Tensor grad_output, Tensor proj,
                                  Tensor factors, Tensor u, Tensor v,
                                  Tensor lse, Tensor grad_proj,
                                  Tensor grad_factors, Tensor grad_u,
                                  Tensor grad_v) {
  CHECK_CUDA_INPUT(grad_output);
  CHECK_CUDA_INPUT(proj);
  CHECK_CUDA_INPUT(factors);
  CHECK_CUDA_INPUT(u);
  CHECK_CUDA_INPUT(v);
  CHECK_CUDA_INPUT(lse);
  CHECK_CUDA_INPUT(grad_proj);
  CHECK_CUDA_INPUT(grad_factors);
  CHECK_CUDA_INPUT(grad_u);
  CHECK_CUDA_INPUT(grad_v);
  FactoredBlendBackwardCUDAKernelLauncher(grad_output, proj, factors, u, v,
                                          lse, grad_proj, grad_factors,
                                          grad_u, grad_v);
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

REGISTER_DEVICE_IMPL(factored_project_forward_impl, CUDA,
                     factored_project_forward_cuda);
REGISTER_DEVICE_IMPL(factored_project_backward_impl, CUDA,
                     factored_project_backward_cuda);
REGISTER_DEVICE_IMPL(factored_blend_forward_impl, CUDA,
                     factored_blend_forward_cuda);
REGISTER_DEVICE_IMPL(factored_blend_backward_impl, CUDA,
                     factored_blend_backward_cuda);
