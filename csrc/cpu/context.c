/*
 * context.c — errors, library queries, contexts, memory, copies, streams, events, capture and
 * graph replay of the CPU backend. Work runs synchronously when issued; see internal.h.
 */
#include "internal.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <omp.h>

/* ---------------------------------------------------------------- load time */

/* Pins this library (and with it the OpenMP runtime it links) once it is loaded: the OpenMP
 * worker threads outlive every call, so unloading the runtime under them (Deno's
 * DynamicLibrary.close() calls dlclose) would crash the process. */
__attribute__((constructor)) static void braid_pin_library(void) {
  Dl_info info;
  if (dladdr((void*)&braid_pin_library, &info) != 0 && info.dli_fname != NULL)
    (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

/* ---------------------------------------------------------------- errors */

/* Global state of the backend: each thread's last error message, and (below, with the memory)
 * the process's page-locked registrations. */
static _Thread_local char braid_error_message[512];

int32_t braid__fail(int32_t status, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(braid_error_message, sizeof braid_error_message, fmt, ap);
  va_end(ap);
  return status;
}

int32_t braid_last_error(uint8_t* buf, int32_t len) {
  if (buf == NULL || len <= 0) return BRAID_OK;
  size_t n = strlen(braid_error_message);
  if (n > (size_t)len - 1) n = (size_t)len - 1;
  memcpy(buf, braid_error_message, n);
  buf[n] = 0;
  return BRAID_OK;
}

int32_t braid_abi_version(int32_t* out) {
  if (out == NULL) return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "braid_abi_version: out is NULL");
  *out = BRAID_ABI_VERSION;
  return BRAID_OK;
}

int32_t braid_device_count(int32_t* out) {
  if (out == NULL)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "braid_device_count: out is NULL");
  *out = 1;
  return BRAID_OK;
}

/* ---------------------------------------------------------------- handle structs */

/* A set of 64-bit keys (addresses) by open addressing: 0 empty, 1 deleted. */
typedef struct braid_ptrset {
  uint64_t* slots;
  size_t cap, used, live;
} braid_ptrset;

typedef struct braid_stream {
  uint32_t magic;
  braid_context* ctx;
  int32_t priority;
} braid_stream;

typedef struct braid_event {
  uint32_t magic;
  braid_context* ctx;
  int32_t recorded;
  int64_t time_ns;
} braid_event;

typedef struct braid_graph {
  uint32_t magic;
  braid_context* ctx;
  braid_op* ops;
  size_t count;
  int32_t is_template; /* a part for braid_graph_compose, not launchable */
} braid_graph;

/* Growable list of op records (a capture in progress). */
typedef struct braid_oplist {
  braid_op* ops;
  size_t count, cap;
} braid_oplist;

struct braid_context {
  uint32_t magic;
  pthread_mutex_t lock;   /* guards everything below */
  braid_stream stream0;   /* the default stream (handle 0) */
  int32_t capturing;
  braid_stream* capture_stream; /* the stream capture began on (&stream0 for 0) */
  braid_oplist capture;
  /* Live stream, event and graph handles: looked up before a handle is dereferenced, so a
   * destroyed or foreign handle is reported rather than read. */
  braid_ptrset handles;
  int64_t streams, events, graphs;
  braid_ptrset bufs; /* live buffer base addresses */
  int64_t registered; /* caller memory page-locked through this context (braid_host_register) */
};

static size_t hash_addr(uint64_t a, size_t cap) {
  a >>= 4;
  a *= 0x9E3779B97F4A7C15ull;
  return (size_t)(a >> 20) & (cap - 1);
}

/* Inserts into a set (context lock held); 0 when out of memory. */
static int ptrset_insert(braid_ptrset* set, uint64_t key) {
  if ((set->used + 1) * 2 > set->cap) {
    size_t cap = 64;
    while ((set->live + 1) * 4 > cap) cap *= 2;
    uint64_t* t = calloc(cap, sizeof *t);
    if (t == NULL) return 0;
    for (size_t i = 0; i < set->cap; i++) {
      uint64_t a = set->slots[i];
      if (a > 1) {
        size_t j = hash_addr(a, cap);
        while (t[j] != 0) j = (j + 1) & (cap - 1);
        t[j] = a;
      }
    }
    free(set->slots);
    set->slots = t;
    set->cap = cap;
    set->used = set->live;
  }
  size_t j = hash_addr(key, set->cap);
  while (set->slots[j] > 1) j = (j + 1) & (set->cap - 1);
  if (set->slots[j] == 0) set->used++;
  set->slots[j] = key;
  set->live++;
  return 1;
}

static size_t ptrset_find(const braid_ptrset* set, uint64_t key) {
  if (set->cap == 0 || key <= 1) return SIZE_MAX;
  size_t j = hash_addr(key, set->cap);
  while (set->slots[j] != 0) {
    if (set->slots[j] == key) return j;
    j = (j + 1) & (set->cap - 1);
  }
  return SIZE_MAX;
}

static int ptrset_contains(const braid_ptrset* set, uint64_t key) {
  return ptrset_find(set, key) != SIZE_MAX;
}

/* Removes from a set (context lock held); 0 when absent. */
static int ptrset_remove(braid_ptrset* set, uint64_t key) {
  size_t j = ptrset_find(set, key);
  if (j == SIZE_MAX) return 0;
  set->slots[j] = 1;
  set->live--;
  return 1;
}

static int32_t bad_handle(const char* fn, const char* kind, uint64_t h) {
  if (h == 0) return braid__fail(BRAID_ERR_INVALID_HANDLE, "%s: %s handle is 0", fn, kind);
  return braid__fail(BRAID_ERR_INVALID_HANDLE,
                     "%s: 0x%llx is not a live %s handle of this context (destroyed, of another "
                     "kind or of another context)",
                     fn, (unsigned long long)h, kind);
}

/* A context handle is a pointer to a struct starting with its magic; reject implausible
 * pointers before looking at it. */
static int plausible(uint64_t h) { return h >= 4096 && (h & 7) == 0; }

static int32_t get_context(uint64_t h, const char* fn, braid_context** out) {
  braid_context* c = (braid_context*)(uintptr_t)h;
  if (h == 0) return bad_handle(fn, "context", h);
  if (!plausible(h) || c->magic != BRAID_MAGIC_CONTEXT)
    return braid__fail(BRAID_ERR_INVALID_HANDLE,
                       "%s: 0x%llx is not a live context handle (destroyed or of another kind)",
                       fn, (unsigned long long)h);
  *out = c;
  return BRAID_OK;
}

/* Looks a child handle up in the context's set, then checks its kind. */
static void* get_child(braid_context* c, uint64_t h, uint32_t magic) {
  pthread_mutex_lock(&c->lock);
  int live = ptrset_contains(&c->handles, h);
  pthread_mutex_unlock(&c->lock);
  if (!live || *(const uint32_t*)(uintptr_t)h != magic) return NULL;
  return (void*)(uintptr_t)h;
}

/* Registers a new child handle; 0 when out of memory. */
static int add_child(braid_context* c, uint64_t h, int64_t* counter) {
  pthread_mutex_lock(&c->lock);
  int ok = ptrset_insert(&c->handles, h);
  if (ok) (*counter)++;
  pthread_mutex_unlock(&c->lock);
  return ok;
}

static void remove_child(braid_context* c, uint64_t h, int64_t* counter) {
  pthread_mutex_lock(&c->lock);
  if (ptrset_remove(&c->handles, h)) (*counter)--;
  pthread_mutex_unlock(&c->lock);
}

static int32_t get_stream(braid_context* c, uint64_t h, const char* fn, braid_stream** out) {
  if (h == 0) {
    *out = &c->stream0;
    return BRAID_OK;
  }
  braid_stream* s = get_child(c, h, BRAID_MAGIC_STREAM);
  if (s == NULL) return bad_handle(fn, "stream", h);
  *out = s;
  return BRAID_OK;
}

static int32_t get_event(braid_context* c, uint64_t h, const char* fn, braid_event** out) {
  braid_event* e = get_child(c, h, BRAID_MAGIC_EVENT);
  if (e == NULL) return bad_handle(fn, "event", h);
  *out = e;
  return BRAID_OK;
}

static int32_t get_graph(braid_context* c, uint64_t h, const char* fn, braid_graph** out) {
  braid_graph* g = get_child(c, h, BRAID_MAGIC_GRAPH);
  if (g == NULL) return bad_handle(fn, "graph", h);
  *out = g;
  return BRAID_OK;
}

int32_t braid__resolve(uint64_t ctx, uint64_t stream, const char* fn, braid_context** out) {
  braid_context* c = NULL;
  braid_stream* s = NULL;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  st = get_stream(c, stream, fn, &s);
  if (st) return st;
  *out = c;
  return BRAID_OK;
}

/* ---------------------------------------------------------------- op lists */

static void op_release(braid_op* op) {
  free((void*)op->list);
  op->list = NULL;
}

static void oplist_clear(braid_oplist* l) {
  for (size_t i = 0; i < l->count; i++) op_release(&l->ops[i]);
  free(l->ops);
  l->ops = NULL;
  l->count = l->cap = 0;
}

/* Appends a deep copy of op (its address list included). */
static int32_t oplist_push(braid_oplist* l, const braid_op* op) {
  if (l->count == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    braid_op* ops = realloc(l->ops, cap * sizeof *ops);
    if (ops == NULL)
      return braid__fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory recording the capture",
                         op->name);
    l->ops = ops;
    l->cap = cap;
  }
  braid_op copy = *op;
  if (op->list != NULL && op->list_len > 0) {
    uint64_t* list = malloc((size_t)op->list_len * sizeof *list);
    if (list == NULL)
      return braid__fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory recording the capture",
                         op->name);
    memcpy(list, op->list, (size_t)op->list_len * sizeof *list);
    copy.list = list;
  } else {
    copy.list = NULL;
  }
  l->ops[l->count++] = copy;
  return BRAID_OK;
}

int32_t braid__submit(braid_context* c, const braid_op* op) {
  pthread_mutex_lock(&c->lock);
  if (c->capturing) {
    int32_t st = oplist_push(&c->capture, op);
    pthread_mutex_unlock(&c->lock);
    return st;
  }
  pthread_mutex_unlock(&c->lock);
  return op->run(op);
}

/* ---------------------------------------------------------------- contexts */

int32_t braid_context_create(int32_t device, uint64_t* out_ctx) {
  static const char fn[] = "braid_context_create";
  if (out_ctx == NULL) return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: out_ctx is NULL", fn);
  if (device != 0)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT,
                       "%s: device %d out of range (the CPU backend has 1 device)", fn, device);
  braid_context* c = calloc(1, sizeof *c);
  if (c == NULL) return braid__fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
  if (pthread_mutex_init(&c->lock, NULL) != 0) {
    free(c);
    return braid__fail(BRAID_ERR_INTERNAL, "%s: pthread_mutex_init failed", fn);
  }
  c->magic = BRAID_MAGIC_CONTEXT;
  c->stream0.magic = BRAID_MAGIC_STREAM;
  c->stream0.ctx = c;
  *out_ctx = (uint64_t)(uintptr_t)c;
  return BRAID_OK;
}

int32_t braid_context_destroy(uint64_t ctx) {
  static const char fn[] = "braid_context_destroy";
  braid_context* c = NULL;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  pthread_mutex_lock(&c->lock);
  int64_t streams = c->streams, events = c->events, graphs = c->graphs;
  size_t bufs = c->bufs.live + (size_t)c->registered;
  int capturing = c->capturing;
  pthread_mutex_unlock(&c->lock);
  if (capturing)
    return braid__fail(BRAID_ERR_CAPTURE, "%s: the context is capturing; end the capture first",
                       fn);
  if (streams || events || graphs || bufs)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT,
                       "%s: destroy its children first (%lld streams, %lld events, %lld graphs, "
                       "%zu buffers or registrations still alive)",
                       fn, (long long)streams, (long long)events, (long long)graphs, bufs);
  c->magic = 0;
  c->stream0.magic = 0;
  free(c->bufs.slots);
  free(c->handles.slots);
  pthread_mutex_destroy(&c->lock);
  free(c);
  return BRAID_OK;
}

int32_t braid_device_info(uint64_t ctx, uint8_t* name, int32_t name_len, int64_t* info) {
  static const char fn[] = "braid_device_info";
  braid_context* c = NULL;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  int threads = omp_get_max_threads();
  if (name != NULL && name_len > 0) {
    char tmp[64];
    snprintf(tmp, sizeof tmp, "cpu (%d thread%s)", threads, threads == 1 ? "" : "s");
    size_t n = strlen(tmp);
    if (n > (size_t)name_len - 1) n = (size_t)name_len - 1;
    memcpy(name, tmp, n);
    name[n] = 0;
  }
  if (info != NULL) {
    long page = sysconf(_SC_PAGESIZE);
    long total = sysconf(_SC_PHYS_PAGES);
    long avail = sysconf(_SC_AVPHYS_PAGES);
    for (int i = 0; i < 8; i++) info[i] = 0;
    info[0] = threads;
    info[1] = (page > 0 && total > 0) ? (int64_t)page * total : 0;
    info[2] = (page > 0 && avail > 0) ? (int64_t)page * avail : 0;
    info[4] = 0; /* backend kind: CPU */
  }
  return BRAID_OK;
}

/* ---------------------------------------------------------------- memory */

int32_t braid_buffer_alloc(uint64_t ctx, uint64_t bytes, uint64_t* out_addr) {
  static const char fn[] = "braid_buffer_alloc";
  braid_context* c = NULL;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  if (out_addr == NULL) return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: out_addr is NULL", fn);
  if (bytes > ((uint64_t)1 << 52))
    return braid__fail(BRAID_ERR_OUT_OF_MEMORY, "%s: cannot allocate %llu bytes", fn,
                       (unsigned long long)bytes);
  size_t size = bytes == 0 ? 256 : (size_t)((bytes + 255) & ~(uint64_t)255);
  void* p = NULL;
  if (posix_memalign(&p, 256, size) != 0 || p == NULL)
    return braid__fail(BRAID_ERR_OUT_OF_MEMORY, "%s: cannot allocate %llu bytes", fn,
                       (unsigned long long)bytes);
  memset(p, 0, size); /* zero-filled, as the CUDA backend's */
  uint64_t addr = (uint64_t)(uintptr_t)p;
  pthread_mutex_lock(&c->lock);
  int ok = ptrset_insert(&c->bufs, addr);
  pthread_mutex_unlock(&c->lock);
  if (!ok) {
    free(p);
    return braid__fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory tracking %llu bytes", fn,
                       (unsigned long long)bytes);
  }
  *out_addr = addr;
  return BRAID_OK;
}

int32_t braid_buffer_free(uint64_t ctx, uint64_t addr) {
  static const char fn[] = "braid_buffer_free";
  braid_context* c = NULL;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  if (addr == 0) return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: address is 0", fn);
  pthread_mutex_lock(&c->lock);
  int found = ptrset_remove(&c->bufs, addr);
  pthread_mutex_unlock(&c->lock);
  if (!found)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT,
                       "%s: 0x%llx is not the base address of a live allocation of this context",
                       fn, (unsigned long long)addr);
  free((void*)(uintptr_t)addr);
  return BRAID_OK;
}

/* Page-locked memory. On the CPU there is nothing to lock, but the registrations are kept as CUDA
 * keeps them, process-wide and by whole pages, so that what CUDA refuses to lock is refused here
 * too: memory registered twice, a range sharing a page with a registered one, and memory from
 * braid_host_alloc (page-locked from the start). */
typedef struct {
  uint64_t addr, first_page, end_page;
  braid_context* owner;
  int caller; /* braid_host_register's (else braid_host_alloc's) */
} braid_registration;

static pthread_mutex_t registrations_lock = PTHREAD_MUTEX_INITIALIZER;
static braid_registration* registrations;
static size_t registrations_count, registrations_cap;

/* Records [addr, addr + bytes); a caller's range that shares a page with a registered one is
 * refused (INVALID_ARGUMENT). Counts a caller's registration in its context. */
static int32_t registration_add(braid_context* c, const char* fn, uint64_t addr, uint64_t bytes,
                                int caller) {
  const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
  braid_registration r = {addr, addr / page, (addr + bytes + page - 1) / page, c, caller};
  int32_t st = BRAID_OK;
  pthread_mutex_lock(&registrations_lock);
  for (size_t i = 0; caller && i < registrations_count && st == BRAID_OK; i++) {
    const braid_registration* o = &registrations[i];
    if (r.first_page < o->end_page && o->first_page < r.end_page)
      st = braid__fail(BRAID_ERR_INVALID_ARGUMENT,
                       "%s: cannot page-lock %llu bytes at 0x%llx: a page of it already is", fn,
                       (unsigned long long)bytes, (unsigned long long)addr);
  }
  if (st == BRAID_OK && registrations_count == registrations_cap) {
    size_t cap = registrations_cap ? 2 * registrations_cap : 16;
    braid_registration* grown = realloc(registrations, cap * sizeof *grown);
    if (grown == NULL) st = braid__fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    else {
      registrations = grown;
      registrations_cap = cap;
    }
  }
  if (st == BRAID_OK) registrations[registrations_count++] = r;
  pthread_mutex_unlock(&registrations_lock);
  if (st == BRAID_OK && caller) {
    pthread_mutex_lock(&c->lock);
    c->registered++;
    pthread_mutex_unlock(&c->lock);
  }
  return st;
}

/* Forgets the registration of `c` at `addr` (a caller's, or an allocation's); 0 when none. */
static int registration_remove(braid_context* c, uint64_t addr, int caller) {
  int found = 0;
  pthread_mutex_lock(&registrations_lock);
  for (size_t i = 0; i < registrations_count; i++) {
    const braid_registration* o = &registrations[i];
    if (o->addr == addr && o->owner == c && o->caller == caller) {
      registrations[i] = registrations[--registrations_count];
      found = 1;
      break;
    }
  }
  pthread_mutex_unlock(&registrations_lock);
  if (found && caller) {
    pthread_mutex_lock(&c->lock);
    c->registered--;
    pthread_mutex_unlock(&c->lock);
  }
  return found;
}

/* On the CPU, host and device memory are the same: pinned memory is an ordinary allocation,
 * recorded as page-locked. */
int32_t braid_host_alloc(uint64_t ctx, uint64_t bytes, uint64_t* out_addr) {
  static const char fn[] = "braid_host_alloc";
  int32_t st = braid_buffer_alloc(ctx, bytes, out_addr);
  if (st) return st;
  braid_context* c = (braid_context*)(uintptr_t)ctx;
  st = registration_add(c, fn, *out_addr, bytes == 0 ? 256 : bytes, 0);
  if (st) (void)braid_buffer_free(ctx, *out_addr);
  return st;
}

int32_t braid_host_free(uint64_t ctx, uint64_t addr) {
  int32_t st = braid_buffer_free(ctx, addr);
  if (st == BRAID_OK) (void)registration_remove((braid_context*)(uintptr_t)ctx, addr, 0);
  return st;
}

int32_t braid_host_register(uint64_t ctx, const void* ptr, uint64_t bytes, uint64_t* out_addr) {
  static const char fn[] = "braid_host_register";
  braid_context* c = NULL;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  if (out_addr == NULL) return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: out_addr is NULL", fn);
  if (ptr == NULL || bytes == 0)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: nothing to page-lock (%llu bytes at %p)",
                       fn, (unsigned long long)bytes, ptr);
  const uint64_t addr = (uint64_t)(uintptr_t)ptr;
  if ((st = registration_add(c, fn, addr, bytes, 1))) return st;
  *out_addr = addr;
  return BRAID_OK;
}

int32_t braid_host_unregister(uint64_t ctx, uint64_t addr) {
  static const char fn[] = "braid_host_unregister";
  braid_context* c = NULL;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  if (!registration_remove(c, addr, 1))
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT,
                       "%s: 0x%llx is not the address of a live page-locked registration of this "
                       "context",
                       fn, (unsigned long long)addr);
  return BRAID_OK;
}

/* ---------------------------------------------------------------- copies */

static int32_t run_copy(const braid_op* op) {
  if (op->p.copy.bytes > 0) memmove(op->p.copy.dst, op->p.copy.src, (size_t)op->p.copy.bytes);
  return BRAID_OK;
}

static int32_t issue_copy(uint64_t ctx, uint64_t stream, const char* fn, void* dst,
                          const void* src, uint64_t bytes) {
  braid_context* c = NULL;
  int32_t st = braid__resolve(ctx, stream, fn, &c);
  if (st) return st;
  if (bytes > 0 && dst == NULL)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: destination is 0", fn);
  if (bytes > 0 && src == NULL)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: source is 0", fn);
  if (bytes > (uint64_t)SIZE_MAX / 2)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: %llu bytes is too many", fn,
                       (unsigned long long)bytes);
  braid_op op;
  memset(&op, 0, sizeof op);
  op.run = run_copy;
  op.name = fn;
  op.p.copy.dst = dst;
  op.p.copy.src = src;
  op.p.copy.bytes = bytes;
  return braid__submit(c, &op);
}

int32_t braid_memcpy_h2d(uint64_t ctx, uint64_t stream, uint64_t dst, const void* src,
                         uint64_t bytes) {
  return issue_copy(ctx, stream, "braid_memcpy_h2d", (void*)(uintptr_t)dst, src, bytes);
}

int32_t braid_memcpy_d2h(uint64_t ctx, uint64_t stream, void* dst, uint64_t src, uint64_t bytes) {
  return issue_copy(ctx, stream, "braid_memcpy_d2h", dst, (const void*)(uintptr_t)src, bytes);
}

int32_t braid_memcpy_d2d(uint64_t ctx, uint64_t stream, uint64_t dst, uint64_t src,
                         uint64_t bytes) {
  return issue_copy(ctx, stream, "braid_memcpy_d2d", (void*)(uintptr_t)dst,
                    (const void*)(uintptr_t)src, bytes);
}

/* ---------------------------------------------------------------- streams */

int32_t braid_stream_create(uint64_t ctx, int32_t priority, uint64_t* out_stream) {
  static const char fn[] = "braid_stream_create";
  braid_context* c = NULL;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  if (out_stream == NULL)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: out_stream is NULL", fn);
  braid_stream* s = calloc(1, sizeof *s);
  if (s == NULL) return braid__fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
  s->magic = BRAID_MAGIC_STREAM;
  s->ctx = c;
  s->priority = priority;
  if (!add_child(c, (uint64_t)(uintptr_t)s, &c->streams)) {
    free(s);
    return braid__fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
  }
  *out_stream = (uint64_t)(uintptr_t)s;
  return BRAID_OK;
}

int32_t braid_stream_destroy(uint64_t ctx, uint64_t stream) {
  static const char fn[] = "braid_stream_destroy";
  braid_context* c = NULL;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  if (stream == 0)
    return braid__fail(BRAID_ERR_INVALID_HANDLE,
                       "%s: stream 0 is the context's default stream and cannot be destroyed",
                       fn);
  braid_stream* s = NULL;
  st = get_stream(c, stream, fn, &s);
  if (st) return st;
  pthread_mutex_lock(&c->lock);
  if (c->capturing && c->capture_stream == s) {
    pthread_mutex_unlock(&c->lock);
    return braid__fail(BRAID_ERR_CAPTURE, "%s: the stream is capturing; end the capture first",
                       fn);
  }
  pthread_mutex_unlock(&c->lock);
  remove_child(c, stream, &c->streams);
  s->magic = 0;
  free(s);
  return BRAID_OK;
}

int32_t braid_stream_synchronize(uint64_t ctx, uint64_t stream) {
  static const char fn[] = "braid_stream_synchronize";
  braid_context* c = NULL;
  int32_t st = braid__resolve(ctx, stream, fn, &c);
  if (st) return st;
  if (braid__capturing(c))
    return braid__fail(BRAID_ERR_CAPTURE, "%s: illegal while the context is capturing", fn);
  return BRAID_OK; /* work already ran when it was issued */
}

int braid__capturing(braid_context* c) {
  pthread_mutex_lock(&c->lock);
  int capturing = c->capturing;
  pthread_mutex_unlock(&c->lock);
  return capturing;
}

/* ---------------------------------------------------------------- events */

int32_t braid_event_create(uint64_t ctx, uint64_t* out_event) {
  static const char fn[] = "braid_event_create";
  braid_context* c = NULL;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  if (out_event == NULL)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: out_event is NULL", fn);
  braid_event* e = calloc(1, sizeof *e);
  if (e == NULL) return braid__fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
  e->magic = BRAID_MAGIC_EVENT;
  e->ctx = c;
  if (!add_child(c, (uint64_t)(uintptr_t)e, &c->events)) {
    free(e);
    return braid__fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
  }
  *out_event = (uint64_t)(uintptr_t)e;
  return BRAID_OK;
}

/* The context and one of its events, by handle. */
static int32_t context_event(uint64_t ctx, uint64_t event, const char* fn, braid_context** c,
                             braid_event** e) {
  int32_t st = get_context(ctx, fn, c);
  return st ? st : get_event(*c, event, fn, e);
}

int32_t braid_event_destroy(uint64_t ctx, uint64_t event) {
  static const char fn[] = "braid_event_destroy";
  braid_context* c = NULL;
  braid_event* e = NULL;
  int32_t st = context_event(ctx, event, fn, &c, &e);
  if (st) return st;
  remove_child(c, event, &c->events);
  e->magic = 0;
  free(e);
  return BRAID_OK;
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Resolves ctx and stream (as an operator does) and the event (the CUDA backend's twin). */
static int32_t stream_event(uint64_t ctx, uint64_t stream, uint64_t event, const char* fn,
                            braid_context** c, braid_event** e) {
  int32_t st = braid__resolve(ctx, stream, fn, c);
  return st ? st : get_event(*c, event, fn, e);
}

/* The event takes the time now. */
static void stamp(braid_event* e) {
  e->time_ns = now_ns();
  e->recorded = 1;
}

/* A timing record replayed: the event takes the time the graph reaches it. */
static int32_t run_timing_record(const braid_op* op) {
  braid_event* e = (braid_event*)(uintptr_t)op->addr[0];
  if (e->magic != BRAID_MAGIC_EVENT)
    return braid__fail(BRAID_ERR_INVALID_HANDLE,
                       "braid_graph_launch: a timing record's event was destroyed");
  stamp(e);
  return BRAID_OK;
}

/* Records `event` on `stream` (the CUDA backend's record_event). Inside a capture a plain record
 * is only an ordering point, and replay runs in order anyway; a timing record is submitted as an
 * op, so it takes the time now, or, inside a capture, each time the graph runs (as CUDA's
 * event-record node). */
static int32_t record_event(uint64_t ctx, uint64_t event, uint64_t stream, const char* fn,
                            int timing) {
  braid_context* c = NULL;
  braid_event* e = NULL;
  int32_t st = stream_event(ctx, stream, event, fn, &c, &e);
  if (st) return st;
  if (timing) {
    braid_op op = {.run = run_timing_record, .name = fn};
    op.addr[0] = (uint64_t)(uintptr_t)e;
    return braid__submit(c, &op);
  }
  pthread_mutex_lock(&c->lock);
  int capturing = c->capturing;
  pthread_mutex_unlock(&c->lock);
  if (!capturing) stamp(e);
  return BRAID_OK;
}

int32_t braid_event_record(uint64_t ctx, uint64_t event, uint64_t stream) {
  return record_event(ctx, event, stream, "braid_event_record", 0);
}

int32_t braid_event_record_timing(uint64_t ctx, uint64_t event, uint64_t stream) {
  return record_event(ctx, event, stream, "braid_event_record_timing", 1);
}

int32_t braid_stream_wait_event(uint64_t ctx, uint64_t stream, uint64_t event) {
  static const char fn[] = "braid_stream_wait_event";
  braid_context* c = NULL;
  braid_event* e = NULL;
  int32_t st = stream_event(ctx, stream, event, fn, &c, &e);
  if (st) return st;
  return BRAID_OK; /* everything issued before has already run */
}

int32_t braid_event_synchronize(uint64_t ctx, uint64_t event) {
  static const char fn[] = "braid_event_synchronize";
  braid_context* c = NULL;
  braid_event* e = NULL;
  /* Work runs as it is issued: nothing to wait for once the handle checks out. Refused during a
   * capture, as on CUDA. */
  int32_t st = context_event(ctx, event, fn, &c, &e);
  if (st) return st;
  if (braid__capturing(c))
    return braid__fail(BRAID_ERR_CAPTURE, "%s: illegal while the context is capturing", fn);
  return BRAID_OK;
}

int32_t braid_event_elapsed(uint64_t ctx, uint64_t start, uint64_t end, float* out_ms) {
  static const char fn[] = "braid_event_elapsed";
  braid_context* c = NULL;
  braid_event *a = NULL, *b = NULL;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  if ((st = get_event(c, start, fn, &a)) || (st = get_event(c, end, fn, &b))) return st;
  if (out_ms == NULL) return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: out_ms is NULL", fn);
  if (!a->recorded || !b->recorded)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: the %s event has not been recorded", fn,
                       a->recorded ? "end" : "start");
  *out_ms = (float)((double)(b->time_ns - a->time_ns) / 1e6);
  return BRAID_OK;
}

/* ---------------------------------------------------------------- capture and graphs */

int32_t braid_capture_begin(uint64_t ctx, uint64_t stream) {
  static const char fn[] = "braid_capture_begin";
  braid_context* c = NULL;
  braid_stream* s = NULL;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  st = get_stream(c, stream, fn, &s);
  if (st) return st;
  pthread_mutex_lock(&c->lock);
  if (c->capturing) {
    pthread_mutex_unlock(&c->lock);
    return braid__fail(BRAID_ERR_CAPTURE, "%s: the context is already capturing", fn);
  }
  c->capturing = 1;
  c->capture_stream = s;
  c->capture.count = 0;
  pthread_mutex_unlock(&c->lock);
  return BRAID_OK;
}

/* Gives a graph a handle of `c` (context lock held); 0 when out of memory. */
static int adopt_graph(braid_context* c, braid_graph* g, int32_t is_template) {
  if (!ptrset_insert(&c->handles, (uint64_t)(uintptr_t)g)) return 0;
  c->graphs++;
  g->magic = BRAID_MAGIC_GRAPH;
  g->ctx = c;
  g->is_template = is_template;
  return 1;
}

/* Ends the capture begun on `stream`: its work becomes a graph, or a template. */
static int32_t end_capture(uint64_t ctx, uint64_t stream, const char* fn, int32_t is_template,
                           uint64_t* out_graph, const char* out_name) {
  braid_context* c = NULL;
  braid_stream* s = NULL;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  st = get_stream(c, stream, fn, &s);
  if (st) return st;
  if (out_graph == NULL)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, out_name);
  braid_graph* g = calloc(1, sizeof *g);
  if (g == NULL) return braid__fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
  pthread_mutex_lock(&c->lock);
  if (!c->capturing) {
    pthread_mutex_unlock(&c->lock);
    free(g);
    return braid__fail(BRAID_ERR_CAPTURE, "%s: the context is not capturing", fn);
  }
  if (c->capture_stream != s) {
    pthread_mutex_unlock(&c->lock);
    free(g);
    return braid__fail(BRAID_ERR_CAPTURE,
                       "%s: the capture was begun on another stream; end it on that stream", fn);
  }
  if (!adopt_graph(c, g, is_template)) {
    pthread_mutex_unlock(&c->lock);
    free(g);
    return braid__fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
  }
  g->ops = c->capture.ops;
  g->count = c->capture.count;
  c->capture.ops = NULL;
  c->capture.count = c->capture.cap = 0;
  c->capturing = 0;
  c->capture_stream = NULL;
  pthread_mutex_unlock(&c->lock);
  *out_graph = (uint64_t)(uintptr_t)g;
  return BRAID_OK;
}

int32_t braid_capture_end(uint64_t ctx, uint64_t stream, uint64_t* out_graph) {
  return end_capture(ctx, stream, "braid_capture_end", 0, out_graph, "out_graph");
}

int32_t braid_capture_end_template(uint64_t ctx, uint64_t stream, uint64_t* out_template) {
  return end_capture(ctx, stream, "braid_capture_end_template", 1, out_template, "out_template");
}

/* Here work runs in issue order, so the chains run one after another: the same results. */
int32_t braid_graph_compose(uint64_t ctx, const uint64_t* parts, const int32_t* lengths,
                            int32_t chains, uint64_t* out_graph) {
  static const char fn[] = "braid_graph_compose";
  braid_context* c = NULL;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  if (out_graph == NULL)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: out_graph is NULL", fn);
  if (chains < 0)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: chains %d is negative", fn, chains);
  if (chains > 0 && lengths == NULL)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: lengths is NULL", fn);
  size_t count = 0;
  for (int32_t i = 0; i < chains; i++) {
    if (lengths[i] < 0)
      return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: chain %d has length %d", fn, i,
                         lengths[i]);
    count += (size_t)lengths[i];
  }
  if (count > 0 && parts == NULL)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: parts is NULL", fn);
  for (size_t k = 0; k < count; k++) {
    braid_graph* part = NULL;
    if ((st = get_graph(c, parts[k], fn, &part))) return st;
    if (!part->is_template)
      return braid__fail(BRAID_ERR_INVALID_ARGUMENT,
                         "%s: part %zu is an executable graph, not a template "
                         "(braid_capture_end_template makes one)",
                         fn, k);
  }
  braid_graph* g = calloc(1, sizeof *g);
  if (g == NULL) return braid__fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
  braid_oplist ops = {NULL, 0, 0};
  pthread_mutex_lock(&c->lock);
  if (c->capturing)
    st = braid__fail(BRAID_ERR_CAPTURE, "%s: illegal while the context is capturing", fn);
  for (size_t k = 0; k < count && st == BRAID_OK; k++) {
    const braid_graph* part = (const braid_graph*)(uintptr_t)parts[k];
    for (size_t i = 0; i < part->count && st == BRAID_OK; i++)
      st = oplist_push(&ops, &part->ops[i]);
  }
  if (st == BRAID_OK && !adopt_graph(c, g, 0))
    st = braid__fail(BRAID_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
  pthread_mutex_unlock(&c->lock);
  if (st) {
    oplist_clear(&ops);
    free(g);
    return st;
  }
  g->ops = ops.ops;
  g->count = ops.count;
  *out_graph = (uint64_t)(uintptr_t)g;
  return BRAID_OK;
}

int32_t braid_graph_launch(uint64_t ctx, uint64_t graph, uint64_t stream) {
  static const char fn[] = "braid_graph_launch";
  braid_context* c = NULL;
  braid_graph* g = NULL;
  int32_t st = braid__resolve(ctx, stream, fn, &c);
  if (st) return st;
  st = get_graph(c, graph, fn, &g);
  if (st) return st;
  if (g->is_template)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT,
                       "%s: graph 0x%llx is a template; braid_graph_compose makes it launchable",
                       fn, (unsigned long long)graph);
  pthread_mutex_lock(&c->lock);
  if (c->capturing) {
    /* Launching inside a capture records the graph's work (deep copies) into the capture. */
    for (size_t i = 0; i < g->count && st == BRAID_OK; i++)
      st = oplist_push(&c->capture, &g->ops[i]);
    pthread_mutex_unlock(&c->lock);
    return st;
  }
  pthread_mutex_unlock(&c->lock);
  for (size_t i = 0; i < g->count; i++) {
    st = g->ops[i].run(&g->ops[i]);
    if (st) return st;
  }
  return BRAID_OK;
}

int32_t braid_graph_destroy(uint64_t ctx, uint64_t graph) {
  static const char fn[] = "braid_graph_destroy";
  braid_context* c = NULL;
  braid_graph* g = NULL;
  int32_t st = get_context(ctx, fn, &c);
  if (st) return st;
  st = get_graph(c, graph, fn, &g);
  if (st) return st;
  /* Unregistered first: a compose on another thread can no longer find it to read its ops. */
  remove_child(c, graph, &c->graphs);
  braid_oplist l = {g->ops, g->count, g->count};
  oplist_clear(&l);
  g->magic = 0;
  free(g);
  return BRAID_OK;
}

/* ---------------------------------------------------------------- shared helpers */

int32_t braid__check_activation(const char* fn, int32_t act, float lo, float hi) {
  if (act < BRAID_ACT_NONE || act > BRAID_ACT_GELU)
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: activation %d is not a braid_activation",
                       fn, act);
  if (act == BRAID_ACT_CLAMP && (isnan(lo) || isnan(hi)))
    return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: clamp bounds [%g, %g] include NaN", fn,
                       (double)lo, (double)hi);
  return BRAID_OK;
}

void braid__activate(float* y, size_t n, int32_t act, float lo, float hi) {
  switch (act) {
    case BRAID_ACT_RELU:
      for (size_t i = 0; i < n; i++) y[i] = y[i] < 0.0f ? 0.0f : y[i];
      break;
    case BRAID_ACT_CLAMP:
      for (size_t i = 0; i < n; i++) {
        float v = y[i] < lo ? lo : y[i];
        y[i] = v > hi ? hi : v;
      }
      break;
    case BRAID_ACT_SIGMOID:
      for (size_t i = 0; i < n; i++) y[i] = braid__sigmoid(y[i]);
      break;
    case BRAID_ACT_TANH:
      for (size_t i = 0; i < n; i++) y[i] = tanhf(y[i]);
      break;
    case BRAID_ACT_GELU:
      for (size_t i = 0; i < n; i++)
        y[i] = 0.5f * y[i] * (1.0f + erff(y[i] * 0.70710678118654752f));
      break;
    default:
      break;
  }
}

void* braid__scratch(size_t bytes) {
  void* p = NULL;
  if (bytes == 0) bytes = 64;
  if (posix_memalign(&p, 64, (bytes + 63) & ~(size_t)63) != 0) return NULL;
  return p;
}
