// The native tests' checks (tests/native/*.cc): check() counts one and ends the test at the first
// that fails, naming it; passed() prints "NAME: N checks passed", which tests/native/run_native.ts
// reads. Counted atomically: a test may check from several threads.
#ifndef BRAID_TESTS_NATIVE_CHECKS_H
#define BRAID_TESTS_NATIVE_CHECKS_H

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace native_checks {

inline std::atomic<int> checks{0};

inline void check(bool ok, const std::string& what) {
  checks++;
  if (ok) return;
  std::printf("FAILED: %s\n", what.c_str());
  std::exit(1);
}

inline int passed(const char* test) {
  std::printf("%s: %d checks passed\n", test, checks.load());
  return 0;
}

}  // namespace native_checks

#endif
