/**
 * The Worker of a concurrent `braid tune` (tune.ts, tuneInWorker): tunes one model in its
 * partition on its own thread, with its own native contexts, and posts back its result and cache.
 */
import { BraidError } from "../errors.ts";
import { TuningCache } from "../runtime/tuning.ts";
import { tuneOne, type TuneOptions } from "./tune.ts";

interface Job {
  file: string;
  options: TuneOptions;
  cache: string;
}

const scope = self as unknown as {
  onmessage: (e: MessageEvent<Job>) => void;
  postMessage(message: unknown): void;
};

scope.onmessage = async ({ data }) => {
  try {
    const cache = TuningCache.fromJSON(data.cache, "the parent's cache");
    const result = await tuneOne(data.file, data.options, cache);
    scope.postMessage({ result, cache: JSON.stringify(cache.toJSON()) });
  } catch (e) {
    const code = e instanceof BraidError ? e.code : "NATIVE_INTERNAL";
    scope.postMessage({ error: { code, message: (e as Error).message } });
  }
};
