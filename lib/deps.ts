/**
 * The one place the library imports runtime built-ins from `node:` (JSR's standard library is
 * out of reach here; these ship with both Deno and Node).
 */
export { parseArgs, styleText } from "node:util";
