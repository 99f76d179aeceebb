/** ONNX import: `importOnnx(bytes | path, options)` → a braid Graph and a summary. */
export {
  importModelProto,
  importOnnx,
  type ImportOptions,
  type ImportSummary,
  type OnnxImport,
} from "./importer.ts";
