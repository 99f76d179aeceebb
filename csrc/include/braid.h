/*
 * braid.h — the one C ABI shared by libbraid_cpu.so and libbraid_cuda.so.
 *
 * Conventions
 * - Every function returns an int32_t status: BRAID_OK (0) or a braid_status code.
 *   braid_last_error() copies the calling thread's message for the last failure.
 * - Handles (context, stream, event, graph, partition) are opaque uint64_t. 0 is never a valid
 *   handle, except that stream 0 means the context's own default stream.
 * - Device memory is addressed by uint64_t device addresses: braid_buffer_alloc() returns the
 *   base address of an allocation, and a tensor is that base plus a byte offset.
 * - Every operator takes a fixed parameter record: a packed little-endian struct of int32_t and
 *   float fields (4 bytes each, no padding), mirrored once in TypeScript (ffi/params.ts).
 * - All tensors are dense, row-major (NCHW for images), float32 unless stated otherwise.
 * - The library keeps no tuning state: braid_conv2d_tune() measures and reports, the caller
 *   remembers (lib/runtime/tuning.ts) and passes its choice back in the parameter record.
 * - Work on a stream runs in issue order. Ordering between streams is by events only.
 * - Between braid_capture_begin() and braid_capture_end() (or braid_capture_end_template()), work
 *   issued on the capturing stream, and on streams that waited on an event recorded during the
 *   capture, is recorded into a graph instead of running. braid_graph_launch() replays it; a
 *   template is not launchable until braid_graph_compose() builds a graph from it.
 * - Work uses the scratch memory of the stream it is issued on where it is given no workspace
 *   (matrix products, convolutions): a graph captured on a stream, or composed from templates
 *   captured on it, must be destroyed before that stream. With BRAID_ALLOC=pool its launches must
 *   also have finished: the stream's scratch goes back to the pool once the stream and the
 *   context's default stream (where braid launches graphs) are idle.
 * - A context may be used from several threads, but a capture is ended on the thread that began
 *   it, and a template is not destroyed while another thread composes from it.
 */
#ifndef BRAID_H
#define BRAID_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BRAID_ABI_VERSION 7
#define BRAID_MAX_RANK 6        /* largest tensor rank any operator accepts */
#define BRAID_MAX_BATCH_RANK 4  /* largest number of batch dimensions of braid_matmul */
#define BRAID_MAX_CONCAT 64     /* largest number of inputs of one braid_concat */

/* Status codes. */
typedef enum braid_status {
  BRAID_OK = 0,
  BRAID_ERR_INVALID_ARGUMENT = 1, /* a parameter record or address is invalid */
  BRAID_ERR_OUT_OF_MEMORY = 2,    /* host or device allocation failed */
  BRAID_ERR_INVALID_HANDLE = 3,   /* a handle is 0, destroyed, or of the wrong kind */
  BRAID_ERR_UNSUPPORTED = 4,      /* not available in this backend, driver or device */
  BRAID_ERR_CUDA = 5,             /* a CUDA runtime or driver call failed */
  BRAID_ERR_CUDNN = 6,            /* a cuDNN call failed */
  BRAID_ERR_CUBLAS = 7,           /* a cuBLAS / cuBLASLt call failed */
  BRAID_ERR_CAPTURE = 8,          /* capture begun twice, ended without begin, or illegal inside */
  BRAID_ERR_INTERNAL = 9          /* a bug in braid */
} braid_status;

/* Activation applied in place at the end of an operator, and the kinds of braid_unary. */
typedef enum braid_activation {
  BRAID_ACT_NONE = 0,    /* identity (braid_unary: a copy) */
  BRAID_ACT_RELU = 1,    /* max(x, 0) */
  BRAID_ACT_CLAMP = 2,   /* min(max(x, act_min), act_max); Relu6 is clamp(0, 6) */
  BRAID_ACT_SIGMOID = 3, /* 1 / (1 + exp(-x)) */
  BRAID_ACT_TANH = 4,    /* tanh(x) */
  BRAID_ACT_GELU = 5     /* x * 0.5 * (1 + erf(x / sqrt(2))), PyTorch's exact GELU */
} braid_activation;

/* ---------------------------------------------------------------- library, context, memory */

/* Writes BRAID_ABI_VERSION to *out. */
int32_t braid_abi_version(int32_t* out);
/* Copies the calling thread's last error message, NUL-terminated and truncated to len bytes. */
int32_t braid_last_error(uint8_t* buf, int32_t len);
/* Number of devices this backend can use (the CPU backend reports 1). */
int32_t braid_device_count(int32_t* out);
/* Creates a context on device `device` (0-based); owns a default stream and library handles. */
int32_t braid_context_create(int32_t device, uint64_t* out_ctx);
/* Destroys a context. Every stream, event, graph and buffer of it must be destroyed first. */
int32_t braid_context_destroy(uint64_t ctx);
/* Device name (NUL-terminated into name[name_len]) and facts, written to info[8]:
 * [0] multiprocessors (CPU: cores), [1] total memory bytes, [2] free memory bytes,
 * [3] compute capability major*10+minor (CPU: 0), [4] backend kind (0 CPU, 1 CUDA),
 * [5] L2 cache bytes, [6] runtime version, [7] library version (cuDNN; CPU: 0). */
int32_t braid_device_info(uint64_t ctx, uint8_t* name, int32_t name_len, int64_t* info);
/* Allocates `bytes` of device memory, 256-byte aligned and zero-filled (so work run before any
 * input is copied in reads zeros); writes its address to *out_addr. */
int32_t braid_buffer_alloc(uint64_t ctx, uint64_t bytes, uint64_t* out_addr);
/* Frees an allocation made by braid_buffer_alloc (by its base address). Work that uses it must be
 * finished, or ordered before the context's default stream: with BRAID_ALLOC=pool the free is
 * issued in order there (cudaFreeAsync) and the memory may serve the next allocation at once;
 * without, cudaFree waits for the whole device. */
int32_t braid_buffer_free(uint64_t ctx, uint64_t addr);
/* Allocates `bytes` of page-locked host memory (CUDA: cudaHostAlloc), 256-byte aligned, for
 * inputs and outputs: copies from and to it run asynchronously and can be captured in a graph.
 * Zero-filled. Writes its host address to *out_addr. */
int32_t braid_host_alloc(uint64_t ctx, uint64_t bytes, uint64_t* out_addr);
/* Frees memory from braid_host_alloc; no work may still copy from or to it (with BRAID_ALLOC=pool
 * the context keeps it for its next allocation of the same size). */
int32_t braid_host_free(uint64_t ctx, uint64_t addr);
/* Page-locks the caller's host memory [ptr, ptr + bytes) in place (CUDA: cudaHostRegister,
 * portable), so copies from and to it run asynchronously, as from braid_host_alloc's memory, with
 * no copy through a staging buffer. Writes its address to *out_addr, the handle for
 * braid_host_unregister. Registrations are the process's, not the context's: memory already
 * page-locked by anyone (the same bytes twice, a range sharing a page with a locked one, memory
 * from braid_host_alloc) or that the driver cannot pin is BRAID_ERR_INVALID_ARGUMENT; a system
 * without registration, BRAID_ERR_UNSUPPORTED; no page-locked memory left,
 * BRAID_ERR_OUT_OF_MEMORY; all three leave the context usable, and the memory can still be copied
 * from. The memory must stay allocated, at the same pages, until it is unregistered: freed memory
 * left registered makes later copies at its addresses read the old pages. A context is destroyed
 * only after its registrations. */
int32_t braid_host_register(uint64_t ctx, const void* ptr, uint64_t bytes, uint64_t* out_addr);
/* Unlocks memory page-locked by braid_host_register (its address). Work still reading it must have
 * finished. */
int32_t braid_host_unregister(uint64_t ctx, uint64_t addr);
/* Copies host → device on a stream. `src` must stay valid until the stream reaches the copy. */
int32_t braid_memcpy_h2d(uint64_t ctx, uint64_t stream, uint64_t dst, const void* src,
                         uint64_t bytes);
/* Copies device → host on a stream. `dst` is valid once the stream is synchronised. */
int32_t braid_memcpy_d2h(uint64_t ctx, uint64_t stream, void* dst, uint64_t src, uint64_t bytes);
/* Copies device → device on a stream. */
int32_t braid_memcpy_d2d(uint64_t ctx, uint64_t stream, uint64_t dst, uint64_t src,
                         uint64_t bytes);

/* ---------------------------------------------------------------- streams, events, graphs */

/* Creates a stream; a higher `priority` runs first where the device supports priorities. */
int32_t braid_stream_create(uint64_t ctx, int32_t priority, uint64_t* out_stream);
int32_t braid_stream_destroy(uint64_t ctx, uint64_t stream);
/* Blocks until all work issued on the stream has finished. */
int32_t braid_stream_synchronize(uint64_t ctx, uint64_t stream);
int32_t braid_event_create(uint64_t ctx, uint64_t* out_event);
int32_t braid_event_destroy(uint64_t ctx, uint64_t event);
/* Records the event at the current end of the stream's work (also a timestamp). */
int32_t braid_event_record(uint64_t ctx, uint64_t event, uint64_t stream);
/* Records the event like braid_event_record; inside a capture it becomes part of the graph, which
 * then records the event each time it runs (where braid_event_record only orders the captured
 * work), so that braid_event_elapsed can time parts of a graph once it has run. */
int32_t braid_event_record_timing(uint64_t ctx, uint64_t event, uint64_t stream);
/* Makes later work on `stream` wait until the event's recorded work is done. */
int32_t braid_stream_wait_event(uint64_t ctx, uint64_t stream, uint64_t event);
/* Blocks the calling thread until the event's recorded work is done (at once if never recorded). */
int32_t braid_event_synchronize(uint64_t ctx, uint64_t event);
/* Milliseconds between two recorded, completed events. */
int32_t braid_event_elapsed(uint64_t ctx, uint64_t start, uint64_t end, float* out_ms);
/* Starts capturing the work issued on `stream` (and on streams forked from it by events). */
int32_t braid_capture_begin(uint64_t ctx, uint64_t stream);
/* Ends the capture begun on `stream`; writes an executable graph handle to *out_graph. */
int32_t braid_capture_end(uint64_t ctx, uint64_t stream, uint64_t* out_graph);
/* Ends the capture begun on `stream` like braid_capture_end, but keeps the work as a graph
 * template: not launchable, it is a part for braid_graph_compose. Destroy it with
 * braid_graph_destroy. */
int32_t braid_capture_end_template(uint64_t ctx, uint64_t stream, uint64_t* out_template);
/* Builds an executable graph from templates without issuing their work again: `chains`
 * independent chains that run at once, chain i running its lengths[i] templates (the next ones of
 * `parts`) one after another. The templates are copied in and stay valid. Illegal during a
 * capture. The chains run concurrently on the device, so templates in different chains must not
 * write the same memory: scratch included, which means templates of different chains that use
 * their stream's scratch are captured on different streams. The graph is uploaded on the default
 * stream. */
int32_t braid_graph_compose(uint64_t ctx, const uint64_t* parts, const int32_t* lengths,
                            int32_t chains, uint64_t* out_graph);
/* Launches a captured or composed graph on a stream. */
int32_t braid_graph_launch(uint64_t ctx, uint64_t graph, uint64_t stream);
int32_t braid_graph_destroy(uint64_t ctx, uint64_t graph);
/* Blocks until all work issued on the stream has finished, like braid_stream_synchronize, but
 * reports only whether waiting failed: it is meant to be called from another thread (Deno's
 * nonblocking FFI, koffi's async calls), whose error message the caller cannot read. Call
 * braid_stream_synchronize afterwards (it then returns at once) for the status and message. */
int32_t braid_stream_wait(uint64_t ctx, uint64_t stream);
/* The SM budget of the work issued on a stream: its partition's SMs for a stream in a
 * partition, else the device's (CPU: threads). */
int32_t braid_stream_sms(uint64_t ctx, uint64_t stream, int32_t* out);

/* ---------------------------------------------------------------- partitions
 * A partition is a set of SMs of one device that work can be confined to: a CUDA green context
 * (driver API 12.4+, resolved at run time with cudaGetDriverEntryPointByVersion so the library
 * loads on drivers without it; requesting a partition there is BRAID_ERR_UNSUPPORTED). The
 * device is split into equal groups of at least `sms` SMs (rounded up to the device's
 * granularity: 8 SMs on Hopper, 2 with BRAID_PARTITION_FINE); group `group` of that split
 * becomes the partition, so partitions made with the same `sms` and flags and different groups
 * are disjoint, also across processes. Partitions of different sizes may overlap.
 * Setting the environment variable BRAID_NO_GREEN_CONTEXTS=1 makes the lookup fail as on a driver
 * without green contexts (to test that path). The CPU backend has no partitions: every call
 * below is BRAID_ERR_UNSUPPORTED (braid_context_set_partition(ctx, 0) excepted). */

/* Splits allowing groups of fewer SMs: ignores SM co-scheduling
 * (CU_DEV_SM_RESOURCE_SPLIT_IGNORE_SM_COSCHEDULING), at the cost of large thread clusters. */
#define BRAID_PARTITION_FINE 1

/* Describes the split of device `device` into groups of at least `sms` SMs, writing out[4]:
 * [0] SMs per group (sms rounded up), [1] number of disjoint groups of that size, [2] the
 * device's SMs, [3] the smallest partition these flags allow. sms outside 1..device SMs, or one
 * that rounds up past them, is BRAID_ERR_INVALID_ARGUMENT. */
int32_t braid_partition_query(int32_t device, int32_t sms, int32_t flags, int32_t* out);
/* Creates a partition: group `group` (0-based) of the split of device `device` into groups of at
 * least `sms` SMs. Writes its handle to *out_partition and its actual SM count to *out_sms. */
int32_t braid_partition_create(int32_t device, int32_t sms, int32_t group, int32_t flags,
                               uint64_t* out_partition, int32_t* out_sms);
/* Destroys a partition. Contexts bound to it and streams in it must be gone first. */
int32_t braid_partition_destroy(uint64_t partition);
/* Facts of a partition, written to out[5]: [0] SMs, [1] group, [2] device, [3] flags,
 * [4] contexts bound to it plus streams in it. */
int32_t braid_partition_info(uint64_t partition, int32_t* out);
/* Creates a stream of `ctx` that runs in the partition (cuGreenCtxStreamCreate); `priority` as
 * in braid_stream_create. Destroy it with braid_stream_destroy. */
int32_t braid_partition_stream_create(uint64_t ctx, uint64_t partition, int32_t priority,
                                      uint64_t* out_stream);
/* Binds a context to a partition (0: the whole device again): its default stream is replaced by
 * one in the partition, and every stream it creates afterwards runs there. Only on a context with
 * no streams and no graphs, outside a capture. The partition must be on the context's device and
 * outlive the binding (destroying the context releases it).
 * With BRAID_PARTITION_BINDING=current in the environment (default "streams"), the partition's
 * green context is also made current on the calling thread for every call made there on this
 * context, and the context's cuDNN and cuBLASLt handles are made again under it: only on a
 * context that has run no operator, never bound so before, on a partition no other thread holds
 * current (each BRAID_ERR_INVALID_ARGUMENT). If the green context cannot be made current there,
 * the error leaves the context bound through its streams alone; binding it again to the same
 * partition is then refused too: create another. Destroy the context on that thread to make the
 * primary context current there again. */
int32_t braid_context_set_partition(uint64_t ctx, uint64_t partition);
/* Runs a probe kernel of `blocks` blocks on a stream and records which SMs ran it: out[i] = 1
 * when SM i did (for i < len), *out_count the number of distinct SMs. Synchronises the stream;
 * illegal during capture. For checking that a partition confines its work. */
int32_t braid_sm_probe(uint64_t ctx, uint64_t stream, int32_t blocks, uint8_t* out, int32_t len,
                       int32_t* out_count);

/* ---------------------------------------------------------------- operators */

/* 2-D convolution, NCHW, weights [k, c/groups, kh, kw]:
 * y = act(conv(x, w) + bias[k] + residual), bias and residual optional (address 0).
 * residual has y's shape. Padding bottom/right is implied by oh and ow.
 * `algorithm` is a backend algorithm id from braid_conv2d_tune, or -1 for the backend's own
 * heuristic choice (the CUDA backend's ids: csrc/cuda/conv.cu and conv_engine.cuh, decoded by
 * ffi/conv_algorithms.ts); `workspace` (device address, may be 0) holds workspace_bytes of scratch,
 * which must not be used concurrently by another launch. allow_tf32: TF32 tensor-core math
 * allowed (PyTorch's default for convolutions), else strict fp32. */
typedef struct braid_conv2d_params {
  int32_t n, c, h, w;           /* input */
  int32_t k, oh, ow;            /* output channels and size */
  int32_t kh, kw;               /* kernel */
  int32_t stride_h, stride_w;
  int32_t pad_top, pad_left;
  int32_t dilation_h, dilation_w;
  int32_t groups;
  int32_t activation;           /* braid_activation */
  float act_min, act_max;       /* BRAID_ACT_CLAMP bounds */
  int32_t algorithm;            /* -1: backend's choice */
  int32_t workspace_bytes;      /* bytes available at `workspace` */
  int32_t allow_tf32;
} braid_conv2d_params;
int32_t braid_conv2d(uint64_t ctx, uint64_t stream, const braid_conv2d_params* p, uint64_t x,
                     uint64_t w, uint64_t bias, uint64_t residual, uint64_t y,
                     uint64_t workspace);
/* Measures the convolution algorithms the backend has for p (p->algorithm is ignored) on the
 * given tensors (y is overwritten), using at most p->workspace_bytes at `workspace`, and writes
 * the fastest: out[0] its algorithm id, out[1] the workspace bytes it needs; *out_ms its time.
 * Synchronises the stream; illegal during capture. The CPU backend has one algorithm (0). */
int32_t braid_conv2d_tune(uint64_t ctx, uint64_t stream, const braid_conv2d_params* p,
                          uint64_t x, uint64_t w, uint64_t bias, uint64_t residual, uint64_t y,
                          uint64_t workspace, int32_t* out, float* out_ms);

/* Inference batch normalisation over x [n, c, spatial]:
 * y = (x - mean[c]) / sqrt(var[c] + epsilon) * scale[c] + bias[c]. */
typedef struct braid_batchnorm_params {
  int32_t n, c, spatial;
  float epsilon;
} braid_batchnorm_params;
int32_t braid_batchnorm(uint64_t ctx, uint64_t stream, const braid_batchnorm_params* p,
                        uint64_t x, uint64_t scale, uint64_t bias, uint64_t mean, uint64_t var,
                        uint64_t y);

/* Elementwise y = kind(x) over `count` elements; kind is a braid_activation
 * (BRAID_ACT_NONE copies; BRAID_ACT_CLAMP uses act_min/act_max). */
typedef struct braid_unary_params {
  int32_t count;
  int32_t kind;
  float act_min, act_max;
} braid_unary_params;
int32_t braid_unary(uint64_t ctx, uint64_t stream, const braid_unary_params* p, uint64_t x,
                    uint64_t y);

/* Elementwise binary op with broadcasting: y (contiguous, `shape`) at index i reads
 * a[sum i_d * a_strides[d]] and b[sum i_d * b_strides[d]] (element strides; 0 broadcasts).
 * Then the activation is applied. */
typedef enum braid_binary_kind {
  BRAID_BIN_ADD = 0,
  BRAID_BIN_SUB = 1,
  BRAID_BIN_MUL = 2,
  BRAID_BIN_DIV = 3
} braid_binary_kind;
typedef struct braid_binary_params {
  int32_t kind; /* braid_binary_kind */
  int32_t rank; /* 1..BRAID_MAX_RANK */
  int32_t shape[BRAID_MAX_RANK];
  int32_t a_strides[BRAID_MAX_RANK];
  int32_t b_strides[BRAID_MAX_RANK];
  int32_t activation;
  float act_min, act_max;
} braid_binary_params;
int32_t braid_binary(uint64_t ctx, uint64_t stream, const braid_binary_params* p, uint64_t a,
                     uint64_t b, uint64_t y);

/* 2-D max or average pooling, NCHW. The window at output (i, j) starts at
 * (i*stride_h - pad_top, j*stride_w - pad_left). Average pooling follows PyTorch: the window is
 * clipped to the padded input [-pad_top, h + pad_bottom) for count_include_pad's divisor, and to
 * the input itself otherwise. Padding never wins a max. */
typedef enum braid_pool_kind { BRAID_POOL_MAX = 0, BRAID_POOL_AVG = 1 } braid_pool_kind;
typedef struct braid_pool2d_params {
  int32_t kind; /* braid_pool_kind */
  int32_t n, c, h, w;
  int32_t oh, ow;
  int32_t kh, kw;
  int32_t stride_h, stride_w;
  int32_t pad_top, pad_left, pad_bottom, pad_right;
  int32_t count_include_pad;
} braid_pool2d_params;
int32_t braid_pool2d(uint64_t ctx, uint64_t stream, const braid_pool2d_params* p, uint64_t x,
                     uint64_t y);

/* Mean over the last axis: x [outer, spatial] → y [outer] (AdaptiveAvgPool2d to 1×1). */
typedef struct braid_global_avgpool_params {
  int32_t outer, spatial;
} braid_global_avgpool_params;
int32_t braid_global_avgpool(uint64_t ctx, uint64_t stream,
                             const braid_global_avgpool_params* p, uint64_t x, uint64_t y);

/* Concatenation: input i, viewed as [outer, inner[i]], is copied into y [outer, out_inner] at
 * column sum(inner[0..i)). `inputs` holds `count` device addresses. */
typedef struct braid_concat_params {
  int32_t count, outer, out_inner;
  int32_t inner[BRAID_MAX_CONCAT];
} braid_concat_params;
int32_t braid_concat(uint64_t ctx, uint64_t stream, const braid_concat_params* p,
                     const uint64_t* inputs, uint64_t y);

/* Strided gather of 4-byte elements into a contiguous y of `shape` (Transpose, Slice):
 * y[i] = x[offset + sum i_d * strides[d]]; strides may be negative. */
typedef struct braid_strided_copy_params {
  int32_t rank;
  int32_t shape[BRAID_MAX_RANK];
  int32_t strides[BRAID_MAX_RANK];
  int32_t offset;
} braid_strided_copy_params;
int32_t braid_strided_copy(uint64_t ctx, uint64_t stream, const braid_strided_copy_params* p,
                           uint64_t x, uint64_t y);

/* Linear / Gemm: y[m, n] = act(alpha * a[m, k] · op(b) + beta * bias[n]),
 * op(b) = b[k, n], or b[n, k] transposed when trans_b. bias optional (address 0).
 * allow_tf32: TF32 tensor-core math allowed, else strict fp32 (the default for products). */
typedef struct braid_gemm_params {
  int32_t m, n, k;
  int32_t trans_b;
  float alpha, beta;
  int32_t activation;
  float act_min, act_max;
  int32_t allow_tf32;
} braid_gemm_params;
int32_t braid_gemm(uint64_t ctx, uint64_t stream, const braid_gemm_params* p, uint64_t a,
                   uint64_t b, uint64_t bias, uint64_t y);

/* Batched matrix product: for every batch index t of batch_shape,
 * y[t] [m, n] = alpha * a[t] [m, k] · op(b[t]), op(b) = b [k, n] or b [n, k]^T when trans_b.
 * a[t] starts at sum t_d * a_batch_strides[d] elements (0 broadcasts), likewise b; y is
 * contiguous [batch..., m, n]. */
typedef struct braid_matmul_params {
  int32_t batch_rank; /* 0..BRAID_MAX_BATCH_RANK */
  int32_t batch_shape[BRAID_MAX_BATCH_RANK];
  int32_t a_batch_strides[BRAID_MAX_BATCH_RANK];
  int32_t b_batch_strides[BRAID_MAX_BATCH_RANK];
  int32_t m, n, k;
  int32_t trans_b;
  float alpha;
  int32_t allow_tf32;
} braid_matmul_params;
int32_t braid_matmul(uint64_t ctx, uint64_t stream, const braid_matmul_params* p, uint64_t a,
                     uint64_t b, uint64_t y);

/* Softmax over the middle axis of x viewed as [outer, axis, inner]. */
typedef struct braid_softmax_params {
  int32_t outer, axis, inner;
} braid_softmax_params;
int32_t braid_softmax(uint64_t ctx, uint64_t stream, const braid_softmax_params* p, uint64_t x,
                      uint64_t y);

/* Layer normalisation of each row of x [rows, cols]:
 * y = (x - mean) / sqrt(biased var + epsilon) * scale[cols] + bias[cols]. */
typedef struct braid_layernorm_params {
  int32_t rows, cols;
  float epsilon;
} braid_layernorm_params;
int32_t braid_layernorm(uint64_t ctx, uint64_t stream, const braid_layernorm_params* p,
                        uint64_t x, uint64_t scale, uint64_t bias, uint64_t y);

/* Gather of 4-byte elements along an axis: data [outer, axis, inner], indices int32 [count]
 * (negative counts from the end) → y [outer, count, inner]. An index out of range is
 * BRAID_ERR_INVALID_ARGUMENT where the backend can see it. */
typedef struct braid_gather_params {
  int32_t outer, axis, inner, count;
} braid_gather_params;
int32_t braid_gather(uint64_t ctx, uint64_t stream, const braid_gather_params* p, uint64_t data,
                     uint64_t indices, uint64_t y);

#ifdef __cplusplus
}
#endif

#endif /* BRAID_H */
