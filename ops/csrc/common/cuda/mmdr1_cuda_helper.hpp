// Copyright (c) mmdr1 contributors. All rights reserved.
// Small CUDA helpers for mmdr1's kernels.
//
// mmcv's own pytorch_cuda_helper.hpp / common_cuda_helper.hpp include
// <THC/THCAtomics.cuh>, which recent torch no longer ships, so mmdr1 kernels
// include this header instead. Include it from .cu files only.
#ifndef MMDR1_CUDA_HELPER_HPP
#define MMDR1_CUDA_HELPER_HPP

#include <ATen/cuda/Atomic.cuh>  // gpuAtomicAdd, for kernels that scatter
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

// Grid-stride loop over [0, n) with a 64-bit index.
#define MMDR1_CUDA_1D_KERNEL_LOOP(i, n)                                  \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x +      \
                   threadIdx.x;                                          \
       i < (n); i += static_cast<int64_t>(blockDim.x) * gridDim.x)

constexpr int MMDR1_THREADS_PER_BLOCK = 256;
constexpr int64_t MMDR1_MAX_BLOCKS = 65535;

// Number of blocks covering n threads (at least 1; the grid-stride loop
// handles the rest when n exceeds MMDR1_MAX_BLOCKS * threads).
inline int mmdr1_get_blocks(const int64_t n,
                            const int threads = MMDR1_THREADS_PER_BLOCK) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>(blocks, MMDR1_MAX_BLOCKS)));
}

#endif  // MMDR1_CUDA_HELPER_HPP
