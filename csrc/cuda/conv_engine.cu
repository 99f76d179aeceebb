/*
 * conv_engine.cu — execution plans of cuDNN's backend API for one convolution record (see
 * conv_engine.cuh): the operation graph, the heuristic's configurations for an SM target, the
 * filter on their numerical and behaviour notes, and one variant pack per launch.
 */
#include "conv_engine.cuh"

#include <cstdio>
#include <memory>
#include <new>
#include <string>
#include <vector>

namespace braid_cuda {

namespace {

/* Tensor unique ids in the operation graph and the variant pack. */
enum : int64_t { UID_X = 1, UID_W = 2, UID_Y = 3, UID_BIAS = 4, UID_RES = 5, UID_VIRTUAL = 100 };

/* One backend descriptor, destroyed with its owner. */
struct Desc {
  cudnnBackendDescriptor_t d = nullptr;
  Desc() = default;
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
  ~Desc() { reset(); }
  void reset() {
    if (d) cudnnBackendDestroyDescriptor(d);
    d = nullptr;
  }
};

/* Builds descriptors, keeping the first failure (its status and the call that failed), so a
 * sequence of attribute settings reads as a list and is checked once. */
struct Builder {
  cudnnStatus_t status = CUDNN_STATUS_SUCCESS;
  const char* api = nullptr;  /* the cuDNN function that failed */
  const char* what = nullptr; /* what it was doing */

  bool ok() const { return status == CUDNN_STATUS_SUCCESS; }
  void check(cudnnStatus_t s, const char* fn_name, const char* doing) {
    if (ok() && s != CUDNN_STATUS_SUCCESS) {
      status = s;
      api = fn_name;
      what = doing;
    }
  }
  void create(Desc& out, cudnnBackendDescriptorType_t type, const char* doing) {
    if (ok()) check(cudnnBackendCreateDescriptor(type, &out.d), "cudnnBackendCreateDescriptor", doing);
  }
  void set(Desc& on, cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type,
           int64_t count, const void* value, const char* doing) {
    if (ok())
      check(cudnnBackendSetAttribute(on.d, name, type, count, value), "cudnnBackendSetAttribute",
            doing);
  }
  void finalize(Desc& on, const char* doing) {
    if (ok()) check(cudnnBackendFinalize(on.d), "cudnnBackendFinalize", doing);
  }
  void get(cudnnBackendDescriptor_t on, cudnnBackendAttributeName_t name,
           cudnnBackendAttributeType_t type, int64_t count, int64_t* got, void* values,
           const char* doing) {
    if (ok())
      check(cudnnBackendGetAttribute(on, name, type, count, got, values),
            "cudnnBackendGetAttribute", doing);
  }
  /* BRAID_OK, or the first failure as "fn: <api> <what> failed: <cuDNN's words>". */
  int32_t result(const char* fn) const {
    if (ok()) return BRAID_OK;
    char call[160];
    snprintf(call, sizeof call, "%s%s%s", api, what[0] ? " " : "", what);
    return cudnn_fail(fn, call, status);
  }
};

/* A packed NCHW float tensor. */
void tensor(Builder& b, Desc& t, int64_t uid, const int64_t dims[4], int64_t align,
            bool is_virtual) {
  const int64_t strides[4] = {dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1};
  const cudnnDataType_t type = CUDNN_DATA_FLOAT;
  b.create(t, CUDNN_BACKEND_TENSOR_DESCRIPTOR, "tensor");
  b.set(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type, "tensor data type");
  b.set(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims, "tensor dimensions");
  b.set(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides, "tensor strides");
  b.set(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, "tensor unique id");
  b.set(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align, "tensor alignment");
  b.set(t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual, "tensor virtual");
  b.finalize(t, "tensor");
}

/* A pointwise operation y = mode(x[, other]) in fp32. */
void pointwise(Builder& b, Desc& mode_desc, Desc& op, cudnnPointwiseMode_t mode, Desc& x,
               Desc* other, Desc& y) {
  const cudnnDataType_t prec = CUDNN_DATA_FLOAT;
  b.create(mode_desc, CUDNN_BACKEND_POINTWISE_DESCRIPTOR, "pointwise");
  b.set(mode_desc, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode,
        "pointwise mode");
  b.set(mode_desc, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec,
        "pointwise precision");
  if (mode == CUDNN_POINTWISE_RELU_FWD) {
    /* NaN in, NaN out, as the legacy path's activation (CUDNN_PROPAGATE_NAN) and braid's own
     * epilogue give: the tuner may pick either. */
    const cudnnNanPropagation_t nan = CUDNN_PROPAGATE_NAN;
    b.set(mode_desc, CUDNN_ATTR_POINTWISE_NAN_PROPAGATION, CUDNN_TYPE_NAN_PROPOGATION, 1, &nan,
          "pointwise NaN propagation");
  }
  b.finalize(mode_desc, "pointwise");
  b.create(op, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR,
           "pointwise operation");
  b.set(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
        &mode_desc.d, "pointwise operation mode");
  b.set(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x.d,
        "pointwise operation x");
  if (other)
    b.set(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &other->d,
          "pointwise operation b");
  b.set(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y.d,
        "pointwise operation y");
  b.finalize(op, "pointwise operation");
}

/* The end padding cuDNN's graph is given for a record, whose oh and ow imply it (see
 * check_conv2d). An implied padding from -(stride - 1) to -1 means the last rows fall between
 * strides and are never read: cuDNN's output size, floor((in + pads - extent) / stride) + 1, is
 * the record's with no end padding at all. Below that the record crops, which a graph cannot say:
 * -1 then. */
int64_t end_pad(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dil, int64_t out) {
  const int64_t implied = (out - 1) * stride + dil * (k - 1) + 1 - in - pad;
  if (implied >= 0) return implied;
  return implied > -stride ? 0 : -1;
}

/* Whether braid may run an engine: never one compiled at run time (seconds of NVRTC), one that
 * down-converts its inputs or reduces in lower precision, or a nondeterministic one (atomic
 * split-K: a replay must give the same bits); in strict fp32 none on tensor cores (TF32), FFT or
 * Winograd, which the legacy path excludes too. */
bool engine_usable(cudnnBackendDescriptor_t config, bool allow_tf32) {
  Desc engine;
  int64_t n = 0;
  if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &engine.d) !=
          CUDNN_STATUS_SUCCESS ||
      cudnnBackendGetAttribute(config, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                               1, &n, &engine.d) != CUDNN_STATUS_SUCCESS)
    return false;
  cudnnBackendBehaviorNote_t behaviour[CUDNN_BEHAVIOR_NOTE_TYPE_COUNT];
  if (cudnnBackendGetAttribute(engine.d, CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE,
                               CUDNN_TYPE_BEHAVIOR_NOTE, CUDNN_BEHAVIOR_NOTE_TYPE_COUNT, &n,
                               behaviour) != CUDNN_STATUS_SUCCESS)
    return false;
  for (int64_t i = 0; i < n; i++)
    if (behaviour[i] == CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION) return false;
  cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
  if (cudnnBackendGetAttribute(engine.d, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE,
                               CUDNN_TYPE_NUMERICAL_NOTE, CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &n,
                               notes) != CUDNN_STATUS_SUCCESS)
    return false;
  for (int64_t i = 0; i < n; i++) {
    switch (notes[i]) {
      case CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS:
      case CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION:
      case CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC: /* replays and schedulers agree bit for bit */
        return false;
      case CUDNN_NUMERICAL_NOTE_TENSOR_CORE:
      case CUDNN_NUMERICAL_NOTE_FFT:
      case CUDNN_NUMERICAL_NOTE_WINOGRAD:
      case CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_4x4:
      case CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_6x6:
      case CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_13x13:
        if (!allow_tf32) return false;
        break;
      default:
        break;
    }
  }
  return true;
}

/* Sets an integer field of cuDNN's device JSON; false where the JSON has no such field. */
bool set_json_int(std::string& json, const char* name, int value) {
  const std::string key = std::string("\"") + name + "\"";
  size_t at = json.find(key);
  if (at == std::string::npos) return false;
  at += key.size();
  while (at < json.size() && (json[at] == ' ' || json[at] == ':')) at++;
  size_t end = at;
  while (end < json.size() && json[end] >= '0' && json[end] <= '9') end++;
  if (end == at) return false;
  json.replace(at, end - at, std::to_string(value));
  return true;
}

/* Rewrites cuDNN's device JSON as a green context of `sms` SMs reports the device: that many
 * SMs, counted from a green context (smCountOrigin 1, CUDNN_SM_COUNT_ORIGIN_GREEN_CONTEXT, where
 * the JSON has the field: cuDNN 9.24's has). False without an SM count to set. */
bool as_partition(std::string& json, int sms) {
  if (!set_json_int(json, "multiProcessorCount", sms)) return false;
  (void)set_json_int(json, "smCountOrigin", 1);
  return true;
}

}  // namespace

struct EnginePlan {
  /* The graph and its configuration stay alive with the plan built from them. */
  Desc graph, config, plan;
  size_t workspace = 0;
  bool with_bias = false, with_res = false; /* operands the fused graph reads */
};

namespace {

/* The execution plan of `ep`'s configuration, on the handle, and for the device description too
 * when `with_properties`. */
void plan_of_config(Builder& b, EnginePlan& ep, EngineDevice dev, bool with_properties) {
  b.create(ep.plan, CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, "execution plan");
  /* Deprecated in cuDNN 9 (the plan finds the handle through its graph): its status is not
   * checked, so a release that drops it still builds plans. */
  if (b.ok() && dev.handle)
    (void)cudnnBackendSetAttribute(ep.plan.d, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE,
                                   1, &dev.handle);
#if CUDNN_VERSION >= 90800
  if (with_properties && dev.properties)
    b.set(ep.plan, CUDNN_ATTR_EXECUTION_PLAN_DEVICEPROP, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
          &dev.properties, "execution plan device properties");
#else
  (void)with_properties;
#endif
  b.set(ep.plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
        &ep.config.d, "execution plan engine config");
  b.finalize(ep.plan, "execution plan");
}

/* The heuristic's configurations for `ep`'s graph and an SM target (0: none), into `configs`
 * (the heuristic kept alive with them); with the device description when `with_properties`.
 * Returns how many cuDNN handed out. */
int64_t heuristic_configs(Builder& b, EnginePlan& ep, EngineDevice dev, int32_t target,
                          bool with_properties, Desc& heuristic, std::vector<Desc>& configs) {
  const cudnnBackendHeurMode_t heur_mode = CUDNN_HEUR_MODE_A;
  b.create(heuristic, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, "heuristic");
  b.set(heuristic, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
        &ep.graph.d, "heuristic operation graph");
  b.set(heuristic, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &heur_mode,
        "heuristic mode");
#if CUDNN_VERSION >= 90800
  if (with_properties && dev.properties)
    b.set(heuristic, CUDNN_ATTR_ENGINEHEUR_DEVICEPROP, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
          &dev.properties, "heuristic device properties");
#else
  (void)with_properties;
  (void)dev;
#endif
  if (target > 0)
    b.set(heuristic, CUDNN_ATTR_ENGINEHEUR_SM_COUNT_TARGET, CUDNN_TYPE_INT32, 1, &target,
          "heuristic SM count target");
  b.finalize(heuristic, "heuristic");
  int64_t count = 0;
  b.get(heuristic.d, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count,
        nullptr, "heuristic result count");
  configs = std::vector<Desc>(b.ok() ? (size_t)count : 0);
  std::vector<cudnnBackendDescriptor_t> raw;
  for (Desc& d : configs) {
    b.create(d, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "engine config");
    raw.push_back(d.d);
  }
  int64_t got = 0;
  if (count > 0)
    b.get(heuristic.d, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got,
          raw.data(), "heuristic results");
  return got;
}

}  // namespace

void engine_plan_destroy(EnginePlan* e) { delete e; }

size_t engine_plan_workspace(const EnginePlan* e) { return e->workspace; }

std::string engine_device_json(cudnnHandle_t handle) {
#if CUDNN_VERSION >= 90800
  Desc device;
  int64_t size = 0;
  if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR, &device.d) ||
      cudnnBackendSetAttribute(device.d, CUDNN_ATTR_DEVICEPROP_HANDLE, CUDNN_TYPE_HANDLE, 1,
                               &handle) ||
      cudnnBackendFinalize(device.d) ||
      cudnnBackendGetAttribute(device.d, CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION,
                               CUDNN_TYPE_CHAR, 0, &size, nullptr) ||
      size <= 0)
    return "";
  std::string json((size_t)size, '\0');
  if (cudnnBackendGetAttribute(device.d, CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION,
                               CUDNN_TYPE_CHAR, size, &size, &json[0]))
    return "";
  json.resize(strnlen(json.c_str(), json.size()));
  return json;
#else
  (void)handle;
  return "";
#endif
}

cudnnBackendDescriptor_t engine_device_properties(const char* json, int partition_sms) {
#if CUDNN_VERSION >= 90800
  std::string text = json;
  if (partition_sms > 0 && !as_partition(text, partition_sms)) return nullptr;
  Desc view;
  if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR, &view.d) ||
      cudnnBackendSetAttribute(view.d, CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION, CUDNN_TYPE_CHAR,
                               (int64_t)text.size() + 1, text.c_str()) ||
      cudnnBackendFinalize(view.d))
    return nullptr;
  cudnnBackendDescriptor_t out = view.d;
  view.d = nullptr;
  return out;
#else
  (void)json;
  (void)partition_sms;
  return nullptr;
#endif
}

EngineDevice engine_device(Context* c, int sm_target) {
  if (sm_target <= 0 || sm_target >= c->sms) return EngineDevice{c->cudnn, nullptr};
  auto known = c->cudnn_partition_views.find(sm_target);
  if (known != c->cudnn_partition_views.end()) return EngineDevice{c->cudnn, known->second};
  const std::string json = engine_device_json(c->cudnn);
  cudnnBackendDescriptor_t view =
      json.empty() ? nullptr : engine_device_properties(json.c_str(), sm_target);
  try {
    c->cudnn_partition_views[sm_target] = view; /* NULL too: this cuDNN cannot describe it */
  } catch (...) {
    if (view) cudnnBackendDestroyDescriptor(view);
    view = nullptr;
  }
  return EngineDevice{c->cudnn, view};
}

void engine_device_release(Context* c) {
  for (auto& kv : c->cudnn_partition_views)
    if (kv.second) cudnnBackendDestroyDescriptor(kv.second);
  c->cudnn_partition_views.clear();
}

int32_t engine_plan_create(Context* c, const char* fn, const braid_conv2d_params* p,
                           bool has_bias, bool has_res, int align, EngineChoice e,
                           EnginePlan** out) {
  return engine_plan_build(engine_device(c, e.sm_target), fn, p, has_bias, has_res, align, e,
                           out);
}

int32_t engine_plan_build(EngineDevice dev, const char* fn, const braid_conv2d_params* p,
                          bool has_bias, bool has_res, int align, EngineChoice e,
                          EnginePlan** out) {
  const int64_t pad_end[2] = {
      end_pad(p->h, p->kh, p->stride_h, p->pad_top, p->dilation_h, p->oh),
      end_pad(p->w, p->kw, p->stride_w, p->pad_left, p->dilation_w, p->ow)};
  if (pad_end[0] < 0 || pad_end[1] < 0)
    return fail(BRAID_ERR_UNSUPPORTED,
                "%s: cuDNN engines cannot crop: output %dx%d needs rows or columns of the input "
                "cut off at its end",
                fn, p->oh, p->ow);
  if (e.fused && !engine_fusable(p))
    return fail(BRAID_ERR_INVALID_ARGUMENT,
                "%s: algorithm %d fuses the epilogue, but activation %d is not relu or none", fn,
                engine_id(e), p->activation);
  std::unique_ptr<EnginePlan> ep(new (std::nothrow) EnginePlan());
  if (!ep) return fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
  ep->with_bias = e.fused && has_bias;
  ep->with_res = e.fused && has_res;
  const bool relu = e.fused && p->activation == BRAID_ACT_RELU;
  Builder b;

  /* Tensors: x, w, y, and for the fused graph bias, residual and the intermediates. */
  const int64_t xd[4] = {p->n, p->c, p->h, p->w};
  const int64_t wd[4] = {p->k, p->c / p->groups, p->kh, p->kw};
  const int64_t yd[4] = {p->n, p->k, p->oh, p->ow};
  const int64_t bd[4] = {1, p->k, 1, 1};
  Desc x, w, y, bias, res, conv_out, res_out, bias_out;
  tensor(b, x, UID_X, xd, align, false);
  tensor(b, w, UID_W, wd, align, false);
  tensor(b, y, UID_Y, yd, align, false);
  if (ep->with_bias) tensor(b, bias, UID_BIAS, bd, align, false);
  if (ep->with_res) tensor(b, res, UID_RES, yd, align, false);
  /* The ops after the convolution, in cuDNN's conv-bias-act order: + residual, + bias, relu. The
   * last one writes y; each earlier result is a virtual tensor. */
  const int after = (ep->with_res ? 1 : 0) + (ep->with_bias ? 1 : 0) + (relu ? 1 : 0);
  int64_t next_uid = UID_VIRTUAL;
  Desc* conv_y = &y;
  if (after > 0) {
    tensor(b, conv_out, next_uid++, yd, align, true);
    conv_y = &conv_out;
  }

  /* The convolution. */
  Desc conv, conv_op;
  const int64_t dims = 2;
  const cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  const int64_t pad_begin[2] = {p->pad_top, p->pad_left};
  const int64_t dilation[2] = {p->dilation_h, p->dilation_w};
  const int64_t stride[2] = {p->stride_h, p->stride_w};
  const float alpha = 1.0f, beta = 0.0f;
  b.create(conv, CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, "convolution");
  b.set(conv, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &dims, "spatial dims");
  b.set(conv, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &compute, "compute type");
  b.set(conv, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode,
        "convolution mode");
  b.set(conv, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, pad_begin, "pre paddings");
  b.set(conv, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, pad_end, "post paddings");
  b.set(conv, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, dilation, "dilations");
  b.set(conv, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, stride, "strides");
  b.finalize(conv, "convolution");
  b.create(conv_op, CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR,
           "convolution forward");
  b.set(conv_op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
        &x.d, "convolution forward x");
  b.set(conv_op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
        &w.d, "convolution forward w");
  b.set(conv_op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
        &conv_y->d, "convolution forward y");
  b.set(conv_op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
        CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &conv.d, "convolution forward descriptor");
  b.set(conv_op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha,
        "convolution forward alpha");
  b.set(conv_op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &beta,
        "convolution forward beta");
  b.finalize(conv_op, "convolution forward");

  /* The fused epilogue. */
  Desc res_mode, res_op, bias_mode, bias_op, relu_mode, relu_op;
  std::vector<cudnnBackendDescriptor_t> ops{conv_op.d};
  Desc* value = conv_y;
  int left = after;
  Desc* last = &y;
  auto output = [&](Desc* virtual_out) {
    if (--left == 0) return last;
    tensor(b, *virtual_out, next_uid++, yd, align, true);
    return virtual_out;
  };
  if (ep->with_res) {
    Desc* o = output(&res_out);
    pointwise(b, res_mode, res_op, CUDNN_POINTWISE_ADD, *value, &res, *o);
    ops.push_back(res_op.d);
    value = o;
  }
  if (ep->with_bias) {
    Desc* o = output(&bias_out);
    pointwise(b, bias_mode, bias_op, CUDNN_POINTWISE_ADD, *value, &bias, *o);
    ops.push_back(bias_op.d);
    value = o;
  }
  if (relu) {
    pointwise(b, relu_mode, relu_op, CUDNN_POINTWISE_RELU_FWD, *value, nullptr, y);
    ops.push_back(relu_op.d);
  }

  /* The graph, the heuristic's configurations for the SM target, the plan of the rank-th usable
   * one. */
  b.create(ep->graph, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR,
           "operation graph");
  if (dev.handle)
    b.set(ep->graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &dev.handle,
          "operation graph handle");
  b.set(ep->graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
        (int64_t)ops.size(), ops.data(), "operation graph ops");
  b.finalize(ep->graph, "operation graph");
  Desc heuristic;
  std::vector<Desc> configs;
  int64_t got = heuristic_configs(b, *ep, dev, e.sm_target, true, heuristic, configs);
  /* A cuDNN that refuses the device description (a partition's view of the device): the
   * heuristic on the handle's device alone, which the SM target still narrows. */
  if (!b.ok() && dev.handle && dev.properties) {
    Builder again;
    configs.clear();
    heuristic.reset();
    got = heuristic_configs(again, *ep, dev, e.sm_target, false, heuristic, configs);
    if (again.ok()) b = again;
  }
  const int64_t count = (int64_t)configs.size();
  int32_t st = b.result(fn);
  if (st) return st;
  int usable = 0;
  for (int64_t i = 0; i < got && i < count; i++) {
    if (!engine_usable(configs[i].d, p->allow_tf32 != 0)) continue;
    if (usable++ < e.rank) continue;
    std::swap(ep->config.d, configs[i].d);
    break;
  }
  if (ep->config.d == nullptr)
    return fail(BRAID_ERR_UNSUPPORTED,
                "%s: algorithm %d asks for cuDNN engine configuration %d (%s graph, %d SMs "
                "targeted), but its heuristic has %d usable for this convolution",
                fn, engine_id(e), e.rank, e.fused ? "fused" : "convolution-only", e.sm_target,
                usable);
  /* With a handle, the plan is built for the device it runs on (the SM target travels in the
   * configuration): a plan built from a description is cuDNN's ahead-of-time form, for a device
   * with exactly those properties, and a partition's description is not the device's. The
   * description is the fallback, and the only way without a handle (the probe). */
  plan_of_config(b, *ep, dev, dev.handle == nullptr);
  if (!b.ok() && dev.handle && dev.properties) {
    Builder again;
    ep->plan.reset();
    plan_of_config(again, *ep, dev, true);
    if (again.ok()) b = again;
  }
  int64_t workspace = 0;
  b.get(ep->plan.d, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &got,
        &workspace, "execution plan workspace size");
  if ((st = b.result(fn))) return st;
  ep->workspace = workspace > 0 ? (size_t)workspace : 0;
  *out = ep.release();
  return BRAID_OK;
}

void engine_plan_describe(const EnginePlan* e, char* out, size_t len) {
  int64_t n = 0, index = -1;
  Desc engine;
  std::string text = "engine ?";
  if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &engine.d) ==
          CUDNN_STATUS_SUCCESS &&
      cudnnBackendGetAttribute(e->config.d, CUDNN_ATTR_ENGINECFG_ENGINE,
                               CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &engine.d) ==
          CUDNN_STATUS_SUCCESS &&
      cudnnBackendGetAttribute(engine.d, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n,
                               &index) == CUDNN_STATUS_SUCCESS)
    text = "engine " + std::to_string(index);
  /* The knob choices, as cudnnBackendKnobType_t=value. */
  constexpr int MAX_KNOBS = 32;
  Desc knobs[MAX_KNOBS];
  cudnnBackendDescriptor_t raw[MAX_KNOBS];
  int made = 0;
  while (made < MAX_KNOBS &&
         cudnnBackendCreateDescriptor(CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR, &knobs[made].d) ==
             CUDNN_STATUS_SUCCESS) {
    raw[made] = knobs[made].d;
    made++;
  }
  int64_t count = 0;
  if (made > 0 && cudnnBackendGetAttribute(e->config.d, CUDNN_ATTR_ENGINECFG_KNOB_CHOICES,
                                           CUDNN_TYPE_BACKEND_DESCRIPTOR, made, &count,
                                           raw) == CUDNN_STATUS_SUCCESS) {
    const char* separator = " knobs ";
    for (int64_t i = 0; i < count && i < made; i++) {
      cudnnBackendKnobType_t type;
      int64_t value = 0;
      if (cudnnBackendGetAttribute(raw[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_TYPE,
                                   CUDNN_TYPE_KNOB_TYPE, 1, &n, &type) != CUDNN_STATUS_SUCCESS ||
          cudnnBackendGetAttribute(raw[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_VALUE, CUDNN_TYPE_INT64, 1,
                                   &n, &value) != CUDNN_STATUS_SUCCESS)
        continue;
      text += separator + std::to_string((int)type) + "=" +
              std::to_string((long long)value);
      separator = ",";
    }
  }
  text += ", workspace " + std::to_string(e->workspace);
  snprintf(out, len, "%s", text.c_str());
}

int32_t engine_plan_run(Context* c, const char* fn, const EnginePlan* e, uint64_t x, uint64_t w,
                        uint64_t bias, uint64_t residual, uint64_t y, void* workspace) {
  void* pointers[5];
  int64_t uids[5];
  int64_t n = 0;
  auto bind = [&](int64_t uid, uint64_t addr) {
    uids[n] = uid;
    pointers[n++] = reinterpret_cast<void*>((uintptr_t)addr);
  };
  bind(UID_X, x);
  bind(UID_W, w);
  bind(UID_Y, y);
  if (e->with_bias) bind(UID_BIAS, bias);
  if (e->with_res) bind(UID_RES, residual);
  Builder b;
  Desc pack;
  {
    RelaxedCapture relaxed; /* host-side set-up, legal while a capture is under way */
    b.create(pack, CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, "variant pack");
    b.set(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, pointers,
          "variant pack pointers");
    b.set(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids,
          "variant pack ids");
    b.set(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace,
          "variant pack workspace");
    b.finalize(pack, "variant pack");
  }
  if (b.ok()) b.check(cudnnBackendExecute(c->cudnn, e->plan.d, pack.d), "cudnnBackendExecute", "");
  return b.result(fn);
}

}  // namespace braid_cuda
