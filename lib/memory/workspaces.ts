/**
 * Scratch workspaces for convolutions across streams. Two convolutions may share a workspace only
 * when one happens before the other (stream order or events), as for the arena's tensors. Each
 * workspace keeps a chain of launches in that order, so a launch joins the first whose last
 * member happens before it; a schedule of many streams then holds only as many workspaces as
 * convolutions can run at once, instead of one per stream.
 */
import { HappensBefore, type Schedule } from "../schedule/schedule.ts";

export interface WorkspacePlan {
  /** Bytes of each workspace. */
  bytes: number[];
  /** The workspace of each launch that needs one (by launch index). */
  slotOf: Map<number, number>;
}

/** `need`: launch index → workspace bytes (launches needing none are left out or 0). */
export function planWorkspaces(schedule: Schedule, need: Map<number, number>): WorkspacePlan {
  const order = new HappensBefore(schedule);
  const last: number[] = [];
  const bytes: number[] = [];
  const slotOf = new Map<number, number>();
  for (const [launch, size] of [...need].sort((a, b) => a[0] - b[0])) {
    if (size <= 0) continue;
    let slot = last.findIndex((l) => order.ordered(l, launch));
    if (slot < 0) {
      slot = last.length;
      bytes.push(0);
    }
    last[slot] = launch;
    bytes[slot] = Math.max(bytes[slot], size);
    slotOf.set(launch, slot);
  }
  return { bytes, slotOf };
}
