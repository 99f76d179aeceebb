/**
 * BERT-base as HuggingFace transformers' BertModel with the bert-base-uncased configuration
 * (12 layers, hidden 768, 12 heads, intermediate 3072, vocab 30522, 512 positions, 2 token
 * types, LayerNorm eps 1e-12, exact GELU, with the pooler): 109,482,240 parameters.
 *
 * Input "input_ids": int32 [N, 128]. Outputs "last_hidden_state" [N, 128, 768] and
 * "pooler_output" [N, 768]. As the model called with only input_ids: token_type_ids are all 0,
 * position ids are 0..127, and there is no attention mask (every token attends to every token,
 * as with an all-ones mask). Dropout is the identity at inference and is left out.
 *
 * The constant ids are not stored as int tensors: the position embeddings of positions 0..127
 * are rows 0..127 of the table (a Slice named "embeddings.position_embeddings"), and the
 * token-type embedding of type 0 is row 0 (a Slice named "embeddings.token_type_embeddings"),
 * broadcast over the batch and the sequence by the Adds. This is exactly what the Gathers with
 * constant ids compute, and keeps every initializer a state_dict parameter.
 *
 * Self-attention per layer, as BertSelfAttention (eager):
 *   q, k, v = Linear(x) → Reshape [0, 128, 12, 64] → Transpose [0, 2, 1, 3]  ([N, 12, 128, 64])
 *   scores = MatMul(q, k, transB, alpha = 1/√64) → Softmax(-1) → MatMul(·, v)
 *   → Transpose [0, 2, 1, 3] → Reshape [0, 128, 768] → output.dense → Add(x) → LayerNorm
 * and the feed-forward part: intermediate.dense → Gelu → output.dense → Add → LayerNorm.
 * Reshapes copy the batch dimension (0), so the graph runs at any batch size.
 *
 * Names are the state_dict keys ("embeddings.word_embeddings.weight",
 * "encoder.layer.0.attention.self.query.weight", "pooler.dense.weight"); functional ops are
 * named after their module with torch.fx-style names ("encoder.layer.0.attention.self.matmul").
 */
import type { Graph } from "../ir/graph.ts";
import { GraphBuilder } from "../ir/builder.ts";
import { finishOutputs, type ModelOptions } from "./common.ts";

export const BERT_BASE_PARAMETERS = 109_482_240;

export const BERT_INPUT_NAME = "input_ids";
export const BERT_OUTPUT_NAMES = ["last_hidden_state", "pooler_output"] as const;

/** bert-base-uncased's BertConfig, plus the sequence length of the graph. */
export const BERT_BASE_CONFIG = {
  vocabSize: 30522,
  hiddenSize: 768,
  numLayers: 12,
  numHeads: 12,
  intermediateSize: 3072,
  maxPositions: 512,
  typeVocabSize: 2,
  layerNormEps: 1e-12,
  sequenceLength: 128,
} as const;

/** Bound of the uniform random embedding tables (HF initializes them with std 0.02). */
const EMBEDDING_BOUND = 0.05;

function encoderLayer(b: GraphBuilder, x: string, name: string): string {
  const { hiddenSize: d, numHeads: h, sequenceLength: s, layerNormEps: eps } = BERT_BASE_CONFIG;
  const dh = d / h;
  const self = `${name}.attention.self`;
  const heads = (proj: string, i: number) => {
    const suffix = i === 0 ? "" : `_${i}`; // torch.fx numbering: view, view_1, view_2
    const y = b.linear(x, `${self}.${proj}`, d);
    const split = b.reshape(y, [0, s, h, dh], `${self}.view${suffix}`);
    return b.transpose(split, [0, 2, 1, 3], `${self}.transpose${suffix}`);
  };
  const q = heads("query", 0);
  const k = heads("key", 1);
  const v = heads("value", 2);
  const scores = b.matmul(q, k, { transB: true, alpha: 1 / Math.sqrt(dh) }, `${self}.matmul`);
  const probs = b.softmax(scores, -1, `${self}.softmax`);
  const context = b.matmul(probs, v, {}, `${self}.matmul_1`);
  const merged = b.reshape(
    b.transpose(context, [0, 2, 1, 3], `${self}.permute`),
    [0, s, d],
    `${self}.reshape`,
  );

  const attnOut = `${name}.attention.output`;
  let y = b.linear(merged, `${attnOut}.dense`, d);
  y = b.add(y, x, `${attnOut}.add`);
  const attention = b.layerNorm(y, `${attnOut}.LayerNorm`, eps);

  const inter = b.gelu(
    b.linear(attention, `${name}.intermediate.dense`, BERT_BASE_CONFIG.intermediateSize),
    `${name}.intermediate.intermediate_act_fn`,
  );
  y = b.linear(inter, `${name}.output.dense`, d);
  y = b.add(y, attention, `${name}.output.add`);
  return b.layerNorm(y, `${name}.output.LayerNorm`, eps);
}

export function bertBase(options: ModelOptions = {}): Graph {
  const c = BERT_BASE_CONFIG;
  const b = new GraphBuilder("bert_base", options.seed ?? 1008);
  const ids = b.input(BERT_INPUT_NAME, [options.batch ?? 1, c.sequenceLength], "int32");

  const table = (name: string, rows: number) =>
    b.uniform(`embeddings.${name}.weight`, [rows, c.hiddenSize], EMBEDDING_BOUND);
  const words = b.node(
    "Gather",
    [table("word_embeddings", c.vocabSize), ids],
    { axis: 0 },
    "embeddings.word_embeddings",
  ); // [N, 128, 768]
  const tokenType = b.slice(
    table("token_type_embeddings", c.typeVocabSize),
    [0],
    [0],
    [1],
    "embeddings.token_type_embeddings",
  ); // row 0: [1, 768]
  const positions = b.slice(
    table("position_embeddings", c.maxPositions),
    [0],
    [0],
    [c.sequenceLength],
    "embeddings.position_embeddings",
  ); // rows 0..127: [128, 768]
  let x = b.add(words, tokenType, "embeddings.add");
  x = b.add(x, positions, "embeddings.add_1");
  x = b.layerNorm(x, "embeddings.LayerNorm", c.layerNormEps);

  for (let i = 0; i < c.numLayers; i++) x = encoderLayer(b, x, `encoder.layer.${i}`);

  // BertPooler: the first token's hidden state → dense → tanh.
  const first = b.reshape(
    b.slice(x, [1], [0], [1], "pooler.getitem"),
    [0, c.hiddenSize],
    "pooler.view",
  );
  const pooled = b.tanh(b.linear(first, "pooler.dense", c.hiddenSize), "pooler.activation");

  return finishOutputs(b, [[x, BERT_OUTPUT_NAMES[0]], [pooled, BERT_OUTPUT_NAMES[1]]]);
}
