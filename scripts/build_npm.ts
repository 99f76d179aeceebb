/**
 * `deno task build:npm`: the npm package, in npm/ (git-ignored), compiled from the same sources.
 *
 *   npm/package.json   name and version from deno.json; exports, types, engines, dependencies
 *   npm/README.md      the intro and the "Node" section of README.md
 *   npm/mod.js, npm/lib/**, npm/ffi/**   ESM JavaScript with .d.ts beside it, from mod.ts's graph
 *   npm/build/*.so     the shared libraries found in build/ (CPU, and CUDA when built)
 *
 * The layout mirrors the repository (mod.js beside lib/, ffi/ and build/), so the library search
 * of ffi/library.ts is the same rule in both: BRAID_LIB, then build/ beside the package.
 * The compiler is npm:typescript (pinned to the version inside this Deno) with
 * rewriteRelativeImportExtensions turning the sources' "./x.ts" imports into "./x.js". Like
 * dnt, the build installs the package's dependencies into npm/node_modules (never packed): the
 * compiler needs @types/node, and the Node tests run against npm/ as it stands.
 * The CLI (lib/cli) stays Deno-only and is not in the package.
 */
const TYPESCRIPT = "6.0.3";
const KOFFI = "^3.3.4";
const TYPES_NODE = "^20.19.0";

const root = new URL("../", import.meta.url);
const path = (relative: string) => decodeURIComponent(new URL(relative, root).pathname);
const out = path("npm/");

async function run(cmd: string, args: string[], cwd = path(".")): Promise<void> {
  const { code } = await new Deno.Command(cmd, { args, cwd, stdout: "inherit", stderr: "inherit" })
    .output();
  if (code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited with ${code}`);
}

async function exists(file: string): Promise<boolean> {
  try {
    await Deno.stat(file);
    return true;
  } catch {
    return false;
  }
}

const config = JSON.parse(await Deno.readTextFile(path("deno.json")));
const flatbuffers = String(config.imports.flatbuffers).replace(/^npm:flatbuffers@/, "");
const protobufjs = String(config.imports.protobufjs).replace(/^npm:protobufjs@/, "");

// 1. A clean npm/, keeping only node_modules (an install cache, never packed).
await Deno.mkdir(out, { recursive: true });
for await (const entry of Deno.readDir(out)) {
  if (entry.name !== "node_modules") await Deno.remove(`${out}${entry.name}`, { recursive: true });
}

// 2. package.json. One entry point for every runtime: the code picks its Deno or Node binding
// with one runtime check (RUNTIME in lib/platform.ts), so no "deno"/"node" export conditions.
const pkg = {
  name: config.name,
  version: config.version,
  description: "Operator-parallel DNN inference: multi-stream schedules captured into one graph, " +
    "on a CUDA or CPU shared library",
  license: config.license,
  type: "module",
  main: "./mod.js",
  types: "./mod.d.ts",
  exports: {
    ".": { types: "./mod.d.ts", default: "./mod.js" },
    // The seeded PRNG the CLI draws its inputs from, to reproduce its runs (examples/node_demo.mjs).
    "./random": { types: "./lib/util/random.d.ts", default: "./lib/util/random.js" },
    "./package.json": "./package.json",
  },
  files: ["mod.js", "mod.d.ts", "lib/", "ffi/", "build/*.so", "README.md"],
  engines: { node: ">=20" },
  os: ["linux"],
  dependencies: { flatbuffers, protobufjs, koffi: KOFFI },
  devDependencies: { "@types/node": TYPES_NODE, typescript: TYPESCRIPT },
};
await Deno.writeTextFile(`${out}package.json`, JSON.stringify(pkg, null, 2) + "\n");

// 3. Dependencies (koffi, flatbuffers) and the compiler's @types/node, into npm/node_modules.
await run("npm", [
  "install",
  "--no-package-lock",
  "--no-audit",
  "--no-fund",
  "--prefer-offline",
  "--loglevel=error",
], out);

// 4. Compile mod.ts and everything it imports, to ES2022 modules (ESNext syntax, bundler-style
// resolution: NodeNext would read the sources as CommonJS, having no package.json "type" above
// them; the Node tests check the output under Node itself). lib es2023 keeps out APIs Node 20 lacks. The Deno-only statements (Deno.dlopen, Deno.readFile:
// reached only when RUNTIME is "deno") are type-checked by `deno check`; here the one global
// they use is declared, untyped, by scripts/npm/deno_global.d.ts.
await run(Deno.execPath(), [
  "run",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--no-lock",
  `npm:typescript@${TYPESCRIPT}/tsc`,
  "mod.ts",
  "scripts/npm/deno_global.d.ts",
  "--rootDir",
  ".",
  "--outDir",
  "npm",
  "--target",
  "es2022",
  "--lib",
  "es2023",
  "--module",
  "esnext",
  "--moduleResolution",
  "bundler",
  "--rewriteRelativeImportExtensions",
  "--declaration",
  "--strict",
  "--skipLibCheck",
  "--typeRoots",
  "npm/node_modules/@types",
  "--types",
  "node",
]);

// rewriteRelativeImportExtensions rewrites the JavaScript only: declaration files keep "./x.ts".
// TypeScript 5.7+ resolves those to x.d.ts, but "./x.js" is what every TypeScript version (and
// other tools reading .d.ts) expects, so the relative specifiers of the .d.ts files are rewritten.
async function rewriteDeclarations(dir: string): Promise<number> {
  let files = 0;
  for await (const entry of Deno.readDir(dir)) {
    const file = `${dir}/${entry.name}`;
    if (entry.isDirectory && entry.name !== "node_modules") {
      files += await rewriteDeclarations(file);
    }
    if (!entry.isFile || !entry.name.endsWith(".d.ts")) continue;
    const text = await Deno.readTextFile(file);
    const fixed = text.replace(/((?:from|import\()\s*["'])(\.\.?\/[^"']*)\.ts(["'])/g, "$1$2.js$3");
    if (fixed !== text) {
      await Deno.writeTextFile(file, fixed);
      files++;
    }
  }
  return files;
}
await rewriteDeclarations(out.replace(/\/$/, ""));

// 5. README: the intro and the Node section of README.md.
const readme = await Deno.readTextFile(path("README.md"));
const intro = readme.split("\n## ")[0].replace(/^# .*\n/, "").trim();
const node = readme.split("\n## ").find((s) => s.startsWith("Node"));
if (!node) throw new Error('README.md has no "## Node" section');
await Deno.writeTextFile(
  `${out}README.md`,
  `# ${config.name}\n\n${intro}\n\n## ${node.trim()}\n`,
);

// 6. The shared libraries built here, beside the package in build/ (ffi/library.ts looks there).
const copied: string[] = [];
for (const file of ["libbraid_cpu.so", "libbraid_cuda.so"]) {
  if (!(await exists(path(`build/${file}`)))) continue;
  await Deno.mkdir(`${out}build`, { recursive: true });
  await Deno.copyFile(path(`build/${file}`), `${out}build/${file}`);
  copied.push(file);
}

console.log(
  `npm/: ${pkg.name}@${pkg.version} (typescript ${TYPESCRIPT}); libraries: ${
    copied.join(", ") || "none (build/ has none: set BRAID_LIB when using the package)"
  }`,
);
