/**
 * The missing-library error path under Node: the loader with nothing to try, and the public API
 * from a copy of the package that has no build/ folder while BRAID_LIB names a missing file.
 */
import assert from "node:assert/strict";
import { cp, mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import process from "node:process";
import { after, test } from "node:test";
import { npm, repo } from "./paths.mjs";

const { openLibrary } = await import(`${npm}/ffi/library.js`);
const { BraidError } = await import(`${npm}/mod.js`);

/** Asserts that `f` rejects with the given BraidError class and code; returns the error. */
async function rejectsWith(f, ErrorClass, code) {
  let error;
  await assert.rejects(async () => await f(), (e) => (error = e) instanceof ErrorClass);
  assert.equal(error.code, code, error.message);
  return error;
}

test("the loader with an empty search list: LIBRARY_NOT_FOUND", async () => {
  const e = await rejectsWith(() => openLibrary("cpu", []), BraidError, "LIBRARY_NOT_FOUND");
  assert.match(e.message, /libbraid_cpu\.so/);
  assert.match(e.message, /BRAID_LIB/);
});

test("the loader with a missing file: LIBRARY_NOT_FOUND naming it and koffi's reason", async () => {
  const missing = "/nonexistent/braid/libbraid_cpu.so";
  const e = await rejectsWith(() => openLibrary("cpu", [missing]), BraidError, "LIBRARY_NOT_FOUND");
  assert.ok(e.message.includes(`  ${missing}: `), e.message);
});

const scratch = await mkdtemp(`${tmpdir()}/braid-nolib-`);
after(() => rm(scratch, { recursive: true, force: true }));

test("no library beside the package and BRAID_LIB missing: Session.create rejects", async () => {
  // The package without its build/ folder; node_modules linked so that koffi still loads.
  const copy = `${scratch}/package`;
  await cp(npm, copy, {
    recursive: true,
    filter: (src) => !/^\/(node_modules|build)(\/|$)/.test(src.slice(npm.length)),
  });
  await symlink(`${npm}/node_modules`, `${copy}/node_modules`);
  const braid = await import(`${copy}/mod.js`);
  const graph = braid.buildZooModel("squeezenet1_1");
  const saved = process.env.BRAID_LIB;
  try {
    process.env.BRAID_LIB = "/nonexistent/braid/libbraid_cpu.so";
    const e = await rejectsWith(
      () => braid.Session.create(graph, { device: "cpu" }),
      braid.BraidError,
      "LIBRARY_NOT_FOUND",
    );
    assert.ok(e.message.includes("/nonexistent/braid/libbraid_cpu.so"), e.message);
    assert.ok(e.message.includes(`${copy}/build/libbraid_cpu.so`), e.message);
    // The same copy finds the library once BRAID_LIB names its folder.
    process.env.BRAID_LIB = `${repo}/build`;
    const session = await braid.Session.create(graph, { device: "cpu" });
    session[Symbol.dispose]();
  } finally {
    if (saved === undefined) delete process.env.BRAID_LIB;
    else process.env.BRAID_LIB = saved;
  }
});
