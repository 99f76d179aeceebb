/*
 * driver_entry_points.h — driver functions resolved at run time (partition.cu's green contexts):
 * the walk over the functions wanted and the error message naming the first required one the
 * driver lacks, over a lookup passed in, so that it builds and is tested without CUDA
 * (tests/native/driver_entry_points_test.cc: a driver too old, a symbol missing, a failed lookup,
 * the lookups disabled).
 */
#ifndef BRAID_CUDA_DRIVER_ENTRY_POINTS_H
#define BRAID_CUDA_DRIVER_ENTRY_POINTS_H

#include <cstddef>
#include <cstdio>

namespace braid_cuda {

/* A driver function wanted: its name, where its address goes, and whether partitions need it
 * (an optional one only serves messages or an option, and may be missing). */
struct DriverEntry {
  const char* name;
  void** slot;
  bool required;
};

/* What a lookup of one name found. */
enum class EntryLookup { found, not_found, version_too_low, failed };

/* The version functions are looked up at: the headers' (what the code was written against), or
 * the driver's if it is older. */
inline unsigned lookup_version(int driver, int headers) {
  return (unsigned)(driver < headers ? driver : headers);
}

/* The first required function the driver lacks, and why. */
struct MissingEntry {
  const char* name = nullptr;
  const char* why = nullptr;
};

/* Looks each entry up (`lookup(name, version, &address, &error_text)` returns an EntryLookup)
 * and sets its slot, nullptr where not found, until a required one is missing: that one is
 * returned (name nullptr when none is). `disabled` skips the required lookups, as a driver
 * without them answers (BRAID_NO_GREEN_CONTEXTS, for tests). */
template <class Lookup>
MissingEntry resolve_entries(DriverEntry* entries, size_t count, unsigned version, bool disabled,
                             Lookup&& lookup) {
  for (size_t i = 0; i < count; i++) {
    DriverEntry& e = entries[i];
    void* address = nullptr;
    const char* error = nullptr;
    EntryLookup r = EntryLookup::not_found;
    if (!(disabled && e.required)) r = lookup(e.name, version, &address, &error);
    if (r == EntryLookup::found && address != nullptr) {
      *e.slot = address;
      continue;
    }
    *e.slot = nullptr;
    if (!e.required) continue;
    const char* why = r == EntryLookup::failed            ? (error ? error : "the lookup failed")
                      : r == EntryLookup::version_too_low ? "present, but not at this version"
                                                          : "not found";
    return MissingEntry{e.name, why};
  }
  return MissingEntry{};
}

/* The error message for a partition request `fn` on a driver (version as cudaDriverGetVersion
 * gives it) that lacks `missing`. */
inline void missing_entry_message(char* out, size_t size, const char* fn, int driver,
                                  unsigned version, const MissingEntry& missing, bool disabled) {
  std::snprintf(out, size,
                "%s: SM partitions need CUDA green contexts (driver API 12.4 or newer), but the "
                "CUDA driver (version %d.%d) has no %s (cudaGetDriverEntryPointByVersion at %u: "
                "%s)%s",
                fn, driver / 1000, (driver % 1000) / 10, missing.name, version, missing.why,
                disabled ? "; the lookup is disabled by BRAID_NO_GREEN_CONTEXTS" : "");
}

}  // namespace braid_cuda

#endif
