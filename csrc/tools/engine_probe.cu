/*
 * engine_probe — builds the cuDNN engine plans braid_conv2d_tune would time, without a GPU.
 *
 * cuDNN 9.8+ can run its engine heuristic and finalize execution plans for a device described by
 * a device-properties descriptor (CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR, set from JSON) instead of
 * a handle. This tool does that through braid's own plan code (conv_engine.cu), so the graphs,
 * filters and SM targets braid uses can be checked against a real cuDNN on a machine with none
 * of the device: `make engine-probe` builds it, `bench/engine_probe.ts` feeds it a zoo model's
 * convolutions.
 *
 *   engine_probe DEVICE.json [TARGET...] [--whole-device]   (targets: SM counts, 0 = the whole
 *                                         device; --whole-device: budgets seen as the whole
 *                                         device, as by a cuDNN that cannot describe its device)
 *   engine_probe --dump-device                (on a GPU: the device's own JSON, to stdout)
 *   engine_probe --dump-device-in SMS         (on a GPU: the JSON cuDNN gives for its handle
 *                                         bound to a green context of SMS SMs, as a braid
 *                                         context on a partition binds it: whether cuDNN sees
 *                                         the partition, so that even a whole-device engine
 *                                         configuration built there is sized for it)
 *
 * stdin: one convolution a line, "name n c h w k oh ow kh kw stride_h stride_w pad_top pad_left
 * dilation_h dilation_w groups activation allow_tf32 has_bias has_residual".
 * stdout: one line a convolution, target, graph (plain or fused) and rank, tab-separated:
 * "name target graph rank ok|- description-or-error".
 */
#include "../cuda/conv_engine.cuh"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace braid_cuda;

namespace {

constexpr int RANKS = 3; /* the tuner's tries: 3 fused, 2 plain (BRAID_CONV_ENGINES) */

std::string read_file(const char* path) {
  FILE* f = fopen(path, "rb");
  if (!f) return "";
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  fclose(f);
  return text;
}

bool fail_cudnn(const char* what, cudnnStatus_t s) {
  if (s == CUDNN_STATUS_SUCCESS) return false;
  char detail[512];
  cudnnGetLastErrorString(detail, sizeof detail);
  fprintf(stderr, "engine_probe: %s: %s %s\n", what, cudnnGetErrorString(s), detail);
  return true;
}

/* The device's own properties as cuDNN writes them (needs the GPU). */
int dump_device() {
  cudnnHandle_t handle = nullptr;
  if (fail_cudnn("cudnnCreate", cudnnCreate(&handle))) return 1;
  const std::string json = engine_device_json(handle);
  cudnnDestroy(handle);
  if (json.empty()) {
    fprintf(stderr, "engine_probe: this cuDNN (%zu) cannot describe its device\n",
            cudnnGetVersion());
    return 1;
  }
  printf("%s\n", json.c_str());
  return 0;
}

/* The JSON cuDNN gives for a braid context's handle once the context is bound to a partition of
 * `sms` SMs (its handle then works on the partition's default stream). */
int dump_device_in(int sms) {
  uint64_t ctx = 0, partition = 0;
  int32_t got = 0;
  int32_t st = braid_context_create(0, &ctx);
  if (!st) st = braid_partition_create(0, sms, 0, 0, &partition, &got);
  if (!st) st = braid_context_set_partition(ctx, partition);
  Context* c = nullptr;
  if (!st) st = get_context(ctx, "engine_probe", &c);
  std::string json;
  if (!st) json = engine_device_json(c->cudnn);
  if (st) {
    char message[512];
    braid_last_error((uint8_t*)message, sizeof message);
    fprintf(stderr, "engine_probe: %s\n", message);
  }
  if (ctx) {
    (void)braid_context_set_partition(ctx, 0);
    (void)braid_context_destroy(ctx);
  }
  if (partition) (void)braid_partition_destroy(partition);
  if (st) return 1;
  if (json.empty()) {
    fprintf(stderr, "engine_probe: this cuDNN (%zu) cannot describe its device\n",
            cudnnGetVersion());
    return 1;
  }
  fprintf(stderr, "engine_probe: a partition of %d SMs (asked %d)\n", got, sms);
  printf("%s\n", json.c_str());
  return 0;
}

bool read_conv(const char* line, char* name, braid_conv2d_params* p, bool* bias, bool* res) {
  memset(p, 0, sizeof *p);
  int has_bias = 0, has_res = 0;
  const int got = sscanf(line, "%127s %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d",
                         name, &p->n, &p->c, &p->h, &p->w, &p->k, &p->oh, &p->ow, &p->kh, &p->kw,
                         &p->stride_h, &p->stride_w, &p->pad_top, &p->pad_left, &p->dilation_h,
                         &p->dilation_w, &p->groups, &p->activation, &p->allow_tf32, &has_bias,
                         &has_res);
  p->algorithm = -1;
  *bias = has_bias != 0;
  *res = has_res != 0;
  return got == 21;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && strcmp(argv[1], "--dump-device") == 0) return dump_device();
  if (argc == 3 && strcmp(argv[1], "--dump-device-in") == 0) return dump_device_in(atoi(argv[2]));
  if (argc < 2) {
    fprintf(stderr, "usage: engine_probe DEVICE.json [TARGET...] < convolutions\n"
                    "       engine_probe --dump-device\n"
                    "       engine_probe --dump-device-in SMS\n");
    return 2;
  }
  const std::string json = read_file(argv[1]);
  if (json.empty()) {
    fprintf(stderr, "engine_probe: cannot read %s\n", argv[1]);
    return 2;
  }
  bool views = true;
  std::vector<int> targets;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--whole-device") == 0) views = false;
    else targets.push_back(atoi(argv[i]));
  }
  if (targets.empty()) targets = {0, 16, 32, 64};
  cudnnBackendDescriptor_t whole = engine_device_properties(json.c_str(), 0);
  if (whole == nullptr) {
    fprintf(stderr, "engine_probe: cuDNN %zu does not take %s as device properties\n",
            cudnnGetVersion(), argv[1]);
    return 1;
  }
  const char* key = "\"multiProcessorCount\"";
  int sms = 0;
  if (const char* at = strstr(json.c_str(), key)) sscanf(at + strlen(key), " : %d", &sms);
  /* As engine_device: the device itself for the whole device, and for an SM budget below it the
   * device as a green context of that many SMs sees it (not with --whole-device: as a cuDNN that
   * cannot describe one). */
  std::vector<cudnnBackendDescriptor_t> view(targets.size(), nullptr);
  bool made = views;
  for (size_t t = 0; t < targets.size(); t++) {
    if (!views || targets[t] <= 0 || targets[t] >= sms) continue;
    view[t] = engine_device_properties(json.c_str(), targets[t]);
    made = made && view[t] != nullptr;
  }
  fprintf(stderr, "engine_probe: cuDNN %zu, %d SMs, SM budgets seen %s\n", cudnnGetVersion(), sms,
          made    ? "as green contexts of that many SMs"
          : views ? "as the whole device (this cuDNN made no partition view of it)"
                  : "as the whole device");
  char line[1024];
  while (fgets(line, sizeof line, stdin)) {
    char name[128];
    braid_conv2d_params p;
    bool bias = false, res = false;
    if (!read_conv(line, name, &p, &bias, &res)) {
      fprintf(stderr, "engine_probe: cannot read the line: %s", line);
      return 2;
    }
    for (size_t t = 0; t < targets.size(); t++) {
      const int target = targets[t];
      for (int fused = 0; fused < 2; fused++) {
        if (fused && !engine_fusable(&p)) continue;
        for (int rank = 0; rank < RANKS; rank++) {
          EnginePlan* plan = nullptr;
          const EngineChoice choice{fused != 0, rank, target};
          char text[512];
          const EngineDevice device{nullptr, view[t] ? view[t] : whole};
          const int32_t st =
              engine_plan_build(device, "engine_probe", &p, bias, res, 16, choice, &plan);
          if (st == BRAID_OK) {
            engine_plan_describe(plan, text, sizeof text);
            engine_plan_destroy(plan);
          } else {
            braid_last_error(reinterpret_cast<uint8_t*>(text), sizeof text);
          }
          printf("%s\t%d\t%s\t%d\t%s\t%s\n", name, target, fused ? "fused" : "plain", rank,
                 st == BRAID_OK ? "ok" : "-", text);
        }
      }
    }
  }
  cudnnBackendDestroyDescriptor(whole);
  for (cudnnBackendDescriptor_t v : view)
    if (v) cudnnBackendDestroyDescriptor(v);
  return 0;
}
