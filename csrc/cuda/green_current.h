/*
 * green_current.h — which context is current on a thread, for BRAID_PARTITION_BINDING=current
 * (partition.cu): the bookkeeping alone, over the driver's cuCtxGetCurrent and cuCtxSetCurrent
 * passed in, so that it builds and is tested without CUDA (tests/native/green_current_test.cc).
 *
 * A context bound to a partition this way makes the partition's green context current on the
 * thread that bound it, for each call made there. Another context's call on that thread makes the
 * context that was current before braid's green one current again (the primary, normally), so a
 * bound and an unbound context can share a thread. The driver allows a green context current on
 * one thread at a time: a partition's claim (CurrentClaim) admits the contexts of one thread.
 */
#ifndef BRAID_CUDA_GREEN_CURRENT_H
#define BRAID_CUDA_GREEN_CURRENT_H

#include <mutex>
#include <thread>

namespace braid_cuda {

/* The driver's two calls (cuCtxGetCurrent, cuCtxSetCurrent) and its success value. */
template <class Ctx, class Result>
struct CurrentCalls {
  Result (*get)(Ctx*);
  Result (*set)(Ctx);
  Result ok;
};

/* What braid made current on the calling thread. Like the error message, per thread. */
template <class Ctx, class Result>
class ThreadCurrent {
 public:
  using Calls = CurrentCalls<Ctx, Result>;

  /* A bound context's call on its thread: `green` current, unless it already is. */
  static Result enter(Ctx green, const Calls& calls) {
    Ctx now{};
    if (calls.get(&now) != calls.ok || now != green) {
      /* Not a green context braid made current: what the thread goes back to. */
      if (green_ == Ctx{} || now != green_) base_ = now;
      const Result r = calls.set(green);
      if (r != calls.ok) return r;
    }
    green_ = green;
    calls_ = calls;
    return calls.ok;
  }

  /* Whether braid made a green context current on this thread (a call's cheap test). */
  static bool active() { return green_ != Ctx{}; }

  /* Another context's call on a thread where braid made a green context current: the context
   * current before it, current again (unless something else has been made current since). False
   * when the driver refuses. */
  static bool leave() {
    if (green_ == Ctx{}) return true;
    const Calls calls = calls_;
    Ctx now{};
    const bool ours = calls.get(&now) == calls.ok && now == green_;
    green_ = Ctx{};
    return !ours || calls.set(base_) == calls.ok;
  }

  /* A bound context going away on its thread: the context before braid's current again if its
   * green context is current. */
  static void drop(Ctx green, const Calls& calls) {
    Ctx now{};
    if (calls.get(&now) == calls.ok && now == green) (void)calls.set(base_);
    if (green_ == green) green_ = Ctx{};
  }

 private:
  static inline thread_local Ctx green_{};
  static inline thread_local Ctx base_{};
  static inline thread_local Calls calls_{};
};

/* The contexts that made one partition's green context current, all of one thread. */
class CurrentClaim {
 public:
  /* False when another thread holds it. */
  bool take() {
    const std::thread::id self = std::this_thread::get_id();
    std::lock_guard<std::mutex> g(lock_);
    if (users_ > 0 && thread_ != self) return false;
    users_++;
    thread_ = self;
    return true;
  }

  void drop() {
    std::lock_guard<std::mutex> g(lock_);
    if (users_ > 0) users_--;
  }

 private:
  std::mutex lock_;
  int users_ = 0;
  std::thread::id thread_;
};

}  // namespace braid_cuda

#endif
