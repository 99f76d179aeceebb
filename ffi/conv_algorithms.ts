/**
 * What a convolution algorithm id of the CUDA backend names (csrc/cuda/conv.cu and
 * conv_engine.cuh): -1 the backend's heuristic, 0..7 a cuDNN legacy algorithm (fused call where
 * it can), 8 braid's direct kernel, 16..23 a legacy algorithm without the fused call, and from
 * 32 a cuDNN engine configuration that the heuristic chose for an SM-count target:
 * 32 + rank + 8 * fused + 16 * smTarget (smTarget 0: the whole device). The CPU backend has 0.
 */

export const ENGINE_BASE = 32;
const ENGINE_RANKS = 8;
const ENGINE_MAX_TARGET = 4096;

/** A cuDNN engine configuration: the heuristic's rank-th usable one for smTarget SMs. */
export interface EngineAlgorithm {
  /** Bias, residual and relu fused into cuDNN's graph (else conv alone, then braid's pass). */
  fused: boolean;
  rank: number;
  smTarget: number;
}

export function engineAlgorithm({ fused, rank, smTarget }: EngineAlgorithm): number {
  if (!Number.isInteger(rank) || rank < 0 || rank >= ENGINE_RANKS) {
    throw new RangeError(`engine rank ${rank} is not in 0..${ENGINE_RANKS - 1}`);
  }
  if (!Number.isInteger(smTarget) || smTarget < 0 || smTarget > ENGINE_MAX_TARGET) {
    throw new RangeError(`engine SM target ${smTarget} is not in 0..${ENGINE_MAX_TARGET}`);
  }
  return ENGINE_BASE + rank + ENGINE_RANKS * (fused ? 1 : 0) + 2 * ENGINE_RANKS * smTarget;
}

/** The engine configuration an id names, or undefined for any other algorithm. */
export function engineOf(id: number): EngineAlgorithm | undefined {
  const v = id - ENGINE_BASE;
  if (!Number.isInteger(id) || v < 0 || v >= 2 * ENGINE_RANKS * (ENGINE_MAX_TARGET + 1)) {
    return undefined;
  }
  const smTarget = Math.floor(v / (2 * ENGINE_RANKS));
  return { fused: Math.floor(v / ENGINE_RANKS) % 2 === 1, rank: v % ENGINE_RANKS, smTarget };
}
