/**
 * A thread of partition_gpu_test.ts's BRAID_PARTITION_BINDING=current test: binds a context of
 * its own to the partition it is sent, and answers what the binding said (an error's code and
 * message, or none).
 */
import { Backend } from "../../ffi/backend.ts";
import { BraidError } from "../../lib/errors.ts";

const scope = self as unknown as {
  onmessage: (e: MessageEvent<{ partition: bigint }>) => void;
  postMessage(message: unknown): void;
};

scope.onmessage = ({ data }) => {
  const backend = Backend.open("cuda");
  const ctx = backend.contextCreate(0);
  try {
    backend.contextSetPartition(ctx, data.partition);
    scope.postMessage({ bound: true });
  } catch (e) {
    const code = e instanceof BraidError ? e.code : "UNKNOWN";
    scope.postMessage({ bound: false, code, message: (e as Error).message });
  } finally {
    backend.contextDestroy(ctx);
  }
};
