/*
 * contention_probe — the host cost of the driver calls a stage timer makes, when one thread or
 * several make them at once, each on its own green context (SM partition).
 *
 * A pooled `braid tune` runs one worker thread per 32-SM partition. At four threads each stage's
 * driver calls took 3-4x their time alone (T0447: graphLaunch 186 against 60 µs a stage,
 * eventRecord 62 against 14): the threads wait on locks inside the driver. braid creates its
 * partitions' streams with cuGreenCtxStreamCreate but keeps the device's primary context current
 * on every thread. This probe asks whether making each thread's green context current instead
 * (cuCtxFromGreenCtx, cuCtxSetCurrent: the driver then treats it as that thread's context) takes
 * the threads off each other's locks, before braid's contexts are changed to do it. It also times
 * a cudaMalloc and cudaFree beside the other threads' work (--alloc), which the CUDA guide says
 * synchronize the whole device.
 *
 * Each thread repeats a stage timer's pattern: capture a small graph on its stream (three short
 * kernels), instantiate and upload it, replay it twice untimed and three rounds of `replays`
 * between four events, wait for the last event, read three elapsed times, destroy it.
 *
 *   contention_probe [--threads 1,4] [--iters 2000] [--sms 32] [--replays 5]
 *                    [--modes primary,green,device] [--alloc]
 *
 * Modes: primary (green-context streams, the primary context current: braid today), green (each
 * thread's green context current), device (plain streams on the whole device, no partitions: the
 * same calls without green contexts at all).
 *
 * stdout: one JSON object (runs: mode, threads, µs a stage per call kind, stages a second);
 * stderr: a table.
 */
#include <cuda.h>
#include <cuda_runtime.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

/* The driver functions used, resolved through the runtime (cudaGetDriverEntryPointByVersion), as
 * libbraid_cuda does: no link to libcuda, which machines without a GPU lack. */
struct Driver {
  decltype(&::cuGetErrorName) error_name;
  decltype(&::cuDeviceGet) device_get;
  decltype(&::cuDeviceGetDevResource) get_resource;
  decltype(&::cuDevSmResourceSplitByCount) split;
  decltype(&::cuDevResourceGenerateDesc) generate_desc;
  decltype(&::cuGreenCtxCreate) green_create;
  decltype(&::cuGreenCtxDestroy) green_destroy;
  decltype(&::cuGreenCtxStreamCreate) green_stream_create;
  decltype(&::cuCtxFromGreenCtx) from_green;
  decltype(&::cuCtxSetCurrent) set_current;
} drv;

/* Empty on success, else the first function the driver lacks. */
std::string resolve_driver() {
  struct Entry {
    const char* name;
    void** slot;
  } entries[] = {
      {"cuGetErrorName", reinterpret_cast<void**>(&drv.error_name)},
      {"cuDeviceGet", reinterpret_cast<void**>(&drv.device_get)},
      {"cuDeviceGetDevResource", reinterpret_cast<void**>(&drv.get_resource)},
      {"cuDevSmResourceSplitByCount", reinterpret_cast<void**>(&drv.split)},
      {"cuDevResourceGenerateDesc", reinterpret_cast<void**>(&drv.generate_desc)},
      {"cuGreenCtxCreate", reinterpret_cast<void**>(&drv.green_create)},
      {"cuGreenCtxDestroy", reinterpret_cast<void**>(&drv.green_destroy)},
      {"cuGreenCtxStreamCreate", reinterpret_cast<void**>(&drv.green_stream_create)},
      {"cuCtxFromGreenCtx", reinterpret_cast<void**>(&drv.from_green)},
      {"cuCtxSetCurrent", reinterpret_cast<void**>(&drv.set_current)},
  };
  int driver = 0;
  cudaDriverGetVersion(&driver);
  const unsigned version = driver < CUDA_VERSION ? (unsigned)driver : (unsigned)CUDA_VERSION;
  for (const Entry& e : entries) {
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    if (cudaGetDriverEntryPointByVersion(e.name, e.slot, version, cudaEnableDefault, &found) !=
            cudaSuccess ||
        found != cudaDriverEntryPointSuccess || *e.slot == nullptr)
      return e.name;
  }
  return "";
}

/* Spins for about `cycles` clock cycles: a kernel that takes a couple of microseconds. */
__global__ void spin(long long cycles) {
  const long long t0 = clock64();
  while (clock64() - t0 < cycles) {
  }
}

/* The kinds of call timed, in the order reported. */
enum Kind { CAPTURE, INSTANTIATE, LAUNCH, RECORD, SYNC, ELAPSED, DESTROY, ALLOC, FREE, KINDS };
const char* const KIND_NAMES[KINDS] = {"capture", "instantiate", "launch", "record", "sync",
                                       "elapsed", "destroy",     "alloc",  "free"};

struct Options {
  std::vector<int> threads{1, 4};
  int iters = 2000;
  int sms = 32;
  int replays = 5;
  std::vector<std::string> modes{"primary", "green", "device"};
  bool alloc = false;
};

struct Run {
  std::string mode;
  int threads = 0;
  double wall_ms = 0;
  double us[KINDS] = {}; /* per stage, averaged over threads */
  std::string error;
};

std::string describe(const char* call, CUresult r) {
  const char* name = nullptr;
  if (drv.error_name(r, &name) != CUDA_SUCCESS) name = "unknown";
  return std::string(call) + ": " + name;
}

std::string describe(const char* call, cudaError_t e) {
  return std::string(call) + ": " + cudaGetErrorString(e);
}

/* In work(): a failed call ends the thread's share, saying what failed. */
#define CK_DRV(call)                                    \
  do {                                                  \
    CUresult r_ = (call);                               \
    if (r_ != CUDA_SUCCESS) return describe(#call, r_); \
  } while (0)
#define CK_RT(call)                                     \
  do {                                                  \
    cudaError_t e_ = (call);                            \
    if (e_ != cudaSuccess) return describe(#call, e_);  \
  } while (0)

/* One thread's share of a run: its stream and events in `green`, `iters` stages; adds each
 * kind's host time (µs) to `us`. Empty on success, else what failed. */
std::string work(const Options& o, const std::string& mode, CUgreenCtx green,
                 std::atomic<int>* ready, int threads, double* us) {
  /* Counted as arrived however its set-up ends: a thread whose set-up fails must not leave the
   * others waiting for it. */
  struct Arrival {
    std::atomic<int>* ready;
    bool counted = false;
    void now() {
      if (!counted) ready->fetch_add(1);
      counted = true;
    }
    ~Arrival() { now(); }
  } arrival{ready};
  if (mode == "green") {
    CUcontext ctx = nullptr;
    CK_DRV(drv.from_green(&ctx, green));
    CK_DRV(drv.set_current(ctx));
  } else {
    CK_RT(cudaSetDevice(0));
  }
  cudaStream_t s = nullptr;
  if (green) {
    CUstream raw = nullptr;
    CK_DRV(drv.green_stream_create(&raw, green, CU_STREAM_NON_BLOCKING, 0));
    s = reinterpret_cast<cudaStream_t>(raw);
  } else {
    CK_RT(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  }
  const int rounds = 3, warmups = 2;
  cudaEvent_t events[rounds + 1];
  for (cudaEvent_t& e : events) CK_RT(cudaEventCreate(&e));
  const long long cycles = 4000; /* ~2 µs at ~2 GHz */
  arrival.now();
  while (ready->load() < threads) std::this_thread::yield();

  auto t = Clock::now();
  const auto lap = [&](Kind k) {
    const auto now = Clock::now();
    us[k] += std::chrono::duration<double, std::micro>(now - t).count();
    t = now;
  };
  for (int i = 0; i < o.iters; i++) {
    t = Clock::now();
    CK_RT(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    for (int k = 0; k < 3; k++) spin<<<o.sms, 128, 0, s>>>(cycles);
    cudaGraph_t graph = nullptr;
    CK_RT(cudaStreamEndCapture(s, &graph));
    lap(CAPTURE);
    cudaGraphExec_t exec = nullptr;
    CK_RT(cudaGraphInstantiate(&exec, graph, 0));
    CK_RT(cudaGraphDestroy(graph));
    CK_RT(cudaGraphUpload(exec, s));
    lap(INSTANTIATE);
    for (int w = 0; w < warmups; w++) CK_RT(cudaGraphLaunch(exec, s));
    lap(LAUNCH);
    for (int r = 0; r < rounds; r++) {
      CK_RT(cudaEventRecord(events[r], s));
      lap(RECORD);
      for (int k = 0; k < o.replays; k++) CK_RT(cudaGraphLaunch(exec, s));
      lap(LAUNCH);
    }
    CK_RT(cudaEventRecord(events[rounds], s));
    lap(RECORD);
    CK_RT(cudaEventSynchronize(events[rounds]));
    lap(SYNC);
    float ms = 0;
    for (int r = 0; r < rounds; r++) CK_RT(cudaEventElapsedTime(&ms, events[r], events[r + 1]));
    lap(ELAPSED);
    CK_RT(cudaGraphExecDestroy(exec));
    lap(DESTROY);
    if (o.alloc) {
      void* p = nullptr;
      CK_RT(cudaMalloc(&p, 1 << 20));
      lap(ALLOC);
      CK_RT(cudaFree(p));
      lap(FREE);
    }
  }
  for (cudaEvent_t e : events) cudaEventDestroy(e);
  cudaStreamDestroy(s);
  return "";
}

/* One green context of `sms` SMs for each entry of *greens (groups 0, 1, …); empty on success. */
std::string make_greens(const Options& o, std::vector<CUgreenCtx>* greens) {
  CUdevice dev = 0;
  CK_DRV(drv.device_get(&dev, 0));
  CUdevResource whole;
  memset(&whole, 0, sizeof whole);
  CK_DRV(drv.get_resource(dev, &whole, CU_DEV_RESOURCE_TYPE_SM));
  unsigned n = 0;
  CK_DRV(drv.split(nullptr, &n, &whole, nullptr, 0, o.sms));
  if (n < greens->size()) return "fewer partitions than threads";
  std::vector<CUdevResource> groups(n);
  CK_DRV(drv.split(groups.data(), &n, &whole, nullptr, 0, o.sms));
  for (size_t i = 0; i < greens->size(); i++) {
    CUdevResourceDesc desc = nullptr;
    CUresult r = drv.generate_desc(&desc, &groups[i], 1);
    if (r == CUDA_SUCCESS)
      r = drv.green_create(&(*greens)[i], desc, dev, CU_GREEN_CTX_DEFAULT_STREAM);
    if (r != CUDA_SUCCESS) {
      for (CUgreenCtx& g : *greens)
        if (g) drv.green_destroy(g), g = nullptr;
      return describe("cuGreenCtxCreate", r);
    }
  }
  return "";
}

/* `threads` threads at once, each on its own `sms`-SM green context (groups 0, 1, …), or for mode
 * "device" each on a plain stream of the whole device. */
Run run(const Options& o, const std::string& mode, int threads) {
  Run result;
  result.mode = mode;
  result.threads = threads;
  const auto fail = [&](const std::string& why) {
    result.error = why;
    return result;
  };
  std::vector<CUgreenCtx> greens(threads, nullptr);
  if (mode != "device") {
    std::string why = make_greens(o, &greens);
    if (!why.empty()) return fail(why);
  }
  std::vector<std::vector<double>> us(threads, std::vector<double>(KINDS, 0.0));
  std::vector<std::string> errors(threads);
  std::atomic<int> ready{0};
  const auto began = Clock::now();
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; i++)
    pool.emplace_back(
        [&, i] { errors[i] = work(o, mode, greens[i], &ready, threads, us[i].data()); });
  for (std::thread& t : pool) t.join();
  result.wall_ms = std::chrono::duration<double, std::milli>(Clock::now() - began).count();
  for (int i = 0; i < threads; i++) {
    if (!errors[i].empty() && result.error.empty()) result.error = errors[i];
    for (int k = 0; k < KINDS; k++) result.us[k] += us[i][k] / (double)o.iters / threads;
  }
  cudaSetDevice(0); /* the primary context current again on this thread */
  cudaDeviceSynchronize();
  for (CUgreenCtx g : greens)
    if (g) drv.green_destroy(g);
  return result;
}

std::vector<std::string> split_list(const char* text) {
  std::vector<std::string> out;
  std::string item;
  for (const char* p = text;; p++) {
    if (*p == ',' || *p == 0) {
      if (!item.empty()) out.push_back(item);
      item.clear();
      if (*p == 0) break;
    } else {
      item += *p;
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (a == "--alloc") {
      o.alloc = true;
    } else if (v && a == "--threads") {
      o.threads.clear();
      for (const std::string& t : split_list(argv[++i])) o.threads.push_back(std::atoi(t.c_str()));
    } else if (v && a == "--iters") {
      o.iters = std::atoi(argv[++i]);
    } else if (v && a == "--sms") {
      o.sms = std::atoi(argv[++i]);
    } else if (v && a == "--replays") {
      o.replays = std::atoi(argv[++i]);
    } else if (v && a == "--modes") {
      o.modes = split_list(argv[++i]);
    } else {
      fprintf(stderr,
              "usage: contention_probe [--threads 1,4] [--iters N] [--sms N] [--replays N] "
              "[--modes primary,green,device] [--alloc]\n");
      return 2;
    }
  }
  for (const std::string& mode : o.modes) {
    if (mode != "primary" && mode != "green" && mode != "device") {
      fprintf(stderr, "contention_probe: mode %s is not primary, green or device\n", mode.c_str());
      return 2;
    }
  }
  if (cudaSetDevice(0) != cudaSuccess || cudaFree(nullptr) != cudaSuccess) {
    fprintf(stderr, "contention_probe: no CUDA device\n");
    return 1;
  }
  const std::string missing = resolve_driver();
  if (!missing.empty()) {
    fprintf(stderr, "contention_probe: the CUDA driver has no %s\n", missing.c_str());
    return 1;
  }
  int driver = 0;
  cudaDriverGetVersion(&driver);
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  const char* connections = std::getenv("CUDA_DEVICE_MAX_CONNECTIONS");
  printf("{\"device\": \"%s\", \"driver\": %d, \"connections\": \"%s\", \"iters\": %d, "
         "\"sms\": %d, \"replays\": %d, \"runs\": [",
         prop.name, driver, connections ? connections : "", o.iters, o.sms, o.replays);
  fprintf(stderr, "%-8s %7s %9s", "mode", "threads", "stages/s");
  for (int k = 0; k < KINDS; k++) fprintf(stderr, " %11s", KIND_NAMES[k]);
  fprintf(stderr, "   (µs a stage, each thread)\n");
  bool first = true;
  for (const std::string& mode : o.modes) {
    for (int threads : o.threads) {
      const Run r = run(o, mode, threads);
      const double rate = r.wall_ms > 0 ? 1000.0 * o.iters * threads / r.wall_ms : 0;
      printf("%s\n {\"mode\": \"%s\", \"threads\": %d, \"wallMs\": %.1f, \"stagesPerSecond\": %.0f",
             first ? "" : ",", mode.c_str(), threads, r.wall_ms, rate);
      for (int k = 0; k < KINDS; k++) printf(", \"%sUs\": %.2f", KIND_NAMES[k], r.us[k]);
      printf(", \"error\": \"%s\"}", r.error.c_str());
      first = false;
      fprintf(stderr, "%-8s %7d %9.0f", mode.c_str(), threads, rate);
      for (int k = 0; k < KINDS; k++) fprintf(stderr, " %11.1f", r.us[k]);
      fprintf(stderr, "%s%s\n", r.error.empty() ? "" : "   error: ", r.error.c_str());
      fflush(stdout);
    }
  }
  printf("\n]}\n");
  return 0;
}
