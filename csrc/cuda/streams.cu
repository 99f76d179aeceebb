/*
 * streams.cu — streams (on the whole device or in a partition), events, stream capture and graph
 * replay of the CUDA backend.
 *
 * Events are timing events (braid_event_elapsed needs them; an ordering-only record costs the
 * same inside a capture). A capture is CUDA stream capture in thread-local mode; its graph is
 * instantiated with the nodes' own priorities and uploaded before the first launch, or kept as a
 * template. braid_graph_compose builds a graph from templates as child graph nodes, so work
 * captured once (an operator and its library's host-side set-up) is put together again and again
 * without being issued again.
 */
#include "common.cuh"

#include <new>
#include <vector>

using namespace braid_cuda;

extern "C" {

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

/* BRAID_PARTITION_BINDING=current, once the context is bound to its partition: the partition's
 * green context (claimed for this thread) made current here, and the context's cuDNN and
 * cuBLASLt handles made again under it (no operator has used them yet). On failure the context
 * stays bound through its streams alone, the primary context current again. */
static int32_t bind_current(Context* c, void* current, const char* fn) {
  c->bound_thread = std::this_thread::get_id();
  c->bound_current.store(current); /* published after its thread */
  int32_t st = context_current(c, fn);
  cudnnHandle_t dnn = nullptr;
  cublasLtHandle_t lt = nullptr;
  if (!st) {
    cudnnStatus_t ds = cudnnCreate(&dnn);
    if (ds != CUDNN_STATUS_SUCCESS) {
      st = cudnn_fail(fn, "cudnnCreate", ds);
    } else if ((ds = cudnnSetStream(dnn, c->stream0.s)) != CUDNN_STATUS_SUCCESS) {
      st = cudnn_fail(fn, "cudnnSetStream", ds);
    }
  }
  if (!st) {
    cublasStatus_t bs = cublasLtCreate(&lt);
    if (bs != CUBLAS_STATUS_SUCCESS) st = cublas_fail(fn, "cublasLtCreate", bs);
  }
  if (st) {
    if (dnn != nullptr) cudnnDestroy(dnn);
    context_leave_current(c);
    return st;
  }
  std::lock_guard<std::mutex> g(c->lock);
  cudnnDestroy(c->cudnn);
  c->cudnn = dnn;
  c->cudnn_stream = c->stream0.s;
  cublasLtDestroy(c->lt);
  c->lt = lt;
  return BRAID_OK;
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
  if (c->bound_current != nullptr)
    return fail(BRAID_ERR_INVALID_ARGUMENT,
                "%s: the context made its partition current on its thread "
                "(BRAID_PARTITION_BINDING=current) and cannot be bound again; create another",
                fn);
  if (part == c->partition) {
    /* Bound before the switch was set, or a bind whose green context could not be made current
     * (the context then stays bound through its streams): not silently so. */
    if (part != nullptr && binding_current_from_env())
      return fail(BRAID_ERR_INVALID_ARGUMENT,
                  "%s: the context is bound to this partition through its streams only "
                  "(BRAID_PARTITION_BINDING=current cannot be added to a bound context); create "
                  "another",
                  fn);
    return BRAID_OK;
  }
  /* BRAID_PARTITION_BINDING=current: the partition's green context claimed for this thread
   * first; the handles are made again under it below, so none may have planned anything yet.
   * The claim is dropped on any failure before bind_current takes it over. */
  void* current = nullptr;
  struct ClaimHeld {
    Partition* part = nullptr;
    ~ClaimHeld() {
      if (part != nullptr) partition_unclaim_current(part);
    }
  } claim;
  if (part != nullptr && binding_current_from_env()) {
    if (c->conv_cache != nullptr || c->gemm_cache != nullptr ||
        !c->cudnn_partition_views.empty())
      return fail(BRAID_ERR_INVALID_ARGUMENT,
                  "%s: with BRAID_PARTITION_BINDING=current, bind a context before it runs any "
                  "operator",
                  fn);
    if ((st = partition_claim_current(part, fn, &current))) return st;
    claim.part = part;
  }
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
  if (current == nullptr) return BRAID_OK;
  claim.part = nullptr; /* bind_current's now: it drops it itself if it fails */
  return bind_current(c, current, fn);
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

/* Frees a stream's scratch as the stream goes (it is idle). A pooled one in order on it, without
 * cudaFree's wait for the whole device, once the default stream, where braid launches the graphs
 * that may use it, is idle too (braid.h); while the context captures, with cudaFree. */
static void free_stream_scratch(Context* c, Stream* s) {
  RelaxedCapture relaxed;
  bool in_order = s->lt_ws_pooled;
  if (in_order) {
    std::lock_guard<std::mutex> g(c->lock);
    in_order = !capturing_locked(c) && cudaStreamSynchronize(c->stream0.s) == cudaSuccess;
  }
  if (!(in_order && cudaFreeAsync(s->lt_ws, s->s) == cudaSuccess)) cudaFree(s->lt_ws);
  (void)cudaGetLastError();
  s->lt_ws = nullptr;
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
  if (s->lt_ws) free_stream_scratch(c, s);
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

/* A stream and an event of one context, by handle. */
static int32_t stream_event(uint64_t ctx, uint64_t stream, uint64_t event, const char* fn,
                            Stream** s, Event** e) {
  Context* c = nullptr;
  int32_t st = resolve(ctx, stream, fn, &c, s);
  return st ? st : get_event(c, event, fn, e);
}

/* Records `event` on `stream`. Inside a capture a plain record only orders the work; with
 * `timing` it is external, an event-record node that records each time the graph runs, and the
 * event then counts as recorded (braid_event_elapsed reports an event the graph has not yet
 * reached as not completed). */
static int32_t record_event(uint64_t ctx, uint64_t event, uint64_t stream, const char* fn,
                            bool timing) {
  Stream* s = nullptr;
  Event* e = nullptr;
  int32_t st = stream_event(ctx, stream, event, fn, &s, &e);
  if (st) return st;
  const bool capturing = stream_capturing(s);
  CUDA_TRY(fn, cudaEventRecordWithFlags(e->e, s->s,
                                        timing && capturing ? cudaEventRecordExternal : 0));
  if (timing || !capturing) e->recorded = 1;
  return BRAID_OK;
}

int32_t braid_event_record(uint64_t ctx, uint64_t event, uint64_t stream) {
  return record_event(ctx, event, stream, "braid_event_record", false);
}

int32_t braid_event_record_timing(uint64_t ctx, uint64_t event, uint64_t stream) {
  return record_event(ctx, event, stream, "braid_event_record_timing", true);
}

int32_t braid_stream_wait_event(uint64_t ctx, uint64_t stream, uint64_t event) {
  static const char fn[] = "braid_stream_wait_event";
  Stream* s = nullptr;
  Event* e = nullptr;
  int32_t st = stream_event(ctx, stream, event, fn, &s, &e);
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
  /* Waiting is not allowed inside a capture: it would fail and invalidate the capture. */
  if (context_capturing(c))
    return fail(BRAID_ERR_CAPTURE, "%s: illegal while the context is capturing", fn);
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

/* Ends the capture begun on `s` and hands its graph to *out (ownership with it). */
static int32_t end_capture(Context* c, Stream* s, const char* fn, cudaGraph_t* out) {
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
    cudaStreamCaptureStatus still = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(s->s, &still) == cudaSuccess &&
        still != cudaStreamCaptureStatusNone) {
      /* Not ended (ended from a thread other than the one that began it): still capturing. */
      std::lock_guard<std::mutex> g(c->lock);
      c->capturing = 1;
      c->capture_stream = s;
      return fail(BRAID_ERR_CAPTURE,
                  "%s: cudaStreamEndCapture failed: %s (%s); the capture goes on: end it on the "
                  "thread that began it",
                  fn, cudaGetErrorString(e), cudaGetErrorName(e));
    }
    (void)cudaGetLastError();
    memory_pool_flush(c);
    return fail(BRAID_ERR_CAPTURE,
                "%s: cudaStreamEndCapture failed: %s (%s); the capture is discarded (was work "
                "forked to another stream and not joined back, or an operator failed inside it?)",
                fn, cudaGetErrorString(e), cudaGetErrorName(e));
  }
  memory_pool_flush(c); /* the buffers freed during the capture */
  *out = graph;
  return BRAID_OK;
}

/* Instantiates `graph` (which stays the caller's) and uploads it on `s`, so the first launch
 * does not pay for the upload. Kernel nodes keep the priority of the stream they were captured
 * on only with UseNodePriority; without it the whole graph runs at the launch stream's. */
static int32_t instantiate(cudaGraph_t graph, Stream* s, const char* fn, cudaGraphExec_t* out) {
  cudaGraphExec_t exec = nullptr;
  cudaError_t e = cudaGraphInstantiate(&exec, graph, cudaGraphInstantiateFlagUseNodePriority);
  if (e != cudaSuccess) return cuda_fail(fn, "cudaGraphInstantiate", e);
  e = cudaGraphUpload(exec, s->s);
  if (e != cudaSuccess) {
    cudaGraphExecDestroy(exec);
    return cuda_fail(fn, "cudaGraphUpload", e);
  }
  *out = exec;
  return BRAID_OK;
}

/* Gives an executable graph or a template a handle of `c`; on failure destroys it. */
static int32_t add_graph(Context* c, cudaGraphExec_t exec, cudaGraph_t graph, const char* fn,
                         uint64_t* out) {
  Graph* gr = new (std::nothrow) Graph();
  if (gr == nullptr || !add_child(c, (uint64_t)(uintptr_t)gr, &c->graphs)) {
    delete gr;
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    return fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
  }
  gr->magic = MAGIC_GRAPH;
  gr->ctx = c;
  gr->exec = exec;
  gr->graph = graph;
  *out = (uint64_t)(uintptr_t)gr;
  return BRAID_OK;
}

/* The capture begun on `stream` ended as an executable graph, or kept as a template. */
static int32_t end_capture_as(uint64_t ctx, uint64_t stream, const char* fn, bool as_template,
                              uint64_t* out, const char* out_name) {
  Context* c = nullptr;
  Stream* s = nullptr;
  int32_t st = resolve(ctx, stream, fn, &c, &s);
  if (st) return st;
  if (out == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, out_name);
  cudaGraph_t graph = nullptr;
  if ((st = end_capture(c, s, fn, &graph))) return st;
  if (as_template) return add_graph(c, nullptr, graph, fn, out);
  cudaGraphExec_t exec = nullptr;
  st = instantiate(graph, s, fn, &exec);
  cudaGraphDestroy(graph);
  if (st) return st;
  return add_graph(c, exec, nullptr, fn, out);
}

int32_t braid_capture_end(uint64_t ctx, uint64_t stream, uint64_t* out_graph) {
  return end_capture_as(ctx, stream, "braid_capture_end", false, out_graph, "out_graph");
}

int32_t braid_capture_end_template(uint64_t ctx, uint64_t stream, uint64_t* out_template) {
  return end_capture_as(ctx, stream, "braid_capture_end_template", true, out_template,
                        "out_template");
}

int32_t braid_graph_compose(uint64_t ctx, const uint64_t* parts, const int32_t* lengths,
                            int32_t chains, uint64_t* out_graph) {
  static const char fn[] = "braid_graph_compose";
  Context* c = nullptr;
  Stream* s = nullptr;
  int32_t st = resolve(ctx, 0, fn, &c, &s);
  if (st) return st;
  if (out_graph == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: out_graph is NULL", fn);
  if (chains < 0) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: chains %d is negative", fn, chains);
  if (chains > 0 && lengths == NULL)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: lengths is NULL", fn);
  /* Every argument is checked before anything is built, in the CPU backend's order: the lengths,
   * then the parts. */
  size_t count = 0;
  for (int32_t i = 0; i < chains; i++) {
    if (lengths[i] < 0)
      return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: chain %d has length %d", fn, i, lengths[i]);
    count += (size_t)lengths[i];
  }
  if (count > 0 && parts == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: parts is NULL", fn);
  std::vector<cudaGraph_t> templates;
  try {
    templates.reserve(count);
  } catch (...) {
    return fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
  }
  for (size_t k = 0; k < count; k++) {
    Graph* g = nullptr;
    if ((st = get_graph(c, parts[k], fn, &g))) return st;
    if (g->graph == nullptr)
      return fail(BRAID_ERR_INVALID_ARGUMENT,
                  "%s: part %zu is an executable graph, not a template "
                  "(braid_capture_end_template makes one)",
                  fn, k);
    templates.push_back(g->graph);
  }
  {
    std::lock_guard<std::mutex> g(c->lock);
    if (c->capturing)
      return fail(BRAID_ERR_CAPTURE, "%s: illegal while the context is capturing", fn);
  }
  cudaGraph_t graph = nullptr;
  CUDA_TRY(fn, cudaGraphCreate(&graph, 0));
  /* Each template becomes a child graph node (a copy of it), after the chain's previous one. */
  size_t next = 0;
  for (int32_t i = 0; i < chains && st == BRAID_OK; i++) {
    cudaGraphNode_t previous = nullptr;
    for (int32_t k = 0; k < lengths[i]; k++) {
      cudaGraphNode_t node = nullptr;
      cudaError_t e = cudaGraphAddChildGraphNode(&node, graph, previous ? &previous : nullptr,
                                                 previous ? 1 : 0, templates[next++]);
      if (e != cudaSuccess) {
        st = cuda_fail(fn, "cudaGraphAddChildGraphNode", e);
        break;
      }
      previous = node;
    }
  }
  cudaGraphExec_t exec = nullptr;
  if (st == BRAID_OK) st = instantiate(graph, s, fn, &exec);
  cudaGraphDestroy(graph);
  if (st) return st;
  return add_graph(c, exec, nullptr, fn, out_graph);
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
  if (g->exec == nullptr)
    return fail(BRAID_ERR_INVALID_ARGUMENT,
                "%s: graph 0x%llx is a template; braid_graph_compose makes it launchable", fn,
                (unsigned long long)graph);
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
  const char* call = g->exec ? "cudaGraphExecDestroy" : "cudaGraphDestroy";
  cudaError_t e = g->exec ? cudaGraphExecDestroy(g->exec) : cudaGraphDestroy(g->graph);
  g->magic = 0;
  delete g;
  if (e != cudaSuccess) return cuda_fail(fn, call, e);
  return BRAID_OK;
}

}  // extern "C"
