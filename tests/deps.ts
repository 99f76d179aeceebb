export { default as assert } from "node:assert/strict";
