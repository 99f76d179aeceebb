// How partitions find the driver's green-context functions (csrc/cuda/driver_entry_points.h),
// against fake drivers: a new one, one too old for them, one that lacks a function, one whose
// lookup fails, and the lookups disabled. Built and run by tests/driver_entry_points_test.ts;
// prints "N checks passed", or the first failing check, exit 1.
#include <cstring>
#include <string>

#include "checks.h"
#include "driver_entry_points.h"

namespace {

using braid_cuda::DriverEntry;
using braid_cuda::EntryLookup;
using braid_cuda::MissingEntry;
using native_checks::check;

bool contains(const std::string& text, const char* part) {
  return text.find(part) != std::string::npos;
}

// A fake driver: the version its green-context functions appeared at (12.4 unless set), a function
// it lacks, and whether its lookups fail outright. Every lookup is counted.
struct FakeDriver {
  int green_at = 12040;
  const char* lacks = nullptr;
  bool broken = false;
  int lookups = 0;
  unsigned last_version = 0;

  EntryLookup operator()(const char* name, unsigned version, void** address, const char** error) {
    lookups++;
    last_version = version;
    if (broken) {
      *error = "initialization error";
      return EntryLookup::failed;
    }
    if (lacks != nullptr && std::strcmp(name, lacks) == 0) return EntryLookup::not_found;
    const bool green = std::strncmp(name, "cuGreenCtx", 10) == 0 ||
                       std::strncmp(name, "cuDevSm", 7) == 0 ||
                       std::strncmp(name, "cuDevResource", 13) == 0 ||
                       std::strcmp(name, "cuDeviceGetDevResource") == 0 ||
                       std::strcmp(name, "cuCtxFromGreenCtx") == 0;
    if (green && version < (unsigned)green_at) return EntryLookup::version_too_low;
    *address = reinterpret_cast<void*>(0x1000 + std::strlen(name));
    return EntryLookup::found;
  }
};

// The table partition.cu looks up, with slots of its own.
struct Table {
  void* slots[7] = {};
  DriverEntry entries[7] = {
      {"cuDeviceGet", &slots[0], true},
      {"cuDeviceGetDevResource", &slots[1], true},
      {"cuGreenCtxCreate", &slots[2], true},
      {"cuGreenCtxStreamCreate", &slots[3], true},
      {"cuGetErrorName", &slots[4], false},
      {"cuCtxFromGreenCtx", &slots[5], false},
      {"cuCtxSetCurrent", &slots[6], false},
  };
  static constexpr size_t count = 7;
};

std::string message_for(const MissingEntry& missing, int driver, unsigned version, bool disabled) {
  char out[512];
  braid_cuda::missing_entry_message(out, sizeof out, "braid_partition_create", driver, version,
                                    missing, disabled);
  return out;
}

void version_of_the_lookups() {
  check(braid_cuda::lookup_version(12020, 13000) == 12020, "an older driver: its own version");
  check(braid_cuda::lookup_version(13010, 13000) == 13000, "a newer driver: the headers'");
  check(braid_cuda::lookup_version(13000, 13000) == 13000, "the same version");
}

void a_driver_with_green_contexts() {
  Table t;
  FakeDriver driver;
  const MissingEntry missing = braid_cuda::resolve_entries(t.entries, Table::count, 13000, false,
                                                           driver);
  check(missing.name == nullptr, "nothing missing on a 13.0 driver");
  check(driver.lookups == (int)Table::count, "every function looked up");
  check(driver.last_version == 13000, "looked up at the version asked for");
  for (size_t i = 0; i < Table::count; i++) {
    check(t.slots[i] != nullptr, std::string("an address for ") + t.entries[i].name);
  }
}

void a_driver_too_old() {
  Table t;
  FakeDriver driver;  // green contexts from 12.4; looked up at 12.2's version
  const unsigned version = braid_cuda::lookup_version(12020, 13000);
  const MissingEntry missing = braid_cuda::resolve_entries(t.entries, Table::count, version,
                                                           false, driver);
  check(missing.name != nullptr && std::strcmp(missing.name, "cuDeviceGetDevResource") == 0,
        "the first green-context function is the one named");
  check(std::strcmp(missing.why, "present, but not at this version") == 0, "why: the version");
  check(t.slots[0] != nullptr, "cuDeviceGet, older than green contexts, was found");
  check(t.slots[1] == nullptr, "the missing function's slot is empty");
  check(driver.lookups == 2, "the walk stops at the first required function missing");
  const std::string text = message_for(missing, 12020, version, false);
  check(contains(text, "braid_partition_create: SM partitions need CUDA green contexts"), text);
  check(contains(text, "driver API 12.4 or newer"), text);
  check(contains(text, "CUDA driver (version 12.2) has no cuDeviceGetDevResource"), text);
  check(contains(text, "at 12020: present, but not at this version)"), text);
  check(!contains(text, "BRAID_NO_GREEN_CONTEXTS"), text);
}

void a_driver_lacking_one_function() {
  Table t;
  FakeDriver driver;
  driver.lacks = "cuGreenCtxStreamCreate";
  const MissingEntry missing = braid_cuda::resolve_entries(t.entries, Table::count, 13000, false,
                                                           driver);
  check(missing.name != nullptr && std::strcmp(missing.name, "cuGreenCtxStreamCreate") == 0,
        "the function the driver lacks is named");
  check(std::strcmp(missing.why, "not found") == 0, "why: not found");
  check(t.slots[2] != nullptr && t.slots[3] == nullptr, "found before it, empty for it");
  check(contains(message_for(missing, 13000, 13000, false), "has no cuGreenCtxStreamCreate"),
        "the message names it");
}

void optional_functions_may_be_missing() {
  Table t;
  FakeDriver driver;
  driver.lacks = "cuGetErrorName";
  MissingEntry missing = braid_cuda::resolve_entries(t.entries, Table::count, 13000, false,
                                                     driver);
  check(missing.name == nullptr, "an optional function missing is no error");
  check(t.slots[4] == nullptr && t.slots[5] != nullptr, "its slot empty, the next one filled");
  Table u;
  FakeDriver old;  // green contexts too new for the version asked: optional ones empty too
  old.green_at = 13010;
  missing = braid_cuda::resolve_entries(u.entries, Table::count, 13000, false, old);
  check(missing.name != nullptr && std::strcmp(missing.name, "cuDeviceGetDevResource") == 0,
        "a required one still fails first");
}

void a_failed_lookup() {
  Table t;
  FakeDriver driver;
  driver.broken = true;
  const MissingEntry missing = braid_cuda::resolve_entries(t.entries, Table::count, 13000, false,
                                                           driver);
  check(missing.name != nullptr && std::strcmp(missing.name, "cuDeviceGet") == 0,
        "the first function is named");
  check(std::strcmp(missing.why, "initialization error") == 0, "why: the runtime's error");
  check(contains(message_for(missing, 13000, 13000, false), "(cudaGetDriverEntryPointByVersion "
                                                            "at 13000: initialization error)"),
        "the message carries the runtime's error");
}

void lookups_disabled() {
  Table t;
  FakeDriver driver;
  const MissingEntry missing = braid_cuda::resolve_entries(t.entries, Table::count, 13000, true,
                                                           driver);
  check(missing.name != nullptr && std::strcmp(missing.name, "cuDeviceGet") == 0,
        "disabled: the first required function is missing");
  check(driver.lookups == 0, "disabled: the driver is not asked");
  check(std::strcmp(missing.why, "not found") == 0, "disabled: as a driver without it answers");
  check(contains(message_for(missing, 13000, 13000, true),
                 "; the lookup is disabled by BRAID_NO_GREEN_CONTEXTS"),
        "disabled: the message says so");
}

}  // namespace

int main() {
  version_of_the_lookups();
  a_driver_with_green_contexts();
  a_driver_too_old();
  a_driver_lacking_one_function();
  optional_functions_may_be_missing();
  a_failed_lookup();
  lookups_disabled();
  return native_checks::passed("driver_entry_points_test");
}
