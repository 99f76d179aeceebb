/** The timeline SVG renders in headless Chromium and holds one bar per op. */
import { assert } from "./deps.ts";
import { type Bar, timelineSvg } from "../lib/schedule/timeline.ts";

const bars: Bar[] = Array.from({ length: 40 }, (_, i) => ({
  stream: i % 4,
  startUs: i * 3,
  endUs: i * 3 + 5 + (i % 3),
  label: `op<${i}>`,
  kind: (["compute", "memory", "view"] as const)[i % 3],
}));

Deno.test("timeline SVG: one bar per op, escaped labels, lanes per stream", () => {
  const svg = timelineSvg(bars, { title: "t & t", source: "modelled" });
  assert.equal(svg.match(/<rect class="op"/g)?.length, 40);
  assert.match(svg, /op&lt;7&gt;/);
  assert.match(svg, /stream 3/);
  assert.match(svg, /t &amp; t/);
});

async function chromium(): Promise<string | undefined> {
  for (const path of ["/usr/bin/chromium", "/usr/bin/chromium-browser"]) {
    if (await Deno.stat(path).then(() => true, () => false)) return path;
  }
}

Deno.test("timeline SVG renders in headless Chromium with a visible bar for every op", async () => {
  const browser = await chromium();
  if (!browser) {
    if (Deno.env.get("CI")) throw new Error("chromium is missing in CI (.ci/run installs it)");
    console.log("skipped: chromium not installed (apt-get install chromium)");
    return;
  }
  const dir = await Deno.makeTempDir();
  const svg = timelineSvg(bars, { title: "render check", source: "modelled" });
  // The page measures every bar's laid-out box and writes the count of visible ones.
  await Deno.writeTextFile(
    `${dir}/page.html`,
    `<!doctype html><body>${svg}<pre id="out"></pre><script>
      const ops = [...document.querySelectorAll("rect.op")];
      const visible = ops.filter((r) => { const b = r.getBoundingClientRect(); return b.width > 0 && b.height > 0; });
      document.getElementById("out").textContent = "visible=" + visible.length + " total=" + ops.length;
    </script></body>`,
  );
  const out = await new Deno.Command(browser, {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      // A container's /dev/shm is small (64 MiB by default): Chromium's shared memory goes to /tmp.
      "--disable-dev-shm-usage",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      `--user-data-dir=${dir}/profile`,
      "--dump-dom",
      `file://${dir}/page.html`,
    ],
  }).output();
  const dom = new TextDecoder().decode(out.stdout);
  assert.match(dom, /visible=40 total=40/, new TextDecoder().decode(out.stderr).slice(-500));
  await Deno.remove(dir, { recursive: true });
});
