/*
 * partition.c — the CPU backend's side of SM partitions and stream waits.
 *
 * The CPU has no SMs to partition: every partition call is BRAID_ERR_UNSUPPORTED with a message
 * saying what would provide it, except binding a context to "no partition" (0), which is what a
 * CPU context already is. Work runs when it is issued, so waiting on a stream returns at once,
 * and a stream's budget is the threads the operators use.
 */
#include "internal.h"

#include <omp.h>

static int32_t no_partitions(const char* fn) {
  return braid__fail(BRAID_ERR_UNSUPPORTED,
                     "%s: the CPU backend has no SM partitions; they need the CUDA backend on a "
                     "GPU whose driver has green contexts (CUDA 12.4 or newer)",
                     fn);
}

int32_t braid_partition_query(int32_t device, int32_t sms, int32_t flags, int32_t* out) {
  return no_partitions("braid_partition_query");
}

int32_t braid_partition_create(int32_t device, int32_t sms, int32_t group, int32_t flags,
                               uint64_t* out_partition, int32_t* out_sms) {
  return no_partitions("braid_partition_create");
}

int32_t braid_partition_destroy(uint64_t partition) {
  return no_partitions("braid_partition_destroy");
}

int32_t braid_partition_info(uint64_t partition, int32_t* out) {
  return no_partitions("braid_partition_info");
}

int32_t braid_partition_stream_create(uint64_t ctx, uint64_t partition, int32_t priority,
                                      uint64_t* out_stream) {
  static const char fn[] = "braid_partition_stream_create";
  braid_context* c = NULL;
  int32_t st = braid__resolve(ctx, 0, fn, &c);
  if (st) return st;
  return no_partitions(fn);
}

int32_t braid_context_set_partition(uint64_t ctx, uint64_t partition) {
  static const char fn[] = "braid_context_set_partition";
  braid_context* c = NULL;
  int32_t st = braid__resolve(ctx, 0, fn, &c);
  if (st) return st;
  return partition == 0 ? BRAID_OK : no_partitions(fn);
}

int32_t braid_sm_probe(uint64_t ctx, uint64_t stream, int32_t blocks, uint8_t* out, int32_t len,
                       int32_t* out_count) {
  static const char fn[] = "braid_sm_probe";
  braid_context* c = NULL;
  int32_t st = braid__resolve(ctx, stream, fn, &c);
  if (st) return st;
  return no_partitions(fn);
}

/* Work already ran when it was issued: waiting is synchronising (no device to wait on). */
int32_t braid_stream_wait(uint64_t ctx, uint64_t stream) {
  return braid_stream_synchronize(ctx, stream);
}

int32_t braid_stream_sms(uint64_t ctx, uint64_t stream, int32_t* out) {
  static const char fn[] = "braid_stream_sms";
  braid_context* c = NULL;
  int32_t st = braid__resolve(ctx, stream, fn, &c);
  if (st) return st;
  if (out == NULL) return braid__fail(BRAID_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
  *out = omp_get_max_threads();
  return BRAID_OK;
}
