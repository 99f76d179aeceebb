/** ‖out − ref‖₂ / ‖ref‖₂ (DESIGN.md §7); Infinity on a NaN or a length mismatch. */
export function relativeError(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (out.length !== ref.length) return Infinity;
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < ref.length; i++) {
    if (Number.isNaN(out[i]) || Number.isNaN(ref[i])) return Infinity;
    diff += (out[i] - ref[i]) ** 2;
    norm += ref[i] ** 2;
  }
  if (norm === 0) return diff === 0 ? 0 : Infinity;
  const error = Math.sqrt(diff / norm);
  return Number.isNaN(error) ? Infinity : error; // e.g. an infinity in both
}
