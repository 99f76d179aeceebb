/*
 * context.cu — errors, library queries, contexts, memory, copies, streams, events, capture and
 * graph replay of the CUDA backend.
 *
 * A context owns: a non-blocking default stream (handle 0) with its cuBLASLt workspace, one cuDNN
 * handle (bound to whichever stream an operator runs on), one cuBLASLt handle, a small zero
 * buffer (the bias of cuDNN's fused call when a convolution has none), the mapped error slot of
 * braid_gather, and the operator caches. Events are timing events (braid_event_elapsed needs
 * them; an ordering-only record costs the same inside a capture).
 */
#include "common.cuh"

#include <cstdarg>
#include <cstdio>
#include <new>

namespace braid_cuda {

/* ---------------------------------------------------------------- errors */

/* The only global state of the backend: each thread's last error message. */
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

static bool add_child(Context* c, uint64_t h, int64_t* counter) {
  std::lock_guard<std::mutex> g(c->lock);
  try {
    c->handles.insert(h);
  } catch (...) {
    return false;
  }
  (*counter)++;
  return true;
}

static void remove_child(Context* c, uint64_t h, int64_t* counter) {
  std::lock_guard<std::mutex> g(c->lock);
  if (c->handles.erase(h)) (*counter)--;
}

static int32_t get_stream(Context* c, uint64_t h, const char* fn, Stream** out) {
  if (h == 0) {
    *out = &c->stream0;
    return BRAID_OK;
  }
  Stream* s = static_cast<Stream*>(get_child(c, h, MAGIC_STREAM));
  if (s == nullptr) return bad_handle(fn, "stream", h);
  *out = s;
  return BRAID_OK;
}

static int32_t get_event(Context* c, uint64_t h, const char* fn, Event** out) {
  Event* e = static_cast<Event*>(get_child(c, h, MAGIC_EVENT));
  if (e == nullptr) return bad_handle(fn, "event", h);
  *out = e;
  return BRAID_OK;
}

static int32_t get_graph(Context* c, uint64_t h, const char* fn, Graph** out) {
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

static bool context_capturing(Context* c) {
  std::lock_guard<std::mutex> g(c->lock);
  return c->capturing != 0;
}

/* A stream; its scratch (cuBLASLt's workspace, untuned convolutions' scratch) comes on first
 * use, so the many streams of a parallel schedule that never need it hold no memory for it. */
static int32_t stream_init(Context* c, Stream* s, cudaStream_t cs, const char* fn) {
  (void)fn;
  s->magic = MAGIC_STREAM;
  s->ctx = c;
  s->s = cs;
  s->lt_ws = nullptr;
  s->lt_ws_bytes = 0;
  s->sms = c->sms;
  s->part = nullptr;
  return BRAID_OK;
}

int32_t stream_scratch(Stream* s, const char* fn, void** out) {
  if (s->lt_ws == nullptr) {
    RelaxedCapture relaxed; /* cudaMalloc is legal, if not captured, during a capture */
    cudaError_t e = cudaMalloc(&s->lt_ws, LT_WORKSPACE_BYTES);
    if (e != cudaSuccess) {
      s->lt_ws = nullptr;
      return cuda_fail(fn, "cudaMalloc(stream scratch)", e);
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
  if (c->stream0.lt_ws) cudaFree(c->stream0.lt_ws);
  if (c->zeros) cudaFree(c->zeros);
  if (c->err_host) cudaFreeHost(c->err_host);
  if (c->stream0.s) cudaStreamDestroy(c->stream0.s);
  if (c->partition) partition_release(c->partition);
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
  e = cudaHostAlloc(&c->err_host, sizeof(DeviceError), cudaHostAllocMapped);
  if (e == cudaSuccess) {
    memset(c->err_host, 0, sizeof(DeviceError));
    e = cudaHostGetDevicePointer(&c->err_dev, c->err_host, 0);
  }
  if (e != cudaSuccess) {
    context_free(c);
    return cuda_fail(fn, "cudaHostAlloc(error slot)", e);
  }
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
    host_bufs = c->host_bufs.size();
    capturing = c->capturing;
  }
  if (capturing)
    return fail(BRAID_ERR_CAPTURE, "%s: the context is capturing; end the capture first", fn);
  if (streams || events || graphs || bufs || host_bufs)
    return fail(BRAID_ERR_INVALID_ARGUMENT,
                "%s: destroy its children first (%lld streams, %lld events, %lld graphs, %zu "
                "buffers, %zu host buffers still alive)",
                fn, (long long)streams, (long long)events, (long long)graphs, bufs, host_bufs);
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

/* ---------------------------------------------------------------- memory */

int32_t braid_buffer_alloc(uint64_t ctx, uint64_t bytes, uint64_t* out_addr) {
  static const char fn[] = "braid_buffer_alloc";
  Context* c = nullptr;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  if (out_addr == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: out_addr is NULL", fn);
  if (bytes > ((uint64_t)1 << 52))
    return fail(BRAID_ERR_OUT_OF_MEMORY, "%s: cannot allocate %llu bytes", fn,
                (unsigned long long)bytes);
  size_t size = bytes == 0 ? 256 : (size_t)((bytes + 255) & ~(uint64_t)255);
  void* p = nullptr;
  cudaError_t e;
  {
    RelaxedCapture relaxed;
    e = cudaMalloc(&p, size);
    /* Zero-filled: work run before any input arrives (tuning, warm-up) reads zeros, not a
     * previous session's activations (as token ids, those are gather errors; as floats, NaNs). */
    if (e == cudaSuccess) {
      /* cudaMemset runs on the legacy stream, asynchronously to the host, and braid's streams do
       * not wait for that stream: finish it here, before any of them can touch the buffer. */
      e = cudaMemset(p, 0, size);
      if (e == cudaSuccess) e = cudaStreamSynchronize(nullptr);
      if (e != cudaSuccess) cudaFree(p);
    }
  }
  if (e != cudaSuccess) {
    (void)cudaGetLastError(); /* out of memory is not sticky: the context goes on */
    int32_t status = e == cudaErrorMemoryAllocation ? BRAID_ERR_OUT_OF_MEMORY : BRAID_ERR_CUDA;
    return fail(status, "%s: cannot allocate %llu bytes of device memory (cudaMalloc: %s)", fn,
                (unsigned long long)bytes, cudaGetErrorString(e));
  }
  uint64_t addr = (uint64_t)(uintptr_t)p;
  bool ok = true;
  {
    std::lock_guard<std::mutex> g(c->lock);
    try {
      c->bufs[addr] = size;
    } catch (...) {
      ok = false;
    }
  }
  if (!ok) {
    RelaxedCapture relaxed;
    cudaFree(p);
    return fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory tracking %llu bytes", fn,
                (unsigned long long)bytes);
  }
  *out_addr = addr;
  return BRAID_OK;
}

int32_t braid_buffer_free(uint64_t ctx, uint64_t addr) {
  static const char fn[] = "braid_buffer_free";
  Context* c = nullptr;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  if (addr == 0) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: address is 0", fn);
  bool found;
  {
    std::lock_guard<std::mutex> g(c->lock);
    found = c->bufs.erase(addr) != 0;
  }
  if (!found)
    return fail(BRAID_ERR_INVALID_ARGUMENT,
                "%s: 0x%llx is not the base address of a live allocation of this context", fn,
                (unsigned long long)addr);
  RelaxedCapture relaxed;
  CUDA_TRY(fn, cudaFree(reinterpret_cast<void*>((uintptr_t)addr)));
  return BRAID_OK;
}

int32_t braid_host_alloc(uint64_t ctx, uint64_t bytes, uint64_t* out_addr) {
  static const char fn[] = "braid_host_alloc";
  Context* c = nullptr;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  if (out_addr == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: out_addr is NULL", fn);
  if (bytes > ((uint64_t)1 << 52))
    return fail(BRAID_ERR_OUT_OF_MEMORY, "%s: cannot allocate %llu bytes", fn,
                (unsigned long long)bytes);
  size_t size = bytes == 0 ? 256 : (size_t)((bytes + 255) & ~(uint64_t)255);
  void* p = nullptr;
  cudaError_t e;
  {
    RelaxedCapture relaxed;
    e = cudaHostAlloc(&p, size, cudaHostAllocPortable);
  }
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    int32_t status = e == cudaErrorMemoryAllocation ? BRAID_ERR_OUT_OF_MEMORY : BRAID_ERR_CUDA;
    return fail(status, "%s: cannot allocate %llu bytes of page-locked memory (cudaHostAlloc: %s)",
                fn, (unsigned long long)bytes, cudaGetErrorString(e));
  }
  memset(p, 0, size); /* zero-filled, as braid_buffer_alloc */
  uint64_t addr = (uint64_t)(uintptr_t)p;
  bool ok = true;
  {
    std::lock_guard<std::mutex> g(c->lock);
    try {
      c->host_bufs[addr] = size;
    } catch (...) {
      ok = false;
    }
  }
  if (!ok) {
    RelaxedCapture relaxed;
    cudaFreeHost(p);
    return fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory tracking %llu bytes", fn,
                (unsigned long long)bytes);
  }
  *out_addr = addr;
  return BRAID_OK;
}

int32_t braid_host_free(uint64_t ctx, uint64_t addr) {
  static const char fn[] = "braid_host_free";
  Context* c = nullptr;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  if (addr == 0) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: address is 0", fn);
  bool found;
  {
    std::lock_guard<std::mutex> g(c->lock);
    found = c->host_bufs.erase(addr) != 0;
  }
  if (!found)
    return fail(BRAID_ERR_INVALID_ARGUMENT,
                "%s: 0x%llx is not the base address of a live host allocation of this context",
                fn, (unsigned long long)addr);
  RelaxedCapture relaxed;
  CUDA_TRY(fn, cudaFreeHost(reinterpret_cast<void*>((uintptr_t)addr)));
  return BRAID_OK;
}

/* ---------------------------------------------------------------- copies */

/* True when [p, p+bytes) is page-locked host memory (so a copy of it can be captured). */
static bool page_locked(Context* c, const void* p, uint64_t bytes) {
  uint64_t a = (uint64_t)(uintptr_t)p;
  {
    std::lock_guard<std::mutex> g(c->lock);
    auto it = c->host_bufs.upper_bound(a);
    if (it != c->host_bufs.begin()) {
      --it;
      if (a >= it->first && a + bytes <= it->first + it->second) return true;
    }
  }
  cudaPointerAttributes attr;
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return attr.type == cudaMemoryTypeHost;
}

/* Host copies: page-locked memory copies asynchronously (and can be captured); pageable memory
 * goes through CUDA's own staging, which consumes `src` before returning (H2D) and completes the
 * copy before returning (D2H), so both keep braid.h's guarantees. */
static int32_t issue_copy(uint64_t ctx, uint64_t stream, const char* fn, void* dst,
                          const void* src, uint64_t bytes, cudaMemcpyKind kind) {
  Context* c = nullptr;
  Stream* s = nullptr;
  int32_t st = resolve(ctx, stream, fn, &c, &s);
  if (st) return st;
  if (bytes > 0 && dst == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: destination is 0", fn);
  if (bytes > 0 && src == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: source is 0", fn);
  if (bytes > ((uint64_t)1 << 52))
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: %llu bytes is too many", fn,
                (unsigned long long)bytes);
  if (bytes == 0) return BRAID_OK;
  if (kind != cudaMemcpyDeviceToDevice && stream_capturing(s)) {
    const void* host = kind == cudaMemcpyHostToDevice ? src : dst;
    if (!page_locked(c, host, bytes))
      return fail(BRAID_ERR_CAPTURE,
                  "%s: a copy %s pageable host memory cannot be captured; use page-locked memory "
                  "from braid_host_alloc",
                  fn, kind == cudaMemcpyHostToDevice ? "from" : "to");
  }
  CUDA_TRY(fn, cudaMemcpyAsync(dst, src, (size_t)bytes, kind, s->s));
  return BRAID_OK;
}

int32_t braid_memcpy_h2d(uint64_t ctx, uint64_t stream, uint64_t dst, const void* src,
                         uint64_t bytes) {
  return issue_copy(ctx, stream, "braid_memcpy_h2d", reinterpret_cast<void*>((uintptr_t)dst), src,
                    bytes, cudaMemcpyHostToDevice);
}

int32_t braid_memcpy_d2h(uint64_t ctx, uint64_t stream, void* dst, uint64_t src, uint64_t bytes) {
  return issue_copy(ctx, stream, "braid_memcpy_d2h", dst,
                    reinterpret_cast<const void*>((uintptr_t)src), bytes, cudaMemcpyDeviceToHost);
}

int32_t braid_memcpy_d2d(uint64_t ctx, uint64_t stream, uint64_t dst, uint64_t src,
                         uint64_t bytes) {
  return issue_copy(ctx, stream, "braid_memcpy_d2d", reinterpret_cast<void*>((uintptr_t)dst),
                    reinterpret_cast<const void*>((uintptr_t)src), bytes,
                    cudaMemcpyDeviceToDevice);
}

/* ---------------------------------------------------------------- streams */

/* A new stream of `c`, in partition `part` (a green-context stream) or on the whole device. */
static int32_t create_stream(Context* c, Partition* part, int32_t priority, const char* fn,
                             uint64_t* out_stream) {
  if (out_stream == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: out_stream is NULL", fn);
  /* braid: higher runs first; CUDA: lower numbers run first, in [greatest, least]. */
  int p = priority > 0 ? priority : 0;
  int cuda_priority = c->prio_least - p;
  if (cuda_priority < c->prio_greatest) cuda_priority = c->prio_greatest;
  cudaStream_t cs = nullptr;
  if (part) {
    int32_t st = partition_stream_create(part, cuda_priority, fn, &cs);
    if (st) return st;
  } else {
    CUDA_TRY(fn, cudaStreamCreateWithPriority(&cs, cudaStreamNonBlocking, cuda_priority));
  }
  Stream* s = new (std::nothrow) Stream();
  int32_t st = s == nullptr ? fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory", fn)
                            : stream_init(c, s, cs, fn);
  if (st == BRAID_OK && !add_child(c, (uint64_t)(uintptr_t)s, &c->streams))
    st = fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
  if (st) {
    if (s && s->lt_ws) cudaFree(s->lt_ws);
    cudaStreamDestroy(cs);
    if (part) partition_release(part);
    delete s;
    return st;
  }
  if (part) {
    s->sms = partition_sms(part);
    s->part = part;
  }
  *out_stream = (uint64_t)(uintptr_t)s;
  return BRAID_OK;
}

int32_t braid_stream_create(uint64_t ctx, int32_t priority, uint64_t* out_stream) {
  static const char fn[] = "braid_stream_create";
  Context* c = nullptr;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  return create_stream(c, c->partition, priority, fn, out_stream);
}

/* A live partition on the context's device. */
static int32_t partition_of(Context* c, uint64_t partition, const char* fn, Partition** out) {
  int32_t st = get_partition(partition, fn, out);
  if (st) return st;
  int32_t facts[5];
  if ((st = braid_partition_info(partition, facts))) return st;
  if (facts[2] != c->device)
    return fail(BRAID_ERR_INVALID_ARGUMENT,
                "%s: the partition is on device %d, the context on device %d", fn, facts[2],
                c->device);
  return BRAID_OK;
}

int32_t braid_partition_stream_create(uint64_t ctx, uint64_t partition, int32_t priority,
                                      uint64_t* out_stream) {
  static const char fn[] = "braid_partition_stream_create";
  Context* c = nullptr;
  Partition* part = nullptr;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  if ((st = partition_of(c, partition, fn, &part))) return st;
  return create_stream(c, part, priority, fn, out_stream);
}

int32_t braid_context_set_partition(uint64_t ctx, uint64_t partition) {
  static const char fn[] = "braid_context_set_partition";
  Context* c = nullptr;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  Partition* part = nullptr;
  if (partition != 0 && (st = partition_of(c, partition, fn, &part))) return st;
  {
    std::lock_guard<std::mutex> g(c->lock);
    if (c->capturing) return fail(BRAID_ERR_CAPTURE, "%s: the context is capturing", fn);
    if (c->streams || c->graphs)
      return fail(BRAID_ERR_INVALID_ARGUMENT,
                  "%s: bind a context before it has streams or graphs (%lld streams, %lld graphs "
                  "alive)",
                  fn, (long long)c->streams, (long long)c->graphs);
  }
  if (part == c->partition) return BRAID_OK;
  /* The default stream is replaced by one in the partition (or on the whole device). */
  cudaStream_t fresh = nullptr;
  if (part) {
    if ((st = partition_stream_create(part, c->prio_least, fn, &fresh))) return st;
  } else {
    CUDA_TRY(fn, cudaStreamCreateWithFlags(&fresh, cudaStreamNonBlocking));
  }
  cudaError_t e = cudaStreamSynchronize(c->stream0.s);
  if (e != cudaSuccess) {
    cudaStreamDestroy(fresh);
    if (part) partition_release(part);
    return cuda_fail(fn, "cudaStreamSynchronize", e);
  }
  {
    std::lock_guard<std::mutex> g(c->lock);
    if (c->cudnn_stream == c->stream0.s) {
      cudnnStatus_t ds = cudnnSetStream(c->cudnn, fresh);
      if (ds != CUDNN_STATUS_SUCCESS) {
        cudaStreamDestroy(fresh);
        if (part) partition_release(part);
        return cudnn_fail(fn, "cudnnSetStream", ds);
      }
      c->cudnn_stream = fresh;
    }
    cudaStreamDestroy(c->stream0.s);
    if (c->partition) partition_release(c->partition);
    c->stream0.s = fresh;
    c->stream0.sms = part ? partition_sms(part) : c->sms;
    c->stream0.part = part;
    c->partition = part;
  }
  return BRAID_OK;
}

int32_t braid_stream_sms(uint64_t ctx, uint64_t stream, int32_t* out) {
  static const char fn[] = "braid_stream_sms";
  Context* c = nullptr;
  Stream* s = nullptr;
  int32_t st = resolve(ctx, stream, fn, &c, &s);
  if (st) return st;
  if (out == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
  *out = s->sms;
  return BRAID_OK;
}

/* Waits for a stream's work (outside a capture). */
static int32_t wait_stream(uint64_t ctx, uint64_t stream, const char* fn, Context** c) {
  Stream* s = nullptr;
  int32_t st = resolve(ctx, stream, fn, c, &s);
  if (st) return st;
  if (context_capturing(*c))
    return fail(BRAID_ERR_CAPTURE, "%s: illegal while the context is capturing", fn);
  CUDA_TRY(fn, cudaStreamSynchronize(s->s));
  return BRAID_OK;
}

int32_t braid_stream_wait(uint64_t ctx, uint64_t stream) {
  Context* c = nullptr;
  return wait_stream(ctx, stream, "braid_stream_wait", &c);
}

int32_t braid_stream_destroy(uint64_t ctx, uint64_t stream) {
  static const char fn[] = "braid_stream_destroy";
  Context* c = nullptr;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  if (stream == 0)
    return fail(BRAID_ERR_INVALID_HANDLE,
                "%s: stream 0 is the context's default stream and cannot be destroyed", fn);
  Stream* s = nullptr;
  st = get_stream(c, stream, fn, &s);
  if (st) return st;
  {
    std::lock_guard<std::mutex> g(c->lock);
    if (c->capturing && c->capture_stream == s)
      return fail(BRAID_ERR_CAPTURE, "%s: the stream is capturing; end the capture first", fn);
  }
  if (stream_capturing(s))
    return fail(BRAID_ERR_CAPTURE, "%s: the stream is part of a capture; end it first", fn);
  remove_child(c, stream, &c->streams);
  cudaError_t e = cudaStreamSynchronize(s->s);
  {
    std::lock_guard<std::mutex> g(c->lock);
    if (c->cudnn_stream == s->s) {
      cudnnSetStream(c->cudnn, c->stream0.s);
      c->cudnn_stream = c->stream0.s;
    }
  }
  if (s->lt_ws) cudaFree(s->lt_ws);
  cudaStreamDestroy(s->s);
  if (s->part) partition_release(s->part);
  s->magic = 0;
  delete s;
  if (e != cudaSuccess) return cuda_fail(fn, "cudaStreamSynchronize", e);
  return BRAID_OK;
}

int32_t braid_stream_synchronize(uint64_t ctx, uint64_t stream) {
  static const char fn[] = "braid_stream_synchronize";
  Context* c = nullptr;
  int32_t st = wait_stream(ctx, stream, fn, &c);
  if (st) return st;
  /* An out-of-range gather index recorded by a kernel that has finished. */
  volatile DeviceError* err = c->err_host;
  if (err->flag) {
    DeviceError copy;
    copy.index = err->index;
    copy.position = err->position;
    copy.axis = err->axis;
    err->flag = 0;
    return fail(BRAID_ERR_INVALID_ARGUMENT,
                "braid_gather: gather index out of range: index %d (at position %d) for axis size "
                "%d; those outputs were written as zeros (reported by %s)",
                copy.index, copy.position, copy.axis, fn);
  }
  return BRAID_OK;
}

/* ---------------------------------------------------------------- events */

int32_t braid_event_create(uint64_t ctx, uint64_t* out_event) {
  static const char fn[] = "braid_event_create";
  Context* c = nullptr;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  if (out_event == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: out_event is NULL", fn);
  cudaEvent_t ev = nullptr;
  CUDA_TRY(fn, cudaEventCreateWithFlags(&ev, cudaEventDefault));
  Event* e = new (std::nothrow) Event();
  if (e == nullptr || !add_child(c, (uint64_t)(uintptr_t)e, &c->events)) {
    delete e;
    cudaEventDestroy(ev);
    return fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
  }
  e->magic = MAGIC_EVENT;
  e->ctx = c;
  e->e = ev;
  e->recorded = 0;
  *out_event = (uint64_t)(uintptr_t)e;
  return BRAID_OK;
}

/* The context and one of its events, by handle. */
static int32_t context_event(uint64_t ctx, uint64_t event, const char* fn, Context** c, Event** e) {
  int32_t st = get_context(ctx, fn, c);
  return st ? st : get_event(*c, event, fn, e);
}

int32_t braid_event_destroy(uint64_t ctx, uint64_t event) {
  static const char fn[] = "braid_event_destroy";
  Context* c = nullptr;
  Event* e = nullptr;
  int32_t st = context_event(ctx, event, fn, &c, &e);
  if (st) return st;
  remove_child(c, event, &c->events);
  cudaError_t r = cudaEventDestroy(e->e);
  e->magic = 0;
  delete e;
  if (r != cudaSuccess) return cuda_fail(fn, "cudaEventDestroy", r);
  return BRAID_OK;
}

int32_t braid_event_record(uint64_t ctx, uint64_t event, uint64_t stream) {
  static const char fn[] = "braid_event_record";
  Context* c = nullptr;
  Stream* s = nullptr;
  Event* e = nullptr;
  int32_t st = resolve(ctx, stream, fn, &c, &s);
  if (st) return st;
  st = get_event(c, event, fn, &e);
  if (st) return st;
  bool capturing = stream_capturing(s);
  CUDA_TRY(fn, cudaEventRecord(e->e, s->s));
  if (!capturing) e->recorded = 1;
  return BRAID_OK;
}

int32_t braid_stream_wait_event(uint64_t ctx, uint64_t stream, uint64_t event) {
  static const char fn[] = "braid_stream_wait_event";
  Context* c = nullptr;
  Stream* s = nullptr;
  Event* e = nullptr;
  int32_t st = resolve(ctx, stream, fn, &c, &s);
  if (st) return st;
  st = get_event(c, event, fn, &e);
  if (st) return st;
  CUDA_TRY(fn, cudaStreamWaitEvent(s->s, e->e, 0));
  return BRAID_OK;
}

int32_t braid_event_synchronize(uint64_t ctx, uint64_t event) {
  static const char fn[] = "braid_event_synchronize";
  Context* c = nullptr;
  Event* e = nullptr;
  int32_t st = context_event(ctx, event, fn, &c, &e);
  if (st) return st;
  CUDA_TRY(fn, cudaEventSynchronize(e->e));
  return BRAID_OK;
}

int32_t braid_event_elapsed(uint64_t ctx, uint64_t start, uint64_t end, float* out_ms) {
  static const char fn[] = "braid_event_elapsed";
  Context* c = nullptr;
  Event *a = nullptr, *b = nullptr;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  if ((st = get_event(c, start, fn, &a)) || (st = get_event(c, end, fn, &b))) return st;
  if (out_ms == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: out_ms is NULL", fn);
  if (!a->recorded || !b->recorded)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: the %s event has not been recorded", fn,
                a->recorded ? "end" : "start");
  float ms = 0;
  cudaError_t r = cudaEventElapsedTime(&ms, a->e, b->e);
  if (r == cudaErrorNotReady) {
    (void)cudaGetLastError();
    return fail(BRAID_ERR_INVALID_ARGUMENT,
                "%s: the events have not completed; synchronise their streams first", fn);
  }
  if (r != cudaSuccess) return cuda_fail(fn, "cudaEventElapsedTime", r);
  *out_ms = ms;
  return BRAID_OK;
}

/* ---------------------------------------------------------------- capture and graphs */

int32_t braid_capture_begin(uint64_t ctx, uint64_t stream) {
  static const char fn[] = "braid_capture_begin";
  Context* c = nullptr;
  Stream* s = nullptr;
  int32_t st = resolve(ctx, stream, fn, &c, &s);
  if (st) return st;
  std::lock_guard<std::mutex> g(c->lock);
  if (c->capturing) return fail(BRAID_ERR_CAPTURE, "%s: the context is already capturing", fn);
  /* Thread-local mode: this thread may not call capture-unsafe APIs while capturing, which
   * turns accidental synchronisation inside a capture into an error instead of a hang. */
  CUDA_TRY(fn, cudaStreamBeginCapture(s->s, cudaStreamCaptureModeThreadLocal));
  c->capturing = 1;
  c->capture_stream = s;
  return BRAID_OK;
}

int32_t braid_capture_end(uint64_t ctx, uint64_t stream, uint64_t* out_graph) {
  static const char fn[] = "braid_capture_end";
  Context* c = nullptr;
  Stream* s = nullptr;
  int32_t st = resolve(ctx, stream, fn, &c, &s);
  if (st) return st;
  if (out_graph == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: out_graph is NULL", fn);
  {
    std::lock_guard<std::mutex> g(c->lock);
    if (!c->capturing) return fail(BRAID_ERR_CAPTURE, "%s: the context is not capturing", fn);
    if (c->capture_stream != s)
      return fail(BRAID_ERR_CAPTURE,
                  "%s: the capture was begun on another stream; end it on that stream", fn);
    c->capturing = 0;
    c->capture_stream = nullptr;
  }
  cudaGraph_t graph = nullptr;
  cudaError_t e = cudaStreamEndCapture(s->s, &graph);
  if (e != cudaSuccess) {
    if (graph) cudaGraphDestroy(graph);
    (void)cudaGetLastError();
    return fail(BRAID_ERR_CAPTURE,
                "%s: cudaStreamEndCapture failed: %s (%s); the capture is discarded (was work "
                "forked to another stream and not joined back, or an operator failed inside it?)",
                fn, cudaGetErrorString(e), cudaGetErrorName(e));
  }
  cudaGraphExec_t exec = nullptr;
  /* Kernel nodes keep the priority of the stream they were captured on only with this flag;
   * without it the whole graph runs at the launch stream's priority. */
  e = cudaGraphInstantiate(&exec, graph, cudaGraphInstantiateFlagUseNodePriority);
  cudaGraphDestroy(graph);
  if (e != cudaSuccess) return cuda_fail(fn, "cudaGraphInstantiate", e);
  /* Upload now, so the first launch does not pay for it. */
  e = cudaGraphUpload(exec, s->s);
  if (e != cudaSuccess) {
    cudaGraphExecDestroy(exec);
    return cuda_fail(fn, "cudaGraphUpload", e);
  }
  Graph* gr = new (std::nothrow) Graph();
  if (gr == nullptr || !add_child(c, (uint64_t)(uintptr_t)gr, &c->graphs)) {
    delete gr;
    cudaGraphExecDestroy(exec);
    return fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
  }
  gr->magic = MAGIC_GRAPH;
  gr->ctx = c;
  gr->exec = exec;
  *out_graph = (uint64_t)(uintptr_t)gr;
  return BRAID_OK;
}

int32_t braid_graph_launch(uint64_t ctx, uint64_t graph, uint64_t stream) {
  static const char fn[] = "braid_graph_launch";
  Context* c = nullptr;
  Stream* s = nullptr;
  Graph* g = nullptr;
  int32_t st = resolve(ctx, stream, fn, &c, &s);
  if (st) return st;
  st = get_graph(c, graph, fn, &g);
  if (st) return st;
  CUDA_TRY(fn, cudaGraphLaunch(g->exec, s->s));
  return BRAID_OK;
}

int32_t braid_graph_destroy(uint64_t ctx, uint64_t graph) {
  static const char fn[] = "braid_graph_destroy";
  Context* c = nullptr;
  Graph* g = nullptr;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  st = get_graph(c, graph, fn, &g);
  if (st) return st;
  remove_child(c, graph, &c->graphs);
  cudaError_t e = cudaGraphExecDestroy(g->exec);
  g->magic = 0;
  delete g;
  if (e != cudaSuccess) return cuda_fail(fn, "cudaGraphExecDestroy", e);
  return BRAID_OK;
}

}  // extern "C"
