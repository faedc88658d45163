#include "core/common/crash_handler.h"

#include <gtest/gtest.h>

#include <csignal>

namespace banyan::core {
namespace {

TEST(CrashHandlerDeathTest, FatalSignalPrintsTheSignalAndTheStack) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        install_crash_handler();
        install_crash_handler();  // a second call changes nothing
        std::raise(SIGSEGV);
      },
      "fatal signal Segmentation fault, native stack[^\n]*\n.*\\(");
}

TEST(CrashHandlerDeathTest, AbortIsReportedAndStillKillsWithSigabrt) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        install_crash_handler();
        std::abort();
      },
      testing::KilledBySignal(SIGABRT), "fatal signal Aborted");
}

}  // namespace
}  // namespace banyan::core
