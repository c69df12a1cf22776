// Copyright (c) mmdr1 contributors. All rights reserved.
// Python bindings of mmdr1._ext.
#include <torch/extension.h>

#include "pytorch_cpp_helper.hpp"

Tensor aligned_upsample_forward(const Tensor input, const int64_t factor);

Tensor aligned_upsample_backward(const Tensor grad_output,
                                 const int64_t factor, const int64_t height,
                                 const int64_t width);

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
  m.def("compiled_with_cuda", &compiled_with_cuda,
        "whether mmdr1._ext was built with its CUDA kernels");
}
