/*
 * memory.cu — device buffers, page-locked host buffers and copies of the CUDA backend.
 *
 * Every allocation is zero-filled and recorded in its context (base → bytes), so a free checks
 * the address it is given and a capture can tell page-locked host memory from pageable. Caller
 * memory page-locked in place (braid_host_register) is recorded the same way.
 *
 * With BRAID_ALLOC=pool a context's device buffers come from a memory pool of its own, allocated
 * and freed in order on its default stream (cudaMallocFromPoolAsync, cudaFreeAsync): a free
 * returns at once, and the pool keeps the memory for the context's next buffers; its page-locked
 * host buffers freed are kept for the next of the same size. cudaMalloc, cudaFree and
 * page-locked allocations synchronize the GPU across all executing streams, other partitions'
 * included, and a tuning pool's workers make and free an executable's buffers for every trial.
 * Without a pool buffers come from cudaMalloc; while the context captures, from the pool through
 * a side stream (pool_alloc_on).
 */
#include "common.cuh"

#include <atomic>
#include <cstdio>
#include <new>

namespace braid_cuda {
namespace {

/* Checks an allocation request: its context, and the size `bytes` takes (256-byte granules, 256
 * for none). */
int32_t begin_allocation(uint64_t ctx, const char* fn, uint64_t bytes, uint64_t* out_addr,
                         Context** c, size_t* size) {
  int32_t st = get_context(ctx, fn, c);
  if (st) return st;
  if (out_addr == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: out_addr is NULL", fn);
  if (bytes > ((uint64_t)1 << 52))
    return fail(BRAID_ERR_OUT_OF_MEMORY, "%s: cannot allocate %llu bytes", fn,
                (unsigned long long)bytes);
  *size = bytes == 0 ? 256 : (size_t)((bytes + 255) & ~(uint64_t)255);
  return BRAID_OK;
}

/* A failed cudaMalloc or cudaHostAlloc: out of memory is not sticky, the context goes on. */
int32_t allocation_failed(const char* fn, const char* call, const char* what, uint64_t bytes,
                          cudaError_t e) {
  (void)cudaGetLastError();
  const int32_t status = e == cudaErrorMemoryAllocation ? BRAID_ERR_OUT_OF_MEMORY : BRAID_ERR_CUDA;
  return fail(status, "%s: cannot allocate %llu bytes of %s (%s: %s)", fn,
              (unsigned long long)bytes, what, call, cudaGetErrorString(e));
}

/* Records a new allocation in one of the context's tables and hands its address out; when the
 * table cannot grow, frees it again with `release`. */
template <class Table>
int32_t track(Context* c, Table& table, const char* fn, void* p, size_t size, uint64_t bytes,
              cudaError_t (*release)(void*), uint64_t* out_addr) {
  const uint64_t addr = (uint64_t)(uintptr_t)p;
  bool ok = true;
  {
    std::lock_guard<std::mutex> g(c->lock);
    try {
      table[addr] = size;
    } catch (...) {
      ok = false;
    }
  }
  if (!ok) {
    RelaxedCapture relaxed;
    release(p);
    return fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory tracking %llu bytes", fn,
                (unsigned long long)bytes);
  }
  *out_addr = addr;
  return BRAID_OK;
}

/* Forgets the allocation at `addr` in `table` and hands it to `release(c, p, bytes)`, which frees
 * (or keeps) it and returns a braid status. */
template <class Table, class Release>
int32_t untrack(uint64_t ctx, const char* fn, uint64_t addr, Table Context::*table,
                const char* what, Release release) {
  Context* c = nullptr;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  if (addr == 0) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: address is 0", fn);
  uint64_t bytes = 0;
  bool found = false;
  {
    std::lock_guard<std::mutex> g(c->lock);
    auto it = (c->*table).find(addr);
    if (it != (c->*table).end()) {
      bytes = it->second;
      (c->*table).erase(it);
      found = true;
    }
  }
  if (!found)
    return fail(BRAID_ERR_INVALID_ARGUMENT,
                "%s: 0x%llx is not the base address of a live %s of this context", fn,
                (unsigned long long)addr, what);
  RelaxedCapture relaxed;
  return release(c, reinterpret_cast<void*>((uintptr_t)addr), bytes);
}

/* A release by one CUDA call (`name` in the error it reports). */
int32_t freed(const char* fn, const char* name, cudaError_t e) {
  return e == cudaSuccess ? BRAID_OK : cuda_fail(fn, name, e);
}

/* Freed memory a context's pool keeps for its next buffers rather than hand back to the device at
 * the next synchronization. */
constexpr uint64_t POOL_HOLD_BYTES = (uint64_t)1 << 30;
/* Page-locked host memory a pooled context keeps for reuse (cudaHostAlloc and cudaFreeHost
 * synchronize too, and page-locking is slow). */
constexpr size_t HOST_CACHE_BYTES = (size_t)256 << 20;

/* BRAID_ALLOC unset or empty: the default, which must match allocationFromEnv()'s first value
 * (ffi/backend.ts, where the variable's values are checked). */
constexpr bool POOL_BY_DEFAULT = true;

bool pool_wanted() { return env_is("BRAID_ALLOC", "pool", POOL_BY_DEFAULT); }

/* Why a context allocates with cudaMalloc although BRAID_ALLOC=pool, said once a process. */
void note_no_pool(const char* why, cudaError_t e) {
  static std::atomic<bool> said{false};
  if (said.exchange(true)) return;
  std::fprintf(stderr, "braid: BRAID_ALLOC=pool: %s (%s); buffers come from cudaMalloc\n", why,
               cudaGetErrorString(e));
}

/* Frees, in order on the default stream, the pooled buffers freed while the context captured,
 * unless it captures still (context lock held). */
void release_deferred_locked(Context* c) {
  if (c->deferred_frees.empty() || capturing_locked(c)) return;
  RelaxedCapture relaxed; /* another thread's capture does not make these calls unsafe */
  for (void* p : c->deferred_frees) (void)cudaFreeAsync(p, c->stream0.s);
  c->deferred_frees.clear();
  (void)cudaGetLastError();
}

}  // namespace

bool capturing_locked(Context* c) { return c->capturing != 0 || stream_capturing(&c->stream0); }

bool pool_alloc_on(Context* c, Stream* s, size_t size, void** out, bool locked) {
  if (c->pool == nullptr || !c->pool_usable) return false;
  std::unique_lock<std::mutex> g(c->lock, std::defer_lock);
  if (!locked) g.lock(); /* else the caller holds it */
  RelaxedCapture relaxed; /* another thread's capture does not make these calls unsafe */
  /* While the context or `s` captures, an allocation there would be recorded into the graph: it
   * is made on a side stream of the context's instead and waited for, so that any stream may use
   * it at once (a trial executable's stream scratch, first needed inside its capture). */
  const bool captured = capturing_locked(c) || stream_capturing(s);
  cudaStream_t on = s->s;
  if (captured) {
    if (c->side_stream == nullptr &&
        cudaStreamCreateWithFlags(&c->side_stream, cudaStreamNonBlocking) != cudaSuccess) {
      (void)cudaGetLastError();
      c->side_stream = nullptr;
      return false;
    }
    on = c->side_stream;
  }
  release_deferred_locked(c);
  cudaError_t e = cudaMallocFromPoolAsync(out, size, c->pool, on);
  if (e == cudaErrorMemoryAllocation) {
    /* The memory the pool holds handed back, once the frees issued on the streams are done
     * (not waited for during a capture: what is settled already goes back). */
    (void)cudaGetLastError();
    const bool settled = captured || (cudaStreamSynchronize(c->stream0.s) == cudaSuccess &&
                                      cudaStreamSynchronize(s->s) == cudaSuccess);
    if (settled && cudaMemPoolTrimTo(c->pool, 0) == cudaSuccess)
      e = cudaMallocFromPoolAsync(out, size, c->pool, on);
  }
  if (e == cudaSuccess && captured && (e = cudaStreamSynchronize(on)) != cudaSuccess)
    (void)cudaFreeAsync(*out, on);
  if (e == cudaSuccess) return true;
  (void)cudaGetLastError();
  /* Out of memory, or a size the pool cannot take, or a refusal on the side stream during a
   * capture: this allocation goes to cudaMalloc. Anything else (a stream the pool cannot serve,
   * say) turns the pool off for the context. */
  if (!captured && e != cudaErrorMemoryAllocation && e != cudaErrorInvalidValue) {
    c->pool_usable = false;
    note_no_pool("cudaMallocFromPoolAsync failed", e);
  }
  return false;
}

namespace {

/* Zero-fills new device memory, finished on return. On the context's default stream, so inside its
 * partition: a memset on the legacy stream runs on every SM, in the middle of other partitions'
 * timed work. While the context captures, a memset there would be recorded rather than run: then
 * on the legacy stream, which braid's non-blocking streams do not wait for (hence finished here
 * either way). */
cudaError_t zero_fill(Context* c, void* p, size_t size) {
  {
    /* Locked until the memset is done: a capture another thread begins on the default stream
     * meanwhile would record it, and make the wait illegal. */
    std::lock_guard<std::mutex> g(c->lock);
    if (!capturing_locked(c)) {
      cudaError_t e = cudaMemsetAsync(p, 0, size, c->stream0.s);
      return e == cudaSuccess ? cudaStreamSynchronize(c->stream0.s) : e;
    }
  }
  RelaxedCapture relaxed;
  cudaError_t e = cudaMemset(p, 0, size);
  return e == cudaSuccess ? cudaStreamSynchronize(nullptr) : e;
}

/* True when [p, p+bytes) is page-locked host memory (so a copy of it can be captured). */
bool page_locked(Context* c, const void* p, uint64_t bytes) {
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
int32_t issue_copy(uint64_t ctx, uint64_t stream, const char* fn, void* dst, const void* src,
                   uint64_t bytes, cudaMemcpyKind kind) {
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

}  // namespace

void memory_pool_open(Context* c) {
  if (!pool_wanted()) return;
  int supported = 0;
  cudaError_t e = cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, c->device);
  if (e == cudaSuccess && !supported) e = cudaErrorNotSupported;
  cudaMemPoolProps props = {};
  props.allocType = cudaMemAllocationTypePinned;
  props.handleTypes = cudaMemHandleTypeNone;
  props.location.type = cudaMemLocationTypeDevice;
  props.location.id = c->device;
  if (e == cudaSuccess) e = cudaMemPoolCreate(&c->pool, &props);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    c->pool = nullptr;
    note_no_pool("no memory pool on this device", e);
    return;
  }
  uint64_t hold = POOL_HOLD_BYTES;
  if (cudaMemPoolSetAttribute(c->pool, cudaMemPoolAttrReleaseThreshold, &hold) != cudaSuccess)
    (void)cudaGetLastError(); /* the pool works without it, handing memory back sooner */
  c->pool_usable = true;
}

void memory_pool_flush(Context* c) {
  if (c->pool == nullptr) return;
  std::lock_guard<std::mutex> g(c->lock);
  release_deferred_locked(c);
}

cudaError_t device_malloc(Context* c, void** p, size_t size) {
  RelaxedCapture relaxed; /* cudaMalloc is legal, if not captured, during a capture */
  cudaError_t e = cudaMalloc(p, size);
  if (e == cudaErrorMemoryAllocation && c->pool != nullptr) {
    /* Memory the context's pool holds for its own next buffers may be what is missing. */
    (void)cudaGetLastError();
    if (cudaMemPoolTrimTo(c->pool, 0) == cudaSuccess) e = cudaMalloc(p, size);
  }
  if (e != cudaSuccess) *p = nullptr;
  return e;
}

void memory_pool_close(Context* c) {
  for (auto& [size, p] : c->host_cache) cudaFreeHost(p);
  c->host_cache.clear();
  c->host_cache_bytes = 0;
  if (c->pool == nullptr) return;
  /* Frees still in flight complete first; the pool's memory then goes back to the device. */
  (void)cudaMemPoolDestroy(c->pool);
  (void)cudaGetLastError();
  c->pool = nullptr;
}

namespace {

/* braid_buffer_free's release: a pooled buffer back to the pool in order on the default stream
 * (every executable joins its streams there, and a stream is synchronized before it is
 * destroyed), or after the capture if the context is capturing (issued now, the free would be
 * recorded into the graph); any other with cudaFree. */
int32_t free_buffer(Context* c, void* p, uint64_t) {
  static const char fn[] = "braid_buffer_free";
  {
    std::lock_guard<std::mutex> g(c->lock);
    if (c->pooled.erase((uint64_t)(uintptr_t)p) != 0) {
      if (!capturing_locked(c)) return freed(fn, "cudaFreeAsync", cudaFreeAsync(p, c->stream0.s));
      try {
        c->deferred_frees.push_back(p);
        return BRAID_OK;
      } catch (...) {
        /* no room to defer it: cudaFree, which records nothing */
      }
    }
  }
  return freed(fn, "cudaFree", cudaFree(p));
}

/* braid_host_free's release: a pooled context keeps the buffer for the next of its size, up to a
 * bound; else cudaFreeHost. */
int32_t keep_or_free_host(Context* c, void* p, uint64_t bytes) {
  if (c->pool != nullptr) {
    std::lock_guard<std::mutex> g(c->lock);
    if (c->host_cache_bytes + bytes <= HOST_CACHE_BYTES) {
      try {
        c->host_cache.emplace((size_t)bytes, p);
        c->host_cache_bytes += bytes;
        return BRAID_OK;
      } catch (...) {
        /* no room to keep it: freed below */
      }
    }
  }
  return freed("braid_host_free", "cudaFreeHost", cudaFreeHost(p));
}

int32_t unregister_host(Context*, void* p, uint64_t) {
  return freed("braid_host_unregister", "cudaHostUnregister", cudaHostUnregister(p));
}

}  // namespace
}  // namespace braid_cuda

using namespace braid_cuda;

extern "C" {

int32_t braid_buffer_alloc(uint64_t ctx, uint64_t bytes, uint64_t* out_addr) {
  static const char fn[] = "braid_buffer_alloc";
  Context* c = nullptr;
  size_t size = 0;
  if (int32_t st = begin_allocation(ctx, fn, bytes, out_addr, &c, &size)) return st;
  void* p = nullptr;
  cudaError_t e = cudaSuccess;
  const bool pooled = pool_alloc_on(c, &c->stream0, size, &p, false);
  if (!pooled) e = device_malloc(c, &p, size);
  if (e != cudaSuccess) return allocation_failed(fn, "cudaMalloc", "device memory", bytes, e);
  /* Zero-filled: work run before any input arrives (tuning, warm-up) reads zeros, not a
   * previous session's activations (as token ids, those are gather errors; as floats, NaNs). A
   * pooled buffer's memory may have been another buffer of the context's a moment ago. */
  e = zero_fill(c, p, size);
  if (e != cudaSuccess) {
    {
      RelaxedCapture relaxed;
      cudaFree(p); /* a pooled one too: nothing else has touched it */
    }
    return allocation_failed(fn, "cudaMemsetAsync (zero-fill)", "device memory", bytes, e);
  }
  if (pooled) {
    std::lock_guard<std::mutex> g(c->lock);
    try {
      c->pooled.insert((uint64_t)(uintptr_t)p);
    } catch (...) {
      cudaFree(p);
      return fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory tracking %llu bytes", fn,
                  (unsigned long long)bytes);
    }
  }
  const int32_t st = track(c, c->bufs, fn, p, size, bytes, cudaFree, out_addr);
  if (st && pooled) {
    std::lock_guard<std::mutex> g(c->lock);
    c->pooled.erase((uint64_t)(uintptr_t)p);
  }
  return st;
}

int32_t braid_buffer_free(uint64_t ctx, uint64_t addr) {
  return untrack(ctx, "braid_buffer_free", addr, &Context::bufs, "allocation", free_buffer);
}

int32_t braid_host_alloc(uint64_t ctx, uint64_t bytes, uint64_t* out_addr) {
  static const char fn[] = "braid_host_alloc";
  Context* c = nullptr;
  size_t size = 0;
  if (int32_t st = begin_allocation(ctx, fn, bytes, out_addr, &c, &size)) return st;
  void* p = nullptr;
  {
    /* A buffer of this size a pooled context freed before (nothing uses it: its user's work was
     * waited for, as cudaFreeHost would have). */
    std::lock_guard<std::mutex> g(c->lock);
    auto kept = c->host_cache.find(size);
    if (kept != c->host_cache.end()) {
      p = kept->second;
      c->host_cache.erase(kept);
      c->host_cache_bytes -= size;
    }
  }
  if (p == nullptr) {
    cudaError_t e;
    {
      RelaxedCapture relaxed;
      e = cudaHostAlloc(&p, size, cudaHostAllocPortable);
    }
    if (e != cudaSuccess)
      return allocation_failed(fn, "cudaHostAlloc", "page-locked memory", bytes, e);
  }
  memset(p, 0, size); /* zero-filled, as braid_buffer_alloc */
  return track(c, c->host_bufs, fn, p, size, bytes, cudaFreeHost, out_addr);
}

int32_t braid_host_free(uint64_t ctx, uint64_t addr) {
  return untrack(ctx, "braid_host_free", addr, &Context::host_bufs, "host allocation",
                 keep_or_free_host);
}

int32_t braid_host_register(uint64_t ctx, const void* ptr, uint64_t bytes, uint64_t* out_addr) {
  static const char fn[] = "braid_host_register";
  Context* c = nullptr;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  if (out_addr == NULL) return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: out_addr is NULL", fn);
  if (ptr == NULL || bytes == 0)
    return fail(BRAID_ERR_INVALID_ARGUMENT, "%s: nothing to page-lock (%llu bytes at %p)", fn,
                (unsigned long long)bytes, ptr);
  cudaError_t e;
  {
    RelaxedCapture relaxed;
    /* Portable: copies from it run asynchronously from every context (partitions included). */
    e = cudaHostRegister(const_cast<void*>(ptr), (size_t)bytes, cudaHostRegisterPortable);
  }
  if (e != cudaSuccess) {
    int32_t status;
    switch (e) {
      case cudaErrorHostMemoryAlreadyRegistered: /* these bytes, or a page of them, already are */
      case cudaErrorInvalidValue:                /* memory the driver cannot pin */
        status = BRAID_ERR_INVALID_ARGUMENT;
        break;
      case cudaErrorNotSupported:
        status = BRAID_ERR_UNSUPPORTED;
        break;
      case cudaErrorMemoryAllocation:
        status = BRAID_ERR_OUT_OF_MEMORY;
        break;
      default: /* possibly sticky: a real failure */
        return cuda_fail(fn, "cudaHostRegister", e);
    }
    (void)cudaGetLastError(); /* none of those is sticky: the caller copies as before */
    return fail(status, "%s: cannot page-lock %llu bytes at %p (cudaHostRegister: %s)", fn,
                (unsigned long long)bytes, ptr, cudaGetErrorString(e));
  }
  return track(c, c->host_registered, fn, const_cast<void*>(ptr), (size_t)bytes, bytes,
               cudaHostUnregister, out_addr);
}

int32_t braid_host_unregister(uint64_t ctx, uint64_t addr) {
  return untrack(ctx, "braid_host_unregister", addr, &Context::host_registered,
                 "page-locked registration", unregister_host);
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

}  // extern "C"
