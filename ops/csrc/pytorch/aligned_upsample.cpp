// Copyright (c) mmdr1 contributors. All rights reserved.
// Aligned upsampling (dr1mask spec section 6; DR1Mask paper section 3.3).
//
// Device-agnostic entry points. The public functions validate the arguments,
// allocate the result and dispatch to the kernel registered for the device of
// the input (CPU: cpu/aligned_upsample_cpu.cpp, CUDA: cuda/cudabind.cpp).
//
// Output pixel y (of f * h) samples the input at coordinate
// clamp((y - f / 2) / f, 0, h - 1) (integer f / 2) with linear
// interpolation; the same along x.
#include "pytorch_cpp_helper.hpp"
#include "pytorch_device_registry.hpp"

void aligned_upsample_forward_impl(Tensor input, Tensor output,
                                   const int64_t factor) {
  DISPATCH_DEVICE_IMPL(aligned_upsample_forward_impl, input, output, factor);
}

void aligned_upsample_backward_impl(Tensor grad_output, Tensor grad_input,
                                    const int64_t factor) {
  DISPATCH_DEVICE_IMPL(aligned_upsample_backward_impl, grad_output,
                       grad_input, factor);
}

namespace {

void check_factor(const int64_t factor) {
  TORCH_CHECK(factor >= 1, "aligned_upsample: factor must be >= 1, got ",
              factor);
}

}  // namespace

// input: (N, C, H, W) contiguous. Returns (N, C, factor * H, factor * W).
Tensor aligned_upsample_forward(const Tensor input, const int64_t factor) {
  check_factor(factor);
  TORCH_CHECK(input.dim() == 4,
              "aligned_upsample_forward: input must be (N, C, H, W), got ",
              input.dim(), " dims");
  TORCH_CHECK(input.size(2) > 0 && input.size(3) > 0,
              "aligned_upsample_forward: input H and W must be > 0, got ",
              input.sizes());
  CHECK_CONTIGUOUS(input);
  Tensor output = at::empty({input.size(0), input.size(1),
                             input.size(2) * factor, input.size(3) * factor},
                            input.options());
  if (output.numel() > 0) {
    aligned_upsample_forward_impl(input, output, factor);
  }
  return output;
}

// grad_output: (N, C, factor * height, factor * width) contiguous.
// Returns the gradient w.r.t. the input, (N, C, height, width).
Tensor aligned_upsample_backward(const Tensor grad_output,
                                 const int64_t factor, const int64_t height,
                                 const int64_t width) {
  check_factor(factor);
  TORCH_CHECK(grad_output.dim() == 4,
              "aligned_upsample_backward: grad_output must be 4-D, got ",
              grad_output.dim(), " dims");
  TORCH_CHECK(height > 0 && width > 0,
              "aligned_upsample_backward: height and width must be > 0");
  TORCH_CHECK(
      grad_output.size(2) == height * factor &&
          grad_output.size(3) == width * factor,
      "aligned_upsample_backward: grad_output spatial size ",
      grad_output.sizes(), " does not match factor ", factor,
      " times the input size (", height, ", ", width, ")");
  CHECK_CONTIGUOUS(grad_output);
  Tensor grad_input =
      at::empty({grad_output.size(0), grad_output.size(1), height, width},
                grad_output.options());
  if (grad_input.numel() > 0) {
    aligned_upsample_backward_impl(grad_output, grad_input, factor);
  }
  return grad_input;
}
