/**
 * Builds one of tests/native's C++ tests with the C++ compiler ($CXX, else c++) that nvcc uses
 * too, with csrc/cuda on the include path, runs it, and checks that it passed at least `least`
 * checks. Those tests need no GPU: they run braid's CUDA-side logic against fake drivers.
 */
import { assert } from "../deps.ts";

const path = (relative: string) => new URL(relative, import.meta.url).pathname;
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

export async function runNativeTest(source: string, least: number): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    const binary = `${dir}/${source.replace(/\.cc$/, "")}`;
    const build = await new Deno.Command(Deno.env.get("CXX") || "c++", {
      args: [
        "-std=c++17",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-O1",
        "-pthread",
        `-I${path("../../csrc/cuda")}`,
        path(source),
        "-o",
        binary,
      ],
    }).output();
    assert.equal(build.code, 0, decode(build.stderr));
    const run = await new Deno.Command(binary).output();
    const printed = decode(run.stdout);
    assert.equal(run.code, 0, printed);
    const passed = Number(printed.match(/(\d+) checks passed/)?.[1]);
    assert.ok(passed >= least, printed);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
