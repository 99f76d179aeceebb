/**
 * A small CUDA workload for compute-sanitizer (tests/gpu/sanitize.sh): the two-stream captured
 * fork/join of scenario.ts, then a small conv net as a Session, captured and eager. Exits 1 when
 * a result is wrong; the sanitizer itself reports races and bad accesses.
 */
import { Backend } from "../../ffi/backend.ts";
import { GraphBuilder } from "../../lib/ir/builder.ts";
import { Random } from "../../lib/util/random.ts";
import { Session } from "../../mod.ts";
import { relativeError } from "../reference.ts";
import { twoStreamCapture } from "./scenario.ts";

const cuda = Backend.open("cuda");
const got = twoStreamCapture(cuda, 7, 2);
const want = twoStreamCapture(Backend.open("cpu"), 7, 2);
const streamError = Math.max(...got.map((g, i) => relativeError(g, want[i])));

const b = new GraphBuilder("sanitize", 3);
const x = b.input("x", [2, 3, 16, 16]);
let v = b.relu(b.conv2d(x, { name: "c1", out: 16, kernel: 3, padding: 1 }));
const left = b.conv2d(v, { name: "l", out: 8, kernel: 1 });
const right = b.avgPool(b.maxPool(v, { kernel: 3, stride: 2, padding: 1 }), {
  kernel: 3,
  stride: 1,
  padding: 1,
});
v = b.concat([b.maxPool(left, { kernel: 2, stride: 2 }), right], 1, "cat");
v = b.softmax(b.linear(b.flatten(b.globalAvgPool(v), 1), "fc", 10));
b.output(v);
const graph = b.build();
const feeds = { x: new Random(11).floats(2 * 3 * 16 * 16) };
const out = graph.outputs[0];
using cpu = await Session.create(graph, { device: "cpu" });
using captured = await Session.create(graph, { device: "cuda", precision: "fp32" });
using eager = await Session.create(graph, { device: "cuda", precision: "fp32", eager: true });
const ref = cpu.runSync(feeds)[out];
const sessionError = Math.max(
  relativeError(captured.runSync(feeds)[out], ref),
  relativeError(eager.runSync(feeds)[out], ref),
);
console.log(
  `sanitize_run: two-stream capture error ${streamError.toExponential(2)}, ` +
    `session error ${sessionError.toExponential(2)}`,
);
if (!(streamError < 1e-5 && sessionError < 1e-5)) Deno.exit(1);
