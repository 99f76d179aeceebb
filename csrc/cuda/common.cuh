/*
 * common.cuh — shared by the files of the CUDA backend (libbraid_cuda.so); not part of the ABI.
 *
 * Execution model: a device address is a CUDA device pointer; every operator validates its
 * parameter record exactly as the CPU backend does, then enqueues its work on the CUDA stream
 * behind the braid stream handle (stream 0 = the context's own non-blocking stream). Capture is
 * CUDA stream capture, so nothing here may allocate, synchronise or read device memory on the
 * host while an operator is being issued. Per-record state (cuDNN descriptors, chosen algorithms,
 * cuBLASLt layouts and heuristics) is cached inside the context, keyed by the record's bytes, so
 * issuing an operator a second time (graph capture after tuning, eager runs) costs a hash lookup.
 *
 * Errors: every CUDA, cuDNN and cuBLAS status is checked; a failure sets the calling thread's
 * message (naming the braid function and the failing call) and returns a braid_status.
 */
#ifndef BRAID_CUDA_COMMON_CUH
#define BRAID_CUDA_COMMON_CUH

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "braid.h"

#define BRAID_HIDDEN __attribute__((visibility("hidden")))

namespace braid_cuda {

/* ---------------------------------------------------------------- errors */

/* Formats the calling thread's error message and returns `status`. */
BRAID_HIDDEN int32_t fail(int32_t status, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A failed CUDA runtime call: out of memory → BRAID_ERR_OUT_OF_MEMORY, stream-capture misuse →
 * BRAID_ERR_CAPTURE, anything else → BRAID_ERR_CUDA. Clears the (non-sticky) error state so the
 * context stays usable. `call` is the call's source text; the message names its function. */
BRAID_HIDDEN int32_t cuda_fail(const char* fn, const char* call, cudaError_t e);
BRAID_HIDDEN int32_t cudnn_fail(const char* fn, const char* call, cudnnStatus_t s);
BRAID_HIDDEN int32_t cublas_fail(const char* fn, const char* call, cublasStatus_t s);

/* The backend's switches in the environment (context.cu): whether `name` is set to `value`
 * (`unset` when it is unset or empty), and whether a flag is on (set, and neither empty nor "0"). */
BRAID_HIDDEN bool env_is(const char* name, const char* value, bool unset = false);
BRAID_HIDDEN bool env_flag(const char* name);

#define CUDA_TRY(fn, call)                                           \
  do {                                                               \
    cudaError_t braid_e_ = (call);                                   \
    if (braid_e_ != cudaSuccess) return cuda_fail(fn, #call, braid_e_); \
  } while (0)
#define CUDNN_TRY(fn, call)                                                   \
  do {                                                                        \
    cudnnStatus_t braid_s_ = (call);                                          \
    if (braid_s_ != CUDNN_STATUS_SUCCESS) return cudnn_fail(fn, #call, braid_s_); \
  } while (0)
#define CUBLAS_TRY(fn, call)                                                    \
  do {                                                                          \
    cublasStatus_t braid_s_ = (call);                                           \
    if (braid_s_ != CUBLAS_STATUS_SUCCESS) return cublas_fail(fn, #call, braid_s_); \
  } while (0)
/* After a kernel launch: a bad configuration or an earlier asynchronous fault. */
#define LAUNCH_CHECK(fn, kernel)                                               \
  do {                                                                         \
    cudaError_t braid_e_ = cudaGetLastError();                                 \
    if (braid_e_ != cudaSuccess) return cuda_fail(fn, "launch of " kernel, braid_e_); \
  } while (0)

/* ---------------------------------------------------------------- handles */

constexpr uint32_t MAGIC_CONTEXT = 0x42524358u; /* "BRCX" */
constexpr uint32_t MAGIC_STREAM = 0x42525354u;  /* "BRST" */
constexpr uint32_t MAGIC_EVENT = 0x42524556u;   /* "BREV" */
constexpr uint32_t MAGIC_GRAPH = 0x42524752u;   /* "BRGR" */

/* The cuBLASLt workspace each stream owns (a stream runs one product at a time). */
constexpr size_t LT_WORKSPACE_BYTES = 32u << 20;
/* Zero bias for cuDNN's fused call when a convolution has none (floats). */
constexpr int ZERO_BIAS_COUNT = 16384;

constexpr uint32_t MAGIC_PARTITION = 0x42525054u; /* "BRPT" */

struct Context;
struct ConvCache;
struct GemmCache;
struct Partition;

struct Stream {
  uint32_t magic;
  Context* ctx;
  cudaStream_t s;
  void* lt_ws; /* cuBLASLt workspace of this stream */
  size_t lt_ws_bytes;
  bool lt_ws_pooled; /* from the context's memory pool (freed in order on the stream) */
  /* SM budget of the work issued here: the partition's SMs for a stream inside a partition (a
   * green-context stream), else the device's. Grids are sized from it, cuBLASLt targets it. */
  int sms;
  Partition* part; /* the partition the stream runs in, or NULL */
};

struct Event {
  uint32_t magic;
  Context* ctx;
  cudaEvent_t e;
  int recorded; /* recorded outside a capture, or as a timing record in one, at least once */
};

/* An executable graph (exec), or a template (graph: captured work kept for composing). */
struct Graph {
  uint32_t magic;
  Context* ctx;
  cudaGraphExec_t exec;
  cudaGraph_t graph;
};

/* Where gather reports an out-of-range index: page-locked, mapped host memory the kernel writes
 * (only on error) and braid_stream_synchronize reads without a copy. */
struct DeviceError {
  int flag;
  int axis;
  int index; /* index and position: one 8-byte store (offset 8) */
  int position;
};

struct Context {
  uint32_t magic;
  int device;
  int sms;
  int cc;
  int64_t l2_bytes;
  int64_t total_memory;
  int prio_least, prio_greatest; /* CUDA stream priorities: lower numbers run first */
  char name[256];
  std::mutex lock; /* guards everything below */
  Stream stream0;
  cudnnHandle_t cudnn;
  cudaStream_t cudnn_stream; /* the stream cudnn is bound to */
  cublasLtHandle_t lt;
  float* zeros; /* ZERO_BIAS_COUNT zero floats */
  DeviceError* err_host;
  DeviceError* err_dev;
  int capturing;
  Stream* capture_stream;
  std::unordered_set<uint64_t> handles; /* live stream, event and graph handles */
  int64_t streams, events, graphs;
  std::unordered_map<uint64_t, uint64_t> bufs;  /* device allocations: base → bytes */
  std::map<uint64_t, uint64_t> host_bufs;       /* page-locked allocations: base → bytes */
  std::map<uint64_t, uint64_t> host_registered; /* caller memory page-locked: base → bytes */
  ConvCache* conv_cache;
  GemmCache* gemm_cache;
  /* cuDNN's descriptions of this device as a green context of N SMs sees it, by N, for engine
   * heuristics aimed at a partition's SMs (conv_engine.cu): built on first use; NULL where this
   * cuDNN cannot describe its device. */
  std::map<int, cudnnBackendDescriptor_t> cudnn_partition_views;
  /* The partition this context is bound to (braid_context_set_partition): its default stream and
   * every stream it creates run there. NULL: the whole device. */
  Partition* partition;
  /* BRAID_PARTITION_BINDING=current: the partition's green context, as a CUcontext, made current
   * on the thread that bound the context (bound_thread) for every call made there, and the
   * context's cuDNN and cuBLASLt handles made under it. NULL: the context reaches its partition
   * through its streams only, the primary context current (the default). */
  std::atomic<void*> bound_current; /* read by calls from any thread */
  std::thread::id bound_thread;
  /* BRAID_ALLOC=pool when the context was made: device buffers come from a memory pool of its
   * own, allocated and freed in order on its default stream (memory.cu). NULL: cudaMalloc and
   * cudaFree. pool_usable turns false if the pool refuses an allocation for a reason other than
   * memory (its buffers are still freed to it). */
  cudaMemPool_t pool;
  std::atomic<bool> pool_usable;
  std::unordered_set<uint64_t> pooled; /* live buffers (base addresses) from the pool */
  std::vector<void*> deferred_frees;   /* pooled buffers freed while the context captured */
  cudaStream_t side_stream;            /* where pooled allocations made during a capture go */
  /* With a pool, page-locked host buffers freed are kept for the next of the same size (trial
   * executables allocate the same inputs and outputs again and again), up to a bound. */
  std::multimap<size_t, void*> host_cache;
  size_t host_cache_bytes;
};

/* Validates a context handle (and makes its device current). */
BRAID_HIDDEN int32_t get_context(uint64_t h, const char* fn, Context** out);
/* Resolves ctx and stream (0 = the context's default stream) for an operator or a copy. */
BRAID_HIDDEN int32_t resolve(uint64_t ctx, uint64_t stream, const char* fn, Context** c,
                             Stream** s);
/* True while `s` is being captured (cudaStreamIsCapturing; legal during a capture). */
BRAID_HIDDEN bool stream_capturing(Stream* s);
/* True while the context has a capture under way (braid_capture_begin .. end). */
BRAID_HIDDEN bool context_capturing(Context* c);

/* Child handles (streams, events, graphs): a live one is in the context's set and starts with
 * its kind's magic. add_child records one (false when out of memory) and counts it in *counter;
 * remove_child forgets it. Stream 0 is the context's default stream. */
BRAID_HIDDEN bool add_child(Context* c, uint64_t h, int64_t* counter);
BRAID_HIDDEN void remove_child(Context* c, uint64_t h, int64_t* counter);
BRAID_HIDDEN int32_t get_stream(Context* c, uint64_t h, const char* fn, Stream** out);
BRAID_HIDDEN int32_t get_event(Context* c, uint64_t h, const char* fn, Event** out);
BRAID_HIDDEN int32_t get_graph(Context* c, uint64_t h, const char* fn, Graph** out);
/* Fills a stream record for the CUDA stream `cs` on the whole device (create_stream narrows its
 * SMs to a partition's). */
BRAID_HIDDEN int32_t stream_init(Context* c, Stream* s, cudaStream_t cs, const char* fn);

/* The stream's scratch of LT_WORKSPACE_BYTES (cuBLASLt workspace, untuned convolutions),
 * allocated on first use (context.cu). */
BRAID_HIDDEN int32_t stream_scratch(Stream* s, const char* fn, void** out);

/* Partitions (partition.cu). A partition counts the contexts bound to it and the streams
 * running in it; it cannot be destroyed while any remain. */
BRAID_HIDDEN int32_t get_partition(uint64_t h, const char* fn, Partition** out);
/* Creates a non-blocking stream in the partition with a CUDA priority (cuGreenCtxStreamCreate)
 * and takes a reference on the partition. */
BRAID_HIDDEN int32_t partition_stream_create(Partition* p, int cuda_priority, const char* fn,
                                             cudaStream_t* out);
BRAID_HIDDEN int partition_sms(const Partition* p);
BRAID_HIDDEN void partition_retain(Partition* p);
BRAID_HIDDEN void partition_release(Partition* p);

/* BRAID_PARTITION_BINDING=current (partition.cu): a context bound to a partition makes the
 * partition's green context current on the binding thread, instead of leaving the primary context
 * current there and reaching the partition through its streams alone. The driver then treats the
 * thread's calls as the green context's (cuCtxFromGreenCtx), and a green context is current to one
 * thread at a time: a partition serves the bound contexts of one thread. */
BRAID_HIDDEN bool binding_current_from_env();
/* Claims the partition's green context for the calling thread and writes it as a CUcontext:
 * BRAID_ERR_INVALID_ARGUMENT where another thread holds it, BRAID_ERR_UNSUPPORTED where the driver
 * lacks cuCtxFromGreenCtx, cuCtxGetCurrent or cuCtxSetCurrent. */
BRAID_HIDDEN int32_t partition_claim_current(Partition* p, const char* fn, void** out_cuctx);
BRAID_HIDDEN void partition_unclaim_current(Partition* p);
/* Called by get_context: on the thread a context is bound current to, makes its green context
 * current; on a thread where braid made a green context current, for any other context, makes the
 * context that was current before it current again (the primary). */
BRAID_HIDDEN int32_t context_current(Context* c, const char* fn);
/* Whether braid made a green context current on the calling thread (get_context's cheap test). */
BRAID_HIDDEN bool thread_green_current();
/* A bound context going away: the primary current again on its thread (if called there), and
 * its claim on the partition dropped. */
BRAID_HIDDEN void context_leave_current(Context* c);

/* The context's memory pool (memory.cu): made when the context is (BRAID_ALLOC=pool; none where
 * the device has no memory pools, noted once on stderr); its deferred frees issued (before the
 * context's last synchronization); destroyed with the context. */
BRAID_HIDDEN void memory_pool_open(Context* c);
/* Whether a stream-ordered call on the context's default stream would be recorded into a graph:
 * the context, or its default stream, captures. Context lock held, and kept until the call is
 * issued: braid_capture_begin takes it too, so no capture begins between the check and the call. */
BRAID_HIDDEN bool capturing_locked(Context* c);
/* `size` bytes from the context's pool, in order on stream `s` (work issued there next may use
 * them), or while the context or `s` captures, on the context's side stream and waited for. False
 * where the context has no usable pool, or the pool cannot serve the size even after handing its
 * held memory back: cudaMalloc then decides. `locked`: the caller holds the context's lock. */
BRAID_HIDDEN bool pool_alloc_on(Context* c, Stream* s, size_t size, void** out, bool locked);
/* Frees, in order on the default stream, the pooled buffers freed while the context captured (at
 * a capture's end, and before the context's last synchronization), unless it captures still. */
BRAID_HIDDEN void memory_pool_flush(Context* c);
/* cudaMalloc (legal during a capture); when the device is out of memory, the context's pool hands
 * back the memory it holds and it is tried once more. *p is null on failure. */
BRAID_HIDDEN cudaError_t device_malloc(Context* c, void** p, size_t size);
/* Destroys the pool and frees the page-locked host buffers kept for reuse. */
BRAID_HIDDEN void memory_pool_close(Context* c);

/* Caches, created on first use and destroyed with the context (conv.cu, gemm.cu). */
BRAID_HIDDEN void conv_cache_destroy(Context* c);
BRAID_HIDDEN void gemm_cache_destroy(Context* c);

/* Host-side set-up (allocations, library heuristics and descriptor queries) is not stream work,
 * but CUDA refuses "unsafe" calls on a thread that is capturing in thread-local mode; inside this
 * scope such calls are allowed (relaxed mode) and still recorded nowhere. */
struct RelaxedCapture {
  cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
  RelaxedCapture() { (void)cudaThreadExchangeStreamCaptureMode(&mode); }
  ~RelaxedCapture() { (void)cudaThreadExchangeStreamCaptureMode(&mode); }
  RelaxedCapture(const RelaxedCapture&) = delete;
  RelaxedCapture& operator=(const RelaxedCapture&) = delete;
};

/* ---------------------------------------------------------------- validation helpers */

static inline int32_t need(const char* fn, const char* what, uint64_t addr) {
  if (addr == 0) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: %s address is 0", fn, what);
  return BRAID_OK;
}

static inline int32_t check_activation(const char* fn, int32_t act, float lo, float hi) {
  if (act < BRAID_ACT_NONE || act > BRAID_ACT_GELU)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: activation %d is not a braid_activation", fn,
                act);
  if (act == BRAID_ACT_CLAMP && (std::isnan(lo) || std::isnan(hi)))
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: clamp bounds [%g, %g] include NaN", fn,
                (double)lo, (double)hi);
  return BRAID_OK;
}

/* A shape of rank 1..BRAID_MAX_RANK with positive extents and at most 2^40 elements; *total its
 * element count. */
static inline int32_t check_shape(const char* fn, int32_t rank, const int32_t* shape,
                                  int64_t* total_out) {
  if (rank < 1 || rank > BRAID_MAX_RANK)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: rank %d is outside 1..%d", fn, rank,
                BRAID_MAX_RANK);
  int64_t total = 1;
  for (int d = 0; d < rank; d++) {
    if (shape[d] <= 0)
      return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: shape[%d] = %d must be positive", fn, d,
                  shape[d]);
    total *= shape[d];
    if (total > ((int64_t)1 << 40))
      return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: shape has too many elements", fn);
  }
  *total_out = total;
  return BRAID_OK;
}

/* ---------------------------------------------------------------- launch helpers */

constexpr int THREADS = 256;

/* Blocks for a grid-stride loop over `work` items: enough to fill the stream's SM budget (`sms`,
 * Stream::sms) a few times over, never more than the work needs. */
static inline unsigned grid_for(int sms, int64_t work, int threads = THREADS, int per_sm = 8) {
  int64_t blocks = (work + threads - 1) / threads;
  int64_t cap = (int64_t)sms * per_sm;
  if (blocks > cap) blocks = cap;
  if (blocks < 1) blocks = 1;
  return (unsigned)blocks;
}

__host__ __device__ inline bool aligned16(const void* p) { return ((uintptr_t)p & 15u) == 0; }

#define FPTR(addr) (reinterpret_cast<float*>((uintptr_t)(addr)))
#define CFPTR(addr) (reinterpret_cast<const float*>((uintptr_t)(addr)))

/* ---------------------------------------------------------------- activations (device) */

__device__ __forceinline__ float sigmoid_f(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  float e = expf(x);
  return e / (1.0f + e);
}

/* act(v) for a compile-time activation kind; NaN passes through relu and clamp as on the CPU. */
template <int ACT>
__device__ __forceinline__ float act_apply(float v, float lo, float hi) {
  if (ACT == BRAID_ACT_RELU) return v < 0.0f ? 0.0f : v;
  if (ACT == BRAID_ACT_CLAMP) {
    float t = v < lo ? lo : v;
    return t > hi ? hi : t;
  }
  if (ACT == BRAID_ACT_SIGMOID) return sigmoid_f(v);
  if (ACT == BRAID_ACT_TANH) return tanhf(v);
  if (ACT == BRAID_ACT_GELU) return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
  return v;
}

__device__ __forceinline__ float act_dynamic(float v, int act, float lo, float hi) {
  switch (act) {
    case BRAID_ACT_RELU: return act_apply<BRAID_ACT_RELU>(v, lo, hi);
    case BRAID_ACT_CLAMP: return act_apply<BRAID_ACT_CLAMP>(v, lo, hi);
    case BRAID_ACT_SIGMOID: return act_apply<BRAID_ACT_SIGMOID>(v, lo, hi);
    case BRAID_ACT_TANH: return act_apply<BRAID_ACT_TANH>(v, lo, hi);
    case BRAID_ACT_GELU: return act_apply<BRAID_ACT_GELU>(v, lo, hi);
    default: return v;
  }
}

/* Runs the statement(s) after `act` with the constant ACT_ bound to that activation kind. */
#define BRAID_DISPATCH_ACT(act, ...)                                                    \
  switch (act) {                                                                        \
    case BRAID_ACT_RELU: { constexpr int ACT_ = BRAID_ACT_RELU; __VA_ARGS__; break; }       \
    case BRAID_ACT_CLAMP: { constexpr int ACT_ = BRAID_ACT_CLAMP; __VA_ARGS__; break; }     \
    case BRAID_ACT_SIGMOID: { constexpr int ACT_ = BRAID_ACT_SIGMOID; __VA_ARGS__; break; } \
    case BRAID_ACT_TANH: { constexpr int ACT_ = BRAID_ACT_TANH; __VA_ARGS__; break; }       \
    case BRAID_ACT_GELU: { constexpr int ACT_ = BRAID_ACT_GELU; __VA_ARGS__; break; }       \
    default: { constexpr int ACT_ = BRAID_ACT_NONE; __VA_ARGS__; break; }                   \
  }

/* ---------------------------------------------------------------- epilogue (elementwise.cu) */

/* y[i] = act(x[i] + bias_scale * bias[(i / inner) % channels] + res[i]) over `count` elements;
 * bias and res may be NULL, x may equal y. Used by braid_unary, and after cuDNN / cuBLASLt for
 * the activations and bias scalings they cannot fuse. */
BRAID_HIDDEN int32_t launch_map(Context* c, const Stream* s, const char* fn, const float* x,
                                float* y, int64_t count, int64_t inner, int64_t channels,
                                const float* bias, float bias_scale, const float* res, int act,
                                float lo, float hi);

/* ---------------------------------------------------------------- record-keyed caches */

/* FNV-1a over the key's bytes; keys are plain structs zeroed before they are filled. */
template <typename K>
struct BytesHash {
  size_t operator()(const K& k) const {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(&k);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof(K); i++) h = (h ^ p[i]) * 1099511628211ull;
    return (size_t)h;
  }
};
template <typename K>
struct BytesEq {
  bool operator()(const K& a, const K& b) const { return std::memcmp(&a, &b, sizeof(K)) == 0; }
};

}  // namespace braid_cuda

#endif /* BRAID_CUDA_COMMON_CUH */
