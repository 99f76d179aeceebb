/**
 * The raw symbol table of braid.h: C names unchanged, no logic, read by both runtimes' bindings
 * (Deno.dlopen takes it as it is; ffi/backend_node.ts declares each entry with koffi).
 * Every function returns an i32 status. Handles and device addresses are u64; parameter records
 * and result slots are caller-owned buffers, so the hot path never needs a pointer object.
 */
/** The native types the table uses, spelled as Deno.dlopen spells them. */
export type NativeType = "i32" | "u64" | "buffer";

export interface SymbolDefinition {
  readonly parameters: readonly NativeType[];
  readonly result: "i32";
  /** Called on another thread, returning a promise of the status (Deno: nonblocking FFI; Node:
   * koffi's async call). The call's error message stays on that thread. */
  readonly nonblocking?: boolean;
}

const status = "i32" as const;
const u64 = "u64" as const;
const buffer = "buffer" as const;
const op = (...tensors: "u64"[]) => ({
  parameters: [u64, u64, buffer, ...tensors],
  result: status,
});

export const symbols = {
  braid_abi_version: { parameters: [buffer], result: status },
  braid_last_error: { parameters: [buffer, "i32"], result: status },
  braid_device_count: { parameters: [buffer], result: status },
  braid_context_create: { parameters: ["i32", buffer], result: status },
  braid_context_destroy: { parameters: [u64], result: status },
  braid_device_info: { parameters: [u64, buffer, "i32", buffer], result: status },
  braid_buffer_alloc: { parameters: [u64, u64, buffer], result: status },
  braid_buffer_free: { parameters: [u64, u64], result: status },
  braid_host_alloc: { parameters: [u64, u64, buffer], result: status },
  braid_host_free: { parameters: [u64, u64], result: status },
  braid_host_register: { parameters: [u64, buffer, u64, buffer], result: status },
  braid_host_unregister: { parameters: [u64, u64], result: status },
  braid_memcpy_h2d: { parameters: [u64, u64, u64, buffer, u64], result: status },
  braid_memcpy_d2h: { parameters: [u64, u64, buffer, u64, u64], result: status },
  braid_memcpy_d2d: { parameters: [u64, u64, u64, u64, u64], result: status },

  braid_stream_create: { parameters: [u64, "i32", buffer], result: status },
  braid_stream_destroy: { parameters: [u64, u64], result: status },
  braid_stream_synchronize: { parameters: [u64, u64], result: status },
  braid_event_create: { parameters: [u64, buffer], result: status },
  braid_event_destroy: { parameters: [u64, u64], result: status },
  braid_event_record: { parameters: [u64, u64, u64], result: status },
  braid_event_record_timing: { parameters: [u64, u64, u64], result: status },
  braid_stream_wait_event: { parameters: [u64, u64, u64], result: status },
  braid_event_synchronize: { parameters: [u64, u64], result: status },
  braid_event_elapsed: { parameters: [u64, u64, u64, buffer], result: status },
  braid_capture_begin: { parameters: [u64, u64], result: status },
  braid_capture_end: { parameters: [u64, u64, buffer], result: status },
  braid_capture_end_template: { parameters: [u64, u64, buffer], result: status },
  braid_graph_compose: { parameters: [u64, buffer, buffer, "i32", buffer], result: status },
  braid_graph_launch: { parameters: [u64, u64, u64], result: status },
  braid_graph_destroy: { parameters: [u64, u64], result: status },
  braid_stream_wait: { parameters: [u64, u64], result: status, nonblocking: true },
  braid_stream_sms: { parameters: [u64, u64, buffer], result: status },

  braid_partition_query: { parameters: ["i32", "i32", "i32", buffer], result: status },
  braid_partition_create: {
    parameters: ["i32", "i32", "i32", "i32", buffer, buffer],
    result: status,
  },
  braid_partition_destroy: { parameters: [u64], result: status },
  braid_partition_info: { parameters: [u64, buffer], result: status },
  braid_partition_stream_create: { parameters: [u64, u64, "i32", buffer], result: status },
  braid_context_set_partition: { parameters: [u64, u64], result: status },
  braid_sm_probe: { parameters: [u64, u64, "i32", buffer, "i32", buffer], result: status },

  braid_conv2d: op(u64, u64, u64, u64, u64, u64),
  braid_conv2d_tune: {
    parameters: [u64, u64, buffer, u64, u64, u64, u64, u64, u64, buffer, buffer],
    result: status,
  },
  braid_batchnorm: op(u64, u64, u64, u64, u64, u64),
  braid_unary: op(u64, u64),
  braid_binary: op(u64, u64, u64),
  braid_pool2d: op(u64, u64),
  braid_global_avgpool: op(u64, u64),
  braid_concat: { parameters: [u64, u64, buffer, buffer, u64], result: status },
  braid_strided_copy: op(u64, u64),
  braid_gemm: op(u64, u64, u64, u64),
  braid_matmul: op(u64, u64, u64),
  braid_softmax: op(u64, u64),
  braid_layernorm: op(u64, u64, u64, u64),
  braid_gather: op(u64, u64, u64),
} as const satisfies Record<string, SymbolDefinition>;

export type BraidSymbols = typeof symbols;

/** What a bound function takes for each native type, on either runtime. */
type JsValue<T> = T extends "i32" ? number
  : T extends "u64" ? bigint
  : T extends "buffer" ? ArrayBufferView
  : never;
type JsArgs<P extends readonly NativeType[]> = { -readonly [I in keyof P]: JsValue<P[I]> };

/** The table's functions as both bindings expose them: JS arguments in, the i32 status out (a
 * promise of it for a nonblocking entry). */
export type NativeFunctions = {
  readonly [K in keyof BraidSymbols]: (
    ...args: JsArgs<BraidSymbols[K]["parameters"]>
  ) => BraidSymbols[K] extends { nonblocking: true } ? Promise<number> : number;
};
