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

// exp / log in the precision of the argument (expf / logf for float).
__device__ inline float mmdr1_exp(const float x) { return expf(x); }
__device__ inline double mmdr1_exp(const double x) { return exp(x); }
__device__ inline float mmdr1_log(const float x) { return logf(x); }
__device__ inline double mmdr1_log(const double x) { return log(x); }

// One-pass, numerically stable softmax-weighted sum over K terms, as the
// fused blend kernels need it: construct with the first (logit, value),
// push() the others; value() = sum_k softmax(logit)_k * value_k and lse() =
// log sum_k exp(logit_k). Keeps the running max m, sum = sum exp(a - m) and
// acc = sum exp(a - m) * c.
template <typename T>
struct Mmdr1OnlineSoftmaxBlend {
  T m, sum, acc;
  __device__ Mmdr1OnlineSoftmaxBlend(const T a, const T c)
      : m(a), sum(static_cast<T>(1)), acc(c) {}
  __device__ void push(const T a, const T c) {
    if (a > m) {
      const T scale = mmdr1_exp(m - a);
      sum = sum * scale + static_cast<T>(1);
      acc = acc * scale + c;
      m = a;
    } else {
      const T e = mmdr1_exp(a - m);
      sum += e;
      acc += e * c;
    }
  }
  __device__ T value() const { return acc / sum; }
  __device__ T lse() const { return m + mmdr1_log(sum); }
};

#endif  // MMDR1_CUDA_HELPER_HPP
