/* Banyan plugin ABI, version 1.
 *
 * This header is pure C: it is the whole contract between the Banyan host and a
 * plugin shared library. No C++ type, exception or RTTI crosses it. Rules for
 * changing it are in docs/plugins.md:
 *   - adding a slot at the end of a struct, or a new enum value, bumps the minor;
 *   - anything else (removing, reordering, changing a signature) bumps the major.
 * The host refuses a plugin built for another major, or for a newer minor than the
 * host's; struct_size lets an older plugin be read safely by a newer host.
 *
 * Ownership: every pointer passed into a slot is borrowed for the duration of the
 * call unless the slot's comment says otherwise. Every fallible slot returns 0 on
 * success and a non-zero BanyanStatusCode on failure, after writing a message into
 * the BanyanError it was given.
 */
#ifndef BANYAN_ABI_H
#define BANYAN_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BANYAN_ABI_MAJOR 1
#define BANYAN_ABI_MINOR 3

#if defined(_WIN32)
#define BANYAN_EXPORT __declspec(dllexport)
#else
#define BANYAN_EXPORT __attribute__((visibility("default")))
#endif

/* ---------------------------------------------------------------- status ---- */
typedef enum BanyanStatusCode {
  BANYAN_OK = 0,
  BANYAN_INVALID_ARGUMENT = 1, /* bad input from a user, a file or a request */
  BANYAN_NOT_FOUND = 2,        /* a tensor, file, adapter or key is missing */
  BANYAN_UNSUPPORTED = 3,      /* valid, but this plugin/backend cannot do it */
  BANYAN_OUT_OF_MEMORY = 4,
  BANYAN_INTERNAL = 5          /* a bug: an invariant broke */
} BanyanStatusCode;

/* A fixed buffer a callee fills with a message on failure. */
#define BANYAN_ERROR_MESSAGE_SIZE 1024
typedef struct BanyanError {
  int32_t code; /* BanyanStatusCode */
  char message[BANYAN_ERROR_MESSAGE_SIZE];
} BanyanError;

/* ---------------------------------------------------------------- tensors --- */
typedef enum BanyanDType {
  BANYAN_BF16 = 0,
  BANYAN_F16 = 1,
  BANYAN_F32 = 2,
  BANYAN_I8 = 3,
  BANYAN_U8 = 4,
  BANYAN_I32 = 5,
  BANYAN_I64 = 6,
  BANYAN_FP8_E4M3 = 7
} BanyanDType;

typedef enum BanyanDeviceType { BANYAN_CPU = 0, BANYAN_CUDA = 1 } BanyanDeviceType;

#define BANYAN_MAX_DIMS 4

/* A view of a dense, row-major (contiguous) tensor. Never owns its memory. */
typedef struct BanyanTensor {
  void* data;
  int32_t dtype;       /* BanyanDType */
  int32_t device_type; /* BanyanDeviceType */
  int32_t device_index;
  int32_t ndim;
  int64_t shape[BANYAN_MAX_DIMS];
} BanyanTensor;

/* ---------------------------------------------------------------- logging --- */
typedef enum BanyanLogLevel {
  BANYAN_LOG_DEBUG = 0,
  BANYAN_LOG_INFO = 1,
  BANYAN_LOG_WARN = 2,
  BANYAN_LOG_ERROR = 3
} BanyanLogLevel;

/* ---------------------------------------------------------------- ops ------- */
/* Opaque per-forward-step context owned by the host: the backend, a scratch arena
 * freed at the end of the step, the batch layout and the KV cache. */
typedef struct BanyanStepContext BanyanStepContext;

typedef enum BanyanActivation {
  BANYAN_ACT_SILU = 0,
  BANYAN_ACT_GELU = 1,      /* exact, erf */
  BANYAN_ACT_GELU_TANH = 2, /* tanh approximation (GPT-2 "gelu_new") */
  BANYAN_ACT_RELU = 3
} BanyanActivation;

typedef enum BanyanRopeType {
  BANYAN_ROPE_DEFAULT = 0,
  BANYAN_ROPE_LINEAR = 1,
  BANYAN_ROPE_DYNAMIC = 2, /* dynamic NTK */
  BANYAN_ROPE_LLAMA3 = 3,
  BANYAN_ROPE_YARN = 4
} BanyanRopeType;

/* Rotary embedding parameters, as Hugging Face config.json names them. */
typedef struct BanyanRopeSpec {
  int32_t type;       /* BanyanRopeType */
  int32_t head_dim;   /* size of one head */
  int32_t rotary_dim; /* leading dims of a head that rotate (== head_dim usually) */
  int32_t neox;       /* 1: rotate halves (Llama/HF); 0: interleaved pairs (GPT-J) */
  double theta;       /* rope_theta */
  double factor;      /* scaling factor (linear, dynamic, llama3, yarn) */
  double low_freq_factor, high_freq_factor;          /* llama3 */
  int64_t original_max_position;                      /* llama3, yarn, dynamic */
  int64_t max_position;                               /* max_position_embeddings */
  double beta_fast, beta_slow, attention_factor;      /* yarn; attention_factor<=0: default */
} BanyanRopeSpec;

typedef struct BanyanAttentionSpec {
  int32_t layer;          /* index of the layer: selects its KV cache */
  int32_t num_heads;
  int32_t num_kv_heads;
  int32_t head_dim;
  float scale;            /* usually 1/sqrt(head_dim) */
  int32_t sliding_window; /* 0: none; else each query sees the last N positions */
} BanyanAttentionSpec;

typedef enum BanyanLinearFlags {
  BANYAN_LINEAR_DEFAULT = 0,
  /* the checkpoint stores this weight as [in, out] (GPT-2 Conv1D), not [out, in] */
  BANYAN_LINEAR_TRANSPOSED = 1
} BanyanLinearFlags;

/* ---------------------------------------------------------------- sampling - */
/* The sampling op (BanyanOpsV1.sample, added in ABI 1.2): decoding on the device
 * where the logits are, so that a step copies O(rows) bytes back instead of R x V
 * floats. Semantics are those of banyan/logits.h (vLLM's sampler). */

typedef enum BanyanLogitEditFlags {
  BANYAN_EDIT_MASK = 1,       /* set the logit to -inf first (min_tokens: EOS, stop ids) */
  BANYAN_EDIT_REPETITION = 2  /* apply the row's repetition penalty to this token */
} BanyanLogitEditFlags;

/* A change to one logit of a row, applied in vLLM's order: mask, += bias,
 * repetition (x > 0 ? x / penalty : x * penalty), -= subtract (presence and
 * frequency). A row's edits are sorted by token, one per token (logits.h's
 * make_edits builds them). */
typedef struct BanyanLogitEdit {
  int32_t token;
  uint32_t flags;   /* BanyanLogitEditFlags */
  float bias;       /* logit_bias; 0: none */
  float subtract;   /* frequency_penalty * count + presence_penalty; 0: none */
} BanyanLogitEdit;

/* One draw from one row of logits. */
typedef struct BanyanSampleRow {
  int32_t logits_row;         /* row of the logits tensor */
  int32_t top_k;              /* <= 0: off */
  double temperature;         /* 0: argmax (u unused) */
  double top_p;               /* (0, 1] */
  double min_p;               /* [0, 1] */
  double u;                   /* the uniform draw in [0, 1) (the caller's generator) */
  float repetition_penalty;   /* applied to edits flagged REPETITION */
  int32_t num_logprobs;       /* top logprobs of the raw distribution to return */
  int32_t first_edit;         /* this row's edits: edits[first_edit, + num_edits) */
  int32_t num_edits;
} BanyanSampleRow;

/* What one draw returns (host memory, caller-allocated). */
typedef struct BanyanSampleResult {
  int32_t token;
  float logprob;        /* of the token under log_softmax of the raw row */
  int32_t used_u;       /* 1 when the draw consumed u (temperature > 0 and some logit
                         * is finite after the edits), as logits.h draws */
  int32_t* top_ids;     /* num_logprobs entries, best first, ties to the lower id */
  float* top_logprobs;  /* (may be null when num_logprobs is 0) */
} BanyanSampleResult;

/* The operations a model plugin computes with. Tensors are batched over a flat
 * token dimension (all sequences of the step concatenated). Outputs are allocated
 * by the caller with alloc() unless noted. Weights are named with the checkpoint's
 * own names. The host decides the backend (CPU or CUDA); a model never sees it. */
typedef struct BanyanOpsV1 {
  uint32_t struct_size;

  /* The step's input: token ids [T] (i32) and positions [T] (i32), device-resident. */
  int32_t (*step_input)(BanyanStepContext* ctx, BanyanTensor* token_ids,
                        BanyanTensor* positions, BanyanError* err);
  /* A scratch tensor valid until the end of the step. */
  int32_t (*alloc)(BanyanStepContext* ctx, int32_t dtype, int32_t ndim,
                   const int64_t* shape, BanyanTensor* out, BanyanError* err);
  /* A checkpoint tensor by name (read-only); code NOT_FOUND when absent. */
  int32_t (*weight)(BanyanStepContext* ctx, const char* name, BanyanTensor* out,
                    BanyanError* err);

  /* out[t] = table[ids[t]]; table is the weight `name` [V, H]. */
  int32_t (*embedding)(BanyanStepContext* ctx, const char* name, const BanyanTensor* ids,
                       BanyanTensor* out, BanyanError* err);
  /* If residual is non-null: residual += x, then out = rmsnorm(residual) * w;
   * else out = rmsnorm(x) * w. weight_offset is added to w (Gemma uses 1). */
  int32_t (*rms_norm)(BanyanStepContext* ctx, const BanyanTensor* x, BanyanTensor* residual,
                      const char* weight_name, float eps, float weight_offset,
                      BanyanTensor* out, BanyanError* err);
  /* As rms_norm, with mean subtraction and an optional bias (bias_name may be null). */
  int32_t (*layer_norm)(BanyanStepContext* ctx, const BanyanTensor* x, BanyanTensor* residual,
                        const char* weight_name, const char* bias_name, float eps,
                        BanyanTensor* out, BanyanError* err);
  /* out = x · W^T (+ b) (+ each token's adapter delta). `name` is the module name
   * ("model.layers.0.self_attn.q_proj"); the weight is name + ".weight" and the bias
   * name + ".bias" when the checkpoint has one. Quantizers and adapters hook here. */
  int32_t (*linear)(BanyanStepContext* ctx, const char* name, const BanyanTensor* x,
                    uint32_t flags, BanyanTensor* out, BanyanError* err);
  /* Rotates q [T, Hq*D] and k [T, Hk*D] in place at the step's positions. */
  int32_t (*rotary)(BanyanStepContext* ctx, BanyanTensor* q, BanyanTensor* k,
                    const BanyanRopeSpec* spec, BanyanError* err);
  /* Writes k, v [T, Hk*D] into the layer's paged KV cache, then out [T, Hq*D] =
   * causal attention of q over every cached position of each token's sequence. */
  int32_t (*attention)(BanyanStepContext* ctx, const BanyanTensor* q, const BanyanTensor* k,
                       const BanyanTensor* v, const BanyanAttentionSpec* spec,
                       BanyanTensor* out, BanyanError* err);
  /* out = act(gate) * up. */
  int32_t (*act_mul)(BanyanStepContext* ctx, const BanyanTensor* gate, const BanyanTensor* up,
                     int32_t activation, BanyanTensor* out, BanyanError* err);
  /* out = act(x). */
  int32_t (*activation)(BanyanStepContext* ctx, const BanyanTensor* x, int32_t activation,
                        BanyanTensor* out, BanyanError* err);
  /* out = a + b (same shape). out may alias a. */
  int32_t (*add)(BanyanStepContext* ctx, const BanyanTensor* a, const BanyanTensor* b,
                 BanyanTensor* out, BanyanError* err);
  /* Final projection: selects the rows of hidden [T, H] whose logits the step needs
   * (the last token of each sequence unless more were asked), multiplies by the
   * linear `name` and returns logits [R, V] (f32), allocated by the host. */
  int32_t (*logits)(BanyanStepContext* ctx, const BanyanTensor* hidden, const char* name,
                    uint32_t flags, BanyanTensor* out, BanyanError* err);
  /* out [T, count] = columns [begin, begin + count) of x [T, N] (a copy), e.g. q, k
   * and v out of a fused qkv projection. */
  int32_t (*slice_columns)(BanyanStepContext* ctx, const BanyanTensor* x, int64_t begin,
                           int64_t count, BanyanTensor* out, BanyanError* err);
  /* Added in ABI 1.2 (read struct_size first). Samples num_rows draws from logits
   * [R, V] f32 (host or device memory, as the step's backend keeps them): applies each
   * row's edits, then temperature, top_k, top_p, min_p as banyan/logits.h does, and
   * writes the token, its raw logprob and the raw top logprobs into out[i] (host
   * memory). Synchronizes with the device; copies back O(num_rows x (1 + n)) values.
   * Decoding plugins get the ctx with BanyanDecodingV1.decode_on. */
  int32_t (*sample)(BanyanStepContext* ctx, const BanyanTensor* logits,
                    const BanyanSampleRow* rows, int32_t num_rows, const BanyanLogitEdit* edits,
                    int32_t num_edits, BanyanSampleResult* out, BanyanError* err);
  /* Added in ABI 1.3 (read struct_size first). n linear layers over one input, as n
   * calls of `linear` would compute them (within rounding): outs[i] [T, N_i] = x ·
   * W_i^T (+ b_i) (+ each token's adapter delta). The caller sets each outs[i]'s
   * dtype, ndim and shape ([T, N_i]); the host checks them and sets data (valid until
   * the end of the step). The host may keep the n weights side by side and run one
   * product (q/k/v, gate/up), so a model should group the linears that share x. */
  int32_t (*linear_n)(BanyanStepContext* ctx, int32_t n, const char* const* names,
                      const BanyanTensor* x, uint32_t flags, BanyanTensor* outs, BanyanError* err);
  /* Added in ABI 1.3. The gated MLP's first half: out [T, N] = act(x · Wg^T) * (x ·
   * Wu^T) for the linears gate_name and up_name (N out features each), as linear_n
   * and act_mul would compute it (bf16 roundings included); out is allocated by the
   * caller. The host may run one pass over both weights with act-and-multiply in its
   * epilogue. */
  int32_t (*linear_gated)(BanyanStepContext* ctx, const char* gate_name, const char* up_name,
                          const BanyanTensor* x, int32_t activation, uint32_t flags,
                          BanyanTensor* out, BanyanError* err);
} BanyanOpsV1;

/* ---------------------------------------------------------------- host ------ */
/* What the host lends a plugin at creation. Valid for the plugin object's life. */
typedef struct BanyanHostV1 {
  uint32_t struct_size;
  uint32_t abi_major, abi_minor;
  void (*log)(int32_t level, const char* plugin, const char* message);
  const BanyanOpsV1* ops;
  /* Checkpoint tensors known before any step: shape and dtype (data may be null). */
  void* weights_ctx;
  int32_t (*weight_info)(void* weights_ctx, const char* name, BanyanTensor* out);
} BanyanHostV1;

/* ---------------------------------------------------------------- kinds ----- */
typedef enum BanyanPluginKind {
  BANYAN_KIND_MODEL = 0,
  BANYAN_KIND_ADAPTER = 1,
  BANYAN_KIND_QUANTIZER = 2,
  BANYAN_KIND_DECODING = 3
} BanyanPluginKind;

/* What a model tells the host so it can size the KV cache and the vocabulary. */
typedef struct BanyanModelSpec {
  uint32_t struct_size;
  int32_t num_layers;
  int32_t num_kv_heads;
  int32_t head_dim;
  int32_t vocab_size;
  int64_t max_position; /* max_position_embeddings */
  int32_t sliding_window;
  int32_t hidden_size;
} BanyanModelSpec;

/* Kind-specific interface of a model plugin (descriptor.iface). */
typedef struct BanyanModelV1 {
  uint32_t struct_size;
  int32_t (*describe)(void* self, BanyanModelSpec* spec, BanyanError* err);
  /* One forward step; *logits is set to a host-allocated [R, V] f32 tensor. */
  int32_t (*forward)(void* self, const BanyanOpsV1* ops, BanyanStepContext* ctx,
                     BanyanTensor* logits, BanyanError* err);
} BanyanModelV1;

/* ---------------------------------------------------------------- decoding -- */
/* One sequence's decoding parameters (OpenAI / vLLM names and semantics). */
typedef struct BanyanDecodeParams {
  uint32_t struct_size;
  double temperature;        /* 0: greedy */
  double top_p;              /* (0, 1] */
  double min_p;              /* [0, 1] */
  double presence_penalty;   /* OpenAI: over the output */
  double frequency_penalty;  /* OpenAI: over the output */
  double repetition_penalty; /* Hugging Face/vLLM: over prompt and output; 1: off */
  double length_penalty;     /* beam search */
  int32_t top_k;             /* <= 0: off */
  int32_t min_tokens;        /* EOS and stop ids masked until reached */
  int32_t ignore_eos;
  int32_t num_logprobs;      /* top logprobs wanted per token (0: none) */
  const int32_t* bias_ids;   /* logit_bias */
  const float* bias_values;
  int32_t num_bias;
  const int32_t* stop_token_ids;
  int32_t num_stop_token_ids;
  const int32_t* eos_ids;
  int32_t num_eos;
  /* ABI 1.2 (read only when struct_size covers it; banyan::logits::typical_p_of):
   * locally typical sampling (Hugging Face's TypicalLogitsWarper, TGI's typical_p),
   * applied after top_k, top_p and min_p; (0, 1], 1 (or 0) off. */
  double typical_p;
} BanyanDecodeParams;

/* One row of logits to decode, with its sequence's context. */
typedef struct BanyanDecodeRow {
  int32_t logits_row;        /* row of the logits tensor */
  const int32_t* tokens;     /* prompt + output so far (host memory) */
  int32_t num_tokens;
  int32_t prompt_len;
  const BanyanDecodeParams* params;
  uint64_t* rng_state;       /* 4 words of xoshiro256** state, advanced by the plugin */
  double cumulative_logprob; /* of the sequence so far (beam search) */
} BanyanDecodeRow;

/* One chosen token. top_ids / top_logprobs are caller-allocated arrays of
 * params->num_logprobs entries (may be null when 0). */
typedef struct BanyanDecodeChoice {
  int32_t row;       /* index into the rows array */
  int32_t token;
  float logprob;     /* log-probability reported to the client */
  double score;      /* the strategy's ranking score (beam: cumulative log-probability) */
  int32_t* top_ids;
  float* top_logprobs;
  /* The generator state of the stream that drew this choice, after the draw: a
   * parallel strategy draws several samples of one row from separate streams, and
   * the host continues each forked sequence from its stream. */
  uint64_t rng_state[4];
} BanyanDecodeChoice;

/* Kind-specific interface of a decoding plugin (descriptor.iface). */
typedef struct BanyanDecodingV1 {
  uint32_t struct_size;
  /* Decodes `num_rows` rows of `logits` ([R, V] f32; device_type says where it
   * lives) into `per_row` choices each, written to out[i * per_row + j], best
   * first. A sampling strategy is called with per_row 1; a parallel strategy with
   * per_row = best_of for the first token of an n > 1 request (one sample per
   * stream); a beam strategy with per_row = 2 x the beam width, returning each
   * row's best continuations. */
  int32_t (*decode)(void* self, const BanyanTensor* logits, const BanyanDecodeRow* rows,
                    int32_t num_rows, int32_t per_row, BanyanDecodeChoice* out,
                    BanyanError* err);
  /* Added in ABI 1.2; optional (null, or an older struct_size: the host always passes
   * host logits to decode). As decode, but the logits may stay where the step left
   * them (device memory on a GPU), and ops / ctx give the op table for them (e.g.
   * ops->sample), valid for the call. A plugin filling this slot declares that it
   * accepts device logits; the host calls it for steps whose rows it alone decodes. */
  int32_t (*decode_on)(void* self, const BanyanOpsV1* ops, BanyanStepContext* ctx,
                       const BanyanTensor* logits, const BanyanDecodeRow* rows,
                       int32_t num_rows, int32_t per_row, BanyanDecodeChoice* out,
                       BanyanError* err);
} BanyanDecodingV1;

/* ---------------------------------------------------------------- adapters -- */
/* An adapter plugin reads one adapter format (PEFT LoRA/DoRA, ...) and checks it
 * against the base model; the host owns the adapter's memory and its math. */

/* One linear layer of the base model, as the host describes it to an adapter plugin. */
typedef struct BanyanLinearInfo {
  const char* name;     /* module name, e.g. "model.layers.0.self_attn.q_proj" */
  int64_t in_features;
  int64_t out_features;
  int32_t is_output;    /* 1 for the final projection (lm_head): "all-linear" skips it */
} BanyanLinearInfo;

/* The base model an adapter must fit. */
typedef struct BanyanBaseModelInfo {
  uint32_t struct_size;
  const char* model_type;            /* config.json's model_type */
  int32_t num_layers;
  int32_t num_linears;
  const BanyanLinearInfo* linears;   /* every linear layer the model computes with */
} BanyanBaseModelInfo;

/* One adapted linear layer: out += scaling * (x A^T) B^T; with a magnitude
 * vector (DoRA) the host also rescales each output as the format defines. */
typedef struct BanyanAdapterModule {
  const char* name;           /* the base module it applies to */
  int32_t rank;
  float scaling;              /* e.g. lora_alpha / r, or lora_alpha / sqrt(r) (rsLoRA) */
  BanyanTensor lora_a;        /* [rank, in_features], host memory (BF16, F16 or F32) */
  BanyanTensor lora_b;        /* [out_features, rank] */
  BanyanTensor magnitude;     /* DoRA: [out_features]; data null when absent */
  int32_t weight_transposed;  /* the base weight is stored [in, out] (fan_in_fan_out) */
} BanyanAdapterModule;

/* What open() read. Every pointer stays valid until close(). */
typedef struct BanyanAdapterInfo {
  uint32_t struct_size;
  int32_t num_modules;
  const BanyanAdapterModule* modules;
  int32_t max_rank;
  const char* method;         /* "lora" or "dora" */
  const char* summary;        /* one line for logs and listings */
} BanyanAdapterInfo;

/* Kind-specific interface of an adapter plugin (descriptor.iface). */
typedef struct BanyanAdapterV1 {
  uint32_t struct_size;
  /* Reads the adapter stored at `path` and checks it against `base` (every module
   * exists, shapes match). On success *adapter is a handle owned by the plugin and
   * *info describes it; the tensors' data may be memory-mapped and is valid until
   * close(adapter). NOT_FOUND: missing files; INVALID_ARGUMENT: a bad or mismatched
   * adapter; UNSUPPORTED: a valid adapter using a feature this plugin lacks. */
  int32_t (*open)(void* self, const char* path, const BanyanBaseModelInfo* base,
                  void** adapter, BanyanAdapterInfo* info, BanyanError* err);
  /* Frees a handle from open(). */
  void (*close)(void* self, void* adapter);
} BanyanAdapterV1;

/* ---------------------------------------------------------------- quantizers */
/* A quantizer plugin owns a weight storage format and its math: it packs one
 * weight matrix into one of the layouts below (quantize), unpacks it again
 * (dequantize: the reference for tests and tools) and may read checkpoints that
 * another tool quantized. The host runs the products with its own kernels, one per
 * layout, on every backend. The host quantizes the linear layers of the decoder
 * blocks; the embeddings and the output projection keep the checkpoint's dtype.
 * Added in ABI 1.1. */

typedef enum BanyanQuantLayout {
  BANYAN_QUANT_INT8_ROW = 0,   /* int8, one scale per output row */
  BANYAN_QUANT_INT4_GROUP = 1, /* unsigned 4-bit with a zero point, groups along the input */
  BANYAN_QUANT_LUT4_BLOCK = 2, /* 4-bit indices into a 16-value code, absmax per block */
  BANYAN_QUANT_FP8 = 3         /* e4m3fn values, one scale per tensor or per output row */
} BanyanQuantLayout;

/* One quantized weight W [rows, cols] (rows = out_features, cols = in_features).
 * Its tensors are host memory, row-major; a tensor a layout does not use has ndim 0
 * and data null. With g = group_size and q the stored 4/8-bit values:
 *
 * INT8_ROW   qweight I8 [rows, cols]; scales F32 [rows]:
 *              w[n,k] = qweight[n,k] * scales[n]
 * INT4_GROUP qweight U8 [rows, cols / 2]: element k of a row is in byte k / 2, in the
 *            low nibble when k is even; scales F32 [rows, cols / g]; zeros U8
 *            [rows, cols / g]:
 *              w[n,k] = (q[n,k] - zeros[n, k/g]) * scales[n, k/g]
 * LUT4_BLOCK over the flat row-major weight (element i = n * cols + k): qweight U8
 *            [ceil(rows * cols / 2)], element i in byte i / 2, in the HIGH nibble when
 *            i is even (bitsandbytes' order); code F32 [16]; blocks of g elements:
 *              w[i] = code[q[i]] * absmax[i / g]
 *            absmax = scales (F32 [nblocks]), or with double quantization (scales U8
 *            [nblocks], group_size2 > 0): absmax[b] = code2[scales[b]] *
 *            scales2[b / group_size2] + offset, code2 F32 [256], scales2 F32
 *            [ceil(nblocks / group_size2)]
 * FP8        qweight FP8_E4M3 [rows, cols] (e4m3fn bits); scales F32 [1] (per tensor)
 *            or [rows] (per channel):
 *              w[n,k] = float(qweight[n,k]) * scales[0 or n]
 */
typedef struct BanyanQuantizedWeight {
  uint32_t struct_size;
  int32_t layout;      /* BanyanQuantLayout */
  int64_t rows, cols;
  int32_t group_size;  /* INT4_GROUP, LUT4_BLOCK; else 0 */
  int32_t group_size2; /* LUT4_BLOCK with double quantization; else 0 */
  float offset;        /* LUT4_BLOCK with double quantization; else 0 */
  BanyanTensor qweight;
  BanyanTensor scales;
  BanyanTensor zeros;
  BanyanTensor code;
  BanyanTensor scales2;
  BanyanTensor code2;
} BanyanQuantizedWeight;

/* Read access to a checkpoint's tensors (host memory, valid while the source lives),
 * for plugins that read pre-quantized checkpoints. get() returns NOT_FOUND when the
 * checkpoint has no tensor of that name. */
typedef struct BanyanTensorSource {
  void* ctx;
  int32_t (*get)(void* ctx, const char* name, BanyanTensor* out);
} BanyanTensorSource;

/* Kind-specific interface of a quantizer plugin (descriptor.iface). `module` is the
 * linear layer's name ("model.layers.0.mlp.down_proj"), for messages and per-module
 * choices. Every call is made from one thread at a time. */
typedef struct BanyanQuantizerV1 {
  uint32_t struct_size;
  /* Says how the weight of `module`, [rows, cols], will be stored: fills out's layout,
   * sizes, group sizes and the dtype and shape of each tensor it uses (data null).
   * The host allocates those tensors, then calls quantize(). INVALID_ARGUMENT, with a
   * message naming the module, when the shape does not suit the options (e.g. a group
   * size that does not divide cols). */
  int32_t (*plan)(void* self, const char* module, int64_t rows, int64_t cols,
                  BanyanQuantizedWeight* out, BanyanError* err);
  /* Quantizes `weight` (host memory, BF16, F16 or F32 [rows, cols]) into the buffers of
   * `out`, a weight plan() described and the host allocated. */
  int32_t (*quantize)(void* self, const char* module, const BanyanTensor* weight,
                      BanyanQuantizedWeight* out, BanyanError* err);
  /* Unpacks `w` into `out` (host memory, F32 [rows, cols], allocated by the caller). */
  int32_t (*dequantize)(void* self, const BanyanQuantizedWeight* w, BanyanTensor* out,
                        BanyanError* err);
  /* Optional (null: no pre-quantized checkpoints). When config.json has a
   * quantization_config, create() receives it as "quantization_config"; then the
   * host asks for each linear layer of the decoder blocks: plan_checkpoint() plans
   * the module's stored weight as plan() does, or returns 0 leaving out->rows 0 when
   * the checkpoint keeps this module dense; convert_checkpoint() fills the planned
   * buffers. */
  int32_t (*plan_checkpoint)(void* self, const char* module, const BanyanTensorSource* src,
                             BanyanQuantizedWeight* out, BanyanError* err);
  int32_t (*convert_checkpoint)(void* self, const char* module, const BanyanTensorSource* src,
                                BanyanQuantizedWeight* out, BanyanError* err);
} BanyanQuantizerV1;

/* ---------------------------------------------------------------- entry ----- */
/* The descriptor a plugin library returns from banyan_plugin_entry(). It must
 * stay valid while the library is loaded (a static object). */
typedef struct BanyanPluginV1 {
  uint32_t abi_major;   /* BANYAN_ABI_MAJOR the plugin was built with */
  uint32_t abi_minor;   /* BANYAN_ABI_MINOR the plugin was built with */
  uint32_t struct_size; /* sizeof(BanyanPluginV1) as the plugin saw it */
  int32_t kind;         /* BanyanPluginKind */
  const char* name;     /* unique per kind, matches plugin.yaml */
  const char* version;  /* the plugin's own version, e.g. "0.1.0" */
  /* Creates an instance. options_json is a JSON object: the validated plugin options
   * plus kind-specific inputs (a model gets "model_dir" and "config", config.json's
   * object). Returns null and fills err on failure. */
  void* (*create)(const BanyanHostV1* host, const char* options_json, BanyanError* err);
  void (*destroy)(void* instance);
  /* Kind-specific function table: BanyanModelV1* for models, etc. */
  const void* iface;
} BanyanPluginV1;

typedef const BanyanPluginV1* (*BanyanPluginEntryFn)(void);

#define BANYAN_PLUGIN_ENTRY_SYMBOL "banyan_plugin_entry"

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* BANYAN_ABI_H */
