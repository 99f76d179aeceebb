/**
 * BraidError: the one exception type braid throws for bad input, native failures and misuse.
 * `code` is stable and machine-readable; `message` names the file, node, value or call at fault.
 */
export type BraidErrorCode =
  // model files
  | "MALFORMED_FILE"
  | "BAD_IDENTIFIER"
  | "UNSUPPORTED_VERSION"
  // graphs
  | "UNKNOWN_OP"
  | "BAD_NODE"
  | "BAD_ATTRIBUTE"
  | "DANGLING_VALUE"
  | "DUPLICATE_VALUE"
  | "CYCLE"
  | "SHAPE_MISMATCH"
  | "MISSING_WEIGHT"
  | "BAD_INITIALIZER"
  // sessions
  | "INPUT_MISSING"
  | "INPUT_SIZE"
  | "INPUT_TYPE"
  | "BAD_OPTION"
  | "DISPOSED"
  | "UNSAFE_SCHEDULE"
  // native library
  | "LIBRARY_NOT_FOUND"
  | "ABI_MISMATCH"
  | "NATIVE_INVALID_ARGUMENT"
  | "NATIVE_OUT_OF_MEMORY"
  | "NATIVE_INVALID_HANDLE"
  | "NATIVE_UNSUPPORTED"
  | "NATIVE_CUDA"
  | "NATIVE_CUDNN"
  | "NATIVE_CUBLAS"
  | "NATIVE_CAPTURE"
  | "NATIVE_INTERNAL"
  | "NATIVE_UNKNOWN"
  // the command line
  | "USAGE";

export class BraidError extends Error {
  override name = "BraidError";
  constructor(readonly code: BraidErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** Throws a BraidError with `code` unless `condition` holds. */
export function check(
  condition: unknown,
  code: BraidErrorCode,
  message: () => string,
): asserts condition {
  if (!condition) throw new BraidError(code, message());
}
