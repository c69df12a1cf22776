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
