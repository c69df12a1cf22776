// Copyright (c) mmdr1 contributors. All rights reserved.
// Fused BlendMask blender (blendmask spec sections 8-9; BlendMask paper
// section 3.3).
//
// Device-agnostic entry points. The public functions validate the arguments,
// allocate the results and dispatch to the kernels registered for the device
// of the inputs (CPU: cpu/blend_cpu.cpp, CUDA: cuda/cudabind.cpp).
//
// For RoI p on image n with box b and attention A_p (K, M, M):
//   c = RoIAlign(bases[n], b)             (K, R, R), avg, aligned=True
//   a = interpolate(A_p, R x R)           bilinear, align_corners=False
//   out[p] = sum_k softmax_k(a)[k] * c[k] (R, R)
// computed per output pixel without storing any (P, K, R, R) tensor. The
// forward can also return lse[p] = logsumexp_k(a) (P, R, R), from which the
// backward recomputes the softmax in one pass.
#include "pytorch_cpp_helper.hpp"
#include "pytorch_device_registry.hpp"

void blend_forward_impl(Tensor bases, Tensor rois, Tensor attns,
                        Tensor output, Tensor lse, const double spatial_scale,
                        const int64_t sampling_ratio) {
  DISPATCH_DEVICE_IMPL(blend_forward_impl, bases, rois, attns, output, lse,
                       spatial_scale, sampling_ratio);
}

void blend_backward_impl(Tensor grad_output, Tensor bases, Tensor rois,
                         Tensor attns, Tensor lse, Tensor grad_bases,
                         Tensor grad_attns, const double spatial_scale,
                         const int64_t sampling_ratio) {
  DISPATCH_DEVICE_IMPL(blend_backward_impl, grad_output, bases, rois, attns,
                       lse, grad_bases, grad_attns, spatial_scale,
                       sampling_ratio);
}

namespace {

void check_blend_inputs(const char* op, const Tensor& bases,
                        const Tensor& rois, const Tensor& attns,
                        const double spatial_scale,
                        const int64_t sampling_ratio) {
  TORCH_CHECK(bases.dim() == 4, op, ": bases must be (N, K, H, W), got ",
              bases.sizes());
  TORCH_CHECK(bases.size(2) > 0 && bases.size(3) > 0, op,
              ": bases H and W must be > 0, got ", bases.sizes());
  TORCH_CHECK(rois.dim() == 2 && rois.size(1) == 5, op,
              ": rois must be (P, 5), got ", rois.sizes());
  TORCH_CHECK(attns.dim() == 4 && attns.size(0) == rois.size(0) &&
                  attns.size(1) == bases.size(1) &&
                  attns.size(2) == attns.size(3) && attns.size(2) > 0,
              op, ": attns must be (P, K, M, M) with P = ", rois.size(0),
              " and K = ", bases.size(1), ", got ", attns.sizes());
  TORCH_CHECK(bases.size(1) > 0, op, ": bases need K > 0 channels");
  TORCH_CHECK(rois.scalar_type() == bases.scalar_type() &&
                  attns.scalar_type() == bases.scalar_type(),
              op, ": bases, rois and attns must have one dtype, got ",
              bases.scalar_type(), ", ", rois.scalar_type(), ", ",
              attns.scalar_type());
  TORCH_CHECK(spatial_scale > 0, op, ": spatial_scale must be > 0, got ",
              spatial_scale);
  TORCH_CHECK(sampling_ratio >= 0, op, ": sampling_ratio must be >= 0, got ",
              sampling_ratio);
  CHECK_CONTIGUOUS(bases);
  CHECK_CONTIGUOUS(rois);
  CHECK_CONTIGUOUS(attns);
}

}  // namespace

// bases (N, K, H, W), rois (P, 5), attns (P, K, M, M), all contiguous with
// one dtype. Returns {output (P, R, R), lse (P, R, R) or an empty tensor
// when save_lse is false}.
std::vector<Tensor> blend_forward(const Tensor bases, const Tensor rois,
                                  const Tensor attns,
                                  const double spatial_scale,
                                  const int64_t sampling_ratio,
                                  const int64_t output_size,
                                  const bool save_lse) {
  check_blend_inputs("blend_forward", bases, rois, attns, spatial_scale,
                     sampling_ratio);
  TORCH_CHECK(output_size >= 1, "blend_forward: output_size must be >= 1, ",
              "got ", output_size);
  const int64_t num_rois = rois.size(0);
  Tensor output =
      at::empty({num_rois, output_size, output_size}, bases.options());
  Tensor lse = save_lse ? at::empty_like(output)
                        : at::empty({0}, bases.options());
  if (num_rois > 0) {
    blend_forward_impl(bases, rois, attns, output, lse, spatial_scale,
                       sampling_ratio);
  }
  return {output, lse};
}

// grad_output and lse (P, R, R) from blend_forward(save_lse=true) with the
// same inputs. Returns {grad_bases (N, K, H, W), grad_attns (P, K, M, M)}.
std::vector<Tensor> blend_backward(const Tensor grad_output,
                                   const Tensor bases, const Tensor rois,
                                   const Tensor attns, const Tensor lse,
                                   const double spatial_scale,
                                   const int64_t sampling_ratio) {
  check_blend_inputs("blend_backward", bases, rois, attns, spatial_scale,
                     sampling_ratio);
  TORCH_CHECK(grad_output.dim() == 3 && grad_output.size(0) == rois.size(0) &&
                  grad_output.size(1) == grad_output.size(2) &&
                  grad_output.size(1) > 0,
              "blend_backward: grad_output must be (P, R, R) with P = ",
              rois.size(0), ", got ", grad_output.sizes());
  TORCH_CHECK(lse.sizes() == grad_output.sizes(),
              "blend_backward: lse must have the shape of grad_output ",
              grad_output.sizes(), ", got ", lse.sizes());
  TORCH_CHECK(grad_output.scalar_type() == bases.scalar_type() &&
                  lse.scalar_type() == bases.scalar_type(),
              "blend_backward: grad_output and lse must have the dtype of "
              "bases");
  CHECK_CONTIGUOUS(grad_output);
  CHECK_CONTIGUOUS(lse);
  Tensor grad_bases = at::zeros_like(bases);
  Tensor grad_attns = at::zeros_like(attns);
  if (rois.size(0) > 0) {
    blend_backward_impl(grad_output, bases, rois, attns, lse, grad_bases,
                        grad_attns, spatial_scale, sampling_ratio);
  }
  return {grad_bases, grad_attns};
}
