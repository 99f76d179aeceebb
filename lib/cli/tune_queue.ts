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
 * (a worker sets a variant up once, weights and timer, a few hundred milliseconds): among ready
 * chooses, trials and stage chunks, those of its variants come first, and a model's tune goes
 * first to a worker that has held one of its variants (the tune's session runs on the worker's
 * context, where their jobs built the convolutions' library plans). Once a model's tune is
 * queued, no job needs its variants' set-ups again: the model is retired (retire()), and the
 * workers free them while the pool's last jobs run rather than all at the end.
 */
import type { PlannedStage } from "../runtime/stage_plan.ts";

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
   * candidates a trials job.
   */
  constructor(
    models: { file: string; variants: number }[],
    readonly chunkSize = 64,
    readonly trialsSize = 4,
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
    let best: { id: string; held: boolean; planned: number } | undefined;
    for (const [id, { work, jobs }] of this.#chunks) {
      if (jobs.length === 0) continue;
      const candidate = { id, held: holds.has(id), planned: work.planned };
      const better = !best || (candidate.held && !best.held) ||
        (candidate.held === best.held && candidate.planned > best.planned);
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
