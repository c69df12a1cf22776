// Copyright (c) mmdr1 contributors. All rights reserved.
// Python bindings of mmdr1._ext.
#include <torch/extension.h>

#include "pytorch_cpp_helper.hpp"

Tensor aligned_upsample_forward(const Tensor input, const int64_t factor);

Tensor aligned_upsample_backward(const Tensor grad_output,
                                 const int64_t factor, const int64_t height,
                                 const int64_t width);

std::vector<Tensor> blend_forward(const Tensor bases, const Tensor rois,
                                  const Tensor attns,
                                  const double spatial_scale,
                                  const int64_t sampling_ratio,
                                  const int64_t output_size,
                                  const bool save_lse);

std::vector<Tensor> blend_backward(const Tensor grad_output,
                                   const Tensor bases, const Tensor rois,
                                   const Tensor attns, const Tensor lse,
                                   const double spatial_scale,
                                   const int64_t sampling_ratio);

Tensor factored_project_forward(const Tensor basis, const Tensor rois,
                                const Tensor weight,
                                const double spatial_scale,
                                const int64_t sampling_ratio,
                                const int64_t output_size);

std::vector<Tensor> factored_project_backward(const Tensor grad_output,
                                              const Tensor basis,
                                              const Tensor rois,
                                              const Tensor weight,
                                              const double spatial_scale,
                                              const int64_t sampling_ratio);

std::vector<Tensor> factored_blend_forward(const Tensor proj,
                                           const Tensor factors,
                                           const Tensor u, const Tensor v,
                                           const bool save_lse);

std::vector<Tensor> factored_blend_backward(const Tensor grad_output,
                                            const Tensor proj,
                                            const Tensor factors,
                                            const Tensor u, const Tensor v,
                                            const Tensor lse);

bool compiled_with_cuda() {
#ifdef MMCV_WITH_CUDA
  return true;
#else
  return false;
#endif
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "mmdr1 compiled ops";
  m.def("aligned_upsample_forward", &aligned_upsample_forward,
        "aligned upsampling forward: (N, C, H, W) -> (N, C, fH, fW)",
        py::arg("input"), py::arg("factor"));
  m.def("aligned_upsample_backward", &aligned_upsample_backward,
        "aligned upsampling backward: (N, C, fH, fW) -> (N, C, H, W)",
        py::arg("grad_output"), py::arg("factor"), py::arg("height"),
        py::arg("width"));
  m.def("blend_forward", &blend_forward,
        "fused blender forward: -> [output (P, R, R), lse (P, R, R) or "
        "empty]",
        py::arg("bases"), py::arg("rois"), py::arg("attns"),
        py::arg("spatial_scale"), py::arg("sampling_ratio"),
        py::arg("output_size"), py::arg("save_lse"));
  m.def("blend_backward", &blend_backward,
        "fused blender backward: -> [grad_bases, grad_attns]",
        py::arg("grad_output"), py::arg("bases"), py::arg("rois"),
        py::arg("attns"), py::arg("lse"), py::arg("spatial_scale"),
        py::arg("sampling_ratio"));
  m.def("factored_project_forward", &factored_project_forward,
        "RoIAlign crop + per-RoI 1x1 projection: -> proj (P, K, R, R)",
        py::arg("basis"), py::arg("rois"), py::arg("weight"),
        py::arg("spatial_scale"), py::arg("sampling_ratio"),
        py::arg("output_size"));
  m.def("factored_project_backward", &factored_project_backward,
        "backward of factored_project: -> [grad_basis, grad_weight]",
        py::arg("grad_output"), py::arg("basis"), py::arg("rois"),
        py::arg("weight"), py::arg("spatial_scale"),
        py::arg("sampling_ratio"));
  m.def("factored_blend_forward", &factored_blend_forward,
        "factored softmax blend: -> [output (P, R, R), lse (P, R, R) or "
        "empty]",
        py::arg("proj"), py::arg("factors"), py::arg("u"), py::arg("v"),
        py::arg("save_lse"));
  m.def("factored_blend_backward", &factored_blend_backward,
        "backward of factored_blend: -> [grad_proj, grad_factors, grad_u, "
        "grad_v]",
        py::arg("grad_output"), py::arg("proj"), py::arg("factors"),
        py::arg("u"), py::arg("v"), py::arg("lse"));
  m.def("compiled_with_cuda", &compiled_with_cuda,
        "whether mmdr1._ext was built with its CUDA kernels");
}
