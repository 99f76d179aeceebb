/**
 * How the CUDA backend finds the driver's green-context functions at run time
 * (csrc/cuda/driver_entry_points.h, used by partition.cu) needs no GPU:
 * tests/native/driver_entry_points_test.cc runs it against fake drivers. A partition request on a
 * driver too old for green contexts, or one lacking a function, is BRAID_ERR_UNSUPPORTED with a
 * message naming the function, the driver's version and why; the GPU test
 * (tests/gpu/partition_gpu_test.ts) checks the same message through the library on the device.
 */
import { runNativeTest } from "./native/run_native.ts";

Deno.test("partitions on an old driver: the missing green-context function named, against fake drivers", async () => {
  await runNativeTest("driver_entry_points_test.cc", 35);
});
