/**
 * The work of a pooled `braid tune` (tune_pool.ts), as jobs for the pool's workers, each on its
 * own partition of the same size:
 *   plan   one graph variant of one model: measure its op times, list the stages its tuning
 *          will time (stage_prefetch.ts);
 *   trials a few of auto's candidate schedules that need no stage times (all but ios's), timed
 *          into the tuning cache: ready after the variant's plan, so most of auto's whole-schedule
 *          timings run beside the stages instead of after them;
 *   stages a chunk of those stages, measured into the tuning cache (any worker: the budget is
 *          the same);
 *   choose one variant of a model with several (auto's graph and its merged form): auto's
 *          choice for it (finding the trials cached, it times ios's candidates and its
 *          confirmation), cached; ready once the model's plans, trials and stage chunks are done,
 *          the variants side by side on different workers;
 *   tune   the model's session tuning, which finds every planned stage cached (and each variant's
 *          choice, when they were chosen apart) and keeps the faster variant; ready after that.
 * A stage planned twice (the same structure in two models or variants) is measured once. A
 * model's variants are planned one after another, so the merged variant finds the convolution
 * algorithms the first one measured. The next job is a plan, else a ready choose or tune (they
 * are the serial tails), else a trials job, else a stage chunk of the model with the most planned
 * stages (its tune can then start early). A worker asking says which variants it already holds
 * (a worker sets a variant up once, weights and timer): among ready chooses, trials and stage
 * chunks, those of its variants come first, and a model's tune goes first to a worker that has
 * held one of its variants (the tune's session runs on the worker's context, where their jobs
 * built the convolutions' library plans). With `chunks: "model"` (BRAID_POOL_CHUNKS=model; off,
 * measured slower: bench/NOTES.md v0.21) stage chunks go model by model instead, the one with the
 * most planned stages first and a worker's held variant only among one model's: then the model
 * with the longest serial tail (inception_v3's chooses and tune) never ends the pool, as it did in
 * two runs of five on the H200 when the workers holding each model kept to its chunks
 * (bench/NOTES.md v0.20), at the cost of more variants set up on more workers (~50–120 ms each,
 * with the warm-up). Once a model's tune is queued, no job needs its variants' set-ups again: the
 * model is retired (retire()), and the workers free them while the pool's last jobs run rather
 * than all at the end.
 */
import type { PlannedStage } from "../runtime/stage_plan.ts";
import { envChoice } from "../platform.ts";

/** Which stage chunk a worker asking gets first: of a variant it holds, or of the biggest model. */
export type PoolChunkOrder = "held" | "model";

/** BRAID_POOL_CHUNKS, else held. */
export function poolChunkOrderFromEnv(): PoolChunkOrder {
  return envChoice("BRAID_POOL_CHUNKS", ["held", "model"]);
}

/** Compares two ranks key by key, the first key first. */
function compareRanks(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

/** What a worker holds for one model variant (its weights and stage timer). */
export const variantId = (file: string, variant: number) => `${file}#${variant}`;

/** Whether a variantId() is one of `file`'s variants. */
export const isVariantOf = (id: string, file: string) => id.startsWith(`${file}#`);

export type PoolJob =
  | { kind: "plan"; file: string; variant: number }
  | { kind: "trials"; file: string; variant: number; from: number; to: number }
  | { kind: "stages"; file: string; variant: number; stages: PlannedStage[] }
  | { kind: "choose"; file: string; variant: number }
  | { kind: "tune"; file: string };

interface ModelWork {
  file: string;
  variants: number;
  /** Jobs of the current phase handed out or queued and not yet finished. */
  open: number;
  planned: number;
  /** measure: plans and stage chunks; choose: each variant's choice; tune: the last job. */
  phase: "measure" | "choose" | "tune";
}

export class TuneQueue {
  readonly #models = new Map<string, ModelWork>();
  readonly #plans: PoolJob[] = [];
  /** Chooses and tunes ready to run. */
  readonly #ready: PoolJob[] = [];
  /** Trials jobs ready to run. */
  readonly #trials: PoolJob[] = [];
  /** Stage chunks waiting, per model variant (variantId). */
  readonly #chunks = new Map<string, { work: ModelWork; jobs: PoolJob[] }>();
  readonly #keys = new Set<string>();
  /** Models whose tune is queued, not yet taken by retire(). */
  #retired: string[] = [];
  #unfinished = 0;

  /**
   * `variants`: how many graph variants each model's plan covers (0: nothing to measure; a first
   * plan may reveal more, see planned()); `chunkSize` stages a stages job, `trialsSize`
   * candidates a trials job; `chunks`: which stage chunk a worker gets first (the file's comment).
   */
  constructor(
    models: { file: string; variants: number }[],
    readonly chunkSize = 64,
    readonly trialsSize = 4,
    readonly chunks: PoolChunkOrder = "held",
  ) {
    for (const { file, variants } of models) {
      const work: ModelWork = { file, variants, open: variants, planned: 0, phase: "measure" };
      this.#models.set(file, work);
      this.#unfinished++;
      if (variants > 0) this.#plans.push({ kind: "plan", file, variant: 0 });
      this.#advance(work);
    }
  }

  /** Every model tuned. */
  get done(): boolean {
    return this.#unfinished === 0;
  }

  /**
   * The next job to hand out, or undefined while nothing is ready; `holds`: the variants
   * (variantId) the asking worker has set up.
   */
  next(holds: ReadonlySet<string> = new Set()): PoolJob | undefined {
    const plan = this.#plans.shift();
    if (plan) return plan;
    // A tune counts as held by a worker that has held any of the model's variants: its context
    // keeps the library plans their jobs built there, which the model's session then finds.
    const held = (job: PoolJob) =>
      job.kind === "tune"
        ? [...holds].some((id) => isVariantOf(id, job.file))
        : holds.has(variantId(job.file, job.variant));
    for (const jobs of [this.#ready, this.#trials]) {
      if (jobs.length > 0) return jobs.splice(Math.max(0, jobs.findIndex(held)), 1)[0];
    }
    type Candidate = { id: string; held: boolean; planned: number };
    // A held variant before the model with the most planned stages, or the other way round.
    const rank = (c: Candidate) =>
      this.chunks === "held" ? [Number(c.held), c.planned] : [c.planned, Number(c.held)];
    let best: Candidate | undefined;
    for (const [id, { work, jobs }] of this.#chunks) {
      if (jobs.length === 0) continue;
      const candidate = { id, held: holds.has(id), planned: work.planned };
      const better = !best || compareRanks(rank(candidate), rank(best)) > 0;
      if (better) best = candidate;
    }
    return best && this.#chunks.get(best.id)!.jobs.shift();
  }

  /**
   * A plan came back with its stages (each with its cache key) and how many of auto's candidates
   * can be timed ahead: they are queued in chunks. A model's first plan may say how many graph
   * variants it has (`variants`; the worker derives them as it reads the model, so the parent
   * need not read every model before the first plan starts): its other variants' plans follow.
   */
  planned(
    job: PoolJob & { kind: "plan" },
    stages: PlannedStage[],
    candidates = 0,
    variants?: number,
  ): void {
    const work = this.#models.get(job.file)!;
    if (job.variant === 0 && variants !== undefined && variants > work.variants) {
      work.open += variants - work.variants;
      work.variants = variants;
    }
    const fresh = stages.filter(({ key }) => !this.#keys.has(key) && this.#keys.add(key));
    work.planned += fresh.length;
    const id = variantId(job.file, job.variant);
    if (!this.#chunks.has(id)) this.#chunks.set(id, { work, jobs: [] });
    const queue = this.#chunks.get(id)!.jobs;
    for (let i = 0; i < fresh.length; i += this.chunkSize) {
      const chunk = fresh.slice(i, i + this.chunkSize);
      queue.push({ kind: "stages", file: job.file, variant: job.variant, stages: chunk });
      work.open++;
    }
    for (let from = 0; from < candidates; from += this.trialsSize) {
      const to = Math.min(candidates, from + this.trialsSize);
      this.#trials.push({ kind: "trials", file: job.file, variant: job.variant, from, to });
      work.open++;
    }
    const next = job.variant + 1;
    if (next < work.variants) this.#plans.push({ kind: "plan", file: job.file, variant: next });
    this.finished(job);
  }

  /** The models retired since the last call: no job but their tune will use their variants. */
  retire(): string[] {
    return this.#retired.splice(0);
  }

  /** A job finished (a plan's stages must be given to planned() instead). */
  finished(job: PoolJob): void {
    const work = this.#models.get(job.file)!;
    if (job.kind === "tune") {
      this.#unfinished--;
      return;
    }
    work.open--;
    this.#advance(work);
  }

  /** Once a phase's jobs are all finished, queues the next phase's. */
  #advance(work: ModelWork): void {
    if (work.open > 0 || work.phase === "tune") return;
    const { file } = work;
    if (work.phase === "measure" && work.variants > 1) {
      work.phase = "choose";
      for (let variant = 0; variant < work.variants; variant++) {
        this.#ready.push({ kind: "choose", file, variant });
      }
      work.open = work.variants;
      return;
    }
    work.phase = "tune";
    this.#ready.push({ kind: "tune", file });
    if (work.variants > 0) this.#retired.push(file);
  }
}
