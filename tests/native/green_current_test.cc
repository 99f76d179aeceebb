// The bookkeeping of BRAID_PARTITION_BINDING=current (csrc/cuda/green_current.h) against a fake
// driver: each thread's current context is a thread-local here, as in the driver. Built and run by
// tests/green_current_test.ts; prints "N checks passed", or the first failing check, exit 1.
#include <thread>

#include "checks.h"
#include "green_current.h"

namespace {

using braid_cuda::CurrentClaim;
using Current = braid_cuda::ThreadCurrent<void*, int>;
using native_checks::check;

thread_local void* driver_current = nullptr;  // the fake driver's current context
thread_local int sets = 0;                    // cuCtxSetCurrent calls on this thread
thread_local bool refuse = false;             // the next cuCtxSetCurrent fails

int get_current(void** out) {
  *out = driver_current;
  return 0;
}

int set_current(void* ctx) {
  if (refuse) return 201;  // CUDA_ERROR_INVALID_CONTEXT
  driver_current = ctx;
  sets++;
  return 0;
}

const braid_cuda::CurrentCalls<void*, int> calls{get_current, set_current, 0};
void* const primary = reinterpret_cast<void*>(0x100);
void* const other = reinterpret_cast<void*>(0x200);
void* const green_a = reinterpret_cast<void*>(0xa00);
void* const green_b = reinterpret_cast<void*>(0xb00);

void bound_and_unbound_calls() {
  driver_current = primary;  // cudaSetDevice made the primary context current
  check(!Current::active(), "nothing made current yet");
  check(Current::enter(green_a, calls) == 0 && driver_current == green_a, "a bound call: green");
  check(Current::active(), "active once a green context is current");
  const int before = sets;
  check(Current::enter(green_a, calls) == 0 && sets == before, "already current: no driver call");
  check(Current::leave() && driver_current == primary, "an unbound call: the primary again");
  check(!Current::active(), "inactive after leave");
  check(Current::leave() && driver_current == primary, "leave again: nothing to do");
}

void two_partitions_on_one_thread() {
  driver_current = primary;
  Current::enter(green_a, calls);
  Current::enter(green_b, calls);
  check(driver_current == green_b, "the second partition's context");
  Current::enter(green_a, calls);
  check(Current::leave() && driver_current == primary,
        "an unbound call after two green contexts: the primary, not the first green one");
}

void something_else_made_current() {
  driver_current = primary;
  Current::enter(green_a, calls);
  driver_current = primary;  // cudaSetDevice inside another braid call
  check(Current::enter(green_a, calls) == 0 && driver_current == green_a, "green again");
  check(Current::leave() && driver_current == primary, "and the primary after it");
  Current::enter(green_a, calls);
  driver_current = other;  // made current by someone else
  check(Current::leave() && driver_current == other, "leave keeps what someone else made current");
  check(!Current::active(), "and forgets the green context");
}

void bound_context_destroyed() {
  driver_current = primary;
  Current::enter(green_a, calls);
  Current::drop(green_a, calls);
  check(driver_current == primary && !Current::active(), "destroyed on its thread: the primary");
  Current::enter(green_a, calls);
  driver_current = other;
  Current::drop(green_a, calls);
  check(driver_current == other && !Current::active(), "destroyed while another is current");
  driver_current = primary;
  Current::enter(green_a, calls);
  Current::enter(green_b, calls);
  Current::drop(green_a, calls);
  check(driver_current == green_b && Current::active(), "another partition's context stays");
  Current::leave();
}

void driver_refuses() {
  driver_current = primary;
  refuse = true;
  check(Current::enter(green_a, calls) == 201, "the driver's error comes back");
  check(!Current::active() && driver_current == primary, "and nothing is recorded");
  refuse = false;
  Current::enter(green_a, calls);
  refuse = true;
  check(!Current::leave(), "a refused restore is reported");
  refuse = false;
  driver_current = primary;
}

void threads_apart() {
  driver_current = primary;
  Current::enter(green_a, calls);
  bool other_active = true;
  void* other_current = other;
  std::thread([&] {
    other_active = Current::active();
    other_current = driver_current;
  }).join();
  check(!other_active && other_current == nullptr, "another thread's state is its own");
  Current::leave();
}

void claims() {
  CurrentClaim claim;
  check(claim.take() && claim.take(), "one thread, two contexts");
  bool taken = true;
  std::thread([&] { taken = claim.take(); }).join();
  check(!taken, "refused to another thread while held");
  claim.drop();
  std::thread([&] { taken = claim.take(); }).join();
  check(!taken, "still held by one context");
  claim.drop();
  std::thread([&] {
    taken = claim.take();
    claim.drop();
  }).join();
  check(taken, "free once every context let go");
}

}  // namespace

int main() {
  bound_and_unbound_calls();
  two_partitions_on_one_thread();
  something_else_made_current();
  bound_context_destroyed();
  driver_refuses();
  threads_apart();
  claims();
  return native_checks::passed("green_current_test");
}
