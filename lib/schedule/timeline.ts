/**
 * A schedule as a timeline: one lane per stream, one bar per op, coloured by kind
 * (compute-bound, memory-bound, view), drawn as a standalone SVG.
 */

export interface Bar {
  /** Logical stream (lane). */
  stream: number;
  startUs: number;
  endUs: number;
  label: string;
  kind: "compute" | "memory" | "view";
}

export interface TimelineOptions {
  title: string;
  /** How the durations were obtained, shown under the title ("measured on …", "modelled"). */
  source: string;
  width?: number;
}

const COLOURS = { compute: "#d9534f", memory: "#428bca", view: "#aaaaaa" } as const;

const escape = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

export function timelineSvg(bars: Bar[], options: TimelineOptions): string {
  const width = options.width ?? 1200;
  const lanes = Math.max(1, ...bars.map((b) => b.stream + 1));
  const laneHeight = 22, top = 56, left = 80, right = 20;
  const height = top + lanes * laneHeight + 40;
  const endUs = Math.max(1e-3, ...bars.map((b) => b.endUs));
  const x = (us: number) => left + ((width - left - right) * us) / endUs;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="20" font-size="15" font-weight="bold">${escape(options.title)}</text>`,
    `<text x="${left}" y="38" fill="#555">${escape(options.source)} · ${bars.length} ops, ` +
    `${lanes} streams, ${endUs.toFixed(1)} µs</text>`,
  ];
  for (let s = 0; s < lanes; s++) {
    const y = top + s * laneHeight;
    parts.push(
      `<rect x="${left}" y="${y}" width="${width - left - right}" height="${laneHeight - 4}" ` +
        `fill="${s % 2 ? "#f7f7f7" : "#efefef"}"/>`,
      `<text x="8" y="${y + 14}">stream ${s}</text>`,
    );
  }
  for (const b of bars) {
    const y = top + b.stream * laneHeight;
    const w = Math.max(0.5, x(b.endUs) - x(b.startUs));
    parts.push(
      `<rect class="op" data-op="${escape(b.label)}" x="${x(b.startUs).toFixed(2)}" y="${y}" ` +
        `width="${w.toFixed(2)}" height="${laneHeight - 4}" fill="${COLOURS[b.kind]}" ` +
        `stroke="white" stroke-width="0.5"><title>${escape(b.label)}: ` +
        `${(b.endUs - b.startUs).toFixed(2)} µs</title></rect>`,
    );
  }
  const axisY = top + lanes * laneHeight + 14;
  for (let i = 0; i <= 10; i++) {
    const us = (endUs * i) / 10;
    parts.push(
      `<text x="${x(us).toFixed(1)}" y="${axisY}" text-anchor="middle" fill="#555">` +
        `${us.toFixed(0)}</text>`,
    );
  }
  parts.push(
    `<text x="${width - right}" y="${axisY + 16}" text-anchor="end" fill="#555">µs</text>`,
    ...(["compute", "memory", "view"] as const).map((k, i) =>
      `<rect x="${left + i * 120}" y="${axisY + 8}" width="10" height="10" fill="${COLOURS[k]}"/>` +
      `<text x="${left + i * 120 + 14}" y="${axisY + 17}">${
        k === "view" ? "view (no kernel)" : `${k}-bound`
      }</text>`
    ),
    "</svg>",
  );
  return parts.join("\n");
}
