/**
 * examples/node_demo.mjs as a Node user runs it: in a project where @braid/braid is installed
 * (here, linked to npm/), type-checked through the package's .d.ts files by `tsc --noEmit`, then
 * run: it prints `make demo`'s top-5 lines.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import process from "node:process";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { expected, npm, repo } from "./paths.mjs";

const run = promisify(execFile);
const demo = `${repo}/examples/node_demo.mjs`;
const tsc = `${npm}/node_modules/typescript/bin/tsc`;
let project;

before(async () => {
  project = await mkdtemp(`${tmpdir()}/braid-demo-`);
  await mkdir(`${project}/node_modules/@braid`, { recursive: true });
  await symlink(npm, `${project}/node_modules/@braid/braid`);
  await symlink(`${npm}/node_modules/@types`, `${project}/node_modules/@types`);
  await writeFile(`${project}/package.json`, JSON.stringify({ private: true, type: "module" }));
  await copyFile(demo, `${project}/node_demo.mjs`);
});
after(() => rm(project, { recursive: true, force: true }));

/** tsc --noEmit on one file of the project, checked as JavaScript against the .d.ts files. */
async function typeCheck(file) {
  const config = {
    compilerOptions: {
      target: "es2022",
      module: "nodenext",
      moduleResolution: "nodenext",
      strict: true,
      noEmit: true,
      allowJs: true,
      checkJs: true,
      types: ["node"],
    },
    files: [file],
  };
  await writeFile(`${project}/tsconfig.json`, JSON.stringify(config));
  try {
    await run(process.execPath, [tsc, "-p", project]);
    return "";
  } catch (e) {
    return e.stdout + e.stderr || String(e);
  }
}

test("examples/node_demo.mjs has at most 10 lines", async () => {
  const lines = (await readFile(demo, "utf8")).trimEnd().split("\n");
  assert.ok(lines.length <= 10, `${lines.length} lines`);
});

test("tsc --noEmit passes on the demo, typed through the package's .d.ts", async () => {
  assert.equal(await typeCheck("node_demo.mjs"), "");
});

test("tsc --noEmit catches a misuse of the package's types", async () => {
  const bad = (await readFile(demo, "utf8")).replace('device: "cpu"', 'device: "tpu"');
  await writeFile(`${project}/bad.mjs`, bad);
  assert.match(await typeCheck("bad.mjs"), /"tpu"/);
});

test("the demo prints make demo's top-5", async () => {
  const { stdout } = await run(process.execPath, [`${project}/node_demo.mjs`], { cwd: repo });
  assert.deepEqual(stdout.trimEnd().split("\n"), (await expected()).demoTop5);
});
