/*
 * partition.cu — SM partitions as CUDA green contexts, and the SM probe.
 *
 * The green-context functions belong to the driver API (12.4+) and are resolved at run time with
 * cudaGetDriverEntryPointByVersion, at the version of the cuda.h this file is compiled against
 * (or the driver's, if older), so libbraid_cuda.so loads on any driver and a partition request on
 * one without green contexts is BRAID_ERR_UNSUPPORTED naming the missing function (the walk over
 * them and its message: driver_entry_points.h, tested against fake drivers). The functions
 * are looked up on each braid_partition_query/create (a lookup costs microseconds, a green
 * context ~1.6 ms) and kept in the partition for its streams.
 *
 * BRAID_PARTITION_BINDING=current (off by default, experimental) makes a bound context's green
 * context current on the thread that bound it, as cuCtxFromGreenCtx allows, instead of the
 * primary context: the one piece of state here kept per thread (what braid made current).
 *
 * A partition is group `group` of cuDevSmResourceSplitByCount's split of the whole device into
 * equal groups: the same split in two processes gives the same groups, so different group
 * indices are disjoint SM sets. Work reaches a partition through its streams
 * (cuGreenCtxStreamCreate), which the runtime API, cuDNN and cuBLASLt use like any stream;
 * graphs captured on them stay confined when replayed. A partition counts the contexts bound to
 * it and the streams in it, and refuses to be destroyed while any remain.
 */
#include "common.cuh"

#include <cuda.h>

#include "driver_entry_points.h"
#include "green_current.h"

#include <atomic>
#include <new>
#include <thread>
#include <vector>

namespace braid_cuda {

/* The driver functions partitions use, resolved at run time. */
struct GreenApi {
  decltype(&::cuDeviceGet) device_get;
  decltype(&::cuDeviceGetDevResource) get_resource;
  decltype(&::cuDevSmResourceSplitByCount) split;
  decltype(&::cuDevResourceGenerateDesc) generate_desc;
  decltype(&::cuGreenCtxCreate) create;
  decltype(&::cuGreenCtxDestroy) destroy;
  decltype(&::cuGreenCtxStreamCreate) stream_create;
  decltype(&::cuGetErrorName) error_name; /* optional: messages only */
  /* Optional: BRAID_PARTITION_BINDING=current only. */
  decltype(&::cuCtxFromGreenCtx) from_green;
  decltype(&::cuCtxGetCurrent) ctx_get_current;
  decltype(&::cuCtxSetCurrent) ctx_set_current;
};

struct Partition {
  uint32_t magic;
  int device, sms, group, flags;
  CUgreenCtx green;
  GreenApi api;
  std::atomic<int> refs; /* contexts bound + streams in it */
  CurrentClaim current; /* BRAID_PARTITION_BINDING=current: the contexts that made it current */
};

/* Set to 1 to make every lookup fail as on a driver without green contexts. */
static bool lookups_disabled() { return env_flag("BRAID_NO_GREEN_CONTEXTS"); }

static int32_t resolve_api(const char* fn, GreenApi* api) {
  int driver = 0;
  CUDA_TRY(fn, cudaDriverGetVersion(&driver));
  const unsigned version = lookup_version(driver, CUDA_VERSION);
  const bool disabled = lookups_disabled();
  DriverEntry entries[] = {
      {"cuDeviceGet", reinterpret_cast<void**>(&api->device_get), true},
      {"cuDeviceGetDevResource", reinterpret_cast<void**>(&api->get_resource), true},
      {"cuDevSmResourceSplitByCount", reinterpret_cast<void**>(&api->split), true},
      {"cuDevResourceGenerateDesc", reinterpret_cast<void**>(&api->generate_desc), true},
      {"cuGreenCtxCreate", reinterpret_cast<void**>(&api->create), true},
      {"cuGreenCtxDestroy", reinterpret_cast<void**>(&api->destroy), true},
      {"cuGreenCtxStreamCreate", reinterpret_cast<void**>(&api->stream_create), true},
      {"cuGetErrorName", reinterpret_cast<void**>(&api->error_name), false},
      {"cuCtxFromGreenCtx", reinterpret_cast<void**>(&api->from_green), false},
      {"cuCtxGetCurrent", reinterpret_cast<void**>(&api->ctx_get_current), false},
      {"cuCtxSetCurrent", reinterpret_cast<void**>(&api->ctx_set_current), false},
  };
  const auto lookup = [](const char* name, unsigned at, void** address, const char** error) {
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    const cudaError_t r = cudaGetDriverEntryPointByVersion(name, address, at, cudaEnableDefault,
                                                           &found);
    if (r != cudaSuccess) {
      (void)cudaGetLastError();
      *error = cudaGetErrorString(r);
      return EntryLookup::failed;
    }
    return found == cudaDriverEntryPointSuccess ? EntryLookup::found
           : found == cudaDriverEntryPointVersionNotSufficent ? EntryLookup::version_too_low
                                                               : EntryLookup::not_found;
  };
  const MissingEntry missing =
      resolve_entries(entries, sizeof entries / sizeof entries[0], version, disabled, lookup);
  if (missing.name == nullptr) return BRAID_OK;
  char message[512];
  missing_entry_message(message, sizeof message, fn, driver, version, missing, disabled);
  return fail(BRAID_ERR_UNSUPPORTED, "%s", message);
}

/* A failed driver call: the message names the braid function and the call. */
static int32_t driver_fail(const char* fn, const char* call, CUresult r, const GreenApi& api) {
  const char* name = nullptr;
  if (api.error_name == nullptr || api.error_name(r, &name) != CUDA_SUCCESS) name = nullptr;
  int32_t status = BRAID_ERR_CUDA;
  if (r == CUDA_ERROR_OUT_OF_MEMORY) status = BRAID_ERR_OUT_OF_MEMORY;
  if (r == CUDA_ERROR_NOT_SUPPORTED) status = BRAID_ERR_UNSUPPORTED;
  return fail(status, "%s: %s failed: %s (CUresult %d)", fn, call, name ? name : "unknown error",
              (int)r);
}

#define DRV_TRY(fn, api, call)                                          \
  do {                                                                  \
    CUresult braid_r_ = (call);                                         \
    if (braid_r_ != CUDA_SUCCESS) return driver_fail(fn, #call, braid_r_, api); \
  } while (0)

/* The split of a device into groups of at least `sms` SMs (all groups in `groups`). */
struct Split {
  CUdevice dev = 0;
  unsigned total = 0;    /* the device's SMs */
  unsigned smallest = 0; /* SMs of the smallest partition these flags allow */
  std::vector<CUdevResource> groups;
};

static int32_t split_device(const char* fn, const GreenApi& api, int device, int sms, int flags,
                            Split* out) {
  int count = 0;
  CUDA_TRY(fn, cudaGetDeviceCount(&count));
  if (device < 0 || device >= count)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: device %d out of range (%d CUDA device%s)", fn,
                device, count, count == 1 ? "" : "s");
  if (flags != 0 && flags != BRAID_PARTITION_FINE)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: flags %d are not 0 or BRAID_PARTITION_FINE (1)",
                fn, flags);
  /* Green contexts retain the primary context: make it active first (CUDA's advice). */
  CUDA_TRY(fn, cudaSetDevice(device));
  CUDA_TRY(fn, cudaFree(nullptr));
  DRV_TRY(fn, api, api.device_get(&out->dev, device));
  CUdevResource whole;
  memset(&whole, 0, sizeof whole);
  DRV_TRY(fn, api, api.get_resource(out->dev, &whole, CU_DEV_RESOURCE_TYPE_SM));
  out->total = whole.sm.smCount;
  if (sms < 1 || (unsigned)sms > out->total)
    return fail(BRAID_ERR_INVALID_ARGUMENT,
                "%s: a partition of %d SMs is out of range: device %d has %u SMs", fn, sms, device,
                out->total);
  const unsigned use = flags == BRAID_PARTITION_FINE
                           ? (unsigned)CU_DEV_SM_RESOURCE_SPLIT_IGNORE_SM_COSCHEDULING
                           : 0u;
  /* The smallest partition: a split into groups of at least one SM. */
  {
    unsigned n = 0;
    DRV_TRY(fn, api, api.split(nullptr, &n, &whole, nullptr, use, 1));
    if (n > 0) {
      std::vector<CUdevResource> one(n);
      DRV_TRY(fn, api, api.split(one.data(), &n, &whole, nullptr, use, 1));
      if (n > 0) out->smallest = one[0].sm.smCount;
    }
  }
  unsigned n = 0;
  DRV_TRY(fn, api, api.split(nullptr, &n, &whole, nullptr, use, (unsigned)sms));
  if (n > 0) {
    out->groups.resize(n);
    DRV_TRY(fn, api, api.split(out->groups.data(), &n, &whole, nullptr, use, (unsigned)sms));
    out->groups.resize(n);
  }
  if (out->groups.empty())
    return fail(BRAID_ERR_INVALID_ARGUMENT,
                "%s: no group of %d SMs fits device %d: rounded up to the partition granularity "
                "(smallest partition %u SMs%s) it exceeds the device's %u SMs",
                fn, sms, device, out->smallest,
                flags == BRAID_PARTITION_FINE ? ", fine" : "", out->total);
  return BRAID_OK;
}

int32_t get_partition(uint64_t h, const char* fn, Partition** out) {
  Partition* p = reinterpret_cast<Partition*>((uintptr_t)h);
  if (h == 0) return fail(BRAID_ERR_INVALID_HANDLE, "%s: partition handle is 0", fn);
  if (h < 4096 || (h & 7) != 0 || p->magic != MAGIC_PARTITION)
    return fail(BRAID_ERR_INVALID_HANDLE,
                "%s: 0x%llx is not a live partition handle (destroyed or of another kind)", fn,
                (unsigned long long)h);
  *out = p;
  return BRAID_OK;
}

int32_t partition_stream_create(Partition* p, int cuda_priority, const char* fn,
                                cudaStream_t* out) {
  CUstream s = nullptr;
  DRV_TRY(fn, p->api,
          p->api.stream_create(&s, p->green, CU_STREAM_NON_BLOCKING, cuda_priority));
  p->refs++;
  *out = reinterpret_cast<cudaStream_t>(s);
  return BRAID_OK;
}

/* ---------------------------------------------------------------- the green context current */

/* BRAID_PARTITION_BINDING unset, empty or "streams": the default, which must match
 * partitionBindingFromEnv()'s first value in ffi/backend.ts (which also rejects other values). */
bool binding_current_from_env() { return env_is("BRAID_PARTITION_BINDING", "current"); }

int32_t partition_claim_current(Partition* p, const char* fn, void** out_cuctx) {
  const GreenApi& api = p->api;
  if (api.from_green == nullptr || api.ctx_get_current == nullptr ||
      api.ctx_set_current == nullptr)
    return fail(BRAID_ERR_UNSUPPORTED,
                "%s: BRAID_PARTITION_BINDING=current needs cuCtxFromGreenCtx, cuCtxGetCurrent and "
                "cuCtxSetCurrent, which this CUDA driver does not give",
                fn);
  CUcontext cu = nullptr;
  DRV_TRY(fn, api, api.from_green(&cu, p->green));
  if (!p->current.take())
    return fail(BRAID_ERR_INVALID_ARGUMENT,
                "%s: the partition (group %d, %d SMs) is current on another thread: with "
                "BRAID_PARTITION_BINDING=current a partition serves the contexts of one thread",
                fn, p->group, p->sms);
  *out_cuctx = cu;
  return BRAID_OK;
}

void partition_unclaim_current(Partition* p) { p->current.drop(); }

using GreenThread = ThreadCurrent<CUcontext, CUresult>;

static GreenThread::Calls current_calls(const GreenApi& api) {
  return {api.ctx_get_current, api.ctx_set_current, CUDA_SUCCESS};
}

bool thread_green_current() { return GreenThread::active(); }

int32_t context_current(Context* c, const char* fn) {
  void* bound = c->bound_current.load();
  if (bound != nullptr && c->bound_thread == std::this_thread::get_id()) {
    const GreenApi& api = c->partition->api;
    const CUresult r = GreenThread::enter(static_cast<CUcontext>(bound), current_calls(api));
    if (r != CUDA_SUCCESS)
      return driver_fail(fn, "cuCtxSetCurrent(the partition's green context)", r, api);
    return BRAID_OK;
  }
  if (!GreenThread::leave())
    return fail(BRAID_ERR_CUDA,
                "%s: cuCtxSetCurrent could not make the primary context current again after a "
                "partition's green context",
                fn);
  return BRAID_OK;
}

void context_leave_current(Context* c) {
  void* bound = c->bound_current.load();
  if (bound == nullptr) return;
  if (c->bound_thread == std::this_thread::get_id())
    GreenThread::drop(static_cast<CUcontext>(bound), current_calls(c->partition->api));
  partition_unclaim_current(c->partition);
  c->bound_current = nullptr;
}

int partition_sms(const Partition* p) { return p->sms; }
void partition_retain(Partition* p) { p->refs++; }
void partition_release(Partition* p) { p->refs--; }

/* ---------------------------------------------------------------- SM probe */

/* Thread 0 of each block marks the SM it runs on, then holds the SM a few microseconds so that
 * the blocks spread over every SM the stream may use. */
__global__ void sm_probe_kernel(unsigned* seen, int n, long long hold) {
  if (threadIdx.x != 0) return;
  unsigned id;
  asm volatile("mov.u32 %0, %%smid;" : "=r"(id));
  if (id < (unsigned)n) seen[id] = 1u;
  const long long t0 = clock64();
  while (clock64() - t0 < hold) {
  }
}

}  // namespace braid_cuda

using namespace braid_cuda;

extern "C" {

int32_t braid_partition_query(int32_t device, int32_t sms, int32_t flags, int32_t* out) {
  static const char fn[] = "braid_partition_query";
  if (out == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
  GreenApi api;
  int32_t st = resolve_api(fn, &api);
  if (st) return st;
  Split split;
  if ((st = split_device(fn, api, device, sms, flags, &split))) return st;
  out[0] = (int32_t)split.groups[0].sm.smCount;
  out[1] = (int32_t)split.groups.size();
  out[2] = (int32_t)split.total;
  out[3] = (int32_t)split.smallest;
  return BRAID_OK;
}

int32_t braid_partition_create(int32_t device, int32_t sms, int32_t group, int32_t flags,
                               uint64_t* out_partition, int32_t* out_sms) {
  static const char fn[] = "braid_partition_create";
  if (out_partition == NULL || out_sms == NULL)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: out_partition or out_sms is NULL", fn);
  GreenApi api;
  int32_t st = resolve_api(fn, &api);
  if (st) return st;
  Split split;
  if ((st = split_device(fn, api, device, sms, flags, &split))) return st;
  const int groups = (int)split.groups.size();
  if (group < 0 || group >= groups)
    return fail(BRAID_ERR_INVALID_ARGUMENT,
                "%s: group %d is out of range: device %d splits into %d group%s of %u SMs (from "
                "%d requested)",
                fn, group, device, groups, groups == 1 ? "" : "s",
                split.groups[0].sm.smCount, sms);
  CUdevResourceDesc desc = nullptr;
  DRV_TRY(fn, api, api.generate_desc(&desc, &split.groups[group], 1));
  CUgreenCtx green = nullptr;
  DRV_TRY(fn, api, api.create(&green, desc, split.dev, CU_GREEN_CTX_DEFAULT_STREAM));
  Partition* p = new (std::nothrow) Partition();
  if (p == nullptr) {
    api.destroy(green);
    return fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
  }
  p->magic = MAGIC_PARTITION;
  p->device = device;
  p->sms = (int)split.groups[group].sm.smCount;
  p->group = group;
  p->flags = flags;
  p->green = green;
  p->api = api;
  p->refs = 0;
  *out_partition = (uint64_t)(uintptr_t)p;
  *out_sms = p->sms;
  return BRAID_OK;
}

int32_t braid_partition_destroy(uint64_t partition) {
  static const char fn[] = "braid_partition_destroy";
  Partition* p = nullptr;
  int32_t st = get_partition(partition, fn, &p);
  if (st) return st;
  const int refs = p->refs.load();
  if (refs > 0)
    return fail(BRAID_ERR_INVALID_ARGUMENT,
                "%s: %d context binding%s or stream%s still use the partition; destroy them first",
                fn, refs, refs == 1 ? "" : "s", refs == 1 ? "" : "s");
  const CUresult r = p->api.destroy(p->green);
  const GreenApi api = p->api;
  p->magic = 0;
  delete p;
  if (r != CUDA_SUCCESS) return driver_fail(fn, "cuGreenCtxDestroy", r, api);
  return BRAID_OK;
}

int32_t braid_partition_info(uint64_t partition, int32_t* out) {
  static const char fn[] = "braid_partition_info";
  Partition* p = nullptr;
  int32_t st = get_partition(partition, fn, &p);
  if (st) return st;
  if (out == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
  out[0] = p->sms;
  out[1] = p->group;
  out[2] = p->device;
  out[3] = p->flags;
  out[4] = p->refs.load();
  return BRAID_OK;
}

int32_t braid_sm_probe(uint64_t ctx, uint64_t stream, int32_t blocks, uint8_t* out, int32_t len,
                       int32_t* out_count) {
  static const char fn[] = "braid_sm_probe";
  Context* c = nullptr;
  Stream* s = nullptr;
  int32_t st = resolve(ctx, stream, fn, &c, &s);
  if (st) return st;
  if (out == NULL || out_count == NULL || len <= 0)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: out, len %d or out_count is invalid", fn, len);
  if (blocks <= 0 || blocks > (1 << 20))
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: blocks %d is outside 1..%d", fn, blocks, 1 << 20);
  {
    std::lock_guard<std::mutex> g(c->lock);
    if (c->capturing || stream_capturing(s))
      return fail(BRAID_ERR_CAPTURE, "%s: illegal while the context is capturing", fn);
  }
  std::vector<unsigned> host((size_t)len, 0u);
  unsigned* seen = nullptr;
  const size_t bytes = (size_t)len * sizeof(unsigned);
  CUDA_TRY(fn, cudaMalloc(&seen, bytes));
  cudaError_t e = cudaMemsetAsync(seen, 0, bytes, s->s);
  if (e == cudaSuccess) {
    sm_probe_kernel<<<(unsigned)blocks, 32, 0, s->s>>>(seen, len, 20000);
    e = cudaGetLastError();
  }
  if (e == cudaSuccess) e = cudaMemcpyAsync(host.data(), seen, bytes, cudaMemcpyDeviceToHost, s->s);
  if (e == cudaSuccess) e = cudaStreamSynchronize(s->s);
  cudaFree(seen);
  if (e != cudaSuccess) return cuda_fail(fn, "sm_probe_kernel", e);
  int32_t count = 0;
  for (int32_t i = 0; i < len; i++) {
    out[i] = host[(size_t)i] ? 1 : 0;
    count += out[i];
  }
  *out_count = count;
  return BRAID_OK;
}

}  // extern "C"
