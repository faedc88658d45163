// The CUDA backend's memory rules (ordered uploads from reusable host buffers,
// out-of-memory errors) and CUDA graph capture: a captured decode step replayed
// on new inputs gives what running the ops directly gives.
#include "kernels/cuda/cuda_test_util.h"

namespace banyan::kernels::cuda::test {
namespace {

TEST(CudaBackend, UploadsAreOrderedAndTheHostBufferIsReusable) {
  BANYAN_REQUIRE_GPU();
  CudaBackend gpu;
  const int n = 300;
  const size_t each = 48 << 10;  // 300 x 48 KiB wraps the 8 MiB staging ring
  std::vector<Dev> bufs;
  std::vector<unsigned char> host(each);
  for (int i = 0; i < n; ++i) {
    bufs.push_back(make(gpu, DType::u8, {static_cast<int64_t>(each)}));
    std::fill(host.begin(), host.end(), static_cast<unsigned char>(i * 7 + 1));
    gpu.upload(bufs.back().t.data, host.data(), each);  // host is overwritten right after
  }
  for (int i = 0; i < n; ++i) {
    gpu.download(host.data(), bufs[i].t.data, each);
    ASSERT_EQ(host.front(), static_cast<unsigned char>(i * 7 + 1)) << "buffer " << i;
    ASSERT_EQ(host.back(), static_cast<unsigned char>(i * 7 + 1)) << "buffer " << i;
  }
  std::vector<unsigned char> big((20 << 20) + 3, 0x5a);  // larger than the ring
  Dev d = make(gpu, DType::u8, {static_cast<int64_t>(big.size())});
  gpu.upload(d.t.data, big.data(), big.size());
  std::fill(big.begin(), big.end(), 0);
  gpu.download(big.data(), d.t.data, big.size());
  EXPECT_EQ(big[12345], 0x5a);
}

TEST(CudaBackend, OutOfMemoryIsAnErrorNamingTheSize) {
  BANYAN_REQUIRE_GPU();
  CudaBackend gpu;
  try {
    gpu.allocate(size_t{1} << 50);
    ADD_FAILURE() << "a 1 PiB allocation succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::out_of_memory);
    EXPECT_NE(std::string(e.what()).find(std::to_string(size_t{1} << 50)), std::string::npos);
  }
  void* p = gpu.allocate(1024);  // the device still works
  gpu.deallocate(p);
}

// One decode step of a tiny layer: norm, projection, attention over the cache.
struct Step {
  static constexpr int64_t T = 3, H = 256, Hq = 4, Hk = 2, D = 64, bs = 16, blocks = 12;
  Dev x, res, w_norm, w_proj, qkv, q, k, v, out, kc, vc, layout;
  core::StepLayout l;
  explicit Step(CudaBackend& b) {
    x = make(b, DType::bf16, {T, H});
    res = make(b, DType::bf16, {T, H});
    w_norm = make(b, DType::f32, {H});
    w_proj = make(b, DType::bf16, {(Hq + 2 * Hk) * D, H});
    qkv = make(b, DType::bf16, {T, (Hq + 2 * Hk) * D});
    q = make(b, DType::bf16, {T, Hq * D});
    k = make(b, DType::bf16, {T, Hk * D});
    v = make(b, DType::bf16, {T, Hk * D});
    out = make(b, DType::bf16, {T, Hq * D});
    kc = make(b, DType::bf16, {blocks, bs, Hk, D});
    vc = make(b, DType::bf16, {blocks, bs, Hk, D});
    layout = make(b, DType::i32, {64});
    int32_t* base = layout.t.as<int32_t>();
    const Device dev = b.device();
    l.slot_mapping = Tensor(base, DType::i32, {T}, dev);
    l.token_seq = Tensor(base + T, DType::i32, {T}, dev);
    l.seq_info = Tensor(base + 2 * T, DType::i32, {T, 4}, dev);
    l.block_tables = Tensor(base + 6 * T, DType::i32, {T * 4}, dev);
    l.num_tokens = l.num_seqs = T;
    l.max_query_len = 1;
    l.max_context_len = 4 * bs;  // capacity: what the graph is captured for
  }
  // Three sequences of lengths ctx[i]; sequence i owns blocks 4i..4i+3.
  void set_inputs(CudaBackend& b, uint32_t seed, const int32_t (&ctx)[3]) {
    put(b, x.t, random_bf16(x.t.numel(), seed));
    put(b, res.t, random_bf16(res.t.numel(), seed + 1));
    std::vector<int32_t> h(64, 0);
    for (int i = 0; i < 3; ++i) {
      const int32_t p = ctx[i] - 1;
      h[i] = (4 * i + p / bs) * bs + p % bs;  // slot
      h[T + i] = i;                           // token_seq
      const int32_t info[4] = {i, 1, ctx[i], 4 * i};
      std::copy(info, info + 4, h.begin() + 2 * T + 4 * i);
      for (int j = 0; j < 4; ++j) h[6 * T + 4 * i + j] = 4 * i + j;
    }
    put_i32(b, layout.t, h);
  }
  void enqueue(CudaBackend& b) {
    b.rms_norm(x.t, &res.t, w_norm.t, 1e-5f, 0.0f, x.t);
    b.matmul(x.t, w_proj.t, false, nullptr, qkv.t);
    const Tensor heads = qkv.t.view({T * (Hq + 2 * Hk), D});
    Tensor qh = q.t.view({T * Hq, D}), kh = k.t.view({T * Hk, D}), vh = v.t.view({T * Hk, D});
    b.gather_rows(heads, split_rows_q, qh);
    b.gather_rows(heads, split_rows_k, kh);
    b.gather_rows(heads, split_rows_v, vh);
    core::AttentionParams p;
    p.layout = &l;
    p.k_cache = kc.t;
    p.v_cache = vc.t;
    p.block_size = bs;
    p.num_heads = Hq;
    p.num_kv_heads = Hk;
    p.head_dim = D;
    p.scale = 0.125f;
    b.attention(q.t, k.t, v.t, p, out.t);
  }
  Tensor split_rows_q, split_rows_k, split_rows_v;
};

TEST(CudaBackend, GraphReplayMatchesDirectExecution) {
  BANYAN_REQUIRE_GPU();
  CudaBackend b;
  Step s(b);
  put(b, s.w_norm.t, random_bf16(Step::H, 5, 0.5f, 1.5f));
  put(b, s.w_proj.t, random_bf16(s.w_proj.t.numel(), 6, -0.1f, 0.1f));
  put(b, s.kc.t, random_bf16(s.kc.t.numel(), 7));
  put(b, s.vc.t, random_bf16(s.vc.t.numel(), 8));
  // Row indices that split the fused qkv rows (in units of D) into q, k and v.
  Dev rq = make(b, DType::i32, {Step::T * Step::Hq}), rk = make(b, DType::i32, {Step::T * Step::Hk});
  Dev rv = make(b, DType::i32, {Step::T * Step::Hk});
  std::vector<int32_t> iq, ik, iv;
  const int32_t per = Step::Hq + 2 * Step::Hk;
  for (int32_t t = 0; t < Step::T; ++t) {
    for (int32_t h = 0; h < Step::Hq; ++h) iq.push_back(t * per + h);
    for (int32_t h = 0; h < Step::Hk; ++h) ik.push_back(t * per + Step::Hq + h);
    for (int32_t h = 0; h < Step::Hk; ++h) iv.push_back(t * per + Step::Hq + Step::Hk + h);
  }
  put_i32(b, rq.t, iq), put_i32(b, rk.t, ik), put_i32(b, rv.t, iv);
  s.split_rows_q = rq.t, s.split_rows_k = rk.t, s.split_rows_v = rv.t;

  s.set_inputs(b, 100, {5, 17, 40});
  s.enqueue(b);  // warm-up: plans and workspaces exist before capture
  b.begin_capture();
  s.enqueue(b);
  Graph g = b.end_capture();

  const int32_t ctx[3] = {9, 33, 64};
  s.set_inputs(b, 200, ctx);
  poison(b, s.out.t);
  b.launch(g);
  const auto replayed = get(b, s.out.t), res_replayed = get(b, s.res.t);
  s.set_inputs(b, 200, ctx);
  poison(b, s.out.t);
  s.enqueue(b);
  EXPECT_TRUE(close(get(b, s.out.t), replayed, 1e-6, "graph vs direct"));
  EXPECT_TRUE(close(get(b, s.res.t), res_replayed, 1e-6, "residual graph vs direct"));
}

TEST(CudaBackend, RefusesHostTransfersDuringCapture) {
  BANYAN_REQUIRE_GPU();
  CudaBackend b;
  Dev d = make(b, DType::i32, {4});
  int32_t h[4] = {1, 2, 3, 4};
  b.begin_capture();
  EXPECT_THROW(b.upload(d.t.data, h, sizeof h), Error);
  b.fill_zero(d.t.data, sizeof h);
  Graph g = b.end_capture();
  b.upload(d.t.data, h, sizeof h);
  b.launch(g);
  int32_t back[4] = {9, 9, 9, 9};
  b.download(back, d.t.data, sizeof back);
  EXPECT_EQ(back[0], 0);
  EXPECT_EQ(back[3], 0);
}

}  // namespace
}  // namespace banyan::kernels::cuda::test
