#include "core/common/strings.h"

#include <banyan/error.h>
#include <gtest/gtest.h>

namespace banyan::core {

TEST(Strings, EditDistance) {
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("same", "same"), 0u);
}

TEST(Strings, ClosestMatchSuggestsOnlyNearWords) {
  std::vector<std::string> keys = {"max_num_seqs", "max_num_batched_tokens", "block_size"};
  EXPECT_EQ(closest_match("max_num_seq", keys), "max_num_seqs");
  EXPECT_EQ(closest_match("blok_size", keys), "block_size");
  EXPECT_EQ(closest_match("completely_unrelated", keys), "");
}

TEST(Strings, Split) {
  EXPECT_EQ(split("a:b::c", ':'), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(split("", ':').empty());
}

TEST(Strings, ParseBytes) {
  EXPECT_EQ(parse_bytes("2GiB"), size_t{2} << 30);
  EXPECT_EQ(parse_bytes("512 MiB"), size_t{512} << 20);
  EXPECT_EQ(parse_bytes("1.5GB"), size_t{1500000000});
  EXPECT_EQ(parse_bytes("1000"), size_t{1000});
  EXPECT_THROW(parse_bytes("lots"), Error);
  EXPECT_THROW(parse_bytes("3 parsecs"), Error);
  EXPECT_THROW(parse_bytes("-1GiB"), Error);
}

}  // namespace banyan::core
