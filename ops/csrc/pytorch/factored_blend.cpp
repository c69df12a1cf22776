// Copyright (c) mmdr1 contributors. All rights reserved.
// Fused DR1Mask factored attention (dr1mask spec section 4 item 3; DR1Mask
// paper section 3.2.3, Eq. 7-8).
//
// Device-agnostic entry points of two kernels (the split is explained in
// mmdr1/ops/factored_blend.py):
//
// factored_project: for RoI p on image n with box b and projection weights
//   w_p (K, C):  proj[p] = w_p @ RoIAlign(basis[n], b)   (K, R, R)
//   (avg, aligned=True), without forming the (P, C, R, R) crop.
// factored_blend: with factors s_p (K, d) and the shared U (K, R, d),
//   V (K, d, R):  Q_p^k = U^k diag(s_p^k) V^k,
//   out[p] = sum_k softmax_k(Q_p)[k] * proj[p, k]   (R, R),
//   without forming Q or the softmax; the forward can also return
//   lse[p] = logsumexp_k(Q_p) (P, R, R) for the backward.
//
// The public functions validate the arguments, allocate the results and
// dispatch to the kernels registered for the device of the inputs (CPU:
// cpu/factored_blend_cpu.cpp, CUDA: cuda/cudabind.cpp).
#include "pytorch_cpp_helper.hpp"
#include "pytorch_device_registry.hpp"

void factored_project_forward_impl(Tensor basis, Tensor rois, Tensor weight,
                                   Tensor output, const double spatial_scale,
                                   const int64_t sampling_ratio) {
  DISPATCH_DEVICE_IMPL(factored_project_forward_impl, basis, rois, weight,
                       output, spatial_scale, sampling_ratio);
}

void factored_project_backward_impl(Tensor grad_output, Tensor basis,
                                    Tensor rois, Tensor weight,
                                    Tensor grad_basis, Tensor grad_weight,
                                    const double spatial_scale,
                                    const int64_t sampling_ratio) {
  DISPATCH_DEVICE_IMPL(factored_project_backward_impl, grad_output, basis,
                       rois, weight, grad_basis, grad_weight, spatial_scale,
                       sampling_ratio);
}

void factored_blend_forward_impl(Tensor proj, Tensor factors, Tensor u,
                                 Tensor v, Tensor output, Tensor lse) {
  DISPATCH_DEVICE_IMPL(factored_blend_forward_impl, proj, factors, u, v,
                       output, lse);
}

void factored_blend_backward_impl(Tensor grad_output, Tensor proj,
                                  Tensor factors, Tensor u, Tensor v,
                                  Tensor lse, Tensor grad_proj,
                                  Tensor grad_factors, Tensor grad_u,
                                  Tensor grad_v) {
  DISPATCH_DEVICE_IMPL(factored_blend_backward_impl, grad_output, proj,
                       factors, u, v, lse, grad_proj, grad_factors, grad_u,
                       grad_v);
}

namespace {

void check_project_inputs(const char* op, const Tensor& basis,
                          const Tensor& rois, const Tensor& weight,
                          const double spatial_scale,
                          const int64_t sampling_ratio) {
  TORCH_CHECK(basis.dim() == 4, op, ": basis must be (N, C, H, W), got ",
              basis.sizes());
  TORCH_CHECK(basis.size(2) > 0 && basis.size(3) > 0, op,
              ": basis H and W must be > 0, got ", basis.sizes());
  TORCH_CHECK(rois.dim() == 2 && rois.size(1) == 5, op,
              ": rois must be (P, 5), got ", rois.sizes());
  TORCH_CHECK(weight.dim() == 3 && weight.size(0) == rois.size(0) &&
                  weight.size(2) == basis.size(1) && weight.size(1) > 0,
              op, ": weight must be (P, K, C) with P = ", rois.size(0),
              " and C = ", basis.size(1), ", got ", weight.sizes());
  TORCH_CHECK(rois.scalar_type() == basis.scalar_type() &&
                  weight.scalar_type() == basis.scalar_type(),
              op, ": basis, rois and weight must have one dtype");
  TORCH_CHECK(spatial_scale > 0, op, ": spatial_scale must be > 0, got ",
              spatial_scale);
  TORCH_CHECK(sampling_ratio >= 0, op, ": sampling_ratio must be >= 0, got ",
              sampling_ratio);
  CHECK_CONTIGUOUS(basis);
  CHECK_CONTIGUOUS(rois);
  CHECK_CONTIGUOUS(weight);
}

void check_blend_inputs(const char* op, const Tensor& proj,
                        const Tensor& factors, const Tensor& u,
                        const Tensor& v) {
  TORCH_CHECK(proj.dim() == 4 && proj.size(2) == proj.size(3) &&
                  proj.size(1) > 0 && proj.size(2) > 0,
              op, ": proj must be (P, K, R, R), got ", proj.sizes());
  const int64_t P = proj.size(0), K = proj.size(1), R = proj.size(2);
  TORCH_CHECK(factors.dim() == 3 && factors.size(0) == P &&
                  factors.size(1) == K && factors.size(2) > 0,
              op, ": factors must be (P, K, d) = (", P, ", ", K,
              ", d), got ", factors.sizes());
  const int64_t d = factors.size(2);
  TORCH_CHECK(u.dim() == 3 && u.size(0) == K && u.size(1) == R &&
                  u.size(2) == d,
              op, ": U must be (K, R, d) = (", K, ", ", R, ", ", d,
              "), got ", u.sizes());
  TORCH_CHECK(v.dim() == 3 && v.size(0) == K && v.size(1) == d &&
                  v.size(2) == R,
              op, ": V must be (K, d, R) = (", K, ", ", d, ", ", R,
              "), got ", v.sizes());
  TORCH_CHECK(factors.scalar_type() == proj.scalar_type() &&
                  u.scalar_type() == proj.scalar_type() &&
                  v.scalar_type() == proj.scalar_type(),
              op, ": proj, factors, U and V must have one dtype");
  CHECK_CONTIGUOUS(proj);
  CHECK_CONTIGUOUS(factors);
  CHECK_CONTIGUOUS(u);
  CHECK_CONTIGUOUS(v);
}

}  // namespace

// basis (N, C, H, W), rois (P, 5), weight (P, K, C), contiguous, one dtype.
// Returns proj (P, K, R, R).
Tensor factored_project_forward(const Tensor basis, const Tensor rois,
                                const Tensor weight,
                                const double spatial_scale,
                                const int64_t sampling_ratio,
                                const int64_t output_size) {
  check_project_inputs("factored_project_forward", basis, rois, weight,
                       spatial_scale, sampling_ratio);
  TORCH_CHECK(output_size >= 1,
              "factored_project_forward: output_size must be >= 1, got ",
              output_size);
  Tensor output = at::empty(
      {rois.size(0), weight.size(1), output_size, output_size},
      basis.options());
  if (output.numel() > 0) {
    factored_project_forward_impl(basis, rois, weight, output, spatial_scale,
                                  sampling_ratio);
  }
  return output;
}

// grad_output (P, K, R, R). Returns {grad_basis (N, C, H, W),
// grad_weight (P, K, C)}.
std::vector<Tensor> factored_project_backward(const Tensor grad_output,
                                              const Tensor basis,
                                              const Tensor rois,
                                              const Tensor weight,
                                              const double spatial_scale,
                                              const int64_t sampling_ratio) {
  check_project_inputs("factored_project_backward", basis, rois, weight,
                       spatial_scale, sampling_ratio);
  TORCH_CHECK(grad_output.dim() == 4 && grad_output.size(0) == rois.size(0) &&
                  grad_output.size(1) == weight.size(1) &&
                  grad_output.size(2) == grad_output.size(3) &&
                  grad_output.size(2) > 0,
              "factored_project_backward: grad_output must be (P, K, R, R), "
              "got ",
              grad_output.sizes());
  TORCH_CHECK(grad_output.scalar_type() == basis.scalar_type(),
              "factored_project_backward: grad_output must have the dtype "
              "of basis");
  CHECK_CONTIGUOUS(grad_output);
  Tensor grad_basis = at::zeros_like(basis);
  Tensor grad_weight = at::zeros_like(weight);
  if (rois.size(0) > 0) {
    factored_project_backward_impl(grad_output, basis, rois, weight,
                                   grad_basis, grad_weight, spatial_scale,
                                   sampling_ratio);
  }
  return {grad_basis, grad_weight};
}

// proj (P, K, R, R), factors (P, K, d), u (K, R, d), v (K, d, R),
// contiguous, one dtype. Returns {output (P, R, R), lse (P, R, R) or an
// empty tensor when save_lse is false}.
std::vector<Tensor> factored_blend_forward(const Tensor proj,
                                           const Tensor factors,
                                           const Tensor u, const Tensor v,
                                           const bool save_lse) {
  check_blend_inputs("factored_blend_forward", proj, factors, u, v);
  Tensor output =
      at::empty({proj.size(0), proj.size(2), proj.size(3)}, proj.options());
  Tensor lse =
      save_lse ? at::empty_like(output) : at::empty({0}, proj.options());
  if (output.numel() > 0) {
    factored_blend_forward_impl(proj, factors, u, v, output, lse);
  }
  return {output, lse};
}

// grad_output and lse (P, R, R) from factored_blend_forward(save_lse=true)
// with the same inputs. Returns {grad_proj (P, K, R, R), grad_factors
// (P, K, d), grad_u (K, R, d), grad_v (K, d, R)}.
std::vector<Tensor> factored_blend_backward(const Tensor grad_output,
                                            const Tensor proj,
                                            const Tensor factors,
                                            const Tensor u, const Tensor v,
                                            const Tensor lse) {
  check_blend_inputs("factored_blend_backward", proj, factors, u, v);
  TORCH_CHECK(grad_output.dim() == 3 && grad_output.size(0) == proj.size(0) &&
                  grad_output.size(1) == proj.size(2) &&
                  grad_output.size(2) == proj.size(3),
              "factored_blend_backward: grad_output must be (P, R, R), got ",
              grad_output.sizes());
  TORCH_CHECK(lse.sizes() == grad_output.sizes(),
              "factored_blend_backward: lse must have the shape of "
              "grad_output ",
              grad_output.sizes(), ", got ", lse.sizes());
  TORCH_CHECK(grad_output.scalar_type() == proj.scalar_type() &&
                  lse.scalar_type() == proj.scalar_type(),
              "factored_blend_backward: grad_output and lse must have the "
              "dtype of proj");
  CHECK_CONTIGUOUS(grad_output);
  CHECK_CONTIGUOUS(lse);
  Tensor grad_proj = at::empty_like(proj);
  Tensor grad_factors = at::zeros_like(factors);
  Tensor grad_u = at::zeros_like(u);
  Tensor grad_v = at::zeros_like(v);
  if (proj.size(0) > 0) {
    factored_blend_backward_impl(grad_output, proj, factors, u, v, lse,
                                 grad_proj, grad_factors, grad_u, grad_v);
  }
  return {grad_proj, grad_factors, grad_u, grad_v};
}
