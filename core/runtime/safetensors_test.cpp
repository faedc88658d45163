// safetensors parsing and validation: valid files, then corrupt ones crafted byte
// by byte, each refused with a message naming the file and the tensor.
#include "core/runtime/checkpoint.h"
#include "core/runtime/safetensors.h"
#include "core/runtime/safetensors_writer.h"
#include "core/runtime/test_util.h"

#include <cstring>

namespace banyan::core {
namespace {

using test::expect_error;
using test::TempDir;

// 8-byte little-endian length + header + data bytes.
std::string image(const std::string& header, size_t data_bytes, uint64_t declared = UINT64_MAX) {
  uint64_t n = declared == UINT64_MAX ? header.size() : declared;
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  s += header;
  for (size_t i = 0; i < data_bytes; ++i) s.push_back(static_cast<char>(i * 7 + 1));
  return s;
}

SafetensorsHeader parse(const std::string& img) {
  return parse_safetensors(
      std::span<const std::byte>(reinterpret_cast<const std::byte*>(img.data()), img.size()),
      "x.safetensors");
}

TEST(Safetensors, ParsesTensorsMetadataAndDtypes) {
  const std::string h =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},)"
      R"("b":{"dtype":"F32","shape":[],"data_offsets":[12,16]},)"
      R"("c":{"dtype":"BOOL","shape":[0],"data_offsets":[16,16]},)"
      R"("d":{"dtype":"F16","shape":[2],"data_offsets":[16,20]}})";
  SafetensorsHeader s = parse(image(h, 20));
  ASSERT_EQ(s.tensors.size(), 4u);
  EXPECT_EQ(s.metadata.at("format"), "pt");
  EXPECT_EQ(s.data_offset, 8 + h.size());
  EXPECT_EQ(s.tensors[0].name, "a");
  EXPECT_EQ(*s.tensors[0].dtype, DType::bf16);
  EXPECT_EQ(s.tensors[0].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_TRUE(s.tensors[1].shape.empty());
  EXPECT_FALSE(s.tensors[2].dtype.has_value());  // BOOL: valid, not computed with
  EXPECT_EQ(s.tensors[2].dtype_name, "BOOL");
  EXPECT_EQ(*s.tensors[3].dtype, DType::f16);
}

struct Bad {
  const char* what;
  std::string image;
  std::vector<std::string> fragments;
};

TEST(Safetensors, RefusesCorruptHeaders) {
  const std::string ok1 = R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  std::vector<Bad> cases = {
      {"shorter than the length", std::string(5, '\0'), {"too short"}},
      {"length past the end", image("{}", 0, 50), {"truncated", "50"}},
      {"absurd length", image("{}", 0, uint64_t{1} << 40), {"exceeds the limit"}},
      {"empty header", image("", 0), {"empty JSON header"}},
      {"not JSON", image("{\"w\":", 0), {"not valid JSON"}},
      {"not an object", image("[1,2]", 0), {"not a JSON object"}},
      {"duplicate name", image("{" + ok1 + "," + ok1 + "}", 8), {"\"w\" appears twice"}},
      {"entry not an object", image(R"({"w":3})", 0), {"tensor \"w\"", "not an object"}},
      {"missing dtype", image(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4),
       {"tensor \"w\"", "dtype"}},
      {"unknown dtype", image(R"({"w":{"dtype":"F7","shape":[1],"data_offsets":[0,4]}})", 4),
       {"tensor \"w\"", "unknown dtype \"F7\""}},
      {"negative dim", image(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4),
       {"tensor \"w\"", "non-negative"}},
      {"float dim", image(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4),
       {"tensor \"w\"", "non-negative"}},
      {"overflowing shape",
       image(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", 4),
       {"tensor \"w\"", "overflows"}},
      {"offsets not a pair", image(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4),
       {"tensor \"w\"", "data_offsets"}},
      {"end before begin", image(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", 8),
       {"tensor \"w\"", "before begin"}},
      {"shape vs bytes", image(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
       {"tensor \"w\"", "needs 12 bytes", "span 8"}},
      {"overlap",
       image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
       {"tensor \"b\"", "overlaps tensor \"a\""}},
      {"gap",
       image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", 12),
       {"unaccounted bytes before tensor \"b\""}},
      {"truncated data", image("{" + ok1 + "}", 6), {"truncated", "tensor \"w\"", "only 6"}},
      {"trailing bytes", image("{" + ok1 + "}", 9), {"1 bytes after the last tensor"}},
      {"metadata not strings", image(R"({"__metadata__":{"a":1}})", 0), {"__metadata__"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    try {
      parse(c.image);
      ADD_FAILURE() << "accepted: " << c.what;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.rfind("x.safetensors", 0), 0u) << msg;  // names the file first
      for (const auto& f : c.fragments)
        EXPECT_NE(msg.find(f), std::string::npos) << "\"" << msg << "\" lacks \"" << f << "\"";
    }
  }
}

std::vector<std::byte> bytes_of(const std::vector<float>& v) {
  std::vector<std::byte> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

TEST(Safetensors, EveryTruncationOfAFileIsRefused) {
  TempDir dir;
  auto a = bytes_of({1, 2, 3, 4, 5, 6});
  auto b = bytes_of({7, 8});
  write_safetensors(dir / "m.safetensors", {{"layer.a", DType::f32, {2, 3}, a},
                                             {"layer.b", DType::f32, {2}, b}});
  const auto full = std::filesystem::file_size(dir / "m.safetensors");
  SafetensorsFile ok(dir / "m.safetensors");
  ASSERT_NE(ok.find("layer.b"), nullptr);
  float first;
  std::memcpy(&first, ok.find("layer.b")->data, 4);
  EXPECT_EQ(first, 7.0f);

  std::ifstream in(dir / "m.safetensors", std::ios::binary);
  std::string img((std::istreambuf_iterator<char>(in)), {});
  for (size_t len = 0; len < full; ++len) {
    test::write_file(dir / "t.safetensors", img.substr(0, len));
    try {
      SafetensorsFile f(dir / "t.safetensors");
      ADD_FAILURE() << "accepted a file truncated to " << len << " bytes";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("t.safetensors"), std::string::npos) << e.what();
    }
  }
}

TEST(Safetensors, EveryByteFlipOfTheHeaderIsRefusedOrConsistent) {
  TempDir dir;
  auto a = bytes_of({1, 2, 3, 4});
  write_safetensors(dir / "m.safetensors", {{"w", DType::f32, {4}, a}});
  std::ifstream in(dir / "m.safetensors", std::ios::binary);
  std::string img((std::istreambuf_iterator<char>(in)), {});
  for (size_t i = 0; i < img.size() - a.size(); ++i) {
    std::string bad = img;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    try {
      SafetensorsHeader h = parse(bad);
      // A flip that still parses (e.g. in padding or a name) must still tile the data.
      uint64_t total = 0;
      for (const auto& t : h.tensors) total += t.nbytes();
      EXPECT_EQ(total + h.data_offset, bad.size());
    } catch (const Error&) {
    }
  }
}

TEST(Checkpoint, ReadsShardsThroughTheIndex) {
  TempDir dir;
  auto a = bytes_of({1, 2}), b = bytes_of({3});
  write_safetensors(dir / "model-00001-of-00002.safetensors", {{"a", DType::f32, {2}, a}});
  write_safetensors(dir / "model-00002-of-00002.safetensors", {{"b", DType::f32, {1}, b}});
  test::write_file(dir / "model.safetensors.index.json",
                   R"({"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors",)"
                   R"("b":"model-00002-of-00002.safetensors"}})");
  Checkpoint ck(dir.path());
  EXPECT_EQ(ck.size(), 2u);
  EXPECT_EQ(ck.get("b").shape, (std::vector<int64_t>{1}));
  EXPECT_EQ(ck.file_of("b").filename(), "model-00002-of-00002.safetensors");
  expect_error([&] { ck.get("c"); }, {"no tensor \"c\"", dir.path().string()});
}

TEST(Checkpoint, RefusesInconsistentIndexes) {
  TempDir dir;
  auto a = bytes_of({1, 2});
  write_safetensors(dir / "s1.safetensors", {{"a", DType::f32, {2}, a}});
  write_safetensors(dir / "s2.safetensors", {{"a", DType::f32, {2}, a}});
  auto index = [&](const std::string& wm) {
    test::write_file(dir / "model.safetensors.index.json", R"({"weight_map":)" + wm + "}");
  };
  index(R"({"a":"s1.safetensors","z":"s1.safetensors"})");
  expect_error([&] { Checkpoint c(dir.path()); }, {"tensor \"z\"", "s1.safetensors"});
  index(R"({"a":"../s1.safetensors"})");
  expect_error([&] { Checkpoint c(dir.path()); }, {"not a file of this directory"});
  index(R"({"a":"missing.safetensors"})");
  expect_error([&] { Checkpoint c(dir.path()); }, {"missing.safetensors"});
  index(R"({"a":"s1.safetensors","b":"s2.safetensors"})");
  expect_error([&] { Checkpoint c(dir.path()); }, {"tensor \"a\" is also in"});
  index("[]");
  expect_error([&] { Checkpoint c(dir.path()); }, {"weight_map"});
  TempDir empty;
  expect_error([&] { Checkpoint c(empty.path()); }, {"no model.safetensors"});
}

}  // namespace
}  // namespace banyan::core
