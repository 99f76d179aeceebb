/**
 * BRAID_PARTITION_BINDING=current's bookkeeping (csrc/cuda/green_current.h: which context a
 * thread has current, and a partition's claim by one thread) needs no GPU:
 * tests/native/green_current_test.cc runs it against a fake driver, built here with the C++
 * compiler ($CXX, else c++) that nvcc uses too.
 */
import { assert } from "./deps.ts";

const path = (relative: string) => new URL(relative, import.meta.url).pathname;
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

Deno.test("BRAID_PARTITION_BINDING=current's bookkeeping against a fake driver: green, primary again, one thread a partition", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const binary = `${dir}/green_current_test`;
    const build = await new Deno.Command(Deno.env.get("CXX") || "c++", {
      args: [
        "-std=c++17",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-O1",
        "-pthread",
        `-I${path("../csrc/cuda")}`,
        path("native/green_current_test.cc"),
        "-o",
        binary,
      ],
    }).output();
    assert.equal(build.code, 0, decode(build.stderr));
    const run = await new Deno.Command(binary).output();
    const printed = decode(run.stdout);
    assert.equal(run.code, 0, printed);
    const passed = Number(printed.match(/(\d+) checks passed/)?.[1]);
    assert.ok(passed >= 20, printed);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
