/*
 * context.cu — errors, handles, library queries and contexts of the CUDA backend (memory.cu has
 * its buffers and copies, streams.cu its streams, events and graphs).
 *
 * A context owns: a non-blocking default stream (handle 0) with its cuBLASLt workspace, one cuDNN
 * handle (bound to whichever stream an operator runs on), one cuBLASLt handle, a small zero
 * buffer (the bias of cuDNN's fused call when a convolution has none), the mapped error slot of
 * braid_gather, and the operator caches.
 */
#include "common.cuh"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <new>

namespace braid_cuda {

/* ---------------------------------------------------------------- load time */

/* The driver feeds a process's streams to the GPU through CUDA_DEVICE_MAX_CONNECTIONS hardware
 * work queues, 8 unless set. Streams beyond that share queues, and work queued behind another
 * stream's waits for it: the streams of a multi-stream schedule, and more so the streams of
 * several partitions' sessions or tuning workers, serialize where they should overlap. So the
 * library asks for the most (32) before the driver starts, unless the process set its own. */
__attribute__((constructor)) static void braid_default_connections() {
  setenv("CUDA_DEVICE_MAX_CONNECTIONS", "32", 0);
}

/* ---------------------------------------------------------------- switches */

bool env_is(const char* name, const char* value, bool unset) {
  const char* v = std::getenv(name);
  if (v == nullptr || v[0] == 0) return unset;
  return std::strcmp(v, value) == 0;
}

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && v[0] != 0 && std::strcmp(v, "0") != 0;
}

/* ---------------------------------------------------------------- errors */

/* Each thread's last error message. (The backend's other state per thread: the green context
 * braid made current on it, partition.cu; per process: memory.cu's one-time notice.) */
static thread_local char error_message[1024];

int32_t fail(int32_t status, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(error_message, sizeof error_message, fmt, ap);
  va_end(ap);
  return status;
}

/* The function name of a call's source text ("cudaMalloc(&p, n)" → "cudaMalloc"). */
static void call_name(const char* call, char* out, size_t len) {
  size_t n = 0;
  while (call[n] != 0 && call[n] != '(' && n + 1 < len) {
    out[n] = call[n];
    n++;
  }
  out[n] = 0;
}

static bool capture_error(cudaError_t e) {
  switch (e) {
    case cudaErrorStreamCaptureUnsupported:
    case cudaErrorStreamCaptureInvalidated:
    case cudaErrorStreamCaptureMerge:
    case cudaErrorStreamCaptureUnmatched:
    case cudaErrorStreamCaptureUnjoined:
    case cudaErrorStreamCaptureIsolation:
    case cudaErrorStreamCaptureImplicit:
    case cudaErrorCapturedEvent:
    case cudaErrorStreamCaptureWrongThread:
      return true;
    default:
      return false;
  }
}

int32_t cuda_fail(const char* fn, const char* call, cudaError_t e) {
  char name[96];
  call_name(call, name, sizeof name);
  (void)cudaGetLastError(); /* clear a non-sticky error so the context stays usable */
  int32_t status = BRAID_ERR_CUDA;
  if (e == cudaErrorMemoryAllocation) status = BRAID_ERR_OUT_OF_MEMORY;
  else if (capture_error(e)) status = BRAID_ERR_CAPTURE;
  return fail(status, "%s: %s failed: %s (%s)", fn, name, cudaGetErrorString(e),
              cudaGetErrorName(e));
}

int32_t cudnn_fail(const char* fn, const char* call, cudnnStatus_t s) {
  char name[96];
  call_name(call, name, sizeof name);
  char detail[512];
  detail[0] = 0;
  cudnnGetLastErrorString(detail, sizeof detail);
  (void)cudaGetLastError();
  return fail(BRAID_ERR_CUDNN, "%s: %s failed: %s%s%s", fn, name, cudnnGetErrorString(s),
              detail[0] ? ": " : "", detail);
}

int32_t cublas_fail(const char* fn, const char* call, cublasStatus_t s) {
  char name[96];
  call_name(call, name, sizeof name);
  (void)cudaGetLastError();
  return fail(BRAID_ERR_CUBLAS, "%s: %s failed: %s (%s)", fn, name, cublasGetStatusName(s),
              cublasGetStatusString(s));
}

/* ---------------------------------------------------------------- handles */

static int32_t bad_handle(const char* fn, const char* kind, uint64_t h) {
  if (h == 0) return fail(BRAID_ERR_INVALID_HANDLE, "%s: %s handle is 0", fn, kind);
  return fail(BRAID_ERR_INVALID_HANDLE,
              "%s: 0x%llx is not a live %s handle of this context (destroyed, of another kind "
              "or of another context)",
              fn, (unsigned long long)h, kind);
}

/* A context handle is a pointer to a struct starting with its magic; reject implausible
 * pointers before looking at it. */
static bool plausible(uint64_t h) { return h >= 4096 && (h & 7) == 0; }

int32_t get_context(uint64_t h, const char* fn, Context** out) {
  Context* c = reinterpret_cast<Context*>((uintptr_t)h);
  if (h == 0) return bad_handle(fn, "context", h);
  if (!plausible(h) || c->magic != MAGIC_CONTEXT)
    return fail(BRAID_ERR_INVALID_HANDLE,
                "%s: 0x%llx is not a live context handle (destroyed or of another kind)", fn,
                (unsigned long long)h);
  /* BRAID_PARTITION_BINDING=current: the thread's current context first (partition.cu). */
  if (c->bound_current != nullptr || thread_green_current()) {
    int32_t st = context_current(c, fn);
    if (st) return st;
  }
  int current = -1;
  if (cudaGetDevice(&current) != cudaSuccess || current != c->device)
    CUDA_TRY(fn, cudaSetDevice(c->device));
  *out = c;
  return BRAID_OK;
}

/* Looks a child handle up in the context's set, then checks its kind. */
static void* get_child(Context* c, uint64_t h, uint32_t magic) {
  bool live;
  {
    std::lock_guard<std::mutex> g(c->lock);
    live = c->handles.count(h) != 0;
  }
  if (!live || *reinterpret_cast<const uint32_t*>((uintptr_t)h) != magic) return nullptr;
  return reinterpret_cast<void*>((uintptr_t)h);
}

bool add_child(Context* c, uint64_t h, int64_t* counter) {
  std::lock_guard<std::mutex> g(c->lock);
  try {
    c->handles.insert(h);
  } catch (...) {
    return false;
  }
  (*counter)++;
  return true;
}

void remove_child(Context* c, uint64_t h, int64_t* counter) {
  std::lock_guard<std::mutex> g(c->lock);
  if (c->handles.erase(h)) (*counter)--;
}

int32_t get_stream(Context* c, uint64_t h, const char* fn, Stream** out) {
  if (h == 0) {
    *out = &c->stream0;
    return BRAID_OK;
  }
  Stream* s = static_cast<Stream*>(get_child(c, h, MAGIC_STREAM));
  if (s == nullptr) return bad_handle(fn, "stream", h);
  *out = s;
  return BRAID_OK;
}

int32_t get_event(Context* c, uint64_t h, const char* fn, Event** out) {
  Event* e = static_cast<Event*>(get_child(c, h, MAGIC_EVENT));
  if (e == nullptr) return bad_handle(fn, "event", h);
  *out = e;
  return BRAID_OK;
}

int32_t get_graph(Context* c, uint64_t h, const char* fn, Graph** out) {
  Graph* g = static_cast<Graph*>(get_child(c, h, MAGIC_GRAPH));
  if (g == nullptr) return bad_handle(fn, "graph", h);
  *out = g;
  return BRAID_OK;
}

int32_t resolve(uint64_t ctx, uint64_t stream, const char* fn, Context** c, Stream** s) {
  int32_t st = get_context(ctx, fn, c);
  if (st) return st;
  return get_stream(*c, stream, fn, s);
}

bool stream_capturing(Stream* s) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(s->s, &status) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return status == cudaStreamCaptureStatusActive;
}

bool context_capturing(Context* c) {
  std::lock_guard<std::mutex> g(c->lock);
  return c->capturing != 0;
}

/* A stream; its scratch (cuBLASLt's workspace, untuned convolutions' scratch) comes on first
 * use, so the many streams of a parallel schedule that never need it hold no memory for it. */
int32_t stream_init(Context* c, Stream* s, cudaStream_t cs, const char* fn) {
  (void)fn;
  s->magic = MAGIC_STREAM;
  s->ctx = c;
  s->s = cs;
  s->lt_ws = nullptr;
  s->lt_ws_bytes = 0;
  s->lt_ws_pooled = false;
  s->sms = c->sms;
  s->part = nullptr;
  return BRAID_OK;
}

int32_t stream_scratch(Stream* s, const char* fn, void** out) {
  if (s->lt_ws == nullptr) {
    /* From the context's pool where it has one (BRAID_ALLOC=pool), in order on this stream, where
     * the op asking for it runs next: its free at the stream's end then waits for nothing else.
     * The ops that ask hold the context's lock. */
    s->lt_ws_pooled = pool_alloc_on(s->ctx, s, LT_WORKSPACE_BYTES, &s->lt_ws, true);
    if (!s->lt_ws_pooled) {
      cudaError_t e = device_malloc(s->ctx, &s->lt_ws, LT_WORKSPACE_BYTES);
      if (e != cudaSuccess) return cuda_fail(fn, "cudaMalloc(stream scratch)", e);
    }
    s->lt_ws_bytes = LT_WORKSPACE_BYTES;
  }
  *out = s->lt_ws;
  return BRAID_OK;
}

}  // namespace braid_cuda

using namespace braid_cuda;

extern "C" {

int32_t braid_last_error(uint8_t* buf, int32_t len) {
  if (buf == NULL || len <= 0) return BRAID_OK;
  size_t n = strlen(error_message);
  if (n > (size_t)len - 1) n = (size_t)len - 1;
  memcpy(buf, error_message, n);
  buf[n] = 0;
  return BRAID_OK;
}

int32_t braid_abi_version(int32_t* out) {
  if (out == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "braid_abi_version: out is NULL");
  *out = BRAID_ABI_VERSION;
  return BRAID_OK;
}

int32_t braid_device_count(int32_t* out) {
  if (out == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "braid_device_count: out is NULL");
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    /* No driver or no device: this backend can use no device. */
    (void)cudaGetLastError();
    n = 0;
  }
  *out = n;
  return BRAID_OK;
}

/* ---------------------------------------------------------------- contexts */

static void context_free(Context* c) {
  conv_cache_destroy(c);
  gemm_cache_destroy(c);
  if (c->cudnn) cudnnDestroy(c->cudnn);
  if (c->lt) cublasLtDestroy(c->lt);
  if (c->stream0.lt_ws) cudaFree(c->stream0.lt_ws); /* a pooled one too: the stream is idle */
  if (c->zeros) cudaFree(c->zeros);
  if (c->err_host) cudaFreeHost(c->err_host);
  memory_pool_close(c);
  if (c->side_stream) cudaStreamDestroy(c->side_stream);
  if (c->stream0.s) cudaStreamDestroy(c->stream0.s);
  if (c->partition) {
    context_leave_current(c);
    partition_release(c->partition);
  }
  (void)cudaGetLastError();
  c->magic = 0;
  c->stream0.magic = 0;
  delete c;
}

int32_t braid_context_create(int32_t device, uint64_t* out_ctx) {
  static const char fn[] = "braid_context_create";
  if (out_ctx == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: out_ctx is NULL", fn);
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) return cuda_fail(fn, "cudaGetDeviceCount", e);
  if (device < 0 || device >= count)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: device %d out of range (%d CUDA device%s)", fn,
                device, count, count == 1 ? "" : "s");
  CUDA_TRY(fn, cudaSetDevice(device));
  Context* c = new (std::nothrow) Context();
  if (c == nullptr) return fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
  c->device = device;
  int32_t st = BRAID_OK;
  {
    cudaDeviceProp prop;
    e = cudaGetDeviceProperties(&prop, device);
    if (e != cudaSuccess) {
      context_free(c);
      return cuda_fail(fn, "cudaGetDeviceProperties", e);
    }
    snprintf(c->name, sizeof c->name, "%s", prop.name);
    c->sms = prop.multiProcessorCount > 0 ? prop.multiProcessorCount : 1;
    c->cc = prop.major * 10 + prop.minor;
    c->l2_bytes = prop.l2CacheSize;
    c->total_memory = (int64_t)prop.totalGlobalMem;
  }
  e = cudaDeviceGetStreamPriorityRange(&c->prio_least, &c->prio_greatest);
  if (e != cudaSuccess) {
    context_free(c);
    return cuda_fail(fn, "cudaDeviceGetStreamPriorityRange", e);
  }
  cudaStream_t s0 = nullptr;
  e = cudaStreamCreateWithFlags(&s0, cudaStreamNonBlocking);
  if (e != cudaSuccess) {
    context_free(c);
    return cuda_fail(fn, "cudaStreamCreateWithFlags", e);
  }
  st = stream_init(c, &c->stream0, s0, fn);
  if (st) {
    context_free(c);
    return st;
  }
  cudnnStatus_t ds = cudnnCreate(&c->cudnn);
  if (ds != CUDNN_STATUS_SUCCESS) {
    c->cudnn = nullptr;
    context_free(c);
    return cudnn_fail(fn, "cudnnCreate", ds);
  }
  ds = cudnnSetStream(c->cudnn, s0);
  if (ds != CUDNN_STATUS_SUCCESS) {
    context_free(c);
    return cudnn_fail(fn, "cudnnSetStream", ds);
  }
  c->cudnn_stream = s0;
  cublasStatus_t bs = cublasLtCreate(&c->lt);
  if (bs != CUBLAS_STATUS_SUCCESS) {
    c->lt = nullptr;
    context_free(c);
    return cublas_fail(fn, "cublasLtCreate", bs);
  }
  e = cudaMalloc(&c->zeros, ZERO_BIAS_COUNT * sizeof(float));
  if (e == cudaSuccess) e = cudaMemset(c->zeros, 0, ZERO_BIAS_COUNT * sizeof(float));
  /* The memset is on the legacy stream, which braid's non-blocking streams do not wait for. */
  if (e == cudaSuccess) e = cudaStreamSynchronize(nullptr);
  if (e != cudaSuccess) {
    context_free(c);
    return cuda_fail(fn, "cudaMalloc(zero bias)", e);
  }
  e = cudaHostAlloc(&c->err_host, sizeof(DeviceError),
                    cudaHostAllocMapped | cudaHostAllocPortable);
  if (e == cudaSuccess) {
    memset(c->err_host, 0, sizeof(DeviceError));
    e = cudaHostGetDevicePointer(&c->err_dev, c->err_host, 0);
  }
  if (e != cudaSuccess) {
    context_free(c);
    return cuda_fail(fn, "cudaHostAlloc(error slot)", e);
  }
  memory_pool_open(c);
  c->magic = MAGIC_CONTEXT;
  *out_ctx = (uint64_t)(uintptr_t)c;
  return BRAID_OK;
}

int32_t braid_context_destroy(uint64_t ctx) {
  static const char fn[] = "braid_context_destroy";
  Context* c = nullptr;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  int64_t streams, events, graphs;
  size_t bufs, host_bufs;
  int capturing;
  {
    std::lock_guard<std::mutex> g(c->lock);
    streams = c->streams;
    events = c->events;
    graphs = c->graphs;
    bufs = c->bufs.size();
    host_bufs = c->host_bufs.size() + c->host_registered.size();
    capturing = c->capturing;
  }
  if (capturing)
    return fail(BRAID_ERR_CAPTURE, "%s: the context is capturing; end the capture first", fn);
  if (streams || events || graphs || bufs || host_bufs)
    return fail(BRAID_ERR_INVALID_ARGUMENT,
                "%s: destroy its children first (%lld streams, %lld events, %lld graphs, %zu "
                "buffers, %zu host buffers or registrations still alive)",
                fn, (long long)streams, (long long)events, (long long)graphs, bufs, host_bufs);
  memory_pool_flush(c);
  cudaError_t e = cudaStreamSynchronize(c->stream0.s);
  context_free(c);
  if (e != cudaSuccess) return cuda_fail(fn, "cudaStreamSynchronize", e);
  return BRAID_OK;
}

int32_t braid_device_info(uint64_t ctx, uint8_t* name, int32_t name_len, int64_t* info) {
  static const char fn[] = "braid_device_info";
  Context* c = nullptr;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  if (name != NULL && name_len > 0) {
    size_t n = strlen(c->name);
    if (n > (size_t)name_len - 1) n = (size_t)name_len - 1;
    memcpy(name, c->name, n);
    name[n] = 0;
  }
  if (info != NULL) {
    size_t free_bytes = 0, total_bytes = 0;
    CUDA_TRY(fn, cudaMemGetInfo(&free_bytes, &total_bytes));
    int runtime = 0;
    CUDA_TRY(fn, cudaRuntimeGetVersion(&runtime));
    info[0] = c->sms;
    info[1] = (int64_t)total_bytes;
    info[2] = (int64_t)free_bytes;
    info[3] = c->cc;
    info[4] = 1; /* backend kind: CUDA */
    info[5] = c->l2_bytes;
    info[6] = runtime;
    info[7] = (int64_t)cudnnGetVersion();
  }
  return BRAID_OK;
}

}  // extern "C"
