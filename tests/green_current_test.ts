/**
 * BRAID_PARTITION_BINDING=current's bookkeeping (csrc/cuda/green_current.h: which context a
 * thread has current, and a partition's claim by one thread) needs no GPU:
 * tests/native/green_current_test.cc runs it against a fake driver.
 */
import { runNativeTest } from "./native/run_native.ts";

Deno.test("BRAID_PARTITION_BINDING=current's bookkeeping against a fake driver: green, primary again, one thread a partition", async () => {
  await runNativeTest("green_current_test.cc", 20);
});
