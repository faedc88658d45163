// run-batch over the fake engine: one output line per input line, in order, with the
// same bodies as the HTTP routes; a bad line gets its own error and the rest still run.
#include "core/server/admission.h"
#include "core/server/batch_runner.h"
#include "core/server/metrics.h"
#include "core/server/server_context.h"
#include "core/server/testing/byte_codec.h"
#include "core/server/testing/fake_engine.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sstream>

namespace banyan::core::server {
namespace {

using json = nlohmann::json;

TEST(BatchRunner, LinesInOrderWithTheirOwnErrors) {
  testing::ByteCodec codec;
  testing::FakeEngine engine(testing::FakeEngine::Options{.name = "demo", .max_model_len = 256});
  ServerMetrics metrics;
  Admission admission(8, 8);
  ServerContext ctx(engine, codec, ServerOptions{}, metrics, admission);
  std::istringstream in(
      R"({"custom_id": "a", "method": "POST", "url": "/v1/completions", "body": {"prompt": "xy", "max_tokens": 3}})"
      "\n"
      R"({"custom_id": "b", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": [{"role": "user", "content": "q"}], "max_tokens": 2, "stream": true}})"
      "\n"
      "not json\n"
      R"({"custom_id": "d", "method": "POST", "url": "/v1/completions", "body": {"prompt": "x", "max_tokens": "many"}})"
      "\n"
      R"({"custom_id": "e", "method": "GET", "url": "/v1/models"})"
      "\n"
      R"({"custom_id": "f", "method": "POST", "url": "/v1/completions", "body": {"model": "nope", "prompt": "x"}})"
      "\n");
  std::ostringstream out;
  EXPECT_EQ(run_batch(ctx, in, out), 4u);
  std::istringstream lines(out.str());
  std::vector<json> o;
  for (std::string l; std::getline(lines, l);) o.push_back(json::parse(l));
  ASSERT_EQ(o.size(), 6u);
  EXPECT_EQ(o[0]["custom_id"], "a");
  EXPECT_EQ(o[0]["response"]["status_code"], 200);
  EXPECT_EQ(o[0]["response"]["body"]["choices"][0]["text"], "xyx");
  EXPECT_TRUE(o[0]["error"].is_null());
  EXPECT_EQ(o[1]["response"]["body"]["object"], "chat.completion");  // streaming turned off
  EXPECT_EQ(o[1]["response"]["body"]["choices"][0]["message"]["content"], "<|");
  EXPECT_TRUE(o[2]["response"].is_null());
  EXPECT_FALSE(o[2]["error"].is_null());
  EXPECT_EQ(o[3]["response"]["status_code"], 400);
  EXPECT_EQ(o[3]["response"]["body"]["error"]["param"], "max_tokens");
  EXPECT_FALSE(o[4]["error"].is_null());
  EXPECT_EQ(o[5]["response"]["status_code"], 404);
  EXPECT_EQ(o[5]["error"]["code"], "model_not_found");
}

}  // namespace
}  // namespace banyan::core::server
