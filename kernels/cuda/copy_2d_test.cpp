// CudaBackend::copy_2d (one cudaMemcpy2DAsync) against the CPU backend's copy of the
// same pitched rows: column slices of a matrix, bytes outside the slice untouched,
// and the copy inside a captured graph.
#include "kernels/cuda/cuda_test_util.h"

namespace banyan::kernels::cuda::test {
namespace {

TEST(CudaBackend, Copy2dMatchesTheCpuBackend) {
  BANYAN_REQUIRE_GPU();
  Backends be;
  std::mt19937 rng(5);
  // (rows, source row bytes, destination row bytes, offset, width): slices of rows.
  const size_t cases[][5] = {{7, 96, 40, 16, 40}, {64, 8192, 2048, 6144, 2048}, {3, 10, 10, 0, 10},
                             {1, 4, 6, 1, 3}};
  for (const auto& c : cases) {
    const size_t rows = c[0], sp = c[1], dp = c[2], off = c[3], width = c[4];
    std::vector<unsigned char> src(rows * sp), init(rows * dp);
    for (auto& b : src) b = static_cast<unsigned char>(rng());
    for (auto& b : init) b = static_cast<unsigned char>(rng());
    std::vector<unsigned char> want = init, got(rows * dp);
    for (size_t r = 0; r < rows; ++r) std::memcpy(&want[r * dp], &src[r * sp + off], width);
    Dev s = make(*be.gpu, DType::u8, {static_cast<int64_t>(src.size())});
    Dev d = make(*be.gpu, DType::u8, {static_cast<int64_t>(init.size())});
    be.gpu->upload(s.t.data, src.data(), src.size());
    be.gpu->upload(d.t.data, init.data(), init.size());
    be.gpu->copy_2d(d.t.data, dp, static_cast<char*>(s.t.data) + off, sp, width, rows);
    be.gpu->download(got.data(), d.t.data, got.size());
    EXPECT_EQ(got, want) << rows << " rows of " << width << " bytes";
    // The CPU backend (Backend's default copy) gives the same bytes.
    Dev cs = make(*be.cpu, DType::u8, {static_cast<int64_t>(src.size())});
    Dev cd = make(*be.cpu, DType::u8, {static_cast<int64_t>(init.size())});
    be.cpu->upload(cs.t.data, src.data(), src.size());
    be.cpu->upload(cd.t.data, init.data(), init.size());
    be.cpu->copy_2d(cd.t.data, dp, static_cast<char*>(cs.t.data) + off, sp, width, rows);
    be.cpu->download(got.data(), cd.t.data, got.size());
    EXPECT_EQ(got, want) << "cpu backend, " << rows << " rows";
  }
  // Inside a graph: the copy is replayed with the source's new contents.
  std::vector<unsigned char> src(4 * 32), got(4 * 8);
  Dev s = make(*be.gpu, DType::u8, {128}), d = make(*be.gpu, DType::u8, {32});
  be.gpu->begin_capture();
  be.gpu->copy_2d(d.t.data, 8, static_cast<char*>(s.t.data) + 24, 32, 8, 4);
  Graph g = be.gpu->end_capture();
  for (auto& b : src) b = static_cast<unsigned char>(rng());
  be.gpu->upload(s.t.data, src.data(), src.size());
  be.gpu->launch(g);
  be.gpu->download(got.data(), d.t.data, got.size());
  for (size_t r = 0; r < 4; ++r)
    for (size_t i = 0; i < 8; ++i) EXPECT_EQ(got[r * 8 + i], src[r * 32 + 24 + i]);
}

}  // namespace
}  // namespace banyan::kernels::cuda::test
